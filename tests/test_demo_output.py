"""What the demo tells its user: one line per finished trial, where the study is and the
exact commands to look at it, this run's counts apart from the study's, no third-party
noise, and a model cache holding only finished models."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
N_TRIALS = 3


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optuna_pandalm.commands.cli", *args],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, Any]:
    """The demo run twice on one folder: a first run, then a rerun with nothing left to do."""
    folder = tmp_path_factory.mktemp("demo")
    env = {"OPTUNA_PANDALM_CACHE": str(folder / "cache")}
    args = ("demo", "--out", str(folder / "out"), "--n-trials", str(N_TRIALS), "--json")
    first = _cli(*args, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    again = _cli(*args, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    return {
        "folder": folder,
        "env": env,
        "first": first,
        "summary": json.loads(first.stdout),
        "rerun": json.loads(again.stdout),
    }


def test_a_short_demo_run_reports_the_contract_fields(demo):
    summary = demo["summary"]
    assert summary["n_trials"] == N_TRIALS and summary["baseline_trial"] == 0
    for key in ("n_pruned", "judge_calls", "best_trial", "heldout_accuracy"):
        assert key in summary
    assert set(summary["heldout_accuracy"]) == {"best", "baseline"}
    assert Path(summary["report"]).is_file()
    assert "leaderboard-figure" in Path(summary["report"]).read_text()


def test_each_finished_trial_gets_one_line_saying_how_it_ended(demo):
    lines = demo["first"].stderr.splitlines()
    for number in range(N_TRIALS):
        ended = [
            line
            for line in lines
            if line.startswith(f"trial {number} complete: value ")
            or line.startswith(f"trial {number} pruned at step ")
        ]
        assert len(ended) == 1, demo["first"].stderr[-3000:]


def test_no_third_party_warnings_reach_the_user(demo):
    stderr = demo["first"].stderr
    assert "Warning" not in stderr and "warn(" not in stderr, stderr[-3000:]


def test_the_summary_says_where_the_study_is_and_its_commands_work(demo, tmp_path):
    summary = demo["summary"]
    database = demo["folder"] / "out" / "demo.db"
    assert summary["storage"] == f"sqlite:///{database}"
    assert summary["study_name"] == "optuna-pandalm-demo"
    assert summary["dashboard_command"] == f"optuna-dashboard sqlite:///{database}"
    command = shlex.split(summary["report_command"])
    assert command[:2] == ["optuna-pandalm", "report"]
    command[command.index("--out") + 1] = str(tmp_path / "again.html")
    done = _cli(*command[1:], env=demo["env"])
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "again.html").is_file()


def test_a_rerun_counts_this_runs_work_apart_from_the_studys_totals(demo):
    first, rerun = demo["summary"], demo["rerun"]
    assert first["n_trials"] == N_TRIALS and first["judge_calls"] > 0
    assert rerun["n_trials"] == 0 and rerun["n_pruned"] == 0 and rerun["judge_calls"] == 0
    assert rerun["study"]["n_trials"] == N_TRIALS == first["study"]["n_trials"]
    assert rerun["study"]["games"] == first["study"]["games"] > 0


def test_the_model_cache_holds_only_the_finished_base_model(demo):
    cache = demo["folder"] / "cache" / "optuna-pandalm"
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 1 and entries[0].startswith("demo-base-v1-"), entries
    assert (cache / entries[0] / "config.json").is_file()


def test_what_a_score_means_is_said_once_at_the_start_not_on_each_trial_line(demo):
    lines = demo["first"].stderr.splitlines()
    legend = [i for i, line in enumerate(lines) if line.startswith("scores: log-odds")]
    first_trial = next(i for i, line in enumerate(lines) if line.startswith("trial 0 "))
    assert len(legend) == 1 and legend[0] < first_trial, demo["first"].stderr[-3000:]
    assert "baseline trial's first" in lines[legend[0]]  # the anchor, named once
    trial_lines = [line for line in lines if line.startswith("trial ")]
    assert not any("freezes" in line or "pandalm_score" in line for line in trial_lines)
