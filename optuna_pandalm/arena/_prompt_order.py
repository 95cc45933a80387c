"""Which prompts separate checkpoints: an item-discrimination estimate from stored games.

A match stops as soon as racing's sign test is clear, so it stops sooner when its first
prompts are those on which the judge's verdicts follow the ranking of the players, and
later on prompts where verdicts are ties or coin flips. As tinyBenchmarks does for LLM
benchmarks with an item-response model, each prompt's discrimination is estimated from the
games already stored: the mean agreement of its games with the fitted scores (+1 when the
higher-scored player won, -1 when it lost, 0 for a tie), shrunk towards 0 by ``prior``
pseudo-games so that a prompt with few games is neither first nor last. Agreement is a
point-biserial discrimination in the spirit of classical test theory: no extra model to fit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from optuna_pandalm.store import GameCounts

__all__ = ["discrimination"]


def discrimination(
    counts: GameCounts, scores: Mapping[int, float], n_prompts: int, *, prior: float = 4.0
) -> np.ndarray:
    """Per prompt position, the shrunk mean agreement of its games with ``scores``.

    Args:
        counts: Game counts grouped by prompt (``Store.game_counts(..., by_prompt=True)``).
        scores: Fitted score by player id; games of players without one are left out.
        n_prompts: Prompt positions ``0 .. n_prompts - 1``.
        prior: Pseudo-games of agreement 0 added to every prompt.

    Example:
        >>> import numpy as np
        >>> games = GameCounts(
        ...     first=np.array([1, 1, 2]), second=np.array([2, 2, 1]),
        ...     outcome=np.array([1, 2, 0]), count=np.array([6, 6, 4]),
        ...     prompt_position=np.array([0, 1, 2]))
        >>> discrimination(games, {1: 1.0, 2: 0.0}, 4, prior=2.0).round(2).tolist()
        [0.75, -0.75, 0.0, 0.0]
    """
    if counts.prompt_position is None:
        raise ValueError("discrimination needs game counts by prompt (by_prompt=True)")
    agreement = np.zeros(n_prompts)
    games = np.full(n_prompts, float(prior))
    for first, second, outcome, count, position in zip(
        counts.first,
        counts.second,
        counts.outcome,
        counts.count,
        counts.prompt_position,
        strict=True,
    ):
        if int(first) not in scores or int(second) not in scores or not 0 <= position < n_prompts:
            continue
        favourite = np.sign(scores[int(first)] - scores[int(second)])  # +1: first scored higher
        won = 1.0 if outcome == 1 else -1.0 if outcome == 2 else 0.0
        agreement[position] += count * favourite * won
        games[position] += count
    result: np.ndarray = agreement / games
    return result
