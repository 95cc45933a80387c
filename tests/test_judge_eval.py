"""Specification of judge-eval: PandaLM's protocol on its human-annotated test set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from optuna_pandalm.judges.evaluation import (
    EvaluationInputError,
    evaluate_predictions,
    load_testset,
    read_predictions,
)
from tests.pandalm_data import RECORDED_7B

PACKAGED = Path(__file__).resolve().parents[1] / "optuna_pandalm" / "data" / "pandalm"


def _cli(*args: str, data: str = "pandalm") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optuna_pandalm.commands.cli", "judge-eval", "--data", data, *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_packaged_test_set_is_pandalms_999_pairs_with_its_notice_and_license():
    pairs = load_testset("pandalm")
    assert len(pairs) == 999 and len({p.idx for p in pairs}) == 999
    assert "Apache License" in (PACKAGED / "NOTICE").read_text()
    assert "Apache License" in (PACKAGED / "LICENSE").read_text()
    assert load_testset(PACKAGED / "testset-v1.json") == pairs


def test_reproduces_pandalm_7b_published_accuracy_and_macro_f1():
    done = _cli("--predictions", str(RECORDED_7B), "--json")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert round(metrics["accuracy"], 4) == 0.6677
    assert round(metrics["f1"], 4) == 0.5743
    assert metrics["n"] == 999 and metrics["n_invalid"] == 0
    assert round(metrics["length_preference"], 3) == 0.655
    assert round(metrics["human_length_preference"], 3) == 0.675


def test_string_labels_and_garbage_count_like_pandalms_script(tmp_path):
    pairs = load_testset("pandalm")[:4]
    path = tmp_path / "predictions.json"
    rows = [
        {"idx": pairs[0].idx, "my_result": "TIE"},
        {"idx": pairs[1].idx, "my_result": "2"},
        {"idx": pairs[2].idx, "my_result": "garbage"},
        {"idx": pairs[3].idx, "my_result": 1},
    ]
    path.write_text(json.dumps(rows))
    predictions = read_predictions(path)
    assert [predictions[p.idx] for p in pairs] == [0, 2, None, 1]
    metrics = evaluate_predictions(pairs, predictions)
    as_ties = evaluate_predictions(pairs, {**predictions, pairs[2].idx: 0})
    assert metrics["n_invalid"] == 1
    assert metrics["accuracy"] == as_ties["accuracy"] and metrics["f1"] == as_ties["f1"]


def test_six_json_true_responses_are_judged_as_text():
    raw = json.loads((PACKAGED / "testset-v1.json").read_text(encoding="utf-8"))
    not_text = {
        (row["idx"], field)
        for row in raw
        for field in ("response1", "response2")
        if not isinstance(row[field], str)
    }
    assert {row_field[0] for row_field in not_text} == {157, 158, 159, 161, 162, 164}
    pairs = {p.idx: p for p in load_testset("pandalm")}
    for idx, field in not_text:
        assert getattr(pairs[idx], field.replace("response", "response_")) == "true"


def test_a_reference_judge_is_refused_in_one_line_before_any_progress_bar():
    done = _cli("--judge", "reference:rouge_l")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "%|" not in done.stderr, done.stderr
    assert done.stderr.startswith("optuna-pandalm judge-eval: error: judge reference:rouge_l")
    assert "have none" in done.stderr and "Traceback" not in done.stderr


def test_an_ensemble_holding_a_reference_judge_is_refused_like_one():
    from optuna_pandalm.judges import EnsembleJudge, ReferenceJudge
    from optuna_pandalm.judges.evaluation import check_judge
    from optuna_pandalm.testing import SimulatedJudge

    pairs = load_testset("pandalm")[:2]
    check_judge(EnsembleJudge([SimulatedJudge(), SimulatedJudge(seed=1)]), pairs)
    with pytest.raises(EvaluationInputError, match="has no references"):
        check_judge(EnsembleJudge([SimulatedJudge(), ReferenceJudge("rouge_l")]), pairs)


def test_help_says_which_judges_cannot_run_on_pandalms_set_and_what_pandalm_means():
    done = subprocess.run(
        [sys.executable, "-m", "optuna_pandalm.commands.cli", "judge-eval", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = " ".join(done.stdout.split())
    assert "Reference judges (reference:rouge_l, token_f1, exact, char_ratio) cannot run" in text
    assert "six responses are the JSON value true" in text
    assert "'pandalm' (the packaged human-annotated test set)" in text


def test_swap_measures_position_consistency_with_a_local_judge(tiny_llama_path):
    done = _cli(
        "--judge", f"pandalm:{tiny_llama_path}?device=cpu", "--swap", "--limit", "6", "--json"
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["n"] == 6 and metrics["n_swap_compared"] == 6
    assert 0.0 <= metrics["position_consistency"] <= 1.0


def test_bad_prediction_files_fail_with_exit_2(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"idx": 0, "a_result": 1, "b_result": 2}]')
    done = _cli("--predictions", str(path))
    assert done.returncode == 2
    assert "bad.json, row 0: expected one 'result'" in done.stderr
    with pytest.raises(EvaluationInputError, match="cannot read"):
        read_predictions(tmp_path / "missing.json")


def test_length_controlled_agreement_weighs_longer_and_shorter_wins_equally():
    pairs = load_testset("pandalm")
    metrics = evaluate_predictions(pairs, read_predictions(RECORDED_7B))
    # PandaLM-7B is right more often when people preferred the longer answer.
    assert round(metrics["accuracy_when_longer_preferred"], 3) == 0.746
    assert round(metrics["accuracy_when_shorter_preferred"], 3) == 0.642
    assert round(metrics["length_controlled_accuracy"], 3) == 0.694
    assert metrics["length_controlled_accuracy"] < metrics["decisive_accuracy"]
    always_longer = {p.idx: 1 if len(p.response_1) > len(p.response_2) else 2 for p in pairs}
    picked = evaluate_predictions(pairs, always_longer)
    assert picked["length_controlled_accuracy"] == pytest.approx(0.5)
    assert picked["decisive_accuracy"] > 0.6  # what length alone earns without control
