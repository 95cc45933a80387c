"""A judge that compares each response with the prompt's reference answer.

Deterministic, offline and fast: the CPU demo's judge, and a sanity baseline for LLM
judges. It needs prompts with a reference answer.
"""

from __future__ import annotations

import difflib
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

from optuna_pandalm.judges.base import JudgeInputError, JudgeRequest, PairwiseJudge, Verdict

__all__ = ["ReferenceJudge", "char_ratio", "exact_match", "rouge_l", "token_f1"]

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _tokens(text: str, *, drop_articles: bool = True) -> list[str]:
    """Lower case, punctuation to spaces, split on white space; SQuAD also drops articles."""
    text = _PUNCTUATION.sub(" ", text.lower())
    if drop_articles:
        text = _ARTICLES.sub(" ", text)
    return text.split()


def token_f1(response: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (0..1), as in SQuAD.

    Example:
        >>> round(token_f1("the cat sat", "a cat sat down"), 3)
        0.8
    """
    predicted, gold = _tokens(response), _tokens(reference)
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def rouge_l(response: str, reference: str) -> float:
    """ROUGE-L F-measure (0..1): longest common token subsequence.

    Example:
        >>> round(rouge_l("the cat sat on the mat", "the cat lay on the mat"), 3)
        0.833
    """
    predicted = _tokens(response, drop_articles=False)
    gold = _tokens(reference, drop_articles=False)
    if not predicted or not gold:
        return float(predicted == gold)
    # Dynamic programme over the shorter sequence: O(len(a) * len(b)) time, O(min) memory.
    a, b = (predicted, gold) if len(predicted) >= len(gold) else (gold, predicted)
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(
                previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1])
            )
        previous = current
    common = previous[-1]
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def char_ratio(response: str, reference: str) -> float:
    """Character-level similarity (0..1): difflib's ratio of matching characters, for short
    answers where word-level metrics degenerate to exact match.

    Example:
        >>> round(char_ratio("abcd", "abed"), 3)
        0.75
    """
    return difflib.SequenceMatcher(
        None, response.strip(), reference.strip(), autojunk=False
    ).ratio()


def exact_match(response: str, reference: str) -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(_tokens(response) == _tokens(reference))


_METRICS: dict[str, Callable[[str, str], float]] = {
    "rouge_l": rouge_l,
    "token_f1": token_f1,
    "exact": exact_match,
    "char_ratio": char_ratio,
}


class ReferenceJudge(PairwiseJudge):
    """Prefer the response closer to the prompt's reference answer.

    Args:
        metric: ``"rouge_l"``, ``"token_f1"``, ``"exact"`` or ``"char_ratio"`` (all 0..1).
        tie_margin: Scores closer than this are a tie (0..1).
        max_tokens: Each text is cut to this many tokens before scoring, which bounds the
            cost of ROUGE-L on huge responses.

    Raises:
        ValueError: from :meth:`judge`, when a request has no reference, naming the
            instruction.

    Example:
        >>> judge = ReferenceJudge("token_f1")
        >>> judge.judge([JudgeRequest("Add 2 and 3.", "It is 5", "6", reference="5")])[0].winner
        1
    """

    needs_reference = True

    def __init__(
        self, metric: str = "rouge_l", *, tie_margin: float = 0.0, max_tokens: int = 2048
    ):
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
        if not 0 <= tie_margin < 1:
            raise ValueError(f"tie_margin must be in [0, 1), got {tie_margin}")
        self.metric = metric
        self.tie_margin = tie_margin
        self.max_tokens = max_tokens
        self._score = _METRICS[metric]
        self.name = f"reference:{metric}:tie_margin={tie_margin}:max_tokens={max_tokens}"

    def __repr__(self) -> str:
        return f"ReferenceJudge(metric={self.metric!r}, tie_margin={self.tie_margin})"

    def _cut(self, text: str) -> str:
        return " ".join(text.split()[: self.max_tokens])

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        verdicts = []
        for request in requests:
            if request.reference is None:
                raise JudgeInputError(
                    "ReferenceJudge needs a reference answer for every prompt; none for "
                    f"instruction {request.instruction[:80]!r}"
                )
            reference = self._cut(request.reference)
            one = self._score(self._cut(request.response_1), reference)
            two = self._score(self._cut(request.response_2), reference)
            winner = 0 if abs(one - two) <= self.tie_margin else (1 if one > two else 2)
            verdicts.append(
                Verdict(
                    winner=winner,
                    reason=f"{self.metric}: response 1 {one:.3f}, response 2 {two:.3f}",
                    reference=request.reference,
                    raw=f"{one:.6f} {two:.6f}",
                )
            )
        return verdicts
