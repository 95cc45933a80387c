"""The sign test that racing and pruning decide with (ties split half and half)."""

from __future__ import annotations

import math

__all__ = ["sign_test"]


def sign_test(wins: float, ties: float, losses: float, *, alternative: str = "two-sided") -> float:
    """Sign test of ``wins`` against ``losses`` with ties split half and half.

    Returns the p-value (normal approximation with continuity correction; exact enough for
    the racing and pruning decisions, and defined for half-integer counts). ``alternative``
    is ``"two-sided"``, ``"less"`` (fewer wins than losses) or ``"greater"``.

    Example:
        >>> round(sign_test(15, 0, 5), 3)  # the exact binomial test gives 0.041
        0.044
        >>> sign_test(0, 0, 0)
        1.0
    """
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be two-sided, less or greater, got {alternative!r}")
    n = wins + ties + losses
    if n == 0:
        return 1.0
    k = wins + ties / 2
    from scipy import stats

    if alternative == "less":
        return float(stats.norm.cdf((k + 0.5 - n / 2) / math.sqrt(n / 4)))
    if alternative == "greater":
        return float(stats.norm.sf((k - 0.5 - n / 2) / math.sqrt(n / 4)))
    z = (abs(k - n / 2) - 0.5) / math.sqrt(n / 4)
    return float(min(1.0, 2 * stats.norm.sf(max(z, 0.0))))
