"""Specification of the PandaLM prompt, parser and local judge (on a tiny Llama)."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optuna_pandalm import JudgeRequest, PandaLMJudge
from optuna_pandalm.judges import build_pandalm_prompt, parse_pandalm_output
from optuna_pandalm.judges.evaluation import load_testset
from tests.pandalm_data import RECORDED_7B

LABEL_TEXT = {0: "Tie", 1: "1", 2: "2"}


def test_prompt_is_pandalms_exact_template():
    assert build_pandalm_prompt("Do X.", "a", "b") == (
        "Below are two responses for a given task. The task is defined by the Instruction. "
        "Evaluate the responses and generate a reference answer for the task.\n\n"
        "### Instruction:\nDo X.\n\n### Response 1:\na\n\n### Response 2:\nb\n\n### Evaluation:\n"
    )
    assert build_pandalm_prompt("Do X.", "a", "b", input="ctx") == (
        "Below are two responses for a given task. The task is defined by the Instruction "
        "with an Input that provides further context. Evaluate the responses and generate a "
        "reference answer for the task.\n\n### Instruction:\nDo X.\n\n### Input:\nctx\n\n"
        "### Response 1:\na\n\n### Response 2:\nb\n\n### Evaluation:\n"
    )


def _pandalms_own_prompt(instruction: str, input: str, response_1: str, response_2: str) -> str:
    """PandaLM's ``build_pandalm_prompt`` (pandalm/utils/pandalm_inference.py), restated:
    responses stripped, instruction and input as they are."""
    responses = f"### Response 1:\n{response_1.strip()}\n\n### Response 2:\n{response_2.strip()}"
    if input:
        return (
            "Below are two responses for a given task. The task is defined by the Instruction "
            "with an Input that provides further context. Evaluate the responses and generate "
            f"a reference answer for the task.\n\n### Instruction:\n{instruction}\n\n"
            f"### Input:\n{input}\n\n{responses}\n\n### Evaluation:\n"
        )
    return (
        "Below are two responses for a given task. The task is defined by the Instruction. "
        "Evaluate the responses and generate a reference answer for the task.\n\n"
        f"### Instruction:\n{instruction}\n\n{responses}\n\n### Evaluation:\n"
    )


def test_prompts_on_the_human_test_set_equal_pandalms_own_including_padded_responses():
    pairs = load_testset("pandalm")
    padded = {
        p.idx
        for p in pairs
        if p.response_1 != p.response_1.strip() or p.response_2 != p.response_2.strip()
    }
    assert padded == {431, 436, 521, 522}
    for p in pairs:
        ours = build_pandalm_prompt(p.instruction, p.response_1, p.response_2, p.input)
        assert ours == _pandalms_own_prompt(p.instruction, p.input, p.response_1, p.response_2), (
            p.idx
        )


def test_parser_recovers_pandalm_7b_recorded_labels_reasons_and_references():
    recorded = json.loads(RECORDED_7B.read_text(encoding="utf-8"))
    for row in recorded:
        raw = (
            f"{LABEL_TEXT[row['pandalm_result']]}\n\n### Reason: {row['pandalm_reason']}\n\n"
            f"### Reference: {row['pandalm_reference']}\n"
        )
        verdict = parse_pandalm_output(raw)
        assert verdict.winner == row["pandalm_result"], row["idx"]
        assert verdict.reason == row["pandalm_reason"].strip()
        assert verdict.reference == row["pandalm_reference"].strip()
    assert len(recorded) == 999


@pytest.mark.parametrize(
    ("text", "winner"),
    [
        ("  tie \n### Reason: same", 0),
        ("TIE", 0),
        ("\n\n2\n", 2),
        (build_pandalm_prompt("Q", "a", "b") + "1\n\n### Reason: r\n\n### Reference: x", 1),
        ("1 ### Reason: on one line", 1),
        ("", None),
        ("Tie.", None),
        ("Response 1 is better", None),
        ("3\n### Reason: no", None),
        ("garbage", None),
    ],
)
def test_parser_tolerates_whitespace_case_and_echo_but_nothing_else(text, winner):
    verdict = parse_pandalm_output(text)
    assert verdict.winner == winner
    assert verdict.raw == text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parser_never_raises_and_never_turns_garbage_into_a_tie(text):
    verdict = parse_pandalm_output(text)
    if verdict.winner == 0:
        tail = text.rsplit("### Evaluation:", 1)[-1].strip()
        assert tail.split("\n", 1)[0].split("###", 1)[0].strip().lower() == "tie"


@pytest.fixture(scope="module")
def likelihood_judge(tiny_llama_path):
    return PandaLMJudge(tiny_llama_path, batch_size=4, device="cpu")


REQUESTS = [
    JudgeRequest("Add 2 and 3.", "5", "6"),
    JudgeRequest("Summarise.", "A short one.", "", input="Some context here."),
    JudgeRequest("Say hi.", "hi", "hello there"),
]


def test_likelihood_mode_gives_normalised_probabilities_and_argmax_winner(likelihood_judge):
    verdicts = likelihood_judge.judge(REQUESTS)
    assert len(verdicts) == 3
    for verdict in verdicts:
        assert sum(verdict.probabilities) == pytest.approx(1.0, abs=1e-6)
        assert verdict.winner == max(range(3), key=lambda k: verdict.probabilities[k])


def test_likelihood_batched_with_left_padding_equals_one_at_a_time(
    tiny_llama_path, likelihood_judge
):
    single = PandaLMJudge(tiny_llama_path, batch_size=1, device="cpu")
    for batched, alone in zip(
        likelihood_judge.judge(REQUESTS), single.judge(REQUESTS), strict=True
    ):
        assert batched.probabilities == pytest.approx(alone.probabilities, abs=1e-5)


def test_tie_threshold_calls_ties(tiny_llama_path):
    judge = PandaLMJudge(tiny_llama_path, tie_threshold=0.0, device="cpu")
    assert {v.winner for v in judge.judge(REQUESTS)} == {0}


def test_generate_mode_parses_or_marks_invalid_never_tie_by_default(tiny_llama_path):
    judge = PandaLMJudge(
        tiny_llama_path, mode="generate", batch_size=2, max_new_tokens=12, device="cpu"
    )
    verdicts = judge.judge(REQUESTS)
    assert len(verdicts) == 3
    for verdict in verdicts:
        assert verdict.raw  # the random model writes something
        assert verdict.winner == parse_pandalm_output(verdict.raw).winner
    assert "num_beams=4" in judge.name and "repetition_penalty=1.2" in judge.name


def test_generate_mode_beam_cache_gives_the_default_caches_outputs(tiny_llama_path, monkeypatch):
    from optuna_pandalm.judges import beam_cache

    made = []
    real = beam_cache.beam_search_cache
    monkeypatch.setattr(
        beam_cache, "beam_search_cache", lambda *a, **k: made.append(real(*a, **k)) or made[-1]
    )
    options = {"mode": "generate", "batch_size": 3, "max_new_tokens": 16, "device": "cpu"}
    judge = PandaLMJudge(tiny_llama_path, **options)
    judge.retry = {"max_new_tokens": 1}  # the retry is not what this compares
    with_cache = [v.raw for v in judge.judge(REQUESTS)]  # three lengths: left padding
    assert made and made[0] is not None and made[0].get_seq_length() > 0
    monkeypatch.setattr(beam_cache, "beam_search_cache", lambda *a, **k: None)
    default = [v.raw for v in judge.judge(REQUESTS)]
    assert with_cache == default


def test_beam_cache_is_used_on_cpu_by_default_and_follows_the_option(tiny_llama_path, monkeypatch):
    from optuna_pandalm.judges import beam_cache

    options = {"mode": "generate", "num_beams": 2, "max_new_tokens": 2, "device": "cpu"}
    assert PandaLMJudge(tiny_llama_path, **options).uses_beam_cache()
    off = PandaLMJudge(tiny_llama_path, **options, beam_cache=False)
    assert not off.uses_beam_cache()
    made = []
    real = beam_cache.beam_search_cache
    monkeypatch.setattr(
        beam_cache, "beam_search_cache", lambda *a, **k: made.append(real(*a, **k)) or made[-1]
    )
    off.retry = {"max_new_tokens": 1}
    off.judge(REQUESTS[:1])
    assert made == []  # beam search ran on transformers' own cache


def test_beam_cache_defaults_off_on_a_gpu_model(tiny_llama_path, monkeypatch):
    """An H200 decoded 0.31x as fast on the beam cache (benchmarks/README.md): off on CUDA
    unless asked for; the choice reads the model's device, faked here (no GPU in CI)."""
    import torch

    judge = PandaLMJudge(tiny_llama_path, mode="generate", max_new_tokens=2, device="cpu")
    monkeypatch.setattr(
        type(judge.model), "device", property(lambda self: torch.device("cuda", 0))
    )
    assert not judge.uses_beam_cache()
    judge.beam_cache = True
    assert judge.uses_beam_cache()


def test_generate_mode_passes_its_beam_cache_without_a_deprecation_warning(tiny_llama_path):
    judge = PandaLMJudge(
        tiny_llama_path, mode="generate", num_beams=2, max_new_tokens=2, device="cpu"
    )
    judge.retry = {"max_new_tokens": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # transformers' renamed-keyword warning
        judge.judge(REQUESTS[:1])


def test_beam_cache_grows_past_its_capacity_and_matches_the_default(tiny_llama_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from optuna_pandalm.judges.beam_cache import beam_search_cache

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_path)
    tokenizer.padding_side = "left"
    encoded = tokenizer(
        ["a short one", "a somewhat longer prompt"], return_tensors="pt", padding=True
    )
    settings = {"max_new_tokens": 24, "num_beams": 3, "repetition_penalty": 1.2}
    settings["pad_token_id"] = tokenizer.pad_token_id
    with torch.inference_mode():
        default = model.generate(**encoded, **settings)
        small = beam_search_cache(model, capacity=5)  # smaller than the prompt: grows
        grown = model.generate(**encoded, **settings, past_key_values=small)
    assert torch.equal(default, grown)
    assert small.layers[0].capacity >= small.get_seq_length() > 5


def test_beam_cache_is_not_used_for_sliding_window_models():
    from transformers import MistralConfig, MistralForCausalLM

    from optuna_pandalm.judges.beam_cache import beam_search_cache

    config = MistralConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        sliding_window=8,
    )
    assert beam_search_cache(MistralForCausalLM(config), capacity=64) is None


def test_long_responses_are_cut_from_their_end_never_the_instruction(likelihood_judge, caplog):
    instruction = "Keep this whole instruction."
    request = JudgeRequest(instruction, "x" * 5_000, "y" * 1_000_000)
    before = likelihood_judge.n_truncated
    with caplog.at_level(logging.WARNING):
        verdict = likelihood_judge.judge([request, REQUESTS[0]])[0]
    prompt = likelihood_judge.prompts([request])[0][0]
    assert instruction in prompt and prompt.endswith("### Evaluation:\n")
    assert len(likelihood_judge.tokenizer(prompt)["input_ids"]) <= likelihood_judge.max_length
    assert "x" in prompt and "y" in prompt  # both responses keep a share
    assert likelihood_judge.n_truncated == before + 1
    assert caplog.text.count("responses cut from their end") == 1
    assert sum(verdict.probabilities) == pytest.approx(1.0, abs=1e-6)


def test_special_tokens_inside_texts_are_stripped(likelihood_judge):
    prompt = likelihood_judge.prompts([JudgeRequest("Q</s>", "a<s>b", "c<pad>")])[0][0]
    assert "</s>" not in prompt and "<s>" not in prompt and "<pad>" not in prompt
    assert "### Response 1:\nab\n" in prompt


def test_empty_responses_are_judged_as_they_are(likelihood_judge):
    verdict = likelihood_judge.judge([JudgeRequest("Q", "", "   ")])[0]
    assert verdict.is_valid


def test_missing_model_folder_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match=r"no-such-model.*does not exist"):
        PandaLMJudge(str(missing))


def test_remote_code_in_a_model_folder_is_not_run_by_default(tiny_llama_path, tmp_path):
    import shutil

    folder = tmp_path / "custom"
    shutil.copytree(tiny_llama_path, folder)
    marker = tmp_path / "code-ran"
    (folder / "custom_model.py").write_text(
        f"open({str(marker)!r}, 'w').write('yes')\n"
        "from transformers import LlamaForCausalLM\n"
        # A subclass: loading remote code registers its class for auto classes, and
        # registering transformers' own LlamaForCausalLM would change how every later
        # LlamaForCausalLM in this process saves itself.
        "class CustomModel(LlamaForCausalLM):\n    pass\n",
        encoding="utf-8",
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "custom_model.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with contextlib.suppress(Exception):  # refusing is fine; running the code is not
        PandaLMJudge(str(folder), device="cpu")
    assert not marker.exists()
    PandaLMJudge(str(folder), device="cpu", trust_remote_code=True)
    assert marker.exists()  # the folder's code does run when the user asks for it


def test_judge_name_keys_model_and_settings(tiny_llama_path, likelihood_judge):
    generate = PandaLMJudge(tiny_llama_path, mode="generate", device="cpu")
    assert likelihood_judge.name != generate.name
    assert tiny_llama_path.rstrip("/") in likelihood_judge.name


def test_bad_mode_is_refused(tiny_llama_path):
    with pytest.raises(ValueError, match="mode must be"):
        PandaLMJudge(tiny_llama_path, mode="vibes")
