"""What a score means, in words that hold however many games are ties.

Scores are Davidson strengths: ``sigmoid(d)`` is the chance of winning a *decisive* game
against a player ``d`` below, whatever the tie strength ``nu``. How many games are decisive
depends on ``nu``: between equal scores a game is a tie with probability ``nu / (2 + nu)``.
When most games are ties (a judge that rarely decides, checkpoints whose answers barely
differ), "+1 = winning 73% of prompts" is false; "+1 = 73% of the decisive games, and
this many games are ties" is true. One function says it, for the report, the CLI and the
trial notes.
"""

from __future__ import annotations

import math

__all__ = ["outcome_shares", "score_meaning"]


def outcome_shares(difference: float, tie_strength: float) -> tuple[float, float, float]:
    """(win, tie, loss) probabilities (0..1) of a player ``difference`` log-odds above its
    opponent, in neutral order, under Davidson's model with tie strength ``nu``.

    Example:
        >>> [round(p, 3) for p in outcome_shares(1.0, 0.0)]
        [0.731, 0.0, 0.269]
        >>> [round(p, 3) for p in outcome_shares(0.0, 2.0)]
        [0.25, 0.5, 0.25]
    """
    if not tie_strength >= 0 or not math.isfinite(tie_strength):
        raise ValueError(f"tie strength must be a finite number >= 0, got {tie_strength}")
    up, down = math.exp(difference / 2), math.exp(-difference / 2)
    total = up + down + tie_strength
    return up / total, tie_strength / total, down / total


def score_meaning(tie_strength: float) -> str:
    """One sentence: what +1 means in decisive games, and how many games are ties at the
    fitted tie strength ``nu`` (between equal scores and 1 apart).

    Example:
        >>> print(score_meaning(30.1))
        +1 = winning 73% of the decisive games against a player scored 0 (-1: 27%); with the fitted tie strength nu = 30.1, 94% of games between equal scores are ties, and 1 apart 5% are won, 93% tied, 2% lost.
    """  # noqa: E501 (a doctest prints one line)
    decisive = outcome_shares(1.0, 0.0)[0]
    win, tie, loss = outcome_shares(1.0, tie_strength)
    level = outcome_shares(0.0, tie_strength)[1]
    return (
        f"+1 = winning {decisive:.0%} of the decisive games against a player scored 0 "
        f"(-1: {1 - decisive:.0%}); with the fitted tie strength nu = {tie_strength:.3g}, "
        f"{level:.0%} of games between equal scores are ties, and 1 apart {win:.0%} are "
        f"won, {tie:.0%} tied, {loss:.0%} lost."
    )
