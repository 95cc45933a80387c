"""Everything works through PgBouncer in transaction mode (``.ci/pgbouncer.sh``): our store,
Optuna's RDB storage, the schema lock, ``upgrade`` and ``check``, with several workers."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from optuna_pandalm import Arena
from optuna_pandalm.commands.cli import main
from optuna_pandalm.store import Store
from optuna_pandalm.study.optuna_storage import OutageTolerantStorage
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
from tests.conftest import POSTGRES_URL, _postgres_database
from tests.pgbouncer import PgBouncer, pgbouncer_installed
from tests.test_store_schema import V2_SCORES, _rows, _scores
from tests.test_store_schema import v2_postgresql_url as v2_postgresql_url  # a fixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import many_workers

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not pgbouncer_installed(),
        reason="pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)",
    ),
]


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    if not POSTGRES_URL:
        next(_postgres_database())  # skips (or fails in CI) with the usual reason
    assert POSTGRES_URL
    with PgBouncer.start(POSTGRES_URL) as running:
        yield running


@pytest.fixture
def database() -> Iterator[str]:
    yield from _postgres_database()


def _advisory_locks_held(url: str) -> int:
    """Advisory locks held in the database of ``url`` now (read directly, not through
    PgBouncer; other databases on a shared server are not counted)."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        query = (
            "select count(*) from pg_locks where locktype = 'advisory' and granted and "
            "database = (select oid from pg_database where datname = current_database())"
        )
        held = int(connection.execute(sa.text(query)).scalar_one())
    engine.dispose()
    return held


def test_several_workers_complete_a_study_through_pgbouncer(bouncer):
    figures = many_workers.run(
        POSTGRES_URL,
        workers=3,
        trials=2,
        judge_latency=0.2,
        worker_url=bouncer.url_for,
        after=lambda url, _: _advisory_locks_held(url),
    )
    assert figures["verdicts_lost"] == 0
    assert figures["check_problems"] == {}
    assert figures["trials"] == 6 and figures["failed"] == 0
    assert figures["after"] == 0  # the schema lock did not stay behind


def test_the_schema_lock_is_free_again_after_a_store_creates_its_tables(bouncer, database):
    Store(bouncer.url_for(database)).close()
    assert _advisory_locks_held(database) == 0


def test_workers_starting_at_once_share_a_pool_smaller_than_their_number(database):
    # Each starting worker creates the schemas under the schema lock, which its holder needs a
    # second server connection for (Optuna's engine). Waiters that blocked on the lock inside a
    # transaction held the pool's every connection, and the holder waited for PgBouncer's
    # query_wait_timeout (32 workers, pool 20, in benchmarks/many_workers.py --pgbouncer).
    # One starting worker needs 3 server connections at once (a read, the lock, a write).
    workers, pool, started = 8, 4, []
    barrier = threading.Barrier(workers)

    def start() -> None:
        barrier.wait()
        arena = Arena(url, "at-once", SimulatedJudge(), simulated_prompts(4))
        storage = OutageTolerantStorage(url)
        optuna.create_study(storage=storage, study_name="at-once", load_if_exists=True)
        arena.store.close()
        started.append(True)

    assert POSTGRES_URL
    with PgBouncer.start(POSTGRES_URL, pool_size=pool) as small:
        url = small.url_for(database)
        threads = [threading.Thread(target=start, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert len(started) == workers
    assert _advisory_locks_held(database) == 0


def test_pgbouncer_keeps_accepting_clients_after_many_logins():
    # PgBouncer logs each login and close (about 300 bytes) to stderr too. Read by no one,
    # the pipe filled after about 220 connections and PgBouncer blocked writing to it,
    # accepting no one: at 32 workers, whose heartbeats then connected often, one timed out
    # connecting for 128 s. 400 connections log twice the pipe's 64 KiB.
    import psycopg

    assert POSTGRES_URL
    with PgBouncer.start(POSTGRES_URL) as fresh:
        for _ in range(400):
            psycopg.connect(
                host="127.0.0.1",
                port=fresh.port,
                user="postgres",
                dbname="postgres",
                connect_timeout=5,
            ).close()


def test_optunas_storage_through_pgbouncer_runs_a_study(bouncer, database):
    storage = OutageTolerantStorage(bouncer.url_for(database))
    study = optuna.create_study(storage=storage, study_name="plain")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=12)
    assert len(study.trials) == 12


def test_check_and_leaderboard_read_a_study_through_pgbouncer(bouncer, database, capsys):
    url = bouncer.url_for(database)
    arena = Arena(url, "s", SimulatedJudge(), simulated_prompts(4))
    arena.store.close()
    assert main(["check", "--storage", url, "--study-name", "s"]) == 0
    assert main(["leaderboard", "--storage", url, "--study-name", "s"]) == 0


def test_upgrade_migrates_a_version_2_database_through_pgbouncer(
    bouncer, v2_postgresql_url, capsys
):
    before = _rows(v2_postgresql_url)
    assert main(["upgrade", "--storage", bouncer.url_for(v2_postgresql_url)]) == 0
    assert "schema 2 -> 4, every row kept" in capsys.readouterr().out
    assert _rows(v2_postgresql_url) == before
    assert _scores(bouncer.url_for(v2_postgresql_url)) == V2_SCORES
