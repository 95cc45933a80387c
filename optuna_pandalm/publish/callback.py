"""``PublishCallback``: the arena's standings published to the study after each trial.

Optuna's idiom for a side effect after a trial is a ``study.optimize`` callback, called
with the study and the finished trial, frozen (as ``MaxTrialsCallback`` and
``RetryFailedTrialCallback``). Publishing lives here rather than in ``Arena.finalize``, so
the scoring core publishes nothing, and a finished trial stays exactly as Optuna left it:
only study attributes (Optuna's public ``set_user_attr``) and optuna-dashboard's own
storage of figures and notes (study system attributes, through its public functions) are
written.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from optuna_pandalm.publish.dashboard import (
    LEADERBOARD_GRAPH_ID,
    leaderboard_figure,
    study_attributes,
)
from optuna_pandalm.publish.trial_notes import finished_trial_note

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from optuna_pandalm.arena import Arena

__all__ = ["PublishCallback"]


@dataclasses.dataclass(frozen=True)
class _FinishedTrial:
    """What ``optuna_dashboard.save_note`` reads of a trial (``study``, ``storage``,
    ``_trial_id``): a note lives in the study's system attributes, so a finished trial
    gets one without reopening it as a live ``optuna.Trial`` (whose constructor would call
    the sampler's ``before_trial``)."""

    study: optuna.Study
    storage: Any
    _trial_id: int


class PublishCallback:
    """Publish the arena's standings to the study after each finished trial.

    Pass it to ``study.optimize``; Optuna calls it after every trial that finishes (complete,
    pruned, or failed and caught). Each call writes to the study, from the current standings:

    * study user attributes: ``pandalm_leaderboard`` (the top 20 rows), ``pandalm_fit`` (the
      scores with the data they were fitted on, what ``optuna-pandalm check`` compares
      against a refit) and ``pandalm_judge_agreement`` (the judge against people's votes);
    * with ``optuna-dashboard`` installed, the leaderboard figure (id
      ``pandalm-leaderboard``, overwritten) and the finished trial's note, for a complete or
      pruned trial with checkpoints in the arena: its matches, its score as of its finish
      and, when pruned, the reason recorded while it ran (``pandalm_pruned``).

    A failed trial gets no note. Nothing of the finished trial itself is changed: Optuna
    froze it, and its ``pandalm_score`` keeps meaning its score as of its finish; current
    scores are the leaderboard's. Under ``n_jobs`` or several workers, each publishes after
    its own trials; every write reflects the standings of all workers at that moment.

    Args:
        arena: The study's :class:`~optuna_pandalm.Arena`.

    Example:
        >>> import optuna
        >>> from optuna_pandalm import Arena, PublishCallback
        >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
        >>> from optuna_pandalm.testing import simulated_response as answer
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> arena = Arena("sqlite://", "doc", SimulatedJudge(), simulated_prompts(4), seed=0)
        >>> def objective(trial):
        ...     _ = arena.evaluate(trial, 1, [answer(trial.number)] * 4)
        ...     return arena.finalize(trial)
        >>> study = optuna.create_study(direction="maximize")
        >>> study.optimize(objective, n_trials=3, callbacks=[PublishCallback(arena)])
        >>> len(study.user_attrs["pandalm_leaderboard"]), "pandalm_fit" in study.user_attrs
        (3, True)
    """

    def __init__(self, arena: Arena) -> None:
        self.arena = arena

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        for key, value in study_attributes(self.arena).items():
            study.set_user_attr(key, value)
        try:
            import optuna_dashboard
        except ImportError:
            return
        figure = leaderboard_figure(self.arena, study=study)
        optuna_dashboard.save_plotly_graph_object(
            study, figure, graph_object_id=LEADERBOARD_GRAPH_ID
        )
        note = finished_trial_note(self.arena, trial)
        if note is not None:
            # save_note takes a live trial; a finished one has no public handle, so the
            # study's storage and the frozen trial's id (private to Optuna) stand in.
            target = _FinishedTrial(study, study._storage, trial._trial_id)
            optuna_dashboard.save_note(target, note)
