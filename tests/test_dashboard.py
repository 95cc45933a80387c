"""The leaderboard and notes reach Optuna Dashboard (through its own WSGI app), escaped."""

from __future__ import annotations

import json
import wsgiref.util

import optuna
import pytest

from optuna_pandalm import Arena, Verdict
from optuna_pandalm.judges import PairwiseJudge
from optuna_pandalm.publish.dashboard import LEADERBOARD_ATTR, LEADERBOARD_GRAPH_ID
from optuna_pandalm.testing import simulated_prompts, simulated_response

pytest.importorskip("optuna_dashboard")

PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class _HostileJudge(PairwiseJudge):
    """Prefers the first response and writes markup into its reasons."""

    name = "hostile"

    def judge(self, requests):
        return [Verdict(winner=1, reason=f"because {PAYLOAD}") for _ in requests]


def _get(app, path: str) -> dict:
    environ: dict = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(PATH_INFO=path, REQUEST_METHOD="GET")
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    assert status[0].startswith("200"), status
    return json.loads(body)


def test_dashboard_api_returns_the_leaderboard_figure_and_escaped_notes(tmp_path):
    from optuna_dashboard import wsgi

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    prompts = simulated_prompts(12)
    arena = Arena(url, "dash", _HostileJudge(), prompts, racing=False)
    study = optuna.create_study(study_name="dash", storage=url, direction="maximize")

    def objective(trial):
        for step in (1, 2):
            arena.evaluate(
                trial, step, [simulated_response(step + trial.number, text=PAYLOAD)] * 12
            )
        return arena.finalize(trial)

    study.optimize(objective, n_trials=2)
    assert len(study.user_attrs[LEADERBOARD_ATTR]) == 4

    app = wsgi(optuna.storages.RDBStorage(url))
    detail = _get(app, f"/api/studies/{study._study_id}")
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert graphs[LEADERBOARD_GRAPH_ID]["data"][0]["type"] == "scatter"
    notes = [t["note"]["body"] for t in detail["trials"] if t["note"]["body"]]
    assert len(notes) == 2
    assert "W-T-L" in notes[1] and "Judge:" in notes[1]
    assert "&lt;script&gt;" in notes[1]
    assert "<script>" not in notes[1] and "<img" not in notes[1]
