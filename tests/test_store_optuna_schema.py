"""Specification: workers started at the same instant on an empty database all start, because
the store creates Optuna's schema under the lock that guards its own tables."""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any

import optuna

from optuna_pandalm import Store

N_WORKERS = 4


def start_worker(url: str, barrier: Any, queue: Any, prepare_optuna: bool = True) -> None:
    """What a worker does first: open the store (and Optuna's schema), then the study."""
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        barrier.wait()  # every worker meets the empty database at the same moment
        if prepare_optuna:
            Store(url, prepare_optuna=True).close()
        study = optuna.create_study(
            storage=url, study_name="s", load_if_exists=True, direction="maximize"
        )
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        queue.put("ok")
    except BaseException:
        queue.put(traceback.format_exc())
        raise


def run_workers(url: str, *, prepare_optuna: bool = True) -> list[str]:
    """Start the workers at once; return what each reported ("ok" or its traceback)."""
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(N_WORKERS), context.Queue()
    workers = [
        context.Process(target=start_worker, args=(url, barrier, queue, prepare_optuna))
        for _ in range(N_WORKERS)
    ]
    for worker in workers:
        worker.start()
    reports = [queue.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(60)
    return reports


def test_workers_started_at_once_on_an_empty_database_all_start(shared_storage_url):
    reports = run_workers(shared_storage_url)
    failures = [r for r in reports if r != "ok"]
    assert not failures, failures[0]
    study = optuna.load_study(study_name="s", storage=shared_storage_url)
    assert len(study.trials) == 2 * N_WORKERS
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_preparing_optuna_schema_twice_is_harmless(tmp_path):
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    store = Store(url, prepare_optuna=True)
    store.prepare_optuna_schema()
    assert optuna.get_all_study_summaries(storage=url) == []
