"""The judging contract: requests in, verdicts out."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence

__all__ = ["JudgeRequest", "PairwiseJudge", "Verdict"]


@dataclasses.dataclass(frozen=True)
class JudgeRequest:
    """One judge call: an instruction (with optional input) and two responses, in shown order.

    ``reference`` is the prompt's reference answer, for judges that compare against one.
    """

    instruction: str
    response_1: str
    response_2: str
    input: str = ""
    reference: str | None = None


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A judge's answer to one :class:`JudgeRequest`.

    Attributes:
        winner: 1 or 2 for that response, 0 for a tie, ``None`` for an invalid verdict
            (unparseable output or a failed call). Invalid is never silently a tie.
        probabilities: Optional ``(tie, 1, 2)`` probabilities, each in 0..1, summing to 1.
        reason: The judge's explanation, if it gives one.
        reference: The judge's reference answer, if it gives one.
        raw: The judge's raw output, kept for audit.

    Example:
        >>> Verdict(winner=1, probabilities=(0.1, 0.7, 0.2)).is_valid
        True
        >>> Verdict(winner=None, raw="garbage").is_valid
        False
    """

    winner: int | None
    probabilities: tuple[float, float, float] | None = None
    reason: str = ""
    reference: str = ""
    raw: str = ""

    def __post_init__(self) -> None:
        if self.winner not in (None, 0, 1, 2):
            raise ValueError(f"winner must be 0, 1, 2 or None, got {self.winner!r}")
        if self.probabilities is not None:
            probabilities = tuple(float(p) for p in self.probabilities)
            if len(probabilities) != 3 or not all(
                math.isfinite(p) and p >= 0 for p in probabilities
            ):
                raise ValueError(
                    "probabilities must be three finite non-negative numbers, "
                    f"got {self.probabilities!r}"
                )
            if abs(sum(probabilities) - 1) > 1e-6:
                raise ValueError(f"probabilities must sum to 1, got {sum(probabilities)}")
            object.__setattr__(self, "probabilities", probabilities)

    @property
    def is_valid(self) -> bool:
        return self.winner is not None


class PairwiseJudge(abc.ABC):
    """Base class of judges.

    Subclasses set ``name``, a stable id of the model and its settings: it keys the verdict
    cache, so two judges with the same name must give the same verdicts. Judges are
    order-agnostic; the caller decides which response is shown first.
    """

    name: str

    @abc.abstractmethod
    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        """Return one verdict per request, in order. Failures are invalid verdicts."""
