"""Specification of how the store treats database failures: outages are ridden out, anything
else (and an outage past its bound) is one StoreError naming the operation and the cause."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from optuna_pandalm import Prompt, Store, StoreError
from optuna_pandalm.store import GameRecord, StoredVerdict, VerdictKey
from tests.postgres_server import PostgresServer

PROMPTS = [Prompt("Add 2 and 3."), Prompt("Say hi.")]


def test_a_failure_that_waiting_cannot_cure_is_a_store_error_naming_the_operation(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    store = Store(url, outage_timeout=30)
    arena = store.bind_study("s", store.save_prompt_set(PROMPTS))
    with sqlite3.connect(tmp_path / "x.db") as connection:
        connection.execute("DROP TABLE pandalm_games")
    start = time.monotonic()
    with pytest.raises(StoreError) as error:
        store.game_counts(arena)
    assert time.monotonic() - start < 5  # not retried
    message = str(error.value)
    assert message.startswith(f"game_counts failed on {url!r}: OperationalError: no such table")
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_a_locked_sqlite_file_is_waited_for(tmp_path, caplog):
    path = tmp_path / "locked.db"
    store = Store(f"sqlite:///{path}")
    key = VerdictKey("p", "a", "b")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    threading.Timer(1.0, blocker.rollback).start()
    store.engine.dispose()
    # A short busy timeout makes SQLite report "database is locked" instead of waiting.
    sa.event.listen(
        store.engine,
        "connect",
        lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout = 50"),
    )
    with caplog.at_level(logging.INFO, logger="optuna_pandalm.store"):
        saved = store.save_verdicts("j", [(key, StoredVerdict(winner=1))])
    blocker.close()
    assert saved[key].winner == 1
    assert caplog.text.count("database connection lost in save_verdicts") == 1
    assert "database is locked" in caplog.text and "database is back" in caplog.text


@pytest.fixture
def postgres_url(outage_server: PostgresServer) -> Iterator[str]:
    """A fresh database on this process's own server, which the tests stop and restart."""
    with outage_server.database() as url:
        yield url


def _seed(store: Store) -> tuple[int, list[tuple[VerdictKey, StoredVerdict]]]:
    arena = store.bind_study("outage", store.save_prompt_set(PROMPTS))
    a = store.player(arena, trial=0, step=1, generations=["5", "hi"])
    b = store.player(arena, trial=1, step=1, generations=["6", "hey"])
    key = VerdictKey(PROMPTS[0].hash, "a", "b")
    verdict = store.save_verdicts("judge", [(key, StoredVerdict(winner=1))])[key]
    store.save_games(
        arena, store.start_match(arena, a, b, kind="t"), [GameRecord(0, a, b, verdict.id, 1)]
    )
    batch = [
        (VerdictKey(PROMPTS[1].hash, str(i), "x"), StoredVerdict(winner=i % 3)) for i in range(16)
    ]
    return arena, batch


@pytest.mark.postgres
def test_calls_during_a_database_restart_wait_and_lose_nothing(
    outage_server, postgres_url, caplog
):
    store = Store(postgres_url)
    arena, batch = _seed(store)
    with (
        caplog.at_level(logging.INFO, logger="optuna_pandalm.store"),
        outage_server.stopped(8.0),
        ThreadPoolExecutor(2) as pool,
    ):
        start = time.monotonic()
        saving = pool.submit(store.save_verdicts, "judge", batch)
        counting = pool.submit(store.game_counts, arena)
        saved, counts = saving.result(timeout=120), counting.result(timeout=120)
        waited = time.monotonic() - start
    assert waited > 5  # the calls were made while the server was down
    assert [saved[key].winner for key, _ in batch] == [i % 3 for i in range(16)]
    assert int(counts.count.sum()) == 1
    again = Store(postgres_url).find_verdicts("judge", [key for key, _ in batch])
    assert len(again) == 16  # every verdict of the batch is stored
    assert caplog.text.count("database connection lost in save_verdicts") == 1  # not per retry
    assert caplog.text.count("database connection lost in game_counts") == 1
    assert caplog.text.count("database is back") == 2
    assert postgres_url.split("@")[0] not in caplog.text  # no credentials in the log


@pytest.mark.postgres
def test_past_the_outage_timeout_one_store_error_names_the_operation_and_the_cause(
    outage_server, postgres_url
):
    store = Store(postgres_url, outage_timeout=2)
    arena, batch = _seed(store)
    with outage_server.stopped(None):
        start = time.monotonic()
        with pytest.raises(StoreError) as error:
            store.save_verdicts("judge", batch)
        elapsed = time.monotonic() - start
    assert 1.5 < elapsed < 6
    message = str(error.value)
    assert message.startswith(
        f"save_verdicts failed on {store.masked_url!r}: database unreachable"
    )
    assert "outage_timeout=2 s" in message and "OperationalError" in message
    assert "connection refused" in message.lower() or "shutting down" in message.lower()
    assert error.value.__cause__ is None
    assert store.game_counts(arena).count.sum() == 1  # usable again once the server is back
