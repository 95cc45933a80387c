"""The rules of match play: who is shown first, how prompts are drawn, when racing stops a
match, and how a failing judge is retried. Checked once, here, when an arena is made."""

from __future__ import annotations

import dataclasses
import math
import operator

from optuna_pandalm.judges.base import PairwiseJudge

__all__ = ["POSITIONS", "MatchRules", "check_arena_arguments"]

POSITIONS = ("random", "swap", "fixed")
"""The allowed :attr:`MatchRules.position` modes."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class MatchRules:
    """How the matches of one arena are played (immutable; ``arena.rules``).

    :class:`~optuna_pandalm.Arena` builds it from its keyword arguments of the same names,
    which document each rule; it is checked once, when made, so match play can trust it.
    Integers are stored as plain ``int`` and levels as ``float`` (``numpy`` scalars are
    taken).

    Attributes:
        position: Who is shown first: ``"random"`` (a seeded coin per game), ``"swap"``
            (both orders judged) or ``"fixed"`` (the challenger first).
        seed: Seeds the prompt order and the order coins (>= 0).
        racing: Stop a match once the sign test is clear.
        batch_size: Games judged per judge call and per commit (>= 1).
        min_games: Racing, a short match or a non-contender never stops a match before
            this many games (>= 0).
        racing_alpha: Two-sided level of racing's sign test (0..1).
        judge_retries: Attempts after the judge fails to answer (>= 0).
        judge_backoff: Seconds before the first retry, doubled at each (>= 0).
        short_match: A new checkpoint behind its opponent after this many games stops
            there (>= 1); ``None``: no short matches.

    Raises:
        ValueError: a rule out of its range, or an unknown ``position``.
        TypeError: a count or level that is not a number.

    Example:
        >>> MatchRules(position="swap", batch_size=8).batch_size
        8
        >>> MatchRules(position="both")
        Traceback (most recent call last):
        ...
        ValueError: position must be one of ('random', 'swap', 'fixed'), got 'both'
    """

    position: str = "random"
    seed: int = 0
    racing: bool = True
    batch_size: int = 16
    min_games: int = 16
    racing_alpha: float = 0.01
    judge_retries: int = 3
    judge_backoff: float = 2.0
    short_match: int | None = None

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {self.position!r}")
        counts = {
            "seed": (self.seed, 0),
            "batch_size": (self.batch_size, 1),
            "min_games": (self.min_games, 0),
            "judge_retries": (self.judge_retries, 0),
        }
        if self.short_match is not None:
            counts["short_match"] = (self.short_match, 1)
        for name, (value, least) in counts.items():
            number = operator.index(value)  # TypeError for 2.5, "3"; numpy ints taken
            if number < least:
                raise ValueError(f"{name} must be >= {least}, got {value!r}")
            object.__setattr__(self, name, number)
        alpha, backoff = float(self.racing_alpha), float(self.judge_backoff)
        if not 0 <= alpha <= 1:
            raise ValueError(f"racing_alpha must be in [0, 1], got {self.racing_alpha!r}")
        if not (backoff >= 0 and math.isfinite(backoff)):
            raise ValueError(f"judge_backoff must be >= 0 seconds, got {self.judge_backoff!r}")
        object.__setattr__(self, "racing_alpha", alpha)
        object.__setattr__(self, "judge_backoff", backoff)
        object.__setattr__(self, "racing", bool(self.racing))


def check_arena_arguments(
    study_name: object,
    judge: object,
    *,
    p_best_threshold: float,
    max_extra_matches: int,
    contender_floor: float | None,
) -> None:
    """Refuse the :class:`~optuna_pandalm.Arena` arguments that are not match rules, before
    anything is read or stored: each would otherwise fail later, far from its cause.

    Raises:
        TypeError: a judge that is not a ``PairwiseJudge``, a study name that is not a
            string, a number that is not one.
        ValueError: an empty study name, a level outside its range or NaN.

    Example:
        >>> check_arena_arguments("", None, p_best_threshold=0.2, max_extra_matches=2,
        ...                       contender_floor=None)
        Traceback (most recent call last):
        ...
        ValueError: study_name must be a non-empty string, got ''
    """
    if not isinstance(study_name, str):
        raise TypeError(f"study_name must be a string, got {type(study_name).__name__}")
    if not study_name.strip():
        raise ValueError(f"study_name must be a non-empty string, got {study_name!r}")
    if not isinstance(judge, PairwiseJudge):
        raise TypeError(f"judge must be a PairwiseJudge, got {type(judge).__name__}")
    threshold = float(p_best_threshold)
    if not 0 <= threshold <= 1:  # False for NaN
        raise ValueError(f"p_best_threshold must be in [0, 1], got {p_best_threshold!r}")
    if operator.index(max_extra_matches) < 0:
        raise ValueError(f"max_extra_matches must be >= 0, got {max_extra_matches!r}")
    if contender_floor is not None and not 0 <= float(contender_floor) < 1:
        raise ValueError(f"contender_floor must be in [0, 1), got {contender_floor!r}")
