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
    _TOP,
    LEADERBOARD_GRAPH_ID,
    leaderboard_attributes,
    leaderboard_figure,
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
    pruned, or failed and caught). Each call writes to the study, from the current standings
    (one :class:`~optuna_pandalm.arena.Standings`, its leaderboard computed once):

    * study user attributes, short text Optuna Dashboard shows as it is, each bounded
      whatever the number of players (``publish.dashboard.leaderboard_attributes``):
      ``pandalm_leaderboard`` (the top 5 rows as one line),
      ``pandalm_fit`` (the ids the scores were fitted on and the top 5 scores, what
      ``optuna-pandalm check`` compares against a refit) and ``pandalm_judge_agreement``
      (the judge against people's votes);
    * with ``optuna-dashboard`` installed, the leaderboard figure (id
      ``pandalm-leaderboard``, overwritten) and the finished trial's note, for a complete or
      pruned trial with checkpoints in the arena: its matches, its score as of its finish
      and, when pruned, the reason recorded while it ran (``pandalm_pruned``).

    What this callback wrote last and is unchanged is not written again: an attribute whose
    value is the same, the figure when its rows look the same (labels, and numbers at the
    precision it shows). Writes cost a database commit each, and most trials move no score
    of the top 20 by a visible amount once a study has hundreds of players.

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
        >>> study.user_attrs["pandalm_leaderboard"].count("#"), "pandalm_fit" in study.user_attrs
        (3, True)
    """

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        # What this callback last wrote, by study: attribute values and the figure's look.
        self._written: dict[tuple[str, str], Any] = {}

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        standings = self.arena.standings()
        rows = standings.leaderboard(top=_TOP)
        agreement = self.arena.judge_agreement()
        for key, value in leaderboard_attributes(standings, rows, agreement).items():
            if self._changed(study, key, value):
                study.set_user_attr(key, value)
        try:
            import optuna_dashboard
        except ImportError:
            return
        looks = [
            (r.label, f"{r.score:.3f} {r.ci_low:.3f} {r.ci_high:.3f} {r.p_best:.3f}", r.games)
            for r in rows
        ]
        if self._changed(study, LEADERBOARD_GRAPH_ID, looks):
            figure = leaderboard_figure(self.arena, study=study, rows=rows)
            optuna_dashboard.save_plotly_graph_object(
                study, figure, graph_object_id=LEADERBOARD_GRAPH_ID
            )
        note = finished_trial_note(self.arena, trial, standings=standings, agreement=agreement)
        if note is not None:
            # save_note takes a live trial; a finished one has no public handle, so the
            # study's storage and the frozen trial's id (private to Optuna) stand in.
            target = _FinishedTrial(study, study._storage, trial._trial_id)
            optuna_dashboard.save_note(target, note)

    def _changed(self, study: optuna.Study, key: str, value: Any) -> bool:
        """Whether ``value`` differs from what this callback last wrote under ``key`` to
        ``study`` (remembered from now on)."""
        where = (study.study_name, key)
        if self._written.get(where) == value:
            return False
        self._written[where] = value
        return True
