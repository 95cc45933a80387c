"""Arena-Hard-Auto's judge format against the project's own config and released judgments."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optuna_pandalm.judges import FORMATS, JudgeRequest
from optuna_pandalm.judges.formats._arena_hard import ArenaHardFormat

DATA = Path(__file__).parent / "data" / "formats" / "arena_hard"
FORM = ArenaHardFormat()


def _config_string(key: str) -> str:
    """A double-quoted string of the copied YAML (JSON-compatible escapes only)."""
    text = (DATA / "judge_config.yaml").read_text(encoding="utf-8")
    match = re.search(rf'^{key}: \[?("(?:[^"\\]|\\.)*")\]?$', text, re.MULTILINE)
    assert match is not None, key
    return str(json.loads(match.group(1)))


def _judgments() -> list[dict[str, object]]:
    lines = (DATA / "judgments.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_registered() -> None:
    assert FORMATS["arena_hard"].name == "arena_hard"
    assert isinstance(FORMATS["arena_hard"], ArenaHardFormat)


def test_prompt_is_the_published_one() -> None:
    request = JudgeRequest("Write a Scheme program.", "(define x 1)", "Sure:\n(define y 2)")
    messages = FORM.messages(request)
    template = _config_string("prompt_template")
    assert messages == [
        {"role": "system", "content": _config_string("system_prompt")},
        {
            "role": "user",
            "content": template.format(
                question_1=request.instruction,
                answer_1=request.response_1,
                answer_2=request.response_2,
            ),
        },
    ]
    assert FORM.chat and FORM.text(request).startswith("Please act as an impartial judge")


def test_input_joins_the_question_and_reference_is_not_shown() -> None:
    request = JudgeRequest("Translate:", "Bonjour", "Hallo", input="Hello", reference="Bonjour")
    user = FORM.messages(request)[1]["content"]
    assert user.startswith("<|User Prompt|>\nTranslate:\n\nHello\n\n<|The Start of Assistant A")
    assert "Bonjour\n<|The End of Assistant A's Answer|>" in user
    assert user.count("Bonjour") == 1
    assert not FORM.takes_reference


@pytest.mark.parametrize("game", _judgments(), ids=lambda game: str(game["score"]))
def test_parser_reads_released_judgments(game: dict[str, object]) -> None:
    judgment = str(game["judgment"])
    expected = {"A>B": (1, 1), "B>A": (2, 1), "A=B": (0, None)}[str(game["score"])]
    verdict = FORM.parse(judgment)
    assert (verdict.winner, verdict.strength) == expected
    assert verdict.raw == judgment
    assert verdict.reason.startswith("To write a") and "[[" not in verdict.reason


@pytest.mark.parametrize(
    ("label", "winner", "strength"),
    [
        ("A>>B", 1, 2),
        ("A>B", 1, 1),
        ("A=B", 0, None),
        ("B>A", 2, 1),
        ("B>>A", 2, 2),
        ("B<<A", 1, 2),
        ("A<B", 2, 1),
        ("B=A", 0, None),
    ],
)
def test_every_label(label: str, winner: int, strength: int | None) -> None:
    verdict = FORM.parse(f"My own answer: 4.\n\nMy final verdict is: [[{label}]]")
    assert (verdict.winner, verdict.strength) == (winner, strength)
    assert verdict.reason == "My own answer: 4.\n\nMy final verdict is:"


def test_repeated_same_label_is_read() -> None:
    verdict = FORM.parse("Assistant B is better: [[B>>A]]. Final: [[B>>A]]")
    assert (verdict.winner, verdict.strength) == (2, 2)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no verdict at all",
        "My final verdict is tie: A=B",
        "[A>B]",
        "[[a>b]]",
        "[[A>B]] on reflection [[B>A]]",
        "[[A>>B]] or [[A>B]]",
        "[[AB]]",
        "[[A]]",
        "[[A>>>B]]",
        "[[]]",
    ],
)
def test_unreadable_or_conflicting_is_invalid(text: str) -> None:
    verdict = FORM.parse(text)
    assert verdict.winner is None and verdict.strength is None
    assert verdict.raw == text


def test_likelihood_labels() -> None:
    assert FORM.answer_prefix == "[["
    assert dict(FORM.labels) == {1: "A>B", 2: "B>A", 0: "A=B"}
    for winner, label in FORM.labels.items():
        assert FORM.parse(f"{FORM.answer_prefix}{label}]]").winner == winner
    with pytest.raises(TypeError):
        FORM.labels[1] = "B"  # type: ignore[index]


@given(st.text())
def test_parse_never_raises(text: str) -> None:
    verdict = FORM.parse(text)
    assert verdict.winner in (None, 0, 1, 2)
    assert (verdict.strength is None) == (verdict.winner in (None, 0))
