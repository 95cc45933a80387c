"""Specification: workers started at the same instant on an empty database all start, because
the store creates Optuna's schema under the lock that guards its own tables."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
import traceback
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
import sqlalchemy as sa

from optuna_pandalm import Store
from optuna_pandalm.store import create_optuna_schema
from optuna_pandalm.study.optuna_storage import OutageTolerantStorage

N_WORKERS = 4


def start_worker(
    url: str, barrier: Any, queue: Any, prepare_optuna: bool = True, tolerant: bool = False
) -> None:
    """What a worker does first: open the store (and Optuna's schema), then the study;
    ``tolerant``: make its ``OutageTolerantStorage`` first, as a worker script does."""
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        barrier.wait()  # every worker meets the empty database at the same moment
        storage: Any = OutageTolerantStorage(url) if tolerant else url
        if prepare_optuna:
            Store(url, prepare_optuna=True).close()
        study = optuna.create_study(
            storage=storage, study_name="s", load_if_exists=True, direction="maximize"
        )
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        queue.put("ok")
    except BaseException:
        queue.put(traceback.format_exc())
        raise


def run_workers(
    url: str, *, prepare_optuna: bool = True, tolerant: bool = False, n_workers: int = N_WORKERS
) -> list[str]:
    """Start the workers at once; return what each reported ("ok" or its traceback)."""
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(n_workers), context.Queue()
    workers = [
        context.Process(target=start_worker, args=(url, barrier, queue, prepare_optuna, tolerant))
        for _ in range(n_workers)
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


def _spin(stop: Any) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


@contextlib.contextmanager
def cpu_load() -> Iterator[None]:
    """Two busy processes per core (32 at most) for the duration: a loaded machine, where a
    race that a quiet one hides comes out."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    spinners = [
        context.Process(target=_spin, args=(stop,))
        for _ in range(min(2 * (os.cpu_count() or 1), 32))
    ]
    for spinner in spinners:
        spinner.start()
    try:
        yield
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join(30)


@pytest.mark.parametrize("round_", range(3))
def test_outage_tolerant_workers_started_at_once_under_load_all_start(round_, shared_storage_url):
    # Each round on a fresh database; a worker makes its OutageTolerantStorage (Optuna's
    # schema) before its Store: both creations must take the one lock.
    with cpu_load():
        reports = run_workers(shared_storage_url, tolerant=True, n_workers=6)
    failures = [r for r in reports if r != "ok"]
    assert not failures, failures[0]
    assert len(optuna.load_study(study_name="s", storage=shared_storage_url).trials) == 2 * 6


def test_preparing_optuna_schema_twice_is_harmless(tmp_path):
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    store = Store(url, prepare_optuna=True)
    store.prepare_optuna_schema()
    assert optuna.get_all_study_summaries(storage=url) == []


def _collides_once(url: str, error: Exception) -> tuple[list[int], Any]:
    attempts: list[int] = []

    def create() -> optuna.storages.RDBStorage:
        attempts.append(1)
        if len(attempts) == 1:  # another process created the table a moment before
            raise sa.exc.OperationalError("CREATE TABLE studies", {}, error)
        return optuna.storages.RDBStorage(url)

    return attempts, create


def test_a_collision_with_a_creator_outside_the_lock_is_retried(tmp_path):
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    attempts, create = _collides_once(
        url, sqlite3.OperationalError("table studies already exists")
    )
    create_optuna_schema(url, create)
    assert len(attempts) == 2
    assert optuna.get_all_study_summaries(storage=url) == []


def test_another_failure_while_creating_optuna_schema_is_not_retried(tmp_path):
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    attempts, create = _collides_once(url, sqlite3.OperationalError("disk I/O error"))
    with pytest.raises(sa.exc.OperationalError, match="disk I/O error"):
        create_optuna_schema(url, create)
    assert len(attempts) == 1


@pytest.fixture
def postgres_database() -> Iterator[str]:
    from tests.conftest import _postgres_database

    yield from _postgres_database()


@pytest.mark.postgres
def test_optunas_storage_refuses_a_schema_of_another_optuna_version(postgres_database):
    # OutageTolerantStorage opens RDBStorage without Optuna's own schema check (which holds
    # two connections at once) and checks the version itself, one connection at a time.
    url = postgres_database
    OutageTolerantStorage(url).engine.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'v3.0.0.a'"))
    engine.dispose()
    with pytest.raises(RuntimeError, match="optuna storage upgrade"):
        OutageTolerantStorage(url)
