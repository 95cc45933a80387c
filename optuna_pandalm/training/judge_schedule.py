"""Which checkpoints :class:`~optuna_pandalm.JudgeCallback` judges.

By default the end of every epoch; with ``every_n_steps`` every N optimizer steps instead.
Whatever the schedule, a step the Trainer evaluates is judged too (its metrics must hold the
judge's score for ``metric_for_best_model``), and no step is judged twice: the callback keeps
the last judged step.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["JudgeSchedule"]


@dataclass(frozen=True)
class JudgeSchedule:
    """When to judge: at each epoch's end (``every_n_steps=None``) or every N steps.

    Raises:
        ValueError: ``every_n_steps`` is below 1.

    Example:
        >>> JudgeSchedule().at_epoch_end(), JudgeSchedule().at_step_end(4)
        (True, False)
        >>> every_two = JudgeSchedule(every_n_steps=2)
        >>> every_two.at_epoch_end(), every_two.at_step_end(3), every_two.at_step_end(4)
        (False, False, True)
    """

    every_n_steps: int | None = None

    def __post_init__(self) -> None:
        if self.every_n_steps is not None and self.every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {self.every_n_steps}")

    def at_epoch_end(self) -> bool:
        """Whether the checkpoint at an epoch's end is judged."""
        return self.every_n_steps is None

    def at_step_end(self, step: int) -> bool:
        """Whether the checkpoint after optimizer step ``step`` (1, 2, ...) is judged."""
        return self.every_n_steps is not None and step % self.every_n_steps == 0
