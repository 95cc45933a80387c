"""One way to create, resume and run a judge-driven study, shared by ``tune`` and the demo."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from optuna_pandalm.arena import Arena

from optuna_pandalm.attributes import BASELINE_ATTR, ERROR_ATTR
from optuna_pandalm.errors import JudgeTimeoutError
from optuna_pandalm.publish.callback import PublishCallback

__all__ = ["INTERRUPTED", "open_judged_study", "optimize", "trials_to_run"]

INTERRUPTED = "interrupted (Ctrl-C) before it finished"


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

    from optuna_pandalm.study.pruner import JudgePruner
    from optuna_pandalm.study.sampler import BradleyTerrySampler

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


def optimize(
    study: optuna.Study,
    objective: Any,
    *,
    arena: Arena,
    n_trials: int,
    timeout: float | None = None,
) -> None:
    """``study.optimize`` that publishes ``arena``'s standings after each finished trial
    (:class:`~optuna_pandalm.publish.PublishCallback`) and leaves no trial of this process
    RUNNING on Ctrl-C. A trial whose judge call timed out
    (:class:`~optuna_pandalm.errors.JudgeTimeoutError`) fails, and the next one runs.

    Optuna marks a trial FAIL when Ctrl-C stops its objective (the objective of
    :func:`~optuna_pandalm.training.tuning.make_objective` then records why in ``pandalm_error``),
    but not when it comes while the trial is being sampled: that trial is marked FAIL here,
    with the same reason. ``KeyboardInterrupt`` then propagates.
    """
    import optuna

    try:
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout,
            catch=(JudgeTimeoutError,),  # a hung judge fails its trial; the study goes on
            callbacks=[PublishCallback(arena)],
        )
    except KeyboardInterrupt:
        number = getattr(study.sampler, "last_trial", None)
        trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
        if trial is not None and trial.state == optuna.trial.TrialState.RUNNING:
            # No public setter for another trial's attributes: the storage's own call.
            study._storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, INTERRUPTED)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        raise
