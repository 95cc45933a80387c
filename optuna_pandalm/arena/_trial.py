"""The Optuna glue: the only code of the arena that touches a trial or a study.

Everything here accepts what users pass: an Optuna ``Trial``, a ``FrozenTrial``, or a bare
trial number (for users who score checkpoints outside ``study.optimize``), and does only
what the object supports. It writes to the live trial only, while it runs, through Optuna's
public setters; publishing the standings to the study is
:class:`~optuna_pandalm.publish.PublishCallback`'s, after the trial has finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import BEST_STEP_ATTR, PRUNED_ATTR, SCORE_ATTR, WORKER_ATTR

if TYPE_CHECKING:
    from optuna_pandalm.arena._players import Player
    from optuna_pandalm.arena._standings import Standings

__all__ = [
    "failed_trials",
    "pruning_reason",
    "raise_if_pruned",
    "record",
    "record_finish",
    "record_worker",
    "report",
]


def report(trial: Any, score: float, step: int) -> None:
    """``trial.report(score, step)`` when ``trial`` is a live trial."""
    if hasattr(trial, "report"):
        trial.report(score, step)


def record(trial: Any, key: str, value: Any) -> None:
    """A trial user attribute, when ``trial`` is a live trial."""
    if hasattr(trial, "set_user_attr"):
        trial.set_user_attr(key, value)


def record_worker(trial: Any) -> None:
    """``pandalm_worker``: ``"host:pid"`` of this process, on a live trial that does not
    have it yet, so that ``check`` can name the worker of a trial whose judging stalled."""
    if not hasattr(trial, "set_user_attr"):
        return
    import os
    import socket

    worker = f"{socket.gethostname()}:{os.getpid()}"
    if getattr(trial, "user_attrs", {}).get(WORKER_ATTR) != worker:
        trial.set_user_attr(WORKER_ATTR, worker)


def failed_trials(trial: Any) -> frozenset[int]:
    """Numbers of the FAILED trials of a live trial's study (empty for a trial number or a
    ``FrozenTrial``, which know no study)."""
    study = getattr(trial, "study", None)
    if study is None or not hasattr(study, "get_trials"):
        return frozenset()
    import optuna

    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    return frozenset(t.number for t in failed)


def record_finish(trial: Any, standings: Standings, best: Player) -> None:
    """The trial's best checkpoint as of its finish: ``pandalm_best_step`` and
    ``pandalm_score`` (log-odds, rounded to 4 places). Optuna freezes a finished trial, so
    both keep this meaning while scores move; current scores are the leaderboard's."""
    record(trial, BEST_STEP_ATTR, best.step)
    record(trial, SCORE_ATTR, round(standings.score(best), 4))


def pruning_reason(trial: Any, number: int, own: Sequence[Player]) -> str:
    """Why the study's pruner prunes the trial: a :class:`~optuna_pandalm.JudgePruner`
    names the loss; any other pruner is named with the trial's last judged step (``own``:
    its checkpoints, by step)."""
    study = getattr(trial, "study", None)
    pruner = getattr(study, "pruner", None)
    explain = getattr(pruner, "reason", None)
    reason = explain(number, study=study) if callable(explain) else None
    if reason is not None:
        return str(reason)
    where = f" at step {own[-1].step}" if own else ""
    return f"pruned by {type(pruner).__name__}{where}"


def raise_if_pruned(
    trial: Any, number: int, own: Sequence[Player], standings: Callable[[], Standings]
) -> None:
    """Raise ``optuna.TrialPruned`` when the study's pruner prunes the trial, after
    recording on the running trial why (``pandalm_pruned``) and its best checkpoint as of
    now (:func:`record_finish`; ``own``: its checkpoints, ``standings``: the arena's)."""
    if hasattr(trial, "should_prune") and trial.should_prune():
        import optuna

        reason = pruning_reason(trial, number, own)
        record(trial, PRUNED_ATTR, reason)
        if own:
            now = standings()
            record_finish(trial, now, now.best_of(own))
        raise optuna.TrialPruned(f"trial {number} {reason}")
