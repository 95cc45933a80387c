"""Judge validation on PandaLM's human-annotated test set (PandaLM's protocol).

Truth is the majority of three annotators (labels 0 = tie, 1, 2). Metrics are accuracy and
macro precision / recall / F1 over {tie, 1, 2}. Predictions that are not a label count as
ties in those metrics, as PandaLM's own script does, so numbers compare with the paper; they
are also counted separately (``n_invalid``). Also measured: length preference (the share of
decisive verdicts that pick the longer response), length-controlled agreement (accuracy
where people preferred the longer and where they preferred the shorter response, averaged)
and, with swapped orders, position consistency (the share of verdicts unchanged when the two
responses trade places).

A judge can score near chance while looking busy: one that always names the same position,
or always ties, gives verdicts that say nothing about the responses. :func:`verdict_shares`
counts its valid verdicts by what they say in the shown order (first, second, tie), and
:func:`judge_warnings` turns metrics into warning sentences by one rule
(:data:`DEGENERATE_SHARE`, :data:`MIN_POSITION_CONSISTENCY`, :data:`MOSTLY_INVALID_SHARE`),
which ``judge-eval`` prints and the arena logs after the first verdicts of a study.

The test set ships with the package (``load_testset("pandalm")``, Apache-2.0, its notice
and license next to it in ``optuna_pandalm/data/pandalm/``).

Test-set quirks, handled explicitly: six responses are the JSON value ``true`` (in pairs
157, 158, 159, 161, 162 and 164) and are judged as the text ``"true"``; 54 pairs have an
empty response, judged as empty; pairs of equally long responses are left out of the
length preference.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from optuna_pandalm.errors import EvaluationInputError
from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, mirrored
from optuna_pandalm.judges.pandalm import LABEL_OF

__all__ = [
    "DEGENERATE_SHARE",
    "MIN_POSITION_CONSISTENCY",
    "MOSTLY_INVALID_SHARE",
    "PACKAGED_TESTSET",
    "LabelledPair",
    "check_judge",
    "evaluate_predictions",
    "judge_testset",
    "judge_warnings",
    "length_controlled_agreement",
    "load_testset",
    "position_consistency",
    "read_predictions",
    "verdict_shares",
]

_STRING_LABELS = {"0": 0, **LABEL_OF}  # recorded predictions also write a tie as 0

PACKAGED_TESTSET = "pandalm"
"""The name that :func:`load_testset` and ``judge-eval --data`` read as the packaged copy of
PandaLM's human-annotated test set (999 pairs)."""


DEGENERATE_SHARE = 0.9
"""A judge is degenerate when one label (first shown wins, second shown wins, or tie) takes
this share or more of its valid verdicts (0..1). Where the shown order is random, a judge
that reads the responses cannot name one position that often; and one that ties (almost)
always separates nothing. Measured: SmolLM2-135M-Instruct as a PandaLM likelihood judge
names one position in every verdict."""

MIN_POSITION_CONSISTENCY = 0.5
"""Position consistency (the share of pairs whose verdict stays the same when the two
responses trade places, 0..1) under this means the shown order decides a judge's verdicts
more than the responses do: a judge answering a fair coin between the two names scores 0.5,
one answering at random among the three labels 1/3, one that always names one position 0."""

MOSTLY_INVALID_SHARE = 0.5
"""A judge whose verdicts are invalid (unparseable) this share of the time or more (0..1)
mostly does not answer in the format it is read with."""

_SHOWN = {"first": 1, "second": 2, "tie": 0}
"""Labels of verdict shares, in the shown order, and the outcome code each counts."""


@dataclasses.dataclass(frozen=True)
class LabelledPair:
    idx: int
    instruction: str
    input: str
    response_1: str
    response_2: str
    truth: int  # annotators' majority: 0 tie, 1, 2

    def request(self, *, swapped: bool = False) -> JudgeRequest:
        first, second = (
            (self.response_2, self.response_1) if swapped else (self.response_1, self.response_2)
        )
        return JudgeRequest(self.instruction, first, second, input=self.input)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _packaged_testset() -> Any:
    return importlib.resources.files("optuna_pandalm") / "data" / "pandalm" / "testset-v1.json"


def load_testset(path: str | Path) -> list[LabelledPair]:
    """Read PandaLM's ``testset-v1.json`` (idx, instruction, input, response1, response2,
    annotator1..3); ``"pandalm"`` (:data:`PACKAGED_TESTSET`) reads the copy shipped with
    the package (a file of that name is ``./pandalm``).

    Example:
        >>> pairs = load_testset("pandalm")
        >>> len(pairs), pairs[0].truth in (0, 1, 2)
        (999, True)
    """
    source = _packaged_testset() if str(path) == PACKAGED_TESTSET else Path(path)
    try:
        rows = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EvaluationInputError(f"{path}: cannot read the test set ({error})") from None
    if not isinstance(rows, list) or not rows:
        raise EvaluationInputError(f"{path}: expected a non-empty JSON list")
    pairs = []
    for number, row in enumerate(rows):
        try:
            votes = Counter(int(row[f"annotator{k}"]) for k in (1, 2, 3))
            label, count = votes.most_common(1)[0]
            pairs.append(
                LabelledPair(
                    idx=int(row["idx"]),
                    instruction=_text(row["instruction"]),
                    input=_text(row.get("input") or ""),
                    response_1=_text(row["response1"]),
                    response_2=_text(row["response2"]),
                    truth=label if count >= 2 else 0,
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            raise EvaluationInputError(
                f"{path}, row {number}: bad or missing field {error}"
            ) from None
    return pairs


def parse_label(value: Any) -> int | None:
    """0, 1 or 2 from an int or a string ('1', '2', 'Tie' in any case); else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in (0, 1, 2) else None
    if isinstance(value, str):
        return _STRING_LABELS.get(value.strip().lower())
    return None


def read_predictions(path: str | Path) -> dict[int, int | None]:
    """Predictions by ``idx``: the label in ``result`` or in any ``*_result`` field."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EvaluationInputError(f"{path}: cannot read predictions ({error})") from None
    if not isinstance(rows, list):
        raise EvaluationInputError(f"{path}: expected a JSON list of predictions")
    predictions: dict[int, int | None] = {}
    for number, row in enumerate(rows):
        if not isinstance(row, Mapping) or "idx" not in row:
            raise EvaluationInputError(f"{path}, row {number}: expected an object with 'idx'")
        fields = ["result"] if "result" in row else [k for k in row if str(k).endswith("_result")]
        if len(fields) != 1:
            raise EvaluationInputError(
                f"{path}, row {number}: expected one 'result' or '*_result' field, found {fields}"
            )
        predictions[int(row["idx"])] = parse_label(row[fields[0]])
    return predictions


def _macro(truth: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    precision, recall, f1 = [], [], []
    for label in (0, 1, 2):
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted, strict=True))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return {
        "precision": sum(precision) / 3,
        "recall": sum(recall) / 3,
        "f1": sum(f1) / 3,
    }


def length_preference(
    pairs: Sequence[LabelledPair], labels: Mapping[int, int | None]
) -> float | None:
    """Share of decisive verdicts that pick the longer response (equal lengths left out)."""
    decisive = [
        (p, labels[p.idx])
        for p in pairs
        if labels.get(p.idx) in (1, 2) and len(p.response_1) != len(p.response_2)
    ]
    if not decisive:
        return None
    longer = sum((label == 1) == (len(p.response_1) > len(p.response_2)) for p, label in decisive)
    return longer / len(decisive)


def length_controlled_agreement(
    pairs: Sequence[LabelledPair], predictions: Mapping[int, int | None]
) -> dict[str, float | None]:
    """Agreement with people where length cannot help: on the pairs people decided and whose
    responses differ in length, the accuracy where they preferred the longer response, where
    they preferred the shorter one, and their mean (``length_controlled_accuracy``, each
    side weighted equally, so a judge that simply picks the longer answer scores 0.5), next
    to the plain accuracy on the same pairs (``decisive_accuracy``).

    Example:
        >>> pair = LabelledPair(0, "Q", "", "a long answer", "short", truth=1)
        >>> other = LabelledPair(1, "Q", "", "short", "a long answer", truth=1)
        >>> always_longer = {0: 1, 1: 2}
        >>> length_controlled_agreement([pair, other], always_longer)["length_controlled_accuracy"]
        0.5
    """
    sides: dict[bool, list[bool]] = {True: [], False: []}
    for p in pairs:
        if p.truth in (1, 2) and len(p.response_1) != len(p.response_2):
            longer_won = (p.truth == 1) == (len(p.response_1) > len(p.response_2))
            sides[longer_won].append(predictions.get(p.idx) == p.truth)
    longer, shorter = sides[True], sides[False]
    both = longer + shorter
    on_longer = sum(longer) / len(longer) if longer else None
    on_shorter = sum(shorter) / len(shorter) if shorter else None
    return {
        "decisive_accuracy": sum(both) / len(both) if both else None,
        "accuracy_when_longer_preferred": on_longer,
        "accuracy_when_shorter_preferred": on_shorter,
        "length_controlled_accuracy": (
            (on_longer + on_shorter) / 2
            if on_longer is not None and on_shorter is not None
            else None
        ),
    }


def verdict_shares(labels: Iterable[int | None]) -> dict[str, Any]:
    """What a judge's verdicts say in the order the responses were shown: ``n_verdicts``
    (invalid ones included), ``n_valid_verdicts``, and ``verdict_shares``, the share (0..1)
    of valid verdicts for ``first`` (the response shown first won), ``second`` and ``tie``
    (``None`` without a valid verdict).

    Example:
        >>> verdict_shares([1, 1, 1, 2, None])
        {'n_verdicts': 5, 'n_valid_verdicts': 4, 'verdict_shares': {'first': 0.75, \
'second': 0.25, 'tie': 0.0}}
    """
    labels = list(labels)
    valid = [label for label in labels if label is not None]
    shares = (
        {name: valid.count(code) / len(valid) for name, code in _SHOWN.items()} if valid else None
    )
    return {"n_verdicts": len(labels), "n_valid_verdicts": len(valid), "verdict_shares": shares}


def position_consistency(both_orders: Sequence[tuple[int, int]]) -> float | None:
    """The share (0..1) of pairs judged in both orders whose verdict is the same pair-wise:
    ``(a, b)`` is the verdict with the responses in one order and in the other, each in the
    shown order, consistent when ``a == mirrored(b)``; ``None`` without pairs.

    Example:
        >>> position_consistency([(1, 2), (1, 1), (0, 0), (2, 1)])
        0.75
    """
    if not both_orders:
        return None
    return sum(a == mirrored(b) for a, b in both_orders) / len(both_orders)


def judge_warnings(metrics: Mapping[str, Any], *, judge: str = "the judge") -> list[str]:
    """Sentences saying how a judge is degenerate (empty for a judge that may be sound), by
    one rule: one label in :data:`DEGENERATE_SHARE` or more of the valid verdicts
    (``verdict_shares``, ``n_valid_verdicts``), position consistency under
    :data:`MIN_POSITION_CONSISTENCY` (``position_consistency``, ``n_swap_compared``, where
    pairs were judged in both orders), or :data:`MOSTLY_INVALID_SHARE` or more invalid
    verdicts (``n_verdicts``, ``n_valid_verdicts``). Each sentence names the judge, the
    figure, the threshold and what to do. Keys that are missing are not checked.

    Example:
        >>> metrics = {**verdict_shares([1] * 95 + [2] * 5), "position_consistency": 0.0,
        ...            "n_swap_compared": 100}
        >>> for sentence in judge_warnings(metrics, judge="judge J"):
        ...     print(sentence[: sentence.index(":")])
        judge J is degenerate
        judge J follows the position, not the responses
    """
    sentences = []
    advice = "use a larger judge model, generate mode instead of likelihood, or another format"
    shares = metrics.get("verdict_shares")
    if shares:
        label, share = max(shares.items(), key=lambda item: item[1])
        if share >= DEGENERATE_SHARE:
            said = "a tie" if label == "tie" else f"the response shown {label} wins"
            sentences.append(
                f"{judge} is degenerate: {share:.0%} of its {metrics['n_valid_verdicts']} "
                f"valid verdicts say {said} (first {shares['first']:.0%}, second "
                f"{shares['second']:.0%}, tie {shares['tie']:.0%}; "
                f"{DEGENERATE_SHARE:.0%} or more for one label is degenerate), so they say "
                f"almost nothing about the responses: {advice}"
            )
    consistency = metrics.get("position_consistency")
    if consistency is not None and consistency < MIN_POSITION_CONSISTENCY:
        sentences.append(
            f"{judge} follows the position, not the responses: its position consistency is "
            f"{consistency:.3f} over {metrics['n_swap_compared']} pairs judged in both orders "
            f"(under {MIN_POSITION_CONSISTENCY} is degenerate; 1 is the same verdict in both "
            f"orders): {advice}"
        )
    n, n_valid = metrics.get("n_verdicts"), metrics.get("n_valid_verdicts")
    if n and n_valid is not None and (n - n_valid) / n >= MOSTLY_INVALID_SHARE:
        sentences.append(
            f"{judge} mostly gives invalid verdicts: {n - n_valid} of {n} "
            f"({(n - n_valid) / n:.0%}; {MOSTLY_INVALID_SHARE:.0%} or more is degenerate) "
            "could not be read as a verdict: check the judge's format, give generate mode "
            "more max_new_tokens, or use likelihood mode"
        )
    return sentences


def evaluate_predictions(
    pairs: Sequence[LabelledPair],
    predictions: Mapping[int, int | None],
    *,
    swapped: Mapping[int, int | None] | None = None,
    judge: str = "the judge",
) -> dict[str, Any]:
    """PandaLM-protocol metrics for predictions aligned by ``idx``.

    Missing and invalid predictions count as ties in accuracy / precision / recall / F1 (as
    in PandaLM's script) and are reported in ``n_invalid`` and ``n_missing``.
    """
    truth = [p.truth for p in pairs]
    raw = [predictions.get(p.idx) for p in pairs]
    predicted = [0 if label is None else label for label in raw]
    result: dict[str, Any] = {
        "n": len(pairs),
        "accuracy": sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(pairs),
        **_macro(truth, predicted),
        "n_invalid": sum(label is None for label in raw)
        - sum(p.idx not in predictions for p in pairs),
        "n_missing": sum(p.idx not in predictions for p in pairs),
        "length_preference": length_preference(pairs, predictions),
        "human_length_preference": length_preference(pairs, {p.idx: p.truth for p in pairs}),
        **length_controlled_agreement(pairs, predictions),
    }
    given = [predictions[p.idx] for p in pairs if p.idx in predictions]
    if swapped is not None:
        given += [swapped[p.idx] for p in pairs if p.idx in swapped]
        both = [
            (a, b)
            for p in pairs
            if (a := predictions.get(p.idx)) is not None and (b := swapped.get(p.idx)) is not None
        ]
        result["position_consistency"] = position_consistency(both)
        result["n_swap_compared"] = len(both)
    result.update(verdict_shares(given))
    result["warnings"] = judge_warnings(result, judge=judge)
    return result


def check_judge(judge: PairwiseJudge, pairs: Sequence[LabelledPair]) -> None:
    """Refuse, before any work, a judge that cannot run on these pairs: one that needs a
    reference answer (``judge.needs_reference``) on pairs without one, as PandaLM's test set.

    Example:
        >>> from optuna_pandalm.judges import ReferenceJudge
        >>> try:
        ...     check_judge(ReferenceJudge("rouge_l"), load_testset("pandalm")[:1])
        ... except EvaluationInputError as error:
        ...     print(str(error)[str(error).index("(") :])
        (PandaLM's test set has no references): use a local:, pandalm:, reward: or remote: judge
    """
    if getattr(judge, "needs_reference", False):
        raise EvaluationInputError(
            f"judge {judge.name} compares responses with a reference answer, and these "
            f"{len(pairs)} pairs have none (PandaLM's test set has no references): use a "
            "local:, pandalm:, reward: or remote: judge"
        )


def judge_testset(
    judge: PairwiseJudge,
    pairs: Sequence[LabelledPair],
    *,
    swap: bool = False,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[int, int | None], dict[int, int | None] | None]:
    """Run a judge over the pairs (and, with ``swap``, over the swapped pairs).

    Raises:
        EvaluationInputError: before judging anything, for a judge :func:`check_judge`
            refuses.
    """
    check_judge(judge, pairs)

    def run(swapped: bool) -> dict[int, int | None]:
        labels: dict[int, int | None] = {}
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            verdicts = judge.judge([p.request(swapped=swapped) for p in chunk])
            labels.update({p.idx: v.winner for p, v in zip(chunk, verdicts, strict=True)})
            if progress:
                progress(len(chunk))
        return labels

    return run(False), (run(True) if swap else None)
