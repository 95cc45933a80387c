"""MT-Bench's pairwise format against FastChat's published prompts and real GPT-4 judgments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optuna_pandalm.judges import FORMATS, JudgeRequest
from optuna_pandalm.judges.formats._mtbench import MTBenchFormat

DATA = Path(__file__).parent / "data" / "formats" / "mtbench"
FORM = MTBenchFormat()


def _jsonl(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def _by_id(name: str) -> dict[int, dict[str, Any]]:
    return {row["question_id"]: row for row in _jsonl(name)}


PROMPTS = {row["name"]: row for row in _jsonl("judge_prompts.jsonl")}
JUDGMENTS = _jsonl("gpt-4_pair.jsonl")
QUESTIONS = _by_id("question.jsonl")
REFERENCES = _by_id("reference_answer_gpt-4.jsonl")
ANSWERS = {model: _by_id(f"model_answer_{model}.jsonl") for model in ("phi-3", "phi-3-dpo")}


def _first_turn(row: dict[str, Any]) -> str:
    turn: str = row["choices"][0]["turns"][0]
    return turn


def _fastchat_winner(judgment: str) -> str:
    """run_judge_pair's reading (fastchat/llm_judge/common.py, output_format "[[A]]")."""
    if "[[A]]" in judgment:
        winner = "A"
    elif "[[B]]" in judgment:
        winner = "B"
    elif "[[C]]" in judgment:
        winner = "tie"
    else:
        winner = "error"
    return winner


def test_registered() -> None:
    assert isinstance(FORMATS["mtbench"], MTBenchFormat)
    assert (FORM.chat, FORM.ties, FORM.strengths) == (True, True, False)
    assert FORM.takes_reference
    assert {code: FORM.answer_prefix + text for code, text in FORM.labels.items()} == {
        1: "[[A",
        2: "[[B",
        0: "[[C",
    }


@pytest.mark.parametrize("row", JUDGMENTS, ids=lambda row: str(row["question_id"]))
def test_prompt_is_fastchats(row: dict[str, Any]) -> None:
    qid = row["question_id"]
    assert row["judge"][0] == "gpt-4"
    prompt_name = row["judge"][1]
    template = PROMPTS[prompt_name]
    reference = _first_turn(REFERENCES[qid]) if prompt_name == "pair-math-v1" else None
    question = QUESTIONS[qid]["turns"][0]
    answer_1 = _first_turn(ANSWERS[row["model_1"]][qid])
    answer_2 = _first_turn(ANSWERS[row["model_2"]][qid])
    for shown, rendered in (
        ((answer_1, answer_2), row["g1_user_prompt"]),
        ((answer_2, answer_1), row["g2_user_prompt"]),
    ):
        messages = FORM.messages(JudgeRequest(question, *shown, reference=reference))
        assert messages == [
            {"role": "system", "content": template["system_prompt"]},
            {"role": "user", "content": rendered},
        ]
        assert FORM.text(JudgeRequest(question, *shown, reference=reference)).endswith(rendered)


def test_input_is_appended_to_the_question() -> None:
    user = FORM.messages(JudgeRequest("Translate:", "a", "b", input="hola"))[1]["content"]
    assert user.startswith("[User Question]\nTranslate:\n\nhola\n\n[The Start of Assistant A")


@pytest.mark.parametrize("row", JUDGMENTS, ids=lambda row: str(row["question_id"]))
def test_reads_real_judgments_as_fastchat_did(row: dict[str, Any]) -> None:
    # g1 shows model_1 first; g2 shows model_2 first (FastChat maps g2 back to the models)
    codes = {
        "g1": {"model_1": 1, "model_2": 2, "tie": 0, "error": None},
        "g2": {"model_1": 2, "model_2": 1, "tie": 0, "error": None},
    }
    for game in ("g1", "g2"):
        text = row[f"{game}_judgment"]
        verdict = FORM.parse(text)
        assert verdict.winner == codes[game][row[f"{game}_winner"]]
        assert verdict.raw == text and verdict.strength is None
        if verdict.is_valid:
            assert verdict.reason and verdict.reason in text and "[[" not in verdict.reason


def test_real_judgments_cover_every_outcome() -> None:
    seen = {FORM.parse(row[f"{g}_judgment"]).winner for row in JUDGMENTS for g in ("g1", "g2")}
    assert seen == {0, 1, 2, None}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "$ERROR$",
        "A is better. [A]",
        "[[a]]",
        "[[ A ]]",
        "Verdict: A",
        "[[A]] ... on reflection [[B]]",
        "[[C]] or [[A]]",
        "[[A]] [[B]] [[C]]",
    ],
)
def test_garbage_and_conflicts_are_invalid(text: str) -> None:
    verdict = FORM.parse(text)
    assert verdict.winner is None and verdict.raw == text


def test_a_repeated_label_is_read_once() -> None:
    assert FORM.parse("[[B]]\n\nFinal Verdict: [[B]]").winner == 2


@given(
    st.lists(st.sampled_from(["[[A]]", "[[B]]", "[[C]]", "[[", "]]", "A", "x ", "\n"])).map(
        "".join
    )
)
def test_agrees_with_run_judge_pair_when_one_label(text: str) -> None:
    labels = {label for label in ("[[A]]", "[[B]]", "[[C]]") if label in text}
    expected = {"A": 1, "B": 2, "tie": 0, "error": None}[_fastchat_winner(text)]
    assert FORM.parse(text).winner == (expected if len(labels) <= 1 else None)
