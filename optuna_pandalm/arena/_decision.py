"""Matches that stop when the decision is made.

A new checkpoint's match against its opponent decides two things:

* whether the checkpoint lost significantly: :class:`~optuna_pandalm.JudgePruner`'s
  one-sided sign test of the pair's games at level ``alpha`` (the pruner's "prune" or
  "keep" for this match), and
* who the incumbent is afterwards (the highest Bradley–Terry score), which picks the next
  checkpoints' opponents, is never pruned, and is the study's result.

A game whose outcome cannot change either is not worth a judge call. After each batch,
:func:`undecided` asks whether some outcome of the prompts the pair has left could still
change them, and the match stops when none can. It is exact, not a bet: the stop never
changes a decision, it only saves the calls. Exact because

* the sign test's p-value falls as the wins rise (ties count half), so over every number
  of further games (racing may stop at any batch, an invalid verdict plays none) the
  extremes are "all won" and "all lost" (:func:`loss_settled`), and
* a Bradley–Terry fit's scores move monotonically with one pair's outcomes, so the
  incumbent is the same for every outcome when it is the same now, with the rest all won,
  all tied and all lost (three refits, done only once the loss test is settled).

What is not a decision changes: the scores themselves rest on fewer games, so the sampler
sees slightly different values (as after racing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from optuna_pandalm.arena._players import Player
from optuna_pandalm.arena._standings import Standings, fit_standings
from optuna_pandalm.outcomes import FIRST_WON, SECOND_WON, TIE
from optuna_pandalm.store import GameCounts

__all__ = ["loss_settled", "undecided"]


def future_points(
    wins: float, ties: float, losses: float, remaining: int, risk: float = 0.0
) -> tuple[float, float]:
    """The range of points (wins, ties half) the challenger can still score in the pair's
    ``remaining`` games: everything, ``(0, remaining)``, when ``risk`` is 0; otherwise the
    ``risk / 2`` and ``1 - risk / 2`` quantiles of their posterior predictive (a uniform
    prior on the challenger's share of points, so a beta-binomial; ties, which vary less,
    are counted as a coin, which errs wide).

    Example:
        >>> future_points(30, 0, 30, 100)
        (0, 100)
        >>> low, high = future_points(30, 0, 30, 100, 0.05)
        >>> 25 < low < 50 < high < 75
        True
    """
    if risk <= 0 or remaining <= 0:
        return 0, remaining
    from scipy.stats import betabinom

    k, n = wins + ties / 2, wins + ties + losses
    low, high = betabinom.ppf([risk / 2, 1 - risk / 2], remaining, k + 1, n - k + 1)
    return float(low), float(high)


def loss_settled(
    wins: float, ties: float, losses: float, remaining: int, alpha: float, risk: float = 0.0
) -> bool | None:
    """Whether the pair's record ``wins``-``ties``-``losses`` is a significant loss (the
    pruner's one-sided sign test, ``sign_test(..., alternative="less") < alpha``) now and
    after up to ``remaining`` more games: ``True`` (a loss for every outcome), ``False``
    (no loss for any), ``None`` (some outcome decides it). With ``risk`` > 0, "every
    outcome" is every outcome of the full match between :func:`future_points`' quantiles:
    the decision may then change, with a probability of about ``risk``.

    The p-value is the same arithmetic as :func:`~optuna_pandalm.statistics.sign_test`'s.

    Example:
        >>> loss_settled(10, 0, 60, 10, 0.05)  # far behind, 10 games left
        True
        >>> loss_settled(60, 0, 10, 20, 0.05)  # far ahead: 20 losses would not do it
        False
        >>> print(loss_settled(48, 0, 48, 74, 0.05))  # even: 74 losses would do it
        None
        >>> loss_settled(48, 0, 48, 74, 0.05, risk=0.1)  # but that is not likely
        False
    """
    from scipy.stats import norm

    k = wins + ties / 2
    if risk > 0:  # the record now and after the full match, at the quantiles
        low, high = future_points(wins, ties, losses, remaining, risk)
        more = np.array([0.0, remaining, remaining])
        lowest, highest = np.array([0.0, low, low]), np.array([0.0, high, high])
    else:  # every number of further games (racing may stop at any batch): the extremes
        more = np.arange(remaining + 1, dtype=float)
        lowest, highest = np.zeros_like(more), more
    n = wins + ties + losses + more

    def p_less(points: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (points + 0.5 - n / 2) / np.sqrt(n / 4)
        return np.where(n > 0, norm.cdf(z), 1.0)  # sign_test(0, 0, 0) is 1.0

    if np.all(p_less(k + lowest) >= alpha):  # not even the fewest points make a loss
        return False
    if np.all(p_less(k + highest) < alpha):  # even the most points make a loss
        return True
    return None


def undecided(
    arena: Any, challenger: Player, opponent: Player, alpha: float, risk: float = 0.0
) -> Callable[[], bool]:
    """For ``MatchPlay.play``'s ``go_on``: whether some outcome of the prompts the pair
    has left can still change the loss test at ``alpha`` or the incumbent (``arena``: the
    :class:`~optuna_pandalm.Arena` playing the match; asked after each batch, its games
    stored). With ``risk`` > 0, only outcomes between :func:`future_points`' quantiles
    count."""

    def go_on() -> bool:
        played = arena.store.played_positions(arena.arena_id, challenger.id, opponent.id)
        remaining = len(arena.prompts) - len(played)
        if remaining <= 0:
            return True  # the prompts are out: the match ends anyway
        wins, ties, losses = arena.match_record(challenger, opponent)
        if loss_settled(wins, ties, losses, remaining, alpha, risk) is None:
            return True
        if risk > 0:
            low, high = future_points(wins, ties, losses, remaining, risk)
            futures = [(low, 0.0, remaining - low), (high, 0.0, remaining - high)]
        else:
            futures = [(remaining, 0, 0), (0, remaining, 0), (0, 0, remaining)]
        return not incumbent_settled(arena, challenger, opponent, futures)

    return go_on


def incumbent_settled(
    arena: Any,
    challenger: Player,
    opponent: Player,
    futures: list[tuple[float, float, float]],
) -> bool:
    """Whether the incumbent stays who it is now whichever of ``futures`` (the
    challenger's further wins, ties and losses against ``opponent``) comes."""
    standings = arena.standings()
    now = standings.incumbent()
    for future in futures:
        counts = _with_games(standings, challenger, opponent, future)
        if counts is None:
            return False
        fitted = fit_standings(
            standings.players,
            counts,
            as_of=standings.as_of,
            baseline=arena.baseline,
            fit_position=arena.position == "random",
            robust_errors=arena.robust_errors,
            length_control=arena.length_control,
            init=standings,
        )
        if fitted.incumbent() != now:
            return False
    return True


def _with_games(
    standings: Standings,
    challenger: Player,
    opponent: Player,
    future: tuple[float, float, float],
) -> GameCounts | None:
    """The standings' game counts plus the challenger's ``future`` wins, ties and losses
    against ``opponent``, half with each shown first, copying the other columns of a
    stored game of the pair; ``None`` when the pair has none."""
    counts = standings.counts
    rows = np.flatnonzero(
        ((counts.first == challenger.id) & (counts.second == opponent.id))
        | ((counts.first == opponent.id) & (counts.second == challenger.id))
    )
    if counts.identical is not None:
        rows = rows[~counts.identical[rows]]
    if not len(rows):
        return None
    c, o = challenger.id, opponent.id
    wins, ties, losses = future
    added = {  # (first, second, outcome, count)
        "first": [c, o, c, o, c, o],
        "second": [o, c, o, c, o, c],
        "outcome": [FIRST_WON, SECOND_WON, TIE, TIE, SECOND_WON, FIRST_WON],
        "count": [wins / 2, wins / 2, ties / 2, ties / 2, losses / 2, losses / 2],
    }
    template = [int(rows[0])] * 6
    columns: dict[str, Any] = {}
    for name in GameCounts.__dataclass_fields__:
        column = getattr(counts, name)
        if column is None:
            columns[name] = None
        elif name in added:
            columns[name] = np.concatenate([column, np.asarray(added[name], dtype=column.dtype)])
        else:
            columns[name] = np.concatenate([column, column[template]])
    return GameCounts(**columns)
