"""What one evaluation of a checkpoint did."""

from __future__ import annotations

import dataclasses

from optuna_pandalm.arena._players import Player

__all__ = ["EvaluationResult"]


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """What :meth:`Arena.evaluate` did for one checkpoint.

    ``score``, ``ci_low`` and ``ci_high`` are log-odds against the anchor; ``wins``, ``ties``
    and ``losses`` are this checkpoint's games against ``opponent`` in this match;
    ``p_value`` is the two-sided sign test of that match (ties split).
    """

    player: Player
    opponent: Player | None
    score: float
    ci_low: float
    ci_high: float
    wins: int
    ties: int
    losses: int
    invalid: int
    judge_calls: int
    p_value: float | None
    stopped_early: bool

    @property
    def games(self) -> int:
        return self.wins + self.ties + self.losses
