"""One way to create or resume a judge-driven study, shared by ``tune`` and the demo."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from optuna_pandalm.arena import Arena

from optuna_pandalm.attributes import BASELINE_ATTR

__all__ = ["open_judged_study", "trials_to_run"]


def open_judged_study(
    arena: Arena,
    storage: str,
    *,
    base_sampler: optuna.samplers.BaseSampler,
    baseline_params: Mapping[str, Any] | None = None,
) -> optuna.Study:
    """Create the study, or load it when it exists (an interrupted study resumes), with
    ``BradleyTerrySampler(arena, base_sampler)`` and ``JudgePruner(arena)``; a new study
    gets ``baseline_params`` enqueued as its first trial, marked ``baseline``."""
    import optuna

    from optuna_pandalm.pruner import JudgePruner
    from optuna_pandalm.sampler import BradleyTerrySampler

    study = optuna.create_study(
        study_name=arena.study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=BradleyTerrySampler(arena, base_sampler),
        pruner=JudgePruner(arena),
    )
    if baseline_params and not study.get_trials(deepcopy=False):
        study.enqueue_trial(dict(baseline_params), user_attrs={BASELINE_ATTR: True})
    return study


def trials_to_run(study: optuna.Study, n_trials: int) -> int:
    """How many trials are left to reach ``n_trials`` finished ones (complete, pruned or
    failed); a trial left RUNNING by a dead worker does not count (``check`` lists it)."""
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    return max(0, n_trials - finished)
