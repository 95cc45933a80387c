"""Prometheus 2's relative-grading format against the project's own files
(tests/data/formats/prometheus2/README.txt names the repository, commit and licence)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optuna_pandalm.judges import FORMATS, JudgeRequest
from optuna_pandalm.judges.formats._prometheus2 import Prometheus2Format

DATA = Path(__file__).parent / "data" / "formats" / "prometheus2"


def _load(name: str) -> dict[str, Any]:
    """Execute a copied source file of the project (pure constants and functions)."""
    namespace: dict[str, Any] = {}
    exec(compile((DATA / name).read_text(encoding="utf-8"), name, "exec"), namespace)
    return namespace


PROMPTS = _load("prompts.py.txt")
PARSER = _load("parser.py.txt")


def _project_messages(
    instruction: str, response_a: str, response_b: str, rubric: str, reference: str | None
) -> list[dict[str, str]]:
    """``PrometheusEval.relative_grade`` (judge.py), with the template a user picks."""
    template = PROMPTS["get_prompt_template"]("relative", reference is not None)
    content = template.format(
        instruction=instruction,
        response_A=response_a,
        response_B=response_b,
        rubric=rubric,
        reference_answer=reference,
    )
    return [
        {"role": "system", "content": PROMPTS["REL_SYSTEM_PROMPT"]},
        {"role": "user", "content": content},
    ]


def _readme_example() -> tuple[dict[str, str], str, str]:
    """The README's relative example: its ``data``, the printed feedback and score."""
    text = (DATA / "README_relative_example.md.txt").read_text(encoding="utf-8")
    literal = re.search(r"^data = (\{.*?^\})", text, re.DOTALL | re.MULTILINE)
    assert literal is not None
    data = ast.literal_eval(literal.group(1))
    feedback = re.search(r"^# Feedback: (.*)$", text, re.MULTILINE)
    score = re.search(r"^# Score: (.*)$", text, re.MULTILINE)
    assert feedback is not None and score is not None
    return data, feedback.group(1), score.group(1)


def test_registered() -> None:
    form = FORMATS["prometheus2"]
    assert isinstance(form, Prometheus2Format)
    assert (form.chat, form.ties, form.strengths, form.takes_reference) == (
        True,
        False,
        False,
        True,
    )


def test_the_default_rubric_is_the_projects_relative_helpfulness_rubric() -> None:
    assert Prometheus2Format().rubric == PROMPTS["load_rubric"]("helpfulness", "relative")


@pytest.mark.parametrize("with_reference", [True, False])
def test_readme_example_prompt_matches_the_project(with_reference: bool) -> None:
    data, _, _ = _readme_example()
    reference = data["reference_answer"] if with_reference else None
    request = JudgeRequest(
        data["instruction"], data["response_A"], data["response_B"], reference=reference
    )
    ours = Prometheus2Format(rubric=data["rubric"]).messages(request)
    assert ours == _project_messages(
        data["instruction"], data["response_A"], data["response_B"], data["rubric"], reference
    )


def test_default_rubric_prompt_and_input_inside_the_instruction() -> None:
    request = JudgeRequest("Translate.", "Bonjour", "Salut", input="Hello", reference="Bonjour")
    ours = Prometheus2Format().messages(request)
    rubric = PROMPTS["load_rubric"]("helpfulness", "relative")
    assert ours == _project_messages("Translate.\n\nHello", "Bonjour", "Salut", rubric, "Bonjour")


def test_merge_system_is_the_readme_transformers_layout() -> None:
    request = JudgeRequest("Add 2 and 3.", "5", "6")
    system, user = _project_messages(
        "Add 2 and 3.", "5", "6", PROMPTS["load_rubric"]("helpfulness", "relative"), None
    )
    merged = Prometheus2Format(merge_system=True).messages(request)
    assert merged == [{"role": "user", "content": system["content"] + "\n\n" + user["content"]}]
    assert Prometheus2Format().text(request) == system["content"] + "\n\n" + user["content"]


def test_readme_example_output() -> None:
    _, feedback, score = _readme_example()
    # the README prints the feedback and the score apart; the model wrote them as the
    # prompt asks, "Feedback: (feedback) [RESULT] (A or B)"
    verdict = FORMATS["prometheus2"].parse(f"Feedback: {feedback} [RESULT] {score}")
    assert (verdict.winner, verdict.reason, verdict.strength) == (2, feedback, None)


def test_biggen_bench_relative_verdicts() -> None:
    cases = json.loads((DATA / "biggen_llm_judge_relative_references.json").read_text("utf-8"))
    winners = [FORMATS["prometheus2"].parse(case["text"]).winner for case in cases]
    assert winners == [2, 2, 1, 2, 1, 2, 2, 2]
    first = FORMATS["prometheus2"].parse(cases[0]["text"])
    assert first.reason.startswith("While both Model A and Model B")
    assert first.reason.endswith("per the evaluation criteria.")


def _project_parser_cases() -> list[tuple[str, str | None]]:
    """The relative rows of the project's tests/test_parser.py."""
    tree = ast.parse((DATA / "test_parser.py.txt").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize":
            rows = ast.literal_eval(node.args[1])
            return [(output, expected) for output, mode, expected in rows if mode == "relative"]
    raise AssertionError("no parametrize in test_parser.py")


@pytest.mark.parametrize(("output", "expected"), _project_parser_cases())
def test_the_projects_own_parser_cases(output: str, expected: str | None) -> None:
    winner = FORMATS["prometheus2"].parse(output).winner
    assert winner == {None: None, "A": 1, "B": 2}[expected]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Feedback: both fine.",
        "Feedback: both fine. [RESULT] C",
        "Feedback: both fine. [RESULT] Tie",
        "[RESULT] A and more words after it",
        "Feedback: x [RESULT] A\n[RESULT] B",
        "[Response A]\nResult: B",
    ],
)
def test_unreadable_or_conflicting_is_invalid(text: str) -> None:
    verdict = FORMATS["prometheus2"].parse(text)
    assert verdict.winner is None and verdict.raw == text and not verdict.is_valid


def test_repeated_agreeing_labels_count_once() -> None:
    assert FORMATS["prometheus2"].parse("[RESULT] B\n[RESULT] B").winner == 2


def test_likelihood_labels_continue_the_prompt_as_the_model_writes_them() -> None:
    form = FORMATS["prometheus2"]
    assert dict(form.labels) == {1: " A", 2: " B"}
    for winner, label in form.labels.items():
        assert form.parse("Feedback: " + form.answer_prefix + label).winner == winner
    with pytest.raises(TypeError):
        form.labels[0] = " Tie"  # type: ignore[index]


@given(st.text())
def test_parse_never_raises_and_agrees_with_the_project(text: str) -> None:
    verdict = FORMATS["prometheus2"].parse(text)
    assert verdict.raw == text
    _, theirs = PARSER["parse_output"](text, "relative")
    if verdict.winner is not None:
        assert {"A": 1, "B": 2}[theirs] == verdict.winner
    if theirs is None:
        assert verdict.winner is None


@given(st.text(), st.sampled_from(["A", "B"]))
def test_a_result_line_after_any_feedback_is_read(feedback: str, label: str) -> None:
    verdict = FORMATS["prometheus2"].parse(f"Feedback: {feedback}\n[RESULT] {label}")
    if "[" not in feedback and "result" not in feedback.lower():
        assert verdict.winner == {"A": 1, "B": 2}[label]
        assert verdict.reason == feedback.strip()
