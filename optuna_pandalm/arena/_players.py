"""Players: the checkpoints and baselines of one study, as the arena hands them out."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

__all__ = ["Player", "trial_number"]


@dataclasses.dataclass(frozen=True)
class Player:
    """A checkpoint ``(trial, step)`` or a named baseline; ``id`` is the store's.

    Example:
        >>> Player(3, trial=1, step=2, name=None).label
        'trial 1 step 2'
        >>> Player(1, trial=None, step=None, name="alpaca").key
        'baseline/alpaca'
    """

    id: int
    trial: int | None
    step: int | None
    name: str | None

    @property
    def key(self) -> str:
        """The stable key of the player in its study (the store's unique key)."""
        return (
            f"baseline/{self.name}"
            if self.name is not None
            else f"trial/{self.trial}/step/{self.step}"
        )

    @property
    def label(self) -> str:
        """How people read the player: ``trial 3 step 2`` or ``baseline alpaca``."""
        return (
            f"baseline {self.name}"
            if self.name is not None
            else f"trial {self.trial} step {self.step}"
        )


def trial_number(trial: Any) -> int:
    """The number of an Optuna trial (or of a trial number given as an integer)."""
    if isinstance(trial, numbers.Integral) and not isinstance(trial, bool):
        return int(trial)
    number = getattr(trial, "number", None)
    if not isinstance(number, numbers.Integral) or isinstance(number, bool):
        raise TypeError(f"expected an Optuna trial or a trial number, got {type(trial).__name__}")
    return int(number)


def checkpoint_step(step: Any) -> int:
    """A checkpoint's step as a plain ``int``; refuses ``1.7`` rather than storing 1."""
    if isinstance(step, bool):
        raise ValueError(f"step must be an integer, got {step!r}")
    if isinstance(step, numbers.Integral):
        return int(step)
    if isinstance(step, numbers.Real) and float(step).is_integer():
        return int(float(step))
    raise ValueError(f"step must be an integer, got {step!r}")
