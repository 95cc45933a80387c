"""A game's outcome: PandaLM's codes, what they mean to each player, and their one check.

A verdict's ``winner`` and a stored game's ``outcome`` use PandaLM's labels, which name a
*shown position*, not a player: 0 (:data:`TIE`), 1 (:data:`FIRST_WON`, the first-shown
response won), 2 (:data:`SECOND_WON`). Which player that is depends on the shown order, so
every reader that asks "did this player win?" goes through :func:`side` (or the vectorised
:func:`sides`), and the arena writes a game back with :func:`outcome_of`.

Example:
    >>> side(FIRST_WON, shown_first=False)
    <Side.LOSS: -1>
    >>> outcome_of(Side.WIN, shown_first=False) == SECOND_WON
    True
    >>> mirrored(SECOND_WON) == FIRST_WON
    True
"""

from __future__ import annotations

import enum
import numbers

import numpy as np

__all__ = [
    "FIRST_WON",
    "OUTCOMES",
    "SECOND_WON",
    "TIE",
    "Side",
    "check_outcome",
    "check_winner",
    "mirrored",
    "outcome_of",
    "side",
    "sides",
]

TIE = 0
"""Neither response is better."""
FIRST_WON = 1
"""The response shown first won ("Response 1" in PandaLM's prompt)."""
SECOND_WON = 2
"""The response shown second won."""
OUTCOMES = (TIE, FIRST_WON, SECOND_WON)
"""Every outcome code; a verdict's winner may also be ``None`` (invalid)."""


class Side(enum.IntEnum):
    """A game from one player's side; the value is the sign a sign test counts."""

    LOSS = -1
    TIE = 0
    WIN = 1


def check_outcome(value: object, *, what: str = "outcome") -> int:
    """``value`` as a plain ``int`` in :data:`OUTCOMES`, for storing or trusting.

    A NumPy integer becomes ``int`` (SQLite would store it as an 8-byte blob); anything else
    (``True``, ``7``, ``"1"``, ``1.0``) raises ``ValueError`` naming ``what``: stored as is,
    it would replay wrongly.

    Example:
        >>> check_outcome(np.int64(2))
        2
        >>> check_outcome(True, what="game outcome")
        Traceback (most recent call last):
        ...
        ValueError: game outcome must be 0, 1 or 2, got True (bool)
    """
    return _checked(value, f"{what} must be 0, 1 or 2")


def check_winner(value: object) -> int | None:
    """A verdict's ``winner``: ``None`` (invalid) or, as :func:`check_outcome`, a plain
    ``int`` 0, 1 or 2. Used by :class:`~optuna_pandalm.judges.base.Verdict` and by the store's
    verdict cache, so both accept and refuse the same values.

    Example:
        >>> check_winner(np.int8(1)), check_winner(None)
        (1, None)
        >>> check_winner(7)
        Traceback (most recent call last):
        ...
        ValueError: winner must be 0, 1, 2 or None, got 7
    """
    if value is None:
        return None
    return _checked(value, "winner must be 0, 1, 2 or None")


def _checked(value: object, rule: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{rule}, got {value!r} ({type(value).__name__})")
    if int(value) not in OUTCOMES:
        raise ValueError(f"{rule}, got {value!r}")
    return int(value)


def side(outcome: int, *, shown_first: bool) -> Side:
    """The side of the player whose response was shown first (``shown_first``) or second.

    Example:
        >>> [side(o, shown_first=True).name for o in OUTCOMES]
        ['TIE', 'WIN', 'LOSS']
        >>> [side(o, shown_first=False).name for o in OUTCOMES]
        ['TIE', 'LOSS', 'WIN']
    """
    if outcome == TIE:
        return Side.TIE
    return Side.WIN if (outcome == FIRST_WON) == shown_first else Side.LOSS


def sides(outcome: np.ndarray, *, shown_first: bool | np.ndarray) -> np.ndarray:
    """:func:`side` of many games at once: an ``int`` array of -1 (loss), 0 (tie), 1 (win).

    Example:
        >>> sides(np.array([0, 1, 2]), shown_first=np.array([True, True, False])).tolist()
        [0, 1, 1]
    """
    outcome = np.asarray(outcome)
    as_first = (outcome == FIRST_WON).astype(np.int64) - (outcome == SECOND_WON)
    result: np.ndarray = np.where(shown_first, as_first, -as_first)
    return result


def outcome_of(player_side: Side | int, *, shown_first: bool) -> int:
    """The outcome code of a game that a player shown first (or second) ended with
    ``player_side``: the inverse of :func:`side`.

    Example:
        >>> all(outcome_of(side(o, shown_first=f), shown_first=f) == o
        ...     for o in OUTCOMES for f in (True, False))
        True
    """
    if player_side == Side.TIE:
        return TIE
    return FIRST_WON if (player_side == Side.WIN) == shown_first else SECOND_WON


def mirrored(outcome: int) -> int:
    """The outcome the same verdict has with the two responses shown the other way round
    (a tie stays a tie, 1 and 2 swap).

    Example:
        >>> [mirrored(o) for o in OUTCOMES]
        [0, 2, 1]
    """
    return (TIE, SECOND_WON, FIRST_WON)[outcome]
