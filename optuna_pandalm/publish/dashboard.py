"""What is published where Optuna users look: the study attributes and the Dashboard figure.

A finished trial can never change, but study user attributes can. Optuna Dashboard shows
them as text in a table, so each is short and bounded whatever the number of players: one
sentence saying who leads now (``pandalm_best_now``, :func:`best_now`; Optuna Dashboard's
Best Trial card shows the highest trial value, a score frozen when its trial finished, and
the first row of the Study User Attributes table on the same page is where the current
leader is said), the leaderboard's top rows as one line people read
(``pandalm_leaderboard``), the ids the standings were fitted on with the top scores
``check`` compares against a refit (``pandalm_fit``) and the judge's agreement with people
(:func:`study_attributes`). The full data stays in our tables, where ``optuna-pandalm
leaderboard`` and ``report`` read it. With ``optuna-dashboard`` installed, the leaderboard
figure (:func:`leaderboard_figure`, one id, overwritten) sized to the dashboard's card.
These are the data and drawing steps;
:class:`~optuna_pandalm.publish.PublishCallback` writes them after each finished trial,
with the trial's note (:mod:`optuna_pandalm.publish.trial_notes`), all from one standings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import (
    AGREEMENT_ATTR,
    BEST_NOW_ATTR,
    LEADERBOARD_ATTR,
    SNAPSHOT_ATTR,
)

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena, JudgeAgreement, LeaderboardRow, Standings

__all__ = [
    "CARD_HEIGHT_PX",
    "LEADERBOARD_ATTR",
    "LEADERBOARD_GRAPH_ID",
    "best_now",
    "leaderboard_attributes",
    "leaderboard_figure",
    "leaderboard_line",
    "study_attributes",
]

LEADERBOARD_GRAPH_ID = "pandalm-leaderboard"
FIGURE_TITLE = "Judge leaderboard (score, 95% interval)"  # what the user finds on the Top page
CARD_HEIGHT_PX = 450  # Optuna Dashboard draws each user figure in a box this high
_TOP = 20  # rows in the figure
_TOP_ATTRIBUTES = 5  # rows in the study attributes: one line of text, and check's sample
_MARGIN = {"t": 36, "b": 44, "l": 10, "r": 10}  # px: title above, axis and its title below


def leaderboard_figure(
    arena: Arena,
    *,
    top: int = _TOP,
    study: Any = None,
    rows: Sequence[LeaderboardRow] | None = None,
) -> Any:
    """The leaderboard figure as published to the dashboard: the report's figure (baseline
    trials of ``study`` in red, as in the report), its height set from the number of rows so
    that every row, the axis and its title fit the card. ``rows``: the leaderboard's top
    rows already computed (else the arena's ``top``).

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

    figure = plot_leaderboard(arena, top=top, study=study, rows=rows)
    shown = len(figure.data[0].y or ())
    room = CARD_HEIGHT_PX - _MARGIN["t"] - _MARGIN["b"]
    row_px = min(24, room // max(shown, 1))
    figure.update_layout(
        title={"text": FIGURE_TITLE, "font": {"size": 14}},
        height=min(CARD_HEIGHT_PX, _MARGIN["t"] + _MARGIN["b"] + max(shown, 4) * row_px),
        margin=_MARGIN,
        xaxis={"title": {"text": "score (log-odds against the anchor)", "standoff": 4}},
        yaxis={"automargin": True, "tickfont": {"size": max(8, min(12, row_px - 4))}},
    )
    return figure


def best_now(rows: Sequence[LeaderboardRow]) -> str:
    """Who leads now, and what Optuna Dashboard's Best Trial card shows instead, in words,
    from leaderboard ``rows`` (best first).

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
        >>> best_now(arena.leaderboard())
        'No trial has a judged checkpoint yet.'
        >>> _ = [arena.evaluate(t, 1, [testing.simulated_response(t)] * 4) for t in range(3)]
        >>> print(best_now(arena.leaderboard()))  # doctest: +ELLIPSIS
        Leader now: trial 1 step 1, score +1.278 [-1.48, +4.03], P(best) 0.76. The Best...
    """
    leader = next((r for r in rows if r.trial is not None), None)
    if leader is None:
        return "No trial has a judged checkpoint yet."
    return (
        f"Leader now: {leader.label}, score {leader.score:+.3f} "
        f"[{leader.ci_low:+.2f}, {leader.ci_high:+.2f}], P(best) {leader.p_best:.2f}. "
        "The Best Trial card shows the highest trial value: a trial's score when it "
        "finished, frozen by Optuna, not its score now. Every current score: the figure "
        f"'{FIGURE_TITLE}' on this page."
    )


def study_attributes(arena: Arena, *, top: int = _TOP_ATTRIBUTES) -> dict[str, Any]:
    """The study user attributes that publish the arena's current standings (see
    :func:`leaderboard_attributes`).

    Example:
        >>> from optuna_pandalm import Arena
        >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
        >>> from optuna_pandalm.testing import simulated_response as answer
        >>> arena = Arena("sqlite://", "doc", SimulatedJudge(), simulated_prompts(4), seed=0)
        >>> for trial in range(3):
        ...     _ = arena.evaluate(trial, 1, [answer(trial)] * 4)
        >>> attrs = study_attributes(arena)
        >>> sorted(attrs)
        ['pandalm_best_now', 'pandalm_fit', 'pandalm_judge_agreement', 'pandalm_leaderboard']
        >>> attrs[LEADERBOARD_ATTR].split(" | ")[0]
        '#1 trial 1 step 1 +1.278 [-1.48, +4.03] P(best) 0.76 W-T-L 5-1-2'
    """
    standings = arena.standings()
    return leaderboard_attributes(
        standings, standings.leaderboard(top=top), arena.judge_agreement(), top=top
    )


def leaderboard_attributes(
    standings: Standings,
    rows: Sequence[LeaderboardRow],
    agreement: JudgeAgreement,
    *,
    top: int = _TOP_ATTRIBUTES,
) -> dict[str, Any]:
    """The study user attributes, from one standings and its leaderboard ``rows`` (best
    first; the first ``top`` are published), each small whatever the number of players:

    * ``pandalm_leaderboard``: the top rows as one line of text (:func:`leaderboard_line`),
      what Optuna Dashboard shows as it is;
    * ``pandalm_fit``: the ids the standings were fitted on, the number of players and the
      scores of the ``top`` best (``Standings.snapshot(top=...)``), which ``check``
      compares against a refit from scratch on the same ids;
    * ``pandalm_judge_agreement``: the judge against people's votes.
    """
    return {
        # first: Optuna Dashboard lists study attributes in the order they were first set
        BEST_NOW_ATTR: best_now(rows),
        LEADERBOARD_ATTR: leaderboard_line(rows[:top]),
        SNAPSHOT_ATTR: standings.snapshot(top=top),
        AGREEMENT_ATTR: agreement.as_dict(),
    }


def leaderboard_line(rows: Sequence[LeaderboardRow]) -> str:
    """Leaderboard rows as one line people read: rank, player, score [95% interval],
    P(best), W-T-L and, when people voted on the player, how many of its games are votes;
    rows separated by " | ".

    Example:
        >>> from optuna_pandalm.arena import LeaderboardRow
        >>> row = LeaderboardRow(7, 3, 2, None, 1.23456, 0.5, 2.0, 0.61, 12, 8, 1, 3)
        >>> leaderboard_line([row])
        '#1 trial 3 step 2 +1.235 [+0.50, +2.00] P(best) 0.61 W-T-L 8-1-3'
    """
    return " | ".join(
        f"#{rank} {row.label} {row.score:+.3f} [{row.ci_low:+.2f}, {row.ci_high:+.2f}] "
        f"P(best) {row.p_best:.2f} W-T-L {row.wins}-{row.ties}-{row.losses}"
        + (f" ({row.human_votes} human votes)" if row.human_votes else "")
        for rank, row in enumerate(rows, start=1)
    )
