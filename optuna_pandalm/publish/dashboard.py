"""What is published where Optuna users look: the study attributes and the Dashboard figure.

A finished trial can never change, but study user attributes can: the study carries the
compact leaderboard (``pandalm_leaderboard``), the snapshot ``check`` compares
(``pandalm_fit``) and the judge's agreement with people (:func:`study_attributes`); with
``optuna-dashboard`` installed, the leaderboard figure (:func:`leaderboard_figure`, one id,
overwritten) sized to the dashboard's card. These are the data and drawing steps;
:class:`~optuna_pandalm.publish.PublishCallback` writes them after each finished trial,
with the trial's note (:mod:`optuna_pandalm.publish.trial_notes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import AGREEMENT_ATTR, LEADERBOARD_ATTR, SNAPSHOT_ATTR

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena

__all__ = [
    "CARD_HEIGHT_PX",
    "LEADERBOARD_ATTR",
    "LEADERBOARD_GRAPH_ID",
    "leaderboard_figure",
    "study_attributes",
]

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


def study_attributes(arena: Arena, *, top: int = _TOP) -> dict[str, Any]:
    """The study user attributes that publish the standings: the compact leaderboard (its
    ``top`` rows, floats rounded to 4 places), the snapshot ``check`` compares against a
    refit, and the judge's agreement with people.

    Example:
        >>> from optuna_pandalm import Arena
        >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
        >>> from optuna_pandalm.testing import simulated_response as answer
        >>> arena = Arena("sqlite://", "doc", SimulatedJudge(), simulated_prompts(4), seed=0)
        >>> for trial in range(3):
        ...     _ = arena.evaluate(trial, 1, [answer(trial)] * 4)
        >>> attrs = study_attributes(arena)
        >>> sorted(attrs), len(attrs[LEADERBOARD_ATTR])
        (['pandalm_fit', 'pandalm_judge_agreement', 'pandalm_leaderboard'], 3)
    """
    standings = arena.standings()
    compact = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.as_dict().items()}
        for row in standings.leaderboard(top=top)
    ]
    return {
        LEADERBOARD_ATTR: compact,
        SNAPSHOT_ATTR: standings.snapshot(),
        AGREEMENT_ATTR: arena.judge_agreement().as_dict(),
    }
