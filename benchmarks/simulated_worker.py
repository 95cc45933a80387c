"""What a benchmark's worker process runs (``many_workers.py``, ``soak.py``): a simulated judge
that records what it judged, and the objective that trains nothing but evaluates the
``Landscape``'s generations at each checkpoint, timing ``Arena.evaluate`` without the judge.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from optuna_pandalm.testing import SimulatedJudge


class RecordingJudge(SimulatedJudge):
    """A ``SimulatedJudge`` that records the keys (prompt, response 1, response 2 hashes) it
    judged, to count verdicts lost afterwards, and the seconds its calls took.

    ``latency``: seconds each batch sleeps first, as a shared judge server would.
    ``judging[index]``: set to the wall-clock start of the running call, 0 between calls (a
    shared array the parent reads to tell what a worker holds while its judge runs)."""

    def __init__(
        self,
        prompts: Sequence[Any],
        *,
        latency: float = 0.0,
        judging: Any = None,
        index: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed=seed)
        self._prompt_hash = {p.instruction: p.hash for p in prompts}
        self._latency = latency
        self._judging = judging
        self._index = index
        self.judged: set[tuple[str, str, str]] = set()
        self.seconds = 0.0

    def judge(self, requests):  # type: ignore[no-untyped-def]
        from optuna_pandalm.store import text_hash

        start = time.perf_counter()
        if self._judging is not None:
            self._judging[self._index] = time.time()
        try:
            time.sleep(self._latency)
            verdicts = super().judge(requests)
        finally:
            if self._judging is not None:
                self._judging[self._index] = 0.0
        self.seconds += time.perf_counter() - start
        self.judged.update(
            (self._prompt_hash[r.instruction], text_hash(r.response_1), text_hash(r.response_2))
            for r in requests
        )
        return verdicts


def landscape_objective(
    arena: Any,
    judge: RecordingJudge,
    landscape: Any,
    prompts: Sequence[Any],
    *,
    epochs: int,
    key: int,
    evaluate_ms: list[float],
) -> Callable[[Any], float]:
    """The objective: at each of ``epochs`` checkpoints, ``arena.evaluate`` the landscape's
    generations for the trial's settings (appending its milliseconds, the judge's excluded,
    to ``evaluate_ms``), pruned when the pruner says so; then ``arena.finalize``. ``key``
    keeps one worker's generations apart from another's."""
    import optuna

    from optuna_pandalm.testing import Landscape

    def objective(trial: optuna.Trial) -> float:
        params = Landscape.suggest(trial)
        for epoch in range(1, epochs + 1):
            texts = landscape.generations(params, epoch, prompts, key=(key, trial.number))
            before, start = judge.seconds, time.perf_counter()
            arena.evaluate(trial, epoch, texts)
            evaluate_ms.append(1000 * (time.perf_counter() - start - (judge.seconds - before)))
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(arena.finalize(trial))

    return objective


def stored_verdict_keys(connection: Any) -> set[tuple[str, str, str]]:
    """The keys of the verdicts in ``pandalm_verdicts`` (a SQLAlchemy connection): a key
    a :class:`RecordingJudge` judged but missing here is a verdict lost."""
    import sqlalchemy as sa

    query = "select prompt_hash, response_1_hash, response_2_hash from pandalm_verdicts"
    return {tuple(row) for row in connection.execute(sa.text(query))}  # type: ignore[misc]
