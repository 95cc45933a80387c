"""The judging contract: requests in, verdicts out."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from optuna_pandalm.errors import InvalidVerdictError, JudgeInputError, JudgeUnavailableError
from optuna_pandalm.outcomes import check_winner, mirrored

__all__ = [
    "InvalidVerdictError",
    "JudgeInputError",
    "JudgeRequest",
    "JudgeUnavailableError",
    "PairwiseJudge",
    "Verdict",
    "canonical_verdict",
    "mirrored",
]


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
        winner: 1 or 2 for that response, 0 for a tie (:mod:`optuna_pandalm.outcomes`),
            ``None`` for an invalid verdict (unparseable output or a failed call). Invalid
            is never silently a tie. A NumPy integer becomes ``int``; anything else
            (``True``, ``7``, ``"1"``) raises ``ValueError``.
        probabilities: Optional ``(tie, 1, 2)`` probabilities, each in 0..1, summing to 1.
        reason: The judge's explanation, if it gives one.
        reference: The judge's reference answer, if it gives one.
        raw: The judge's raw output, kept for audit.
        strength: How much better the winner is, where the format says (Arena-Hard's
            ``>>`` against ``>``): 2 much better, 1 better; ``None`` for a tie, an invalid
            verdict, or a format without strengths. Not stored in the verdict cache yet, and
            not used by the fit (one game is one preference).

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
    strength: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "winner", check_winner(self.winner))
        if self.strength is not None and (
            self.strength not in (1, 2)
            or isinstance(self.strength, bool)
            or self.winner in (0, None)
        ):
            raise ValueError(
                f"strength must be None, 1 or 2 (and None for a tie or an invalid verdict), "
                f"got {self.strength!r} with winner {self.winner!r}"
            )
        object.__setattr__(self, "probabilities", _probabilities(self.probabilities))
        for field in ("reason", "reference", "raw"):
            if not isinstance(getattr(self, field), str):
                raise ValueError(
                    f"{field} must be a str, got {type(getattr(self, field)).__name__}"
                )

    @property
    def is_valid(self) -> bool:
        return self.winner is not None


def _probabilities(value: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        values = tuple(float(p) for p in value)
    except (TypeError, ValueError):
        raise ValueError(f"probabilities must be three numbers, got {value!r}") from None
    if len(values) != 3 or not all(math.isfinite(p) and p >= 0 for p in values):
        raise ValueError(f"probabilities must be three finite non-negative numbers, got {value!r}")
    if abs(sum(values) - 1) > 1e-6:
        raise ValueError(f"probabilities must sum to 1, got {sum(values)}")
    return values[0], values[1], values[2]


def canonical_verdict(verdict: Any, *, judge: str, index: int) -> Verdict:
    """Check and canonicalise what a judge returned for request ``index``, once, where it
    enters: a fresh :class:`Verdict` of plain Python values (numpy integers and floats
    become ``int`` and ``float``), so every layer below can trust it.

    Duck-typed objects with the verdict's attributes are accepted; a ``Verdict`` mutated
    after construction is checked again.

    Raises:
        InvalidVerdictError: naming the judge and the request index.

    Example:
        >>> import numpy as np
        >>> canonical_verdict(Verdict(np.int64(1)), judge="j", index=0).winner.__class__
        <class 'int'>
        >>> canonical_verdict(Verdict(2), judge="j", index=3).winner
        2
    """
    try:
        fields: dict[str, Any] = {
            name: getattr(verdict, name, default)
            for name, default in (
                ("winner", _MISSING),
                ("probabilities", None),
                ("reason", ""),
                ("reference", ""),
                ("raw", ""),
            )
        }
        if fields["winner"] is _MISSING:
            raise ValueError(f"a verdict needs a winner, got {type(verdict).__name__}")
        return Verdict(**fields)
    except ValueError as error:
        raise InvalidVerdictError(
            f"judge {judge!r} returned an invalid verdict for request {index}: {error}"
        ) from None


_MISSING: Any = object()


class PairwiseJudge(abc.ABC):
    """Base class of judges.

    Subclasses set ``name``, a stable id of the model and its settings: it keys the verdict
    cache, so two judges with the same name must give the same verdicts. Judges are
    order-agnostic; the caller decides which response is shown first. A judge that compares
    responses with the prompt's reference answer sets ``needs_reference`` so callers can
    refuse prompts without one before any work.
    """

    name: str
    needs_reference: bool = False

    @abc.abstractmethod
    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        """Return one verdict per request, in order.

        An answer the judge gave but that cannot be read (unparseable text) is an invalid
        verdict (``winner=None``, the text in ``raw``): data, cached like any verdict. A
        failure to answer (a timeout, a refused connection, an exception) must raise,
        :class:`JudgeUnavailableError` ideally, with the verdicts already obtained in its
        ``completed``: it is retried and never cached. A request the judge can never answer
        (it lacks what the judge needs, e.g. a reference) raises :class:`JudgeInputError`:
        retrying cannot change it, so it is not retried.
        """
