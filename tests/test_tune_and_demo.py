"""`optuna-pandalm tune` config validation, and the CPU demo's pieces (a short demo run:
tests/test_demo_output.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from optuna_pandalm.commands.cli import main
from optuna_pandalm.demo.tasks import TASKS, exact_match_accuracy, make_data, make_example
from optuna_pandalm.training.tuning import ConfigError, TuneConfig

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optuna_pandalm.commands.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def config_file(tmp_path, tiny_llama_path):
    (tmp_path / "train.jsonl").write_text(
        "\n".join(json.dumps(r) for r in make_data(n_train=20, n_judge=1, n_heldout=1).train)
        + "\n"
    )
    (tmp_path / "prompts.jsonl").write_text(
        '{"instruction": "Copy the letters.", "input": "abc", "output": "abc"}\n'
    )
    config = {
        "base_model": tiny_llama_path,
        "train_data": "train.jsonl",
        "eval_prompts": "prompts.jsonl",
        "judge": "reference:char_ratio",
        "search_space": {"learning_rate": [1e-4, 1e-2], "epochs": 2, "method": ["full"]},
        "n_trials": 2,
        "storage": f"sqlite:///{tmp_path / 'tune.db'}",
        "output_dir": str(tmp_path / "runs"),
        "baseline": {"learning_rate": 2e-5},
        "max_new_tokens": 4,
    }

    def write(**changes) -> Path:
        data = {**config, **changes}
        data = {k: v for k, v in data.items() if v is not None}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


def test_a_valid_config_passes_a_dry_run(config_file, capsys):
    code = main(["tune", str(config_file()), "--dry-run"])  # in-process: no second import
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "valid; 2 trials" in out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_trail": 3}, "unknown key 'n_trail' \\(did you mean 'n_trials'\\?\\)"),
        ({"search_space": {"learnig_rate": [1e-5, 1e-4]}}, "did you mean 'learning_rate'"),
        (
            {"search_space": {"learning_rate": [1e-3, 1e-5]}},
            "learning_rate: \\[0.001, 1e-05\\] must satisfy",
        ),
        (
            {"search_space": {"optimizer": ["adam"]}},
            "unknown choice 'adam' \\(did you mean 'adamw'\\?\\)",
        ),
        ({"search_space": {"epochs": 0}}, "epochs: expected an integer in 1..100"),
        ({"base_model": "/no/such/model"}, "base_model: no file or folder at '/no/such/model'"),
        ({"train_data": "missing.jsonl"}, "train_data: file .*missing.jsonl' does not exist"),
        ({"judge": None}, "'judge' is required"),
        ({"n_trials": -1}, "n_trials: expected an integer >= 1"),
    ],
)
def test_config_errors_name_the_key_and_suggest_a_fix(config_file, capsys, changes, message):
    path = config_file(**changes)
    with pytest.raises(ConfigError, match=message):
        TuneConfig.from_file(path)
    code = main(["tune", str(path), "--dry-run"])  # an exception would fail the test
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_malformed_yaml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("base_model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        TuneConfig.from_file(path)


def test_tune_runs_the_baseline_first_and_resumes_an_interrupted_study(config_file, tmp_path):
    path = config_file()
    first = _cli("tune", str(path), "--n-trials", "1")
    assert first.returncode == 0, first.stderr
    second = _cli("tune", str(path))  # the file says 2 trials: one more runs
    assert second.returncode == 0, second.stderr
    import optuna

    study = optuna.load_study(
        study_name="optuna-pandalm", storage=f"sqlite:///{tmp_path / 'tune.db'}"
    )
    assert len(study.trials) == 2
    assert (
        study.trials[0].params["learning_rate"] == 2e-5 and study.trials[0].user_attrs["baseline"]
    )
    assert (tmp_path / "runs" / "report.html").is_file()
    # Published after each trial (PublishCallback): the leaderboard and check's snapshot.
    assert study.user_attrs["pandalm_leaderboard"] and study.user_attrs["pandalm_fit"]


def test_demo_tasks_are_verifiable_and_splits_disjoint():
    data = make_data(seed=1, n_train=200, n_judge=20, n_heldout=30)

    def keys(prompts):
        return {(p.instruction, p.input) for p in prompts}

    train = {(r["instruction"], r["input"]) for r in data.train}
    assert not (train & keys(data.judge_prompts)) and not (train & keys(data.heldout))
    assert not keys(data.judge_prompts) & keys(data.heldout)
    instructions = {make_example(task, random.Random(0))["instruction"] for task in TASKS}
    assert {p.instruction for p in data.heldout} == instructions  # every task is held out
    assert exact_match_accuracy([p.reference for p in data.heldout], data.heldout) == 1.0
    addition = make_example("add", random.Random(3))
    left, right = addition["input"].split("+")
    assert addition["output"] == str(int(left) + int(right))
