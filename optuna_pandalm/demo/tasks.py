"""A synthetic instruction-following task with verifiable answers, for the CPU demo.

Five task types over short lower-case strings and small numbers: reverse, sort, copy,
count and add. Each example is an Alpaca record (instruction, input, output). The data is
split into a training set, judge prompts (with references, for ``ReferenceJudge``) and
held-out prompts the judge never sees, on which exact-match accuracy measures what the
search found.
"""

from __future__ import annotations

import dataclasses
import random

from optuna_pandalm.prompts import Prompt

__all__ = ["TASKS", "DemoData", "exact_match_accuracy", "make_data", "make_example"]

TASKS = ("reverse", "sort", "copy", "count", "add")
_LETTERS = "abcdefghij"


def make_example(task: str, rng: random.Random) -> dict[str, str]:
    """One Alpaca record of the given task type.

    Example:
        >>> make_example("reverse", random.Random(0))["instruction"]
        'Reverse the letters.'
    """
    if task == "add":
        a, b = rng.randint(0, 19), rng.randint(0, 19)
        return {"instruction": "Add the numbers.", "input": f"{a}+{b}", "output": str(a + b)}
    word = "".join(rng.choice(_LETTERS) for _ in range(rng.randint(3, 6)))
    if task == "reverse":
        return {"instruction": "Reverse the letters.", "input": word, "output": word[::-1]}
    if task == "sort":
        return {"instruction": "Sort the letters.", "input": word, "output": "".join(sorted(word))}
    if task == "copy":
        return {"instruction": "Copy the letters.", "input": word, "output": word}
    if task == "count":
        return {"instruction": "Count the letters.", "input": word, "output": str(len(word))}
    raise ValueError(f"unknown task {task!r}; one of {TASKS}")


@dataclasses.dataclass(frozen=True)
class DemoData:
    train: list[dict[str, str]]
    judge_prompts: list[Prompt]
    heldout: list[Prompt]


def make_data(
    *, seed: int = 0, n_train: int = 600, n_judge: int = 30, n_heldout: int = 100
) -> DemoData:
    """Disjoint train / judge / held-out splits, the tasks in equal shares."""
    rng = random.Random(seed)
    seen: set[tuple[str, str]] = set()
    records: list[dict[str, str]] = []
    total = n_train + n_judge + n_heldout
    attempts = 0
    while len(records) < total:
        attempts += 1
        if attempts > 100 * total:
            raise RuntimeError("not enough distinct examples; lower the split sizes")
        example = make_example(TASKS[len(records) % len(TASKS)], rng)
        key = (example["instruction"], example["input"])
        if key not in seen:
            seen.add(key)
            records.append(example)
    rng.shuffle(records)

    def prompts(chunk: list[dict[str, str]]) -> list[Prompt]:
        return [Prompt(r["instruction"], r["input"], r["output"]) for r in chunk]

    return DemoData(
        train=records[:n_train],
        judge_prompts=prompts(records[n_train : n_train + n_judge]),
        heldout=prompts(records[n_train + n_judge :]),
    )


def exact_match_accuracy(answers: list[str], prompts: list[Prompt]) -> float:
    """Share of answers equal to the reference after stripping white space (0..1)."""
    if not prompts:
        return 0.0
    right = sum(
        a.strip() == (p.reference or "").strip() for a, p in zip(answers, prompts, strict=True)
    )
    return right / len(prompts)
