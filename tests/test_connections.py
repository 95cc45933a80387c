"""A worker's connections to PostgreSQL: at most two (ours and Optuna's) at any moment, from
its first connection on (creating both schemas included), none held in a transaction while
its judge runs, whatever the judge's latency."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, _postgres_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import many_workers

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def one_slow_worker() -> dict:
    """One worker process whose judge takes 1 s per batch, watched in pg_stat_activity."""
    if not POSTGRES_URL:
        next(_postgres_database())  # skips (or fails in CI) with the usual reason
    return many_workers.run(POSTGRES_URL, workers=1, trials=2, judge_latency=1.0, prompts=6)


def test_a_worker_holds_at_most_two_connections_while_its_judge_runs(one_slow_worker):
    assert one_slow_worker["peak_connections_per_worker_while_judging"] is not None
    assert one_slow_worker["peak_connections_per_worker_while_judging"] <= 2, one_slow_worker


def test_a_worker_never_holds_more_than_two_connections_start_up_included(one_slow_worker):
    # Counted in the worker from its first connection on (SQLAlchemy's pool events): it
    # creates both schemas on an empty database, under the lock, and its heartbeat thread
    # writes while the main thread reads.
    counted = one_slow_worker["peak_connections_per_worker_counted"]
    assert counted <= 2, one_slow_worker["peak_connections_counted_names"]


def test_pg_stat_activity_never_shows_a_worker_with_more_than_two_connections(one_slow_worker):
    # Sampled every 0.2 s from before the worker started: a coarse view of the count above.
    assert 1 <= one_slow_worker["peak_connections_per_worker_sampled"] <= 2, one_slow_worker


def test_no_transaction_stays_open_across_a_judge_call(one_slow_worker):
    assert one_slow_worker["transactions_held_across_judge"] == 0, one_slow_worker


def test_our_connections_and_optunas_are_told_apart_by_application_name(one_slow_worker):
    names = one_slow_worker["peak_connections_by_application"]
    assert {"optuna-pandalm", "optuna-pandalm:optuna"} <= set(names), names


def test_the_slow_worker_loses_no_verdict_and_leaves_a_clean_study(one_slow_worker):
    assert one_slow_worker["verdicts_lost"] == 0
    assert one_slow_worker["check_problems"] == {}
    assert one_slow_worker["exit_codes"] == [0]
