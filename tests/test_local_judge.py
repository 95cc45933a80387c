"""Specification of LocalJudge: any local causal LM in any judge format, both modes, on a tiny
random Llama with a character tokenizer saved to a folder (with a small chat template for the
chat formats)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest

from optuna_pandalm import JudgeRequest, LocalJudge, PandaLMJudge
from optuna_pandalm.judges import FORMATS
from optuna_pandalm.judges.formats import Prometheus2Format

# A chat template the character tokenizer can spell (every character is in its alphabet).
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
# The same, opening with the BOS token as Llama 3's and Gemma's templates do.
BOS_TEMPLATE = "{{ bos_token }}" + CHAT_TEMPLATE

REQUESTS = [
    JudgeRequest("Add 2 and 3.", "5", "6"),
    JudgeRequest("Summarise.", "A short one.", "", input="Some context here."),
    JudgeRequest("Say hi.", "hi", "hello there", reference="hi"),
]
WITH_LABELS = [name for name, form in FORMATS.items() if form.labels]
CHAT = [name for name, form in FORMATS.items() if form.chat]


def _save(folder: Path, template: str | None) -> str:
    from optuna_pandalm.demo.tiny_model import char_tokenizer, tiny_llama

    # 4,096 positions: Arena-Hard's system prompt alone is about 2,000 characters.
    tokenizer = char_tokenizer(model_max_length=4096)
    if template is not None:
        tokenizer.chat_template = template
    tiny_llama(tokenizer, context=4096).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def chat_llama_path(tmp_path_factory) -> str:
    """The tiny Llama whose tokenizer has a chat template."""
    return _save(tmp_path_factory.mktemp("chat-llama"), CHAT_TEMPLATE)


def _laid_out(messages: list[dict]) -> str:
    """CHAT_TEMPLATE by hand, with the generation prompt."""
    return "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"


@pytest.mark.parametrize("name", CHAT)
@pytest.mark.parametrize("mode", ["likelihood", "generate"])
def test_chat_formats_prompt_is_the_chat_template_applied_to_the_formats_messages(
    chat_llama_path, name, mode
):
    form = FORMATS[name]
    judge = LocalJudge(chat_llama_path, format=name, mode=mode, device="cpu")
    prompt = judge.prompts(REQUESTS[:1])[0][0]
    prefix = form.answer_prefix if mode == "likelihood" else ""
    assert prompt == _laid_out(form.messages(REQUESTS[0])) + prefix


@pytest.mark.parametrize("name", [n for n in FORMATS if n not in CHAT])
def test_base_model_formats_prompt_is_the_formats_text(chat_llama_path, name):
    judge = LocalJudge(chat_llama_path, format=name, mode="generate", device="cpu")
    for request in REQUESTS:
        assert judge.prompts([request])[0][0] == FORMATS[name].text(request)


@pytest.mark.parametrize("name", WITH_LABELS)
def test_likelihood_gives_probabilities_over_the_formats_labels_and_the_argmax_winner(
    chat_llama_path, name
):
    judge = LocalJudge(chat_llama_path, format=name, batch_size=2, device="cpu")
    verdicts = judge.judge(REQUESTS)
    assert len(verdicts) == len(REQUESTS)
    for verdict in verdicts:
        assert sum(verdict.probabilities) == pytest.approx(1.0, abs=1e-6)
        assert verdict.winner == max(range(3), key=lambda k: verdict.probabilities[k])
        if not FORMATS[name].ties:  # Prometheus 2: (0, p1, p2)
            assert verdict.probabilities[0] == 0.0 and verdict.winner in (1, 2)
        else:
            assert verdict.probabilities[0] > 0.0


def _label_probabilities_by_hand(path: str, prompt: str, labels: list[str]) -> list[float]:
    """The model's next-token probabilities of each label's last character after ``prompt``
    and the labels' shared characters, renormalised (the character tokenizer spells every
    label, and each of these labels differs from the others in its last character only)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    shared = labels[0][:-1]
    bos = tokenizer.bos_token
    # One BOS: the template's when it writes one, else the tokenizer's.
    ids = tokenizer(prompt + shared, add_special_tokens=not prompt.startswith(bos))["input_ids"]
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0, -1]
    wanted = [tokenizer.convert_tokens_to_ids(label[-1]) for label in labels]
    return torch.softmax(logits[wanted], dim=-1).tolist()


@pytest.mark.parametrize("template", [CHAT_TEMPLATE, BOS_TEMPLATE], ids=["plain", "bos"])
def test_likelihood_scores_the_label_right_after_the_answer_prefix_with_one_bos(
    tmp_path, template
):
    """Prometheus 2's labels " A" / " B" share their first character here (a space): it goes
    after "[RESULT]" and A against B is scored after it. A template that writes the BOS token
    keeps exactly one."""
    path = _save(tmp_path, template)
    judge = LocalJudge(path, format="prometheus2", device="cpu")
    prompt = judge.prompts(REQUESTS[:1])[0][0]
    assert prompt.endswith("<assistant>[RESULT]")
    assert prompt.startswith("<s>") == (template == BOS_TEMPLATE)
    expected = _label_probabilities_by_hand(path, prompt, [" A", " B"])
    verdict = judge.judge(REQUESTS[:1])[0]
    assert verdict.probabilities == pytest.approx((0.0, *expected), abs=1e-5)


@pytest.mark.parametrize("name", list(FORMATS))
def test_generate_mode_parses_with_the_format_for_every_format(chat_llama_path, name):
    judge = LocalJudge(
        chat_llama_path, format=name, mode="generate", batch_size=3, max_new_tokens=6, device="cpu"
    )
    judge.retry = {**judge.retry, "max_new_tokens": 3}
    verdicts = judge.judge(REQUESTS)
    assert len(verdicts) == len(REQUESTS)
    for verdict in verdicts:
        assert verdict.raw  # the random model writes something
        parsed = FORMATS[name].parse(verdict.raw)
        assert (verdict.winner, verdict.strength) == (parsed.winner, parsed.strength)


def test_generate_mode_keeps_the_formats_strength(chat_llama_path, monkeypatch):
    judge = LocalJudge(
        chat_llama_path, format="arena_hard", mode="generate", max_new_tokens=2, device="cpu"
    )
    monkeypatch.setattr(
        judge, "_decode_new", lambda encoded, output: ["Mine: 5. [[B>>A]]"] * len(output)
    )
    verdict = judge.judge(REQUESTS[:1])[0]
    assert (verdict.winner, verdict.strength) == (2, 2)


@pytest.mark.parametrize(
    ("name", "defaults"),
    [
        ("pandalm", {"num_beams": 4, "repetition_penalty": 1.2, "max_new_tokens": 512}),
        ("prometheus2", {"num_beams": 1, "repetition_penalty": 1.0, "max_new_tokens": 1024}),
        ("mtbench", {"num_beams": 1, "repetition_penalty": 1.0, "max_new_tokens": 2048}),
        ("arena_hard", {"num_beams": 1, "repetition_penalty": 1.0, "max_new_tokens": 4096}),
        ("judgelm", {"num_beams": 1, "repetition_penalty": 1.0, "max_new_tokens": 512}),
    ],
)
def test_decoding_defaults_are_pandalms_released_settings_or_greedy(
    chat_llama_path, name, defaults
):
    judge = LocalJudge(chat_llama_path, format=name, mode="generate", device="cpu")
    assert {k: judge.generation[k] for k in defaults} == defaults
    assert judge.generation["do_sample"] is False
    assert ("early_stopping" in judge.generation) == (name == "pandalm")


def test_reference_reaches_prometheus2s_prompt(chat_llama_path):
    judge = LocalJudge(chat_llama_path, format="prometheus2", mode="generate", device="cpu")
    with_reference, without = judge.prompts([REQUESTS[2], REQUESTS[0]])[0]
    assert "###Reference Answer:\nhi\n" in with_reference
    assert "###Reference Answer:" not in without


def test_a_format_without_labels_refuses_likelihood_mode(chat_llama_path):
    with pytest.raises(ValueError, match=r"'judgelm' has no likelihood labels.*mode='generate'"):
        LocalJudge(chat_llama_path, format="judgelm", device="cpu")


def _whole_label_probabilities_by_hand(path: str, prompt: str, labels: list[str]) -> list[float]:
    """Each label's probability after ``prompt`` as the product over its characters, one
    unpadded sequence per label, renormalised over the labels."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    base = tokenizer(prompt)["input_ids"]
    totals = []
    for label in labels:
        ids = base + tokenizer(label, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
        totals.append(sum(float(log_probs[t - 1, ids[t]]) for t in range(len(base), len(ids))))
    return torch.softmax(torch.tensor(totals), dim=-1).tolist()


def test_labels_that_start_with_the_same_token_are_scored_whole(chat_llama_path):
    # Arena-Hard's "A>B" and "A=B" start with the same character under this tokenizer: each
    # label's probability is the product over its characters, batched and left padded.
    judge = LocalJudge(chat_llama_path, format="arena_hard", batch_size=3, device="cpu")
    form = FORMATS["arena_hard"]
    prompts = judge.prompts(REQUESTS)[0]
    verdicts = judge.judge(REQUESTS)
    for prompt, verdict in zip(prompts, verdicts, strict=True):
        assert prompt.endswith("<assistant>[[")
        tie, one, two = _whole_label_probabilities_by_hand(
            chat_llama_path, prompt, [form.labels[0], form.labels[1], form.labels[2]]
        )
        assert verdict.probabilities == pytest.approx((tie, one, two), abs=1e-5)


class _PrefixLabels(Prometheus2Format):
    """A format whose label "A" is a prefix of its label "AB"."""

    labels = MappingProxyType({1: "A", 2: "AB"})  # type: ignore[assignment]


def test_a_label_that_is_a_prefix_of_another_refuses_likelihood_mode(chat_llama_path):
    with pytest.raises(ValueError, match=r"prefixes of one another.*mode='generate'"):
        LocalJudge(chat_llama_path, format=_PrefixLabels(), device="cpu")


def test_a_chat_format_needs_a_chat_template_naming_the_model_and_the_format(
    tiny_llama_path,
):
    with pytest.raises(ValueError, match=r"tiny-llama.*no chat template.*'prometheus2'"):
        LocalJudge(tiny_llama_path, format="prometheus2", device="cpu")
    judge = LocalJudge(
        tiny_llama_path, format="prometheus2", chat_template=CHAT_TEMPLATE, device="cpu"
    )
    assert judge.prompts(REQUESTS[:1])[0][0].startswith("<system>You are a fair judge")
    assert "chat_template=" in judge.name


def test_unknown_format_gets_the_closest_name(chat_llama_path):
    with pytest.raises(ValueError, match=r"unknown judge format 'prometheus'.*'prometheus2'"):
        LocalJudge(chat_llama_path, format="prometheus", device="cpu")


def test_names_say_local_format_source_and_settings(chat_llama_path):
    judge = LocalJudge(chat_llama_path, format="mtbench", device="cpu")
    source = str(Path(chat_llama_path).resolve())
    assert judge.name == f"local:mtbench:{source}:mode=likelihood,tie=None:max_length=4096"
    other_rubric = LocalJudge(
        chat_llama_path, format=Prometheus2Format(rubric="[Is it short?]"), device="cpu"
    )
    assert other_rubric.name.startswith("local:prometheus2~")


def test_long_chat_prompts_cut_the_responses_never_the_template(chat_llama_path):
    judge = LocalJudge(chat_llama_path, format="mtbench", device="cpu", max_length=2000)
    request = JudgeRequest("Keep this.", "x" * 5_000, "y" * 100_000)
    prompt = judge.prompts([request])[0][0]
    assert prompt.endswith("[The End of Assistant B's Answer]\n<assistant>[[")
    assert "Keep this." in prompt and "x" in prompt and "y" in prompt
    assert len(judge.tokenizer(prompt)["input_ids"]) <= 2000


def test_pandalm_judge_is_local_judge_in_pandalms_format_under_its_old_name(tiny_llama_path):
    source = str(Path(tiny_llama_path).resolve())
    for mode, options, settings in (
        ("likelihood", {}, "mode=likelihood,tie=None"),
        (
            "generate",
            {"max_new_tokens": 8},
            "do_sample=False,early_stopping=True,max_new_tokens=8,num_beams=4,"
            "repetition_penalty=1.2",
        ),
    ):
        panda = PandaLMJudge(tiny_llama_path, mode=mode, device="cpu", **options)
        local = LocalJudge(tiny_llama_path, format="pandalm", mode=mode, device="cpu", **options)
        assert panda.name == f"pandalm:{source}:{settings}:max_length=512"
        assert local.name == f"local:pandalm:{source}:{settings}:max_length=512"
        assert [dataclasses.astuple(v) for v in panda.judge(REQUESTS)] == [
            dataclasses.astuple(v) for v in local.judge(REQUESTS)
        ]
