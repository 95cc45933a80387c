"""The "judgelm" format against JudgeLM's own templates and published judgments.

Fixtures in tests/data/formats/judgelm/ (README.txt there names the repository, commit and
licence): the template definitions copied verbatim from ``judgelm/llm_judge/common.py``, and
a judgment from the project's JudgeLM-100K dataset card.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optuna_pandalm.judges import FORMATS, JudgeRequest
from optuna_pandalm.judges.formats._judgelm import JudgeLMFormat

DATA = Path(__file__).parent / "data" / "formats" / "judgelm"
FORM = JudgeLMFormat()


def _conversations() -> dict[str, dict[str, str]]:
    """The string fields of each ``Conversation(...)`` in the copied common.py excerpt."""
    tree = ast.parse((DATA / "conv_judge_pair.py.txt").read_text(encoding="utf-8"))
    found: dict[str, dict[str, str]] = {}
    for node in tree.body:
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
        target = node.targets[0]
        assert isinstance(target, ast.Name)
        found[target.id] = {
            k.arg: ast.literal_eval(k.value)
            for k in node.value.keywords
            if k.arg in ("system", "prompt", "prompt_template", "appendix")
        }
    return found


def _project_prompt(conv: dict[str, str], **fields: str) -> str:
    # gen_model_judgement.py: conv.system + '\n' + template.format(...) + conv.appendix
    return (
        conv["system"]
        + "\n"
        + conv["prompt_template"].format(prompt=conv["prompt"], **fields)
        + conv["appendix"]
    )


QUESTION = "Who is the lead singer of the Gorillaz?"  # gradio_web_server_judgelm.py's example
ANSWER_1 = "Damon Albarn is the lead singer of the Gorillaz"
ANSWER_2 = "The lead singer of the Gorillaz is z世代."
REFERENCE = "Damon Albarn is the lead singer of the Gorillaz."


def test_registered() -> None:
    assert isinstance(FORMATS["judgelm"], JudgeLMFormat)
    assert FORM.chat is False and FORM.ties is True and FORM.strengths is False
    assert FORM.takes_reference is True


def test_prompt_without_reference_is_the_projects() -> None:
    conv = _conversations()["conv_judge_pair"]
    expected = _project_prompt(conv, question=QUESTION, answer_1=ANSWER_1, answer_2=ANSWER_2)
    request = JudgeRequest(QUESTION, ANSWER_1, ANSWER_2)
    assert FORM.text(request) == expected
    assert FORM.messages(request) == [{"role": "user", "content": expected}]
    assert expected.endswith("[System]\n" + conv["prompt"] + "\n\n### Response:")


def test_prompt_with_reference_is_the_projects() -> None:
    conv = _conversations()["conv_judge_pair_w_reference"]
    expected = _project_prompt(
        conv, question=QUESTION, reference=REFERENCE, answer_1=ANSWER_1, answer_2=ANSWER_2
    )
    assert FORM.text(JudgeRequest(QUESTION, ANSWER_1, ANSWER_2, reference=REFERENCE)) == expected
    assert "[Reference Answer]\n" + REFERENCE + "\n\n" in expected


def test_input_follows_the_instruction_on_its_own_line() -> None:
    conv = _conversations()["conv_judge_pair"]
    instruction = 'Edit the following sentence "I wants to visit Europe in my holidays."'
    given_input = "I wants to visit Europe in my holidays."
    expected = _project_prompt(
        conv, question=instruction + "\n" + given_input, answer_1="a {b}", answer_2="{}"
    )
    assert FORM.text(JudgeRequest(instruction, "a {b}", "{}", input=given_input)) == expected


def test_published_judgments() -> None:
    records = json.loads((DATA / "outputs.json").read_text(encoding="utf-8"))
    assert records
    for record in records:
        verdict = FORM.parse(record["text"])
        assert verdict.winner == record["winner"], record
        assert verdict.strength is None
        assert verdict.reason == record["text"].split("\n", 1)[1]
        assert verdict.raw == record["text"]


@pytest.mark.parametrize(
    ("text", "winner", "reason"),
    [
        ("2 8\nAssistant 2 is better.", 2, "Assistant 2 is better."),
        ("10 1\nAssistant 1 is right.", 1, "Assistant 1 is right."),
        ("1 5\n\nAssistant 1 is off topic.\n\nAssistant 2 is vague.", 2,
         "Assistant 1 is off topic.\n\nAssistant 2 is vague."),
        ("7 7\nBoth equally good.", 0, "Both equally good."),
        ("8.5 8.5", 0, ""),
        ("8,6\nComma-separated, as parse_score allows.", 1,
         "Comma-separated, as parse_score allows."),
        ("  6 9\nleading blanks stripped, as the project strips outputs", 2,
         "leading blanks stripped, as the project strips outputs"),
        ("9.5 9\nhalf points", 1, "half points"),
    ],
)  # fmt: skip
def test_scores(text: str, winner: int, reason: str) -> None:
    verdict = FORM.parse(text)
    assert (verdict.winner, verdict.reason, verdict.strength) == (winner, reason, None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n  ",
        "Assistant 1 is better.\n8 6",  # scores not on the first line
        "8\nonly one score",
        "8 6 7\nthree scores",
        "8  6\ntwo spaces: three fields, as parse_score reads it",
        "Score: 8 6",
        "eight six",
        "nan 5\nnot a number",
        "inf 5\nnot finite",
        "8/10 6/10",
        "[[A]]",
    ],
)
def test_unreadable_is_invalid_never_a_tie(text: str) -> None:
    verdict = FORM.parse(text)
    assert verdict.winner is None and not verdict.is_valid
    assert verdict.raw == text


def test_no_likelihood_labels() -> None:
    assert dict(FORM.labels) == {}
    assert FORM.answer_prefix == ""
    with pytest.raises(TypeError):
        FORM.labels[1] = "10 1"  # type: ignore[index]


@given(
    st.integers(min_value=1, max_value=10),
    st.integers(min_value=1, max_value=10),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
)
def test_winner_follows_the_scores(first: int, second: int, tail: str) -> None:
    verdict = FORM.parse(f"{first} {second}\n{tail}")
    assert verdict.winner == (1 if first > second else 2 if second > first else 0)
