"""Publish the arena's leaderboard where Optuna users look: study attributes and Dashboard.

A finished trial can never change, but study user attributes can: after each finalize the
study gets a compact leaderboard (``pandalm_leaderboard``). When ``optuna-dashboard`` is
installed, the leaderboard is also saved as a plotly figure (one id, overwritten) and the
trial gets a note with its record against the incumbent and a few of the judge's reasons.
Generated text is HTML-escaped in notes.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import AGREEMENT_ATTR, LEADERBOARD_ATTR, SNAPSHOT_ATTR

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena

__all__ = ["LEADERBOARD_ATTR", "LEADERBOARD_GRAPH_ID", "leaderboard_figure", "publish"]

_logger = logging.getLogger(__name__)


LEADERBOARD_GRAPH_ID = "pandalm-leaderboard"
_TOP = 20


def leaderboard_figure(arena: Arena, *, top: int = _TOP) -> Any:
    """The leaderboard figure published to the dashboard (the report shows the same one)."""
    from optuna_pandalm.visualization import plot_leaderboard

    return plot_leaderboard(arena, top=top)


def _note(arena: Arena, trial: Any) -> str:
    players = arena.trial_players(trial)
    lines = [f"### Judge record of trial {trial.number}", ""]
    for player in players:
        for opponent in arena.incumbent_opponents(player):
            wins, ties, losses = arena.match_record(player, opponent)
            lines.append(
                f"- step {player.step} vs {html.escape(opponent.label)}: "
                f"{wins} wins, {ties} ties, {losses} losses"
            )
    if players:
        best = players[-1]
        lines += ["", f"Judge's reasons (step {best.step}):", ""]
        for position, reason in arena.reasons(best):
            # Generated text: escaped so the dashboard never renders it as markup.
            lines.append(f"- prompt {position}: {html.escape(reason[:300])}")
    lines += ["", f"People's votes: {html.escape(arena.judge_agreement().summary())}."]
    return "\n".join(lines)


def publish(arena: Arena, study: Any, trial: Any | None = None) -> None:
    """Write the compact leaderboard to the study, and the figure and note to Dashboard."""
    standings = arena.standings()
    compact = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.as_dict().items()}
        for row in standings.leaderboard(top=_TOP)
    ]
    study.set_user_attr(LEADERBOARD_ATTR, compact)
    study.set_user_attr(SNAPSHOT_ATTR, standings.snapshot())
    study.set_user_attr(AGREEMENT_ATTR, arena.judge_agreement().as_dict())
    try:
        import optuna_dashboard
    except ImportError:
        return
    optuna_dashboard.save_plotly_graph_object(
        study, leaderboard_figure(arena), graph_object_id=LEADERBOARD_GRAPH_ID
    )
    if trial is not None:
        optuna_dashboard.save_note(trial, _note(arena, trial))
