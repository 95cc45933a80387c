"""Figures, the HTML report (escaped, rendered in headless Chromium) and the leaderboard CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from optuna_pandalm import Arena, Verdict
from optuna_pandalm import visualization as v
from optuna_pandalm.judges import PairwiseJudge
from optuna_pandalm.report import render_report, write_report
from optuna_pandalm.testing import response_quality, simulated_prompts, simulated_response

PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ROOT = Path(__file__).resolve().parents[1]


class _ChattyJudge(PairwiseJudge):
    """Prefers the higher simulated quality and writes markup into its reasons."""

    name = "chatty"

    def judge(self, requests):
        verdicts = []
        for r in requests:
            q1, q2 = response_quality(r.response_1), response_quality(r.response_2)
            winner = 0 if abs(q1 - q2) < 0.3 else (1 if q1 > q2 else 2)
            verdicts.append(Verdict(winner=winner, reason=f"reason {PAYLOAD}", reference=PAYLOAD))
        return verdicts


@pytest.fixture(scope="module")
def study_and_arena(tmp_path_factory):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'r.db'}"
    prompts = simulated_prompts(12)
    arena = Arena(
        url,
        "report",
        _ChattyJudge(),
        prompts,
        racing=False,
        baseline=("alpaca-default", [simulated_response(0.0, text=PAYLOAD)] * 12),
    )
    study = optuna.create_study(study_name="report", storage=url, direction="maximize")

    def objective(trial):
        lr = trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)
        for step in (1, 2):
            quality = trial.number * 0.7 + step * 0.2
            texts = [simulated_response(quality + 0.1 * i, text=PAYLOAD) for i in range(12)]
            arena.evaluate(trial, step, texts)
        return arena.finalize(trial) + 0 * lr

    study.optimize(objective, n_trials=3)
    return url, study, arena


@pytest.mark.parametrize(
    "plot",
    [
        lambda a, s: v.plot_leaderboard(a),
        lambda a, s: v.plot_win_matrix(a),
        lambda a, s: v.plot_comparison_graph(a),
        lambda a, s: v.plot_learning_curves(a, s),
        lambda a, s: v.plot_score_slices(a, s),
    ],
    ids=["leaderboard", "win_matrix", "comparison_graph", "learning_curves", "slices"],
)
def test_each_figure_has_data(study_and_arena, plot):
    _, study, arena = study_and_arena
    figure = plot(arena, study)
    assert figure.data and any(
        len(trace.x if trace.x is not None else []) for trace in figure.data
    )


def test_leaderboard_figure_puts_the_leader_on_top_and_marks_the_baseline(study_and_arena):
    _, _, arena = study_and_arena
    figure = v.plot_leaderboard(arena)
    rows = arena.leaderboard()
    assert list(figure.data[0].x) == [r.score for r in rows[:20]]
    colours = dict(zip(figure.data[0].y, figure.data[0].marker.color, strict=True))
    assert colours["baseline alpaca-default"] != colours[rows[0].label]


def test_comparison_graph_draws_significant_wins_only(study_and_arena):
    _, _, arena = study_and_arena
    arrows = v.plot_comparison_graph(arena).layout.annotations
    assert arrows  # trial 2 beats the baseline 12-0 in every game: significant


def test_report_escapes_generated_text_everywhere(study_and_arena):
    _, study, arena = study_and_arena
    page = render_report(arena, study)
    assert PAYLOAD not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert page.count("<h3>") == 3  # the top trials with prompts, responses and reasons


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(study_and_arena, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must render the report: chromium is not installed")
        pytest.skip("chromium not installed")
    _, study, arena = study_and_arena
    page = write_report(arena, study, tmp_path / "report.html")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=8000",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    for figure in (
        "leaderboard-figure",
        "win-matrix-figure",
        "comparison-graph-figure",
        "learning-curves-figure",
    ):
        assert f'id="{figure}"' in dom
    assert dom.count('class="main-svg"') >= 5  # plotly drew the figures
    assert "<script>alert" not in dom.split("</script>")[-1]
    shot = (
        ROOT / "docs" / "report-screenshot.png"
        if os.environ.get("SAVE_SCREENSHOT")
        else tmp_path / "shot.png"
    )
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1280,2200", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optuna_pandalm.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_leaderboard_command_prints_an_aligned_table_and_json(study_and_arena):
    url, _, arena = study_and_arena
    table = _cli("leaderboard", "--storage", url, "--study-name", "report", "--top", "3")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["#", "player", "score"] and len(lines) == 5
    document = json.loads(
        _cli("leaderboard", "--storage", url, "--study-name", "report", "--json").stdout
    )
    assert [r["score"] for r in document["rows"]] == pytest.approx(
        [r.score for r in arena.leaderboard()]
    )


def test_report_command_writes_the_file(study_and_arena, tmp_path):
    url, _, _ = study_and_arena
    out = tmp_path / "r.html"
    done = _cli("report", "--storage", url, "--study-name", "report", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.is_file() and "leaderboard-figure" in out.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--storage", "nosuchdb://x", "--study-name", "s"], "unsupported storage URL"),
        (["--storage", "sqlite://", "--study-name", "nope"], "no optuna-pandalm tables in"),
    ],
)
def test_leaderboard_errors_exit_2(args, message):
    done = _cli("leaderboard", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
