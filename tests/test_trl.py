"""TRL: JudgeCallback inside trl.SFTTrainer (LoRA, completion-only loss, Alpaca and chat
data), ``trainer: sft`` in tune, and the replacement for TRL's removed pairwise judges."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import optuna
import pytest

pytest.importorskip("trl")

from optuna_pandalm import Arena, JudgeRequest, PairwiseJudge, Prompt, Verdict
from optuna_pandalm.demo.tasks import make_data
from optuna_pandalm.demo.tiny_model import char_tokenizer, tiny_llama
from optuna_pandalm.judges import ReferenceJudge
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response
from optuna_pandalm.training.callback import JudgeCallback
from optuna_pandalm.training.generation import format_prompt
from optuna_pandalm.training.sft import sft_records
from optuna_pandalm.training.trl_judge import TRLPairwiseJudge, baseline_win_rate
from optuna_pandalm.training.tuning import ConfigError, TuneConfig, make_objective
from tests.test_callback import _config

DATA = make_data(seed=0, n_train=8, n_judge=2, n_heldout=2)

# A chat template the character tokenizer can spell (every character is in its alphabet).
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def _arena_and_trial(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'trl.db'}"
    arena = Arena(url, "trl", ReferenceJudge("char_ratio"), DATA.judge_prompts, racing=False)
    study = optuna.create_study(study_name="trl", storage=url, direction="maximize")
    return arena, study


@pytest.mark.parametrize("template", ["alpaca", "chat"])
def test_judge_callback_scores_sft_trainer_checkpoints_with_lora_and_completion_only_loss(
    template, tmp_path
):
    import peft
    import trl
    from datasets import Dataset

    tokenizer = char_tokenizer(model_max_length=512)
    if template == "chat":
        tokenizer.chat_template = CHAT_TEMPLATE
    arena, study = _arena_and_trial(tmp_path)
    trial = study.ask()
    callback = JudgeCallback(
        arena, trial, tokenizer, template=template, every_n_steps=1, max_new_tokens=2
    )
    trainer = trl.SFTTrainer(
        model=tiny_llama(tokenizer, context=512),
        args=trl.SFTConfig(
            output_dir=str(tmp_path / "out"),
            max_steps=2,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            max_length=256,
            completion_only_loss=True,
            report_to=[],
            save_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
        ),
        train_dataset=Dataset.from_list(sft_records(DATA.train, template)),
        processing_class=tokenizer,
        peft_config=peft.LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
        ),
        callbacks=[callback],
    )
    # Completion-only loss: the labels are the answer and EOS; the rest is the very prompt
    # the callback asks the trainee at evaluation.
    row = trainer.train_dataset[0]
    learned = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label >= 0]
    prompt = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label < 0]
    assert tokenizer.decode(learned) == DATA.train[0]["output"] + tokenizer.eos_token
    record = DATA.train[0]
    asked = format_prompt(Prompt(record["instruction"], record["input"]), template, tokenizer)
    assert tokenizer.decode(prompt, skip_special_tokens=True) == asked

    trainer.train()
    assert isinstance(trainer.model, peft.PeftModel)
    assert [r.player.step for r in callback.results] == [1, 2]
    assert sorted(study.trials[0].intermediate_values) == [1, 2]


def _sft_config(path: str, tmp_path) -> TuneConfig:
    config = _config(path, tmp_path, epochs=1)
    return dataclasses.replace(config, trainer="sft", max_length=256, max_new_tokens=2)


def test_tune_trains_with_sft_trainer_when_the_config_says_sft(
    tiny_llama_path, tmp_path, monkeypatch
):
    import trl

    built: list[trl.SFTTrainer] = []

    class RecordedSFTTrainer(trl.SFTTrainer):  # the real trainer, remembered for the asserts
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(trl, "SFTTrainer", RecordedSFTTrainer)
    arena, study = _arena_and_trial(tmp_path)
    study.optimize(
        make_objective(_sft_config(tiny_llama_path, tmp_path), arena, train_records=DATA.train),
        n_trials=1,
    )
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert len(study.trials[0].intermediate_values) == 1  # one judged epoch
    (trainer,) = built
    labels = trainer.train_dataset[0]["labels"]
    assert labels[0] == -100 and labels[-1] != -100  # answers only
    judged = [entry for entry in trainer.state.log_history if "judge/score" in entry]
    assert judged and judged[0]["judge/score"] == study.trials[0].intermediate_values[1]


@pytest.mark.parametrize(
    ("value", "message"),
    [("sfft", "config.trainer: 'trainer' or 'sft', got 'sfft'"), (["sft"], "config.trainer")],
)
def test_tune_config_refuses_an_unknown_trainer(value, message):
    data = {"base_model": "m", "train_data": "t", "eval_prompts": "e", "judge": "j"}
    with pytest.raises(ConfigError, match=message):
        TuneConfig.from_mapping({**data, "trainer": value}, check_files=False)


class _PrefersGood(PairwiseJudge):
    """Prefers the response that says "good" wherever it is shown; "?" is garbage, equal
    responses tie. Records the requests it saw."""

    name = "prefers-good"

    def __init__(self) -> None:
        self.seen: list[JudgeRequest] = []

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.seen.extend(requests)
        verdicts = []
        for r in requests:
            if "?" in (r.response_1, r.response_2):
                verdicts.append(Verdict(winner=None, raw="garbage"))
            elif r.response_1 == r.response_2:
                verdicts.append(Verdict(winner=0))
            else:
                verdicts.append(Verdict(winner=1 if r.response_1 == "good" else 2))
        return verdicts


def test_trl_shape_adapter_maps_shuffled_orders_back_to_the_callers_indices():
    inner = _PrefersGood()
    judge = TRLPairwiseJudge(inner, seed=0)
    pairs = [["good", "bad"], ["bad", "good"]] * 20
    assert judge.judge(["p"] * 40, pairs) == [0, 1] * 20
    shown_first = {r.response_1 for r in inner.seen}
    assert shown_first == {"good", "bad"}  # shuffle_order showed both orders
    inner.seen.clear()
    assert judge.judge(["p"] * 4, pairs[:4], shuffle_order=False) == [0, 1, 0, 1]
    assert [r.response_1 for r in inner.seen] == ["good", "bad", "good", "bad"]


def test_trl_shape_adapter_answers_minus_one_for_invalid_verdicts_and_ties_by_default():
    pairs = [["?", "good"], ["same", "same"]]
    assert TRLPairwiseJudge(_PrefersGood()).judge(["p", "q"], pairs) == [-1, -1]
    assert TRLPairwiseJudge(_PrefersGood(), tie=0).judge(["p", "q"], pairs) == [-1, 0]


def test_trl_shape_adapter_refuses_rows_that_are_not_pairs():
    with pytest.raises(ValueError, match=r"completions\[1\]: expected a pair, got 3"):
        TRLPairwiseJudge(_PrefersGood()).judge(["p", "q"], [["a", "b"], ["a", "b", "c"]])
    with pytest.raises(ValueError, match="2 prompts but 1 completion pairs"):
        TRLPairwiseJudge(_PrefersGood()).judge(["p", "q"], [["a", "b"]])


def test_baseline_win_rate_plays_every_prompt_against_the_baseline(tmp_path):
    prompts = simulated_prompts(12)
    arena = Arena(
        f"sqlite:///{tmp_path / 'w.db'}",
        "w",
        SimulatedJudge(noise=0.0, position_bias=0.0),
        prompts,
        racing=False,
        baseline=("base", [simulated_response(0.0) for _ in prompts]),
    )
    strong = [simulated_response(3.0, text=f"s{i}") for i in range(len(prompts))]
    middling = [simulated_response(0.0, text=f"m{i}") for i in range(len(prompts))]
    arena.evaluate(0, 1, middling)
    arena.evaluate(0, 2, strong)  # plays trial 0 step 1, not the baseline
    rate = baseline_win_rate(arena, 0)  # the best checkpoint: step 2
    wins, ties, losses = arena.match_record(arena.best_checkpoint(0), arena.baseline)
    assert wins + ties + losses == len(prompts)
    assert rate == pytest.approx((wins + ties / 2) / len(prompts))
    assert rate > 0.8
    assert 0.2 < baseline_win_rate(arena, 0, step=1) < 0.8
    with pytest.raises(ValueError, match="no judged checkpoint at step 5"):
        baseline_win_rate(arena, 0, step=5)
