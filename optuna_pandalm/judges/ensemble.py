"""Combine several judges' verdicts on the same requests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict

__all__ = ["EnsembleJudge"]


class EnsembleJudge(PairwiseJudge):
    """Majority vote or mean probabilities over judges.

    Args:
        judges: The judges; each sees every request.
        method: ``"mean"`` averages ``(tie, 1, 2)`` probabilities (a judge without
            probabilities counts as certain of its verdict) and takes the arg max;
            ``"majority"`` takes the most common winner, a tie when 1 and 2 are level.

    Invalid verdicts are left out; when every judge is invalid, so is the ensemble.

    Example:
        >>> from optuna_pandalm.judges import ReferenceJudge
        >>> both = EnsembleJudge([ReferenceJudge("rouge_l"), ReferenceJudge("token_f1")])
        >>> both.judge([JudgeRequest("Sum 2 and 3", "5", "6", reference="5")])[0].winner
        1
    """

    def __init__(self, judges: Sequence[PairwiseJudge], *, method: str = "mean") -> None:
        if not judges:
            raise ValueError("an ensemble needs at least one judge")
        if method not in ("mean", "majority"):
            raise ValueError(f"method must be 'mean' or 'majority', got {method!r}")
        self.judges = list(judges)
        self.method = method
        self.name = f"ensemble:{method}:[{'|'.join(j.name for j in self.judges)}]"
        self.needs_reference = any(judge.needs_reference for judge in self.judges)

    def _combine(self, verdicts: list[Verdict], names: list[str]) -> Verdict:
        valid = [v for v in verdicts if v.is_valid]
        reason = "; ".join(
            f"{n}: {v.reason}" for n, v in zip(names, verdicts, strict=True) if v.reason
        )
        raw = " | ".join(v.raw for v in verdicts)
        if not valid:
            return Verdict(winner=None, reason=reason, raw=raw)
        if self.method == "majority":
            counts = Counter(v.winner for v in valid)
            top = max(counts.values())
            leaders = [w for w, c in counts.items() if c == top]
            winner = leaders[0] if len(leaders) == 1 else 0
            return Verdict(winner=winner, reason=reason, raw=raw)
        totals = [0.0, 0.0, 0.0]
        for v in valid:
            p = v.probabilities or tuple(float(k == v.winner) for k in range(3))
            for k in range(3):
                totals[k] += p[k] / len(valid)
        winner = max(range(3), key=lambda k: totals[k])
        return Verdict(
            winner=winner, probabilities=(totals[0], totals[1], totals[2]), reason=reason, raw=raw
        )

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        per_judge = [judge.judge(requests) for judge in self.judges]
        names = [judge.name for judge in self.judges]
        return [self._combine([v[i] for v in per_judge], names) for i in range(len(requests))]
