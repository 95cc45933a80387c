"""What every judge format in ``FORMATS`` promises, whatever its project (one test per
promise, run over every format, so a new format is checked by adding it to the registry)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optuna_pandalm.judges import FORMATS, JudgeRequest

NAMES = sorted(FORMATS)
REQUEST = JudgeRequest("Add 2 and 3.", "The sum is 5.", "It is 6.", reference="5")

# Any text, and text built from every format's verdict pieces, so that ties, strengths and
# conflicting labels come up often.
PIECES = ["[[A>>B]]", "[[A>B]]", "[[A=B]]", "[[B>>A]]", "[[A]]", "[[B]]", "[[C]]", "[RESULT] A"]
PIECES += ["[RESULT] B", "Tie", "1", "2", "8 8", "7 3", "### Evaluation:", "\n", " ", "Feedback: "]
VERDICT_TEXT = st.one_of(st.text(), st.lists(st.sampled_from(PIECES), max_size=6).map("".join))


def test_the_registry_holds_the_five_formats_under_their_own_names():
    assert NAMES == ["arena_hard", "judgelm", "mtbench", "pandalm", "prometheus2"]
    assert all(FORMATS[name].name == name for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
@given(text=VERDICT_TEXT)
def test_parse_never_raises_and_says_only_what_the_format_can(name, text):
    form = FORMATS[name]
    verdict = form.parse(text)
    assert verdict.raw == text
    assert verdict.winner in (None, 0, 1, 2)
    assert form.ties or verdict.winner != 0
    assert form.strengths or verdict.strength is None


@pytest.mark.parametrize("name", NAMES)
def test_likelihood_labels_name_only_outcomes_the_format_can_express(name):
    form = FORMATS[name]
    assert set(form.labels) <= {0, 1, 2}
    assert form.ties or 0 not in form.labels
    assert not form.labels or {1, 2} <= set(form.labels)
    assert len(set(form.labels.values())) == len(form.labels)  # one text per outcome


@pytest.mark.parametrize("name", NAMES)
def test_the_prompt_shows_both_responses_in_order_and_ends_with_the_user(name):
    form = FORMATS[name]
    messages = form.messages(REQUEST)
    assert messages[-1]["role"] == "user"
    assert all(m["role"] in ("system", "user") for m in messages)
    prompt = form.text(REQUEST) if not form.chat else messages[-1]["content"]
    first, second = prompt.find("The sum is 5."), prompt.find("It is 6.")
    assert 0 <= first < second


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_is_shown_only_by_formats_that_take_one(name):
    form = FORMATS[name]
    marker = "REFERENCE-ANSWER-42"
    request = JudgeRequest("Add 2 and 3.", "5", "6", reference=marker)
    shown = any(marker in m["content"] for m in form.messages(request))
    assert shown == form.takes_reference
