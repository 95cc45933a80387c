"""``PublishCallback``: the leaderboard and notes reach Optuna Dashboard (through its own WSGI
app), escaped, after each finished trial."""

from __future__ import annotations

import html
import json
import wsgiref.util

import optuna
import pytest

from optuna_pandalm import Arena, JudgePruner, PublishCallback, Verdict
from optuna_pandalm.attributes import AGREEMENT_ATTR, PRUNED_ATTR, SNAPSHOT_ATTR
from optuna_pandalm.judges import PairwiseJudge
from optuna_pandalm.publish.dashboard import (
    LEADERBOARD_ATTR,
    LEADERBOARD_GRAPH_ID,
    leaderboard_line,
)
from optuna_pandalm.publish.trial_notes import NO_REASON
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

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

    study.optimize(objective, n_trials=2, callbacks=[PublishCallback(arena)])
    assert len(study.user_attrs[LEADERBOARD_ATTR].split(" | ")) == 4  # 4 players: 4 rows

    app = wsgi(optuna.storages.RDBStorage(url))
    detail = _get(app, f"/api/studies/{study._study_id}")
    graphs = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert graphs[LEADERBOARD_GRAPH_ID]["data"][0]["type"] == "scatter"
    notes = [t["note"]["body"] for t in detail["trials"] if t["note"]["body"]]
    assert len(notes) == 2
    assert "W-T-L" in notes[1] and "Judge:" in notes[1]
    assert "&lt;script&gt;" in notes[1]
    assert "<script>" not in notes[1] and "<img" not in notes[1]


QUALITY = [0.0, 2.0, -4.0, -4.0, 1.0]  # by trial number: 2 pruned by finalize, 3 by itself


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict:
    """A study run with the callback: complete trials, one pruned inside ``finalize``, one
    pruned by its objective without ``finalize``, and one failed (caught)."""
    from optuna_dashboard import wsgi

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path_factory.mktemp('published') / 'study.db'}"
    prompts = simulated_prompts(12)
    arena = Arena(url, "published", SimulatedJudge(seed=0, noise=0.1), prompts, seed=0)
    study = optuna.create_study(
        study_name="published", storage=url, direction="maximize", pruner=JudgePruner(arena)
    )

    def objective(trial: optuna.Trial) -> float:
        if trial.number == len(QUALITY):
            arena.evaluate(trial, 1, [simulated_response(0.5)] * len(prompts))
            raise RuntimeError("a failed trial, after a judged checkpoint")
        for step in (1, 2):
            quality = QUALITY[trial.number] + step / 4
            arena.evaluate(trial, step, [simulated_response(quality)] * len(prompts))
            if trial.number == 3:
                raise optuna.TrialPruned()
        return arena.finalize(trial)

    study.optimize(
        objective,
        n_trials=len(QUALITY) + 1,
        callbacks=[PublishCallback(arena)],
        catch=(RuntimeError,),
    )
    detail = _get(wsgi(optuna.storages.RDBStorage(url)), f"/api/studies/{study._study_id}")
    notes = {t["number"]: t["note"]["body"] for t in detail["trials"]}
    return {"study": study, "arena": arena, "detail": detail, "notes": notes}


def test_the_callback_publishes_the_current_leaderboard_snapshot_and_figure(published):
    study, arena = published["study"], published["arena"]
    standings = arena.standings()
    assert study.user_attrs[LEADERBOARD_ATTR] == leaderboard_line(standings.leaderboard(top=5))
    assert study.user_attrs[SNAPSHOT_ATTR] == standings.snapshot(top=5)  # what check compares
    assert study.user_attrs[AGREEMENT_ATTR]["votes"] == 0
    graphs = {g["id"] for g in published["detail"]["plotly_graph_objects"]}
    assert graphs == {LEADERBOARD_GRAPH_ID}


def test_a_complete_trial_gets_a_note_with_its_frozen_value(published):
    trial = published["study"].trials[1]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    note = published["notes"][1]
    assert note.startswith("### Trial 1: complete")
    assert f"**Value {trial.value:+.3f}**" in note and "user attribute `pandalm_score`" in note
    assert "`optuna-pandalm leaderboard`" in note  # where the current scores are


def test_a_pruned_trial_gets_a_note_with_the_reason_recorded_while_it_ran(published):
    trial = published["study"].trials[2]
    assert trial.state == optuna.trial.TrialState.PRUNED
    reason = trial.user_attrs[PRUNED_ATTR]
    assert reason.startswith("pruned at step 2: lost")
    note = published["notes"][2]
    assert note.startswith("### Trial 2: pruned")
    assert f"**Why:** {html.escape(reason)}." in note


def test_a_trial_pruned_without_finalize_gets_a_note_saying_no_reason_was_recorded(published):
    assert published["study"].trials[3].state == optuna.trial.TrialState.PRUNED
    assert f"**Why:** {html.escape(NO_REASON)}." in published["notes"][3]


def test_a_failed_trial_gets_no_note(published):
    assert published["study"].trials[-1].state == optuna.trial.TrialState.FAIL
    assert published["notes"][len(QUALITY)] == ""
    assert all(published["notes"][n] for n in range(len(QUALITY)))
