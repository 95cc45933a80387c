"""The Optuna glue: the only code of the arena that touches a trial or a study.

Everything here accepts what users pass: an Optuna ``Trial``, a ``FrozenTrial``, or a bare
trial number (for users who score checkpoints outside ``study.optimize``), and does only
what the object supports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import BEST_STEP_ATTR, PRUNED_ATTR, SCORE_ATTR
from optuna_pandalm.store import Store

if TYPE_CHECKING:
    from optuna_pandalm.arena._arena import Arena

__all__ = ["current_scores", "publish", "raise_if_pruned", "record", "report"]


def report(trial: Any, score: float, step: int) -> None:
    """``trial.report(score, step)`` when ``trial`` is a live trial."""
    if hasattr(trial, "report"):
        trial.report(score, step)


def record(trial: Any, key: str, value: Any) -> None:
    """A trial user attribute, when ``trial`` is a live trial."""
    if hasattr(trial, "set_user_attr"):
        trial.set_user_attr(key, value)


def pruning_reason(arena: Arena, trial: Any, number: int) -> str:
    """Why the study's pruner prunes the trial: a :class:`~optuna_pandalm.JudgePruner`
    names the loss; any other pruner is named with the trial's last judged step."""
    pruner = getattr(getattr(trial, "study", None), "pruner", None)
    explain = getattr(pruner, "reason", None)
    reason = explain(number) if callable(explain) else None
    if reason is not None:
        return str(reason)
    players = arena.trial_players(number)
    where = f" at step {players[-1].step}" if players else ""
    return f"pruned by {type(pruner).__name__}{where}"


def raise_if_pruned(arena: Arena, trial: Any, number: int) -> None:
    """Raise ``optuna.TrialPruned`` when the study's pruner prunes the trial, after
    recording why (user attribute ``pandalm_pruned``) and publishing its note."""
    if hasattr(trial, "should_prune") and trial.should_prune():
        import optuna

        reason = pruning_reason(arena, trial, number)
        record(trial, PRUNED_ATTR, reason)
        publish(arena, trial, pruned=reason)
        raise optuna.TrialPruned(f"trial {number} {reason}")


def current_scores(arena: Arena) -> dict[int, dict[str, Any]]:
    """Each trial's best checkpoint now: ``{number: {pandalm_score, pandalm_best_step}}``."""
    standings = arena.standings()
    by_trial: dict[int, list[Any]] = {}
    for player in standings.players:
        if player.trial is not None:
            by_trial.setdefault(player.trial, []).append(player)
    scores = {}
    for number, players in by_trial.items():
        best = standings.best_of(players)
        scores[number] = {SCORE_ATTR: round(standings.score(best), 4), BEST_STEP_ATTR: best.step}
    return scores


def publish(arena: Arena, trial: Any, *, pruned: str | None = None) -> None:
    """Publish the standings to the trial's study: the trial's own current score, every
    finished trial's current score (its user attributes, refreshed in place), and the
    leaderboard, figure and note (:mod:`optuna_pandalm.publish.dashboard`)."""
    if not hasattr(trial, "study"):
        return
    from optuna_pandalm.publish.dashboard import publish as publish_to_study

    scores = current_scores(arena)
    for key, value in scores.get(trial.number, {}).items():
        record(trial, key, value)
    if isinstance(arena.store, Store) and not arena.store.read_only:
        arena.store.refresh_trial_attrs(arena.study_name, scores)
    publish_to_study(arena, trial.study, trial, pruned=pruned)
