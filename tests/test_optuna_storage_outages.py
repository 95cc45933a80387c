"""Specification: every Optuna call a worker makes through ``OutageTolerantStorage`` rides
out an outage, including those that Optuna's ``_CachedStorage`` (which ``create_study`` puts
around an RDB storage) sends to private methods of the backend.

Two outages: a SQLite file locked by another connection for a second, with a busy timeout of
50 ms (each storage call meets the transient "database is locked" at once); and the PostgreSQL
test server stopped, its sessions cut off, and restarted two seconds later."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import optuna
import pytest

from optuna_pandalm.study.optuna_storage import OutageTolerantStorage
from tests.test_store_outage import postgres_url  # noqa: F401 - fixture

OUTAGE_S = 1.0

# What a worker does with its study, one Optuna call each.
WORKER_CALLS: dict[str, Callable[[optuna.Study, optuna.Trial], Any]] = {
    "study.ask": lambda study, trial: study.ask(),
    "trial.suggest_float": lambda study, trial: trial.suggest_float("y", 0.0, 1.0),
    "trial.suggest_categorical": lambda study, trial: trial.suggest_categorical("c", ["a"]),
    "trial.report": lambda study, trial: trial.report(0.5, step=1),
    "trial.should_prune": lambda study, trial: trial.should_prune(),
    "trial.set_user_attr": lambda study, trial: trial.set_user_attr("k", 1),
    "study.trials": lambda study, trial: study.trials,
    "study.get_trials": lambda study, trial: study.get_trials(deepcopy=False),
    "study.best_trial": lambda study, trial: study.best_trial,
    "study.best_value": lambda study, trial: study.best_value,
    "study.tell": lambda study, trial: study.tell(trial, 1.0),
    "study.enqueue_trial": lambda study, trial: study.enqueue_trial({"x": 0.5}),
    "study.set_user_attr": lambda study, trial: study.set_user_attr("k", 1),
}


def _worker_study(storage: OutageTolerantStorage) -> tuple[optuna.Study, optuna.Trial]:
    """A study with a best trial, and a trial of it RUNNING."""
    study = optuna.create_study(storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    return study, study.ask()


def _locked_for(path: str, seconds: float) -> threading.Timer:
    """Lock the SQLite file against every reader and writer now; unlock after ``seconds``."""
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        blocker.rollback()
        blocker.close()

    timer = threading.Timer(seconds, release)
    timer.start()
    return timer


@pytest.mark.parametrize("call", list(WORKER_CALLS))
def test_each_optuna_call_of_a_worker_rides_out_an_outage(call, tmp_path):
    path = str(tmp_path / "hpo.db")
    storage = OutageTolerantStorage(
        f"sqlite:///{path}",
        outage_timeout=30,
        engine_kwargs={"connect_args": {"timeout": 0.05}},  # "locked" at once, not waited
    )
    study, trial = _worker_study(storage)
    storage.engine.dispose()  # no connection of the pool holds a read lock
    timer = _locked_for(path, OUTAGE_S)
    start = time.monotonic()
    WORKER_CALLS[call](study, trial)  # raised StorageInternalError before the fix
    assert time.monotonic() - start >= OUTAGE_S * 0.9  # it waited for the database
    timer.join()


@pytest.mark.postgres
@pytest.mark.parametrize("call", list(WORKER_CALLS))
def test_each_optuna_call_of_a_worker_rides_out_a_postgresql_restart(
    call,
    outage_server,
    postgres_url,  # noqa: F811
):
    study, trial = _worker_study(OutageTolerantStorage(postgres_url, outage_timeout=60))
    with outage_server.stopped(2.0):
        start = time.monotonic()
        WORKER_CALLS[call](study, trial)  # the server is down: the call waits for it
    assert time.monotonic() - start >= 1.5
