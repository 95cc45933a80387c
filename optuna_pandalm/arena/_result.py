"""What one evaluation of a checkpoint did."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from optuna_pandalm.arena._players import Player

__all__ = ["EvaluationResult"]


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """What :meth:`Arena.evaluate` did for one checkpoint.

    ``score``, ``ci_low`` and ``ci_high`` are log-odds against the anchor; ``wins``, ``ties``
    and ``losses`` are this checkpoint's games against ``opponent`` in this match;
    ``p_value`` is the two-sided sign test of that match (ties split).

    The interval (``ci_low``, ``ci_high``) is computed when first read, from the standings
    of the evaluation: a linear solve over every player, which an objective that only
    reports the score does not need.

    Example:
        >>> result = EvaluationResult(
        ...     Player(1, 0, 1, None), None, 0.5, 0, 0, 0, 0, 0, None, False, lambda: (0.1, 0.9)
        ... )
        >>> result.ci_low, result.ci_high, result.games
        (0.1, 0.9, 0)
    """

    player: Player
    opponent: Player | None
    score: float
    wins: int
    ties: int
    losses: int
    invalid: int
    judge_calls: int
    p_value: float | None
    stopped_early: bool
    # Returns (ci_low, ci_high); called once, on the first read of either.
    interval: Callable[[], tuple[float, float]] = dataclasses.field(repr=False, compare=False)

    @property
    def ci_low(self) -> float:
        return self._interval()[0]

    @property
    def ci_high(self) -> float:
        return self._interval()[1]

    def _interval(self) -> tuple[float, float]:
        cached: tuple[float, float] | None = self.__dict__.get("_ci")
        if cached is None:
            cached = self.interval()
            # Frozen: the instance's dict takes the value, as functools.cached_property does;
            # the function (and the standings it holds) is let go.
            self.__dict__["_ci"] = cached
            object.__setattr__(self, "interval", functools.partial(_known, cached))
        return cached

    @property
    def games(self) -> int:
        return self.wins + self.ties + self.losses


def _known(value: tuple[float, float]) -> tuple[float, float]:
    """The interval once computed (a module function: the result stays picklable)."""
    return value
