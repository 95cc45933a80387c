"""benchmarks/many_workers.py in small: six worker processes on one PostgreSQL study, each
with a judge that takes 0.2 s a batch, finish with nothing lost and ``check`` clean."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, _postgres_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import many_workers

pytestmark = pytest.mark.postgres
WORKERS = 6


@pytest.fixture(scope="module")
def six_workers() -> dict:
    if not POSTGRES_URL:
        next(_postgres_database())  # skips (or fails in CI) with the usual reason
    return many_workers.run(POSTGRES_URL, workers=WORKERS, trials=2, judge_latency=0.2)


def test_six_workers_finish_every_trial_and_lose_no_verdict(six_workers):
    assert six_workers["trials"] == 2 * WORKERS and six_workers["failed"] == 0
    assert six_workers["exit_codes"] == [0]
    assert six_workers["verdicts_lost"] == 0
    assert six_workers["check_problems"] == {}


def test_no_worker_holds_a_transaction_across_its_judge(six_workers):
    assert six_workers["transactions_held_across_judge"] == 0, six_workers


def test_each_worker_holds_at_most_two_connections_while_its_judge_runs(six_workers):
    assert six_workers["peak_connections_per_worker_while_judging"] is not None
    assert six_workers["peak_connections_per_worker_while_judging"] <= 2, six_workers


def test_each_worker_holds_at_most_two_connections_from_its_first_on(six_workers):
    # Six workers start at once on an empty database: one creates the schemas under the
    # lock while the others wait for it; each counts its own connections exactly.
    counted = six_workers["peak_connections_per_worker_counted"]
    assert counted <= 2, six_workers["peak_connections_counted_names"]
