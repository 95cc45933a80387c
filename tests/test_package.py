"""The package as users meet it: light import, console script, README example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pandalm"


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
        "import sys; import optuna_pandalm.dashboard, optuna_pandalm.visualization, "
        "optuna_pandalm.report, optuna_pandalm.judges, optuna_pandalm.store, "
        "optuna_pandalm.bradley_terry; "
        "up = [m for m in sys.modules if m.startswith(('optuna_pandalm.arena', "
        "'optuna_pandalm.sampler', 'optuna_pandalm.pruner'))]; "
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


@pytest.mark.skipif(not DATA.exists(), reason="shared PandaLM data not present")
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
