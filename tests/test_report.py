"""Figures, the HTML report (escaped, rendered in headless Chromium) and the leaderboard CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from optuna_pandalm import Arena, Verdict
from optuna_pandalm.judges import PairwiseJudge
from optuna_pandalm.publish import visualization as v
from optuna_pandalm.publish.report import render_report, write_report
from optuna_pandalm.testing import response_quality, simulated_prompts, simulated_response
from tests.browser import chromium

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


class _TieJudge(PairwiseJudge):
    name = "always-tie"

    def judge(self, requests):
        return [Verdict(winner=0, reason="cannot tell") for _ in requests]


def _baseline_trial_study(url: str, judge: PairwiseJudge, n_trials: int = 4):
    """As the demo and ``tune`` make it: trial 0 is the enqueued baseline, no fixed
    baseline player, a log-sampled learning rate among other hyperparameters."""
    from optuna_pandalm.study.judged_study import open_judged_study

    prompts = simulated_prompts(12)
    arena = Arena(url, "demo-like", judge, prompts, racing=False, seed=0)
    study = open_judged_study(
        arena,
        url,
        base_sampler=optuna.samplers.RandomSampler(seed=0),
        baseline_params={"learning_rate": 2e-5, "optimizer": "adamw", "warmup_ratio": 0.03},
    )

    def objective(trial):
        trial.suggest_float("learning_rate", 1e-5, 3e-2, log=True)
        trial.suggest_categorical("optimizer", ["adamw", "sgd"])
        trial.suggest_float("warmup_ratio", 0.0, 0.1)
        for step in (94, 188):
            quality = trial.number * 0.8 + step / 400
            arena.evaluate(trial, step, [simulated_response(quality + 0.1 * i) for i in range(12)])
        return arena.finalize(trial)

    study.optimize(objective, n_trials=n_trials)
    return study, arena


@pytest.fixture(scope="module")
def demo_like(tmp_path_factory):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path_factory.mktemp('demo-like') / 'r.db'}"
    return _baseline_trial_study(url, _ChattyJudge())


def test_report_says_what_the_anchor_is(demo_like):
    study, arena = demo_like
    page = render_report(arena, study)
    assert "trial 0 step 94, the first judged checkpoint of the baseline trial 0" in page
    assert "log-odds of beating it in a game that is not a tie" in page
    assert "[+0.00, +0.00]" not in page and ">anchor</td>" in page  # its row says so


def test_leaderboard_figure_colours_baseline_trials_red(demo_like):
    study, arena = demo_like
    figure = v.plot_leaderboard(arena, study=study)
    colours = dict(zip(figure.data[0].y, figure.data[0].marker.color, strict=True))
    assert colours["trial 0 step 94"] == colours["trial 0 step 188"] == v.BASELINE_COLOUR
    assert colours["trial 3 step 188"] == v.PLAYER_COLOUR


def test_comparison_graph_says_when_no_win_is_significant(tmp_path):
    _, arena = _baseline_trial_study(f"sqlite:///{tmp_path / 't.db'}", _TieJudge(), 2)
    texts = [a.text for a in v.plot_comparison_graph(arena).layout.annotations]
    assert texts == ["No significant wins yet at alpha=0.05: no pair's games are clear enough."]


def test_report_shows_hyperparameters_as_columns_with_short_numbers(demo_like):
    study, arena = demo_like
    page = render_report(arena, study).replace("<wbr>", "")  # where a long name may break
    assert "{'" not in page  # no Python dict
    for name in ("learning_rate", "optimizer", "warmup_ratio"):
        assert f"<th class='num'>{name}</th>" in page
    assert "<td class='num'>2e-05</td>" in page
    assert not re.search(r"\.\d{9,}", page)  # no 16-digit floats


def test_a_log_sampled_learning_rate_gets_a_log_axis_with_a_tick_per_decade(demo_like):
    study, arena = demo_like
    figure = v.plot_score_slices(arena, study)
    titles = [a.text for a in figure.layout.annotations]
    axis = figure.layout[f"xaxis{titles.index('learning_rate') + 1 or ''}"]
    assert axis.type == "log" and axis.dtick == 1 and axis.tickformat == ".0e"
    ratio = figure.layout[f"xaxis{titles.index('warmup_ratio') + 1}"]
    assert ratio.type != "log" and ratio.nticks == 4


def test_examples_label_the_verdict_reason_and_reference(demo_like):
    study, arena = demo_like
    page = render_report(arena, study)
    examples = page.split("What the judge saw")[1]
    for label in ("instruction", "verdict", "reason", "reference"):
        assert f"<span class='label'>{label}:</span>" in examples
    assert re.search(r"verdict:</span> (trial \d+ step \d+ won|tie)", examples)


_ALIGNMENT = """
const problems = [];
for (const table of document.querySelectorAll('table')) {
  const head = table.tHead && table.tHead.rows[0];
  const row = table.tBodies.length && table.tBodies[0].rows[0];
  if (!head || !row) continue;
  [...head.cells].forEach((th, i) => {
    const td = row.cells[i];
    const box = (cell) => { const r = document.createRange(); r.selectNodeContents(cell);
                            return r.getBoundingClientRect(); };
    const a = box(th), b = box(td), style = getComputedStyle(td).textAlign;
    const gap = style === 'right' ? Math.abs(a.right - b.right) : Math.abs(a.left - b.left);
    if (gap > 1.5) problems.push(`${th.textContent}: ${style} cell, header off by ${gap}px`);
  });
}
return problems;
"""


def test_report_page_in_chromium_shows_anchor_edges_and_aligned_headers(demo_like, tmp_path):
    """Headless Chromium (selenium): what a reader sees. SAVE_SCREENSHOT=1 writes
    docs/report-screenshot.png."""
    from selenium.webdriver.common.by import By

    study, arena = demo_like
    page = write_report(arena, study, tmp_path / "report.html")
    driver = chromium(tmp_path / "profile", height=2400)
    try:
        driver.get(page.as_uri())
        # every figure is drawn, as static SVG (no script on the page)
        assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == 5
        assert driver.find_elements(By.TAG_NAME, "script") == []
        text = driver.find_element(By.TAG_NAME, "body").text
        assert re.search(r"anchor\s+trial 0 step 94, the first judged checkpoint of the b", text)
        graph = driver.find_element(By.ID, "comparison-graph-figure")
        arrows = graph.find_elements(By.CSS_SELECTOR, "line.win")
        assert len(arrows) >= 3, "the significant-wins graph draws its edges"
        assert driver.execute_script(_ALIGNMENT) == []
        baseline = driver.find_element(By.CSS_SELECTOR, "#leaderboard tr.baseline td")
        assert baseline.value_of_css_property("color") == "rgba(214, 39, 40, 1)"  # red
        shot = (
            ROOT / "docs" / "report-screenshot.png"
            if os.environ.get("SAVE_SCREENSHOT")
            else tmp_path / "shot.png"
        )
        driver.set_window_size(1280, driver.execute_script("return document.body.scrollHeight"))
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()


def _six_hyperparameter_study(url: str, n_trials: int = 12):
    """A 12-trial study as ``tune`` makes it, searching six hyperparameters (two of them
    categorical, two log-sampled), with a baseline trial."""
    from optuna_pandalm.study.judged_study import open_judged_study

    arena = Arena(url, "six", _ChattyJudge(), simulated_prompts(12), racing=False, seed=0)
    baseline = {"learning_rate": 2e-5, "optimizer": "adamw", "warmup_ratio": 0.03}
    baseline |= {"lora_rank": 8, "weight_decay": 0.0, "batch_size": 8}
    study = open_judged_study(
        arena,
        url,
        base_sampler=optuna.samplers.RandomSampler(seed=0),
        baseline_params=baseline,
    )

    def objective(trial):
        trial.suggest_float("learning_rate", 1e-5, 3e-2, log=True)
        trial.suggest_categorical("optimizer", ["adamw", "sgd"])
        trial.suggest_float("warmup_ratio", 0.0, 0.1)
        trial.suggest_int("lora_rank", 4, 64, log=True)
        trial.suggest_float("weight_decay", 0.0, 0.1)
        trial.suggest_categorical("batch_size", [4, 8, 16])
        for step in (94, 188):
            quality = trial.number * 0.3 + step / 400
            arena.evaluate(trial, step, [simulated_response(quality + 0.1 * i) for i in range(12)])
        return arena.finalize(trial)

    study.optimize(objective, n_trials=n_trials)
    return study, arena


@pytest.fixture(scope="module")
def six_hyperparameters(tmp_path_factory):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path_factory.mktemp('six') / 'r.db'}"
    study, arena = _six_hyperparameter_study(url)
    return url, study, arena


def _breakdown(page: str) -> dict[str, int]:
    """Bytes of the report by part: scripts, figures (SVG), tables, the rest."""
    parts = {
        "scripts": re.findall(r"<script.*?</script>", page, flags=re.S),
        "figures": re.findall(r"<svg.*?</svg>", page, flags=re.S),
        "tables": re.findall(r"<table.*?</table>", page, flags=re.S),
    }
    sizes = {name: sum(len(p.encode()) for p in found) for name, found in parts.items()}
    sizes["everything"] = len(page.encode())
    return sizes


def test_a_12_trial_report_is_small_and_runs_no_script(six_hyperparameters):
    """plotly.js inlined made this report 4.9 MB (4.8 MB of it the library)."""
    _, study, arena = six_hyperparameters
    sizes = _breakdown(render_report(arena, study))
    assert sizes["scripts"] == 0 and sizes["everything"] < 150_000, sizes


_LAYOUT = """
const problems = [];
const root = document.documentElement;
if (root.scrollWidth > window.innerWidth)
  problems.push(`page ${root.scrollWidth}px wide in a ${window.innerWidth}px window`);
const lines = (cell) => { const r = document.createRange(); r.selectNodeContents(cell);
  return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size; };
const column = [...document.querySelectorAll('#leaderboard th')]
  .findIndex((th) => th.textContent === 'W-T-L');
for (const row of document.querySelectorAll('#leaderboard tbody tr')) {
  const cell = row.cells[column];
  if (lines(cell) !== 1) problems.push(`W-T-L ${cell.textContent} on ${lines(cell)} lines`);
}
for (const box of document.querySelectorAll('.wide'))
  if (box.scrollWidth > box.clientWidth)
    problems.push(`${box.firstChild.id || box.firstChild.className} scrolls in its box`);
for (const cell of document.querySelectorAll('table.summary td')) {
  const edge = cell.getBoundingClientRect().right;
  for (const inner of cell.querySelectorAll('*'))
    if (inner.getBoundingClientRect().right > edge + 1)
      problems.push(`${inner.textContent.slice(0, 40)} sticks out of its summary cell`);
}
return problems;
"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_report_fits_the_window_without_sideways_scrolling(six_hyperparameters, tmp_path, width):
    """Headless Chromium at 1280 and 1920 px, six hyperparameters: no horizontal scroll (of
    the page, nor of the leaderboard in its box), the best trial's hyperparameters inside
    their summary cell, every W-T-L record on one line. SAVE_SCREENSHOT=1 writes
    docs/report-1280.png and docs/report-1920.png (the leaderboard table;
    docs/report-screenshot.png has the whole page)."""
    _, study, arena = six_hyperparameters
    page = write_report(arena, study, tmp_path / "report.html")
    driver = chromium(tmp_path / "profile", width=width, height=1000)
    try:
        driver.get(page.as_uri())
        assert driver.execute_script(_LAYOUT) == []
        driver.execute_script("document.getElementById('leaderboard').scrollIntoView()")
        shot = (
            ROOT / "docs" / f"report-{width}.png"
            if os.environ.get("SAVE_SCREENSHOT")
            else tmp_path / "shot.png"
        )
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()


def test_a_report_from_the_command_names_the_judge_behind_the_verdicts(
    six_hyperparameters, tmp_path
):
    url, _, _ = six_hyperparameters
    out = tmp_path / "r.html"
    done = _cli("report", "--storage", url, "--study-name", "six", "--out", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert "<th class='text'>judge</th><td class='text'>chatty</td>" in page
    assert "read-only" not in page


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optuna_pandalm.commands.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_leaderboard_command_prints_an_aligned_table_and_json(study_and_arena):
    url, _, arena = study_and_arena
    table = _cli("leaderboard", "--storage", url, "--study-name", "report", "--top", "3")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["#", "player", "score"] and len(lines) == 6
    assert lines[-1].startswith("scores: +1 = winning 73% of the decisive games")
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
    assert out.is_file() and "id='leaderboard-figure'" in out.read_text()


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
