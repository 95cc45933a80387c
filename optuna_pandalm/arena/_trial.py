"""The Optuna glue: the only code of the arena that touches a trial or a study.

Everything here accepts what users pass: an Optuna ``Trial``, a ``FrozenTrial``, or a bare
trial number (for users who score checkpoints outside ``study.optimize``), and does only
what the object supports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna_pandalm.arena._arena import Arena

__all__ = ["publish", "raise_if_pruned", "record", "report"]


def report(trial: Any, score: float, step: int) -> None:
    """``trial.report(score, step)`` when ``trial`` is a live trial."""
    if hasattr(trial, "report"):
        trial.report(score, step)


def record(trial: Any, key: str, value: Any) -> None:
    """A trial user attribute, when ``trial`` is a live trial."""
    if hasattr(trial, "set_user_attr"):
        trial.set_user_attr(key, value)


def raise_if_pruned(trial: Any, number: int) -> None:
    """Raise ``optuna.TrialPruned`` when the study's pruner prunes the trial."""
    if hasattr(trial, "should_prune") and trial.should_prune():
        import optuna

        raise optuna.TrialPruned(f"trial {number} pruned by the judge")


def publish(arena: Arena, trial: Any) -> None:
    """Publish the standings to the trial's study (and Optuna Dashboard when installed)."""
    if hasattr(trial, "study"):
        from optuna_pandalm.dashboard import publish as publish_to_study

        publish_to_study(arena, trial.study, trial)
