"""Optuna's gRPC storage proxy: several workers send their Optuna storage calls through one
proxy (``run_grpc_proxy_server`` around ``OutageTolerantStorage``) while their arenas use the
database; ``check``, ``report`` and Optuna Dashboard then read the study. Workers whose
client is ``OutageTolerantGrpcStorageProxy`` ride out the proxy's restart."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage

from optuna_pandalm.commands.cli import main
from tests.conftest import POSTGRES_URL, _postgres_database
from tests.test_dashboard import _get

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import many_workers

pytest.importorskip("grpc", reason="grpcio is not installed (the test extra brings it)")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]


def _read_the_study(url: str, port: int) -> dict:
    """What ``check``, ``report`` and the dashboard (through the proxy and directly) see."""
    from optuna_dashboard import wsgi

    study = optuna.load_study(study_name=many_workers.STUDY, storage=url)
    seen: dict = {"check": main(["check", "--storage", url, "--study-name", study.study_name])}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder, "report.html")
        argv = ["report", "--storage", url, "--study-name", study.study_name, "--out", str(out)]
        seen["report"] = main(argv)
        seen["report_bytes"] = out.stat().st_size if out.exists() else 0
    proxy = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
    for name, storage in (("dashboard_via_proxy", proxy), ("dashboard", RDBStorage(url))):
        detail = _get(wsgi(storage), f"/api/studies/{study._study_id}")
        seen[name] = {
            "trials": len(detail["trials"]),
            "graphs": len(detail["plotly_graph_objects"]),
        }
    proxy.close()
    seen["trials"] = len(study.trials)
    return seen


@pytest.fixture(scope="module")
def through_the_proxy() -> dict:
    """Three workers, two trials each, their Optuna storage a GrpcStorageProxy."""
    if not POSTGRES_URL:
        next(_postgres_database())  # skips (or fails in CI) with the usual reason
    return many_workers.run(
        POSTGRES_URL, workers=3, trials=2, judge_latency=0.2, grpc=True, after=_read_the_study
    )


def test_workers_behind_one_proxy_complete_the_study_and_lose_no_verdict(through_the_proxy):
    assert through_the_proxy["trials"] == 6 and through_the_proxy["failed"] == 0
    assert through_the_proxy["verdicts_lost"] == 0
    assert through_the_proxy["check_problems"] == {}


def test_check_and_report_read_a_study_run_through_the_proxy(through_the_proxy):
    seen = through_the_proxy["after"]
    assert seen["check"] == 0
    assert seen["report"] == 0 and seen["report_bytes"] > 0


def test_the_dashboard_shows_the_leaderboard_through_the_proxy_and_directly(through_the_proxy):
    seen = through_the_proxy["after"]
    assert seen["dashboard_via_proxy"] == seen["dashboard"], json.dumps(seen)
    assert seen["dashboard"]["trials"] == 6
    assert seen["dashboard"]["graphs"] >= 1  # PublishCallback's leaderboard figure


@pytest.fixture(scope="module")
def proxy_restarted() -> dict:
    """Two workers, three trials each; the proxy is killed (SIGKILL) once a trial has
    finished and started again on the same port 3 s later."""
    if not POSTGRES_URL:
        next(_postgres_database())
    return many_workers.run(
        POSTGRES_URL, workers=2, trials=3, judge_latency=0.5, grpc=True, proxy_outage_s=3.0
    )


def test_workers_ride_out_a_restart_of_the_proxy_and_finish_the_study(proxy_restarted):
    assert len(proxy_restarted["proxy_down_s"]) == 1, proxy_restarted  # killed, then back
    assert proxy_restarted["exit_codes"] == [0]
    assert proxy_restarted["trials"] == 6 and proxy_restarted["failed"] == 0, proxy_restarted


def test_nothing_judged_is_lost_across_a_restart_of_the_proxy(proxy_restarted):
    assert proxy_restarted["verdicts_lost"] == 0
    assert proxy_restarted["check_problems"] == {}


def test_a_proxy_that_stays_away_fails_the_call_with_one_line_naming_its_address():
    import socket

    from optuna_pandalm.study.grpc_proxy import OutageTolerantGrpcStorageProxy

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = OutageTolerantGrpcStorageProxy(host="127.0.0.1", port=port, outage_timeout=1)
    with pytest.raises(optuna.exceptions.StorageInternalError) as raised:
        storage.get_all_studies()
    message = str(raised.value)
    assert f"gRPC storage proxy at 127.0.0.1:{port} unreachable for 1." in message
    assert "\n" not in message
