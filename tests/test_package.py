"""The package as users meet it: light import, console script, README example."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pandalm_data import RECORDED_7B

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_import_does_not_load_torch_or_transformers():
    code = (
        "import optuna_pandalm, sys; "
        "optuna_pandalm.fit_bradley_terry; optuna_pandalm.Store; optuna_pandalm.load_prompts; "
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'plotly') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    assert _run(sys.executable, "-c", code).returncode == 0


def test_layers_point_one_way_presentation_and_judges_import_no_arena():
    code = (
        "import sys; import optuna_pandalm.publish.dashboard, "
        "optuna_pandalm.publish.visualization, optuna_pandalm.publish.report, "
        "optuna_pandalm.judges, optuna_pandalm.store, "
        "optuna_pandalm.statistics.bradley_terry; "
        "up = [m for m in sys.modules if m.startswith(('optuna_pandalm.arena', "
        "'optuna_pandalm.study.sampler', 'optuna_pandalm.study.pruner'))]; "
        "assert not up, up"
    )
    done = _run(sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr


def test_public_names_resolve_and_unknown_names_fail():
    import optuna_pandalm

    for name in optuna_pandalm.__all__:
        assert getattr(optuna_pandalm, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        optuna_pandalm.Nope  # noqa: B018


def test_console_script_validates_a_prompt_file(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"instruction": "Add 2 and 3.", "output": "5"}\n', encoding="utf-8")
    done = _run("optuna-pandalm", "prompts", str(path), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["n_prompts"] == 1 and summary["with_reference"] == 1


def test_console_script_reports_bad_input_on_stderr_with_exit_2(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": ""}\n', encoding="utf-8")
    done = _run("optuna-pandalm", "prompts", str(path))
    assert done.returncode == 2
    assert "bad.jsonl, line 1: field 'instruction' is empty" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_version_flag():
    done = _run("optuna-pandalm", "--version")
    assert done.returncode == 0 and done.stdout.startswith("optuna-pandalm ")


def test_readme_example_ranks_llama_first_by_humans_and_agrees_with_pandalm(tmp_path):
    done = _run(
        sys.executable,
        "examples/rank_pandalm_models.py",
        "--storage",
        f"sqlite:///{tmp_path / 'models.db'}",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    humans = report["humans"]
    assert humans["games"] == 998  # 999 rows less the blank instruction
    assert humans["leaderboard"][0]["model"] == "llama-7b"
    assert sum(row["p_best"] for row in humans["leaderboard"]) == pytest.approx(1.0, abs=1e-6)
    assert report["kendall_tau_humans_vs_pandalm"] > 0.5


def test_rank_example_clusters_errors_by_instruction():
    spec = importlib.util.spec_from_file_location("rank", ROOT / "examples/rank_pandalm_models.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    from optuna_pandalm import Store

    rows = json.loads(example.TESTSET.read_text(encoding="utf-8"))
    labels = {row["idx"]: 0 for row in rows}
    _, clusters = example.store_games(Store("sqlite://"), "clusters", rows, labels)
    assert len(clusters) == 998 and len(set(clusters)) == 169  # the blank one skipped


def test_a_built_wheel_carries_the_test_set_and_judge_eval_reproduces_pandalm_7b(tmp_path):
    """A fresh install: build the wheel from the sources, install it alone into an empty
    folder, and run judge-eval from outside the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(
        ROOT / "optuna_pandalm",
        source / "optuna_pandalm",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    built = subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "wheel"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheel").glob("optuna_pandalm-*.whl")
    site = tmp_path / "site"
    installed = subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    assert (site / "optuna_pandalm/data/pandalm/NOTICE").is_file()
    assert (site / "optuna_pandalm/data/pandalm/LICENSE").is_file()
    code = (
        "import sys, optuna_pandalm.commands.cli as cli; "
        f"assert cli.__file__.startswith({str(site)!r}), cli.__file__; "
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "judge-eval",
            "--data",
            "pandalm",
            "--predictions",
            str(RECORDED_7B),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert (round(metrics["accuracy"], 4), round(metrics["f1"], 4)) == (0.6677, 0.5743)
