"""Publish the arena's leaderboard where Optuna users look: study attributes and Dashboard.

A finished trial's value can never change, but study user attributes can: after each
finished trial (complete or pruned) the study gets a compact leaderboard
(``pandalm_leaderboard``). When ``optuna-dashboard`` is installed, the leaderboard is also
saved as a plotly figure (one id, overwritten) sized to the dashboard's card, and the trial
gets a note (:mod:`optuna_pandalm.publish.trial_notes`). Generated text is HTML-escaped in notes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import AGREEMENT_ATTR, LEADERBOARD_ATTR, SCORE_ATTR, SNAPSHOT_ATTR

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena

__all__ = ["LEADERBOARD_ATTR", "LEADERBOARD_GRAPH_ID", "leaderboard_figure", "publish"]

_logger = logging.getLogger(__name__)


LEADERBOARD_GRAPH_ID = "pandalm-leaderboard"
CARD_HEIGHT_PX = 450  # Optuna Dashboard draws each user figure in a box this high
_TOP = 20
_MARGIN = {"t": 36, "b": 44, "l": 10, "r": 10}  # px: title above, axis and its title below


def leaderboard_figure(arena: Arena, *, top: int = _TOP, study: Any = None) -> Any:
    """The leaderboard figure as published to the dashboard: the report's figure (baseline
    trials of ``study`` in red, as in the report), its height set from the number of rows so
    that every row, the axis and its title fit the card.

    Example:
        >>> from optuna_pandalm import Arena
        >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
        >>> from optuna_pandalm.testing import simulated_response as answer
        >>> arena = Arena("sqlite://", "doc", SimulatedJudge(), simulated_prompts(4), seed=0)
        >>> for trial in range(30):
        ...     _ = arena.evaluate(trial, 1, [answer(trial / 10)] * 4)
        >>> figure = leaderboard_figure(arena)
        >>> len(figure.data[0].y), figure.layout.height <= CARD_HEIGHT_PX
        (20, True)
    """
    from optuna_pandalm.publish.visualization import plot_leaderboard

    figure = plot_leaderboard(arena, top=top, study=study)
    rows = len(figure.data[0].y or ())
    room = CARD_HEIGHT_PX - _MARGIN["t"] - _MARGIN["b"]
    row_px = min(24, room // max(rows, 1))
    figure.update_layout(
        title={"text": "Judge leaderboard (score, 95% interval)", "font": {"size": 14}},
        height=min(CARD_HEIGHT_PX, _MARGIN["t"] + _MARGIN["b"] + max(rows, 4) * row_px),
        margin=_MARGIN,
        xaxis={"title": {"text": "score (log-odds against the anchor)", "standoff": 4}},
        yaxis={"automargin": True, "tickfont": {"size": max(8, min(12, row_px - 4))}},
    )
    return figure


def publish(
    arena: Arena, study: Any, trial: Any | None = None, *, pruned: str | None = None
) -> None:
    """Write the compact leaderboard to the study, and the figure and the finished trial's
    note (``pruned``: which loss pruned it) to Dashboard."""
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
    from optuna_pandalm.publish.trial_notes import trial_note

    optuna_dashboard.save_plotly_graph_object(
        study, leaderboard_figure(arena, study=study), graph_object_id=LEADERBOARD_GRAPH_ID
    )
    if trial is not None:
        score = getattr(trial, "user_attrs", {}).get(SCORE_ATTR)
        note = trial_note(arena, trial.number, score=score, pruned=pruned)
        optuna_dashboard.save_note(trial, note)
