"""What is published where Optuna users look: the study attributes and the Dashboard figure.

A finished trial can never change, but study user attributes can: the study carries the
compact leaderboard (``pandalm_leaderboard``), the snapshot ``check`` compares
(``pandalm_fit``), the judge's agreement with people, and one sentence saying who leads now
(``pandalm_best_now``, :func:`best_now`): Optuna Dashboard's Best Trial card shows the
highest trial value, a score frozen when its trial finished, and the Study User Attributes
table on the same page, first row, is where the current leader is said
(:func:`study_attributes`); with
``optuna-dashboard`` installed, the leaderboard figure (:func:`leaderboard_figure`, one id,
overwritten) sized to the dashboard's card. These are the data and drawing steps;
:class:`~optuna_pandalm.publish.PublishCallback` writes them after each finished trial,
with the trial's note (:mod:`optuna_pandalm.publish.trial_notes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import (
    AGREEMENT_ATTR,
    BEST_NOW_ATTR,
    LEADERBOARD_ATTR,
    SNAPSHOT_ATTR,
)

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena

__all__ = [
    "CARD_HEIGHT_PX",
    "LEADERBOARD_ATTR",
    "LEADERBOARD_GRAPH_ID",
    "best_now",
    "leaderboard_figure",
    "study_attributes",
]

LEADERBOARD_GRAPH_ID = "pandalm-leaderboard"
FIGURE_TITLE = "Judge leaderboard (score, 95% interval)"  # what the user finds on the Top page
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
        title={"text": FIGURE_TITLE, "font": {"size": 14}},
        height=min(CARD_HEIGHT_PX, _MARGIN["t"] + _MARGIN["b"] + max(rows, 4) * row_px),
        margin=_MARGIN,
        xaxis={"title": {"text": "score (log-odds against the anchor)", "standoff": 4}},
        yaxis={"automargin": True, "tickfont": {"size": max(8, min(12, row_px - 4))}},
    )
    return figure


def best_now(arena: Arena) -> str:
    """Who leads now, and what Optuna Dashboard's Best Trial card shows instead, in words.

    The card shows the trial with the highest value: that trial's score when it finished,
    which Optuna freezes (a later trial's games move every score, so the card's trial may
    no longer lead, and its value is not its score now). This sentence is published as the
    study user attribute ``pandalm_best_now``, the first row of the Study User Attributes
    table on the card's page (the study's Top page).

    Example:
        >>> from optuna_pandalm import Arena
        >>> from optuna_pandalm import testing
        >>> judge, prompts = testing.SimulatedJudge(), testing.simulated_prompts(4)
        >>> arena = Arena("sqlite://", "now", judge, prompts, seed=0)
        >>> best_now(arena)
        'No trial has a judged checkpoint yet.'
        >>> _ = [arena.evaluate(t, 1, [testing.simulated_response(t)] * 4) for t in range(3)]
        >>> print(best_now(arena))  # doctest: +ELLIPSIS
        Leader now: trial 1 step 1, score +1.278 [-1.48, +4.03], P(best) 0.76. The Best...
    """
    leader = next((r for r in arena.standings().leaderboard() if r.trial is not None), None)
    if leader is None:
        return "No trial has a judged checkpoint yet."
    return (
        f"Leader now: {leader.label}, score {leader.score:+.3f} "
        f"[{leader.ci_low:+.2f}, {leader.ci_high:+.2f}], P(best) {leader.p_best:.2f}. "
        "The Best Trial card shows the highest trial value: a trial's score when it "
        "finished, frozen by Optuna, not its score now. Every current score: the figure "
        f"'{FIGURE_TITLE}' on this page."
    )


def study_attributes(arena: Arena, *, top: int = _TOP) -> dict[str, Any]:
    """The study user attributes that publish the standings: the compact leaderboard (its
    ``top`` rows, floats rounded to 4 places), the snapshot ``check`` compares against a
    refit, the judge's agreement with people, and who leads now (:func:`best_now`).

    Example:
        >>> from optuna_pandalm import Arena
        >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
        >>> from optuna_pandalm.testing import simulated_response as answer
        >>> arena = Arena("sqlite://", "doc", SimulatedJudge(), simulated_prompts(4), seed=0)
        >>> for trial in range(3):
        ...     _ = arena.evaluate(trial, 1, [answer(trial)] * 4)
        >>> attrs = study_attributes(arena)
        >>> sorted(attrs), len(attrs[LEADERBOARD_ATTR])
        (['pandalm_best_now', 'pandalm_fit', 'pandalm_judge_agreement', 'pandalm_leaderboard'], 3)
    """
    standings = arena.standings()
    compact = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.as_dict().items()}
        for row in standings.leaderboard(top=top)
    ]
    return {
        # first: Optuna Dashboard lists study attributes in the order they were first set
        BEST_NOW_ATTR: best_now(arena),
        LEADERBOARD_ATTR: compact,
        SNAPSHOT_ATTR: standings.snapshot(),
        AGREEMENT_ATTR: arena.judge_agreement().as_dict(),
    }
