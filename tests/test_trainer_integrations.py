"""The judge's figures in the Trainer's loggers (TensorBoard event files), its evaluation
metrics (metric_for_best_model, load_best_model_at_end) and Trainer.hyperparameter_search."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest

from optuna_pandalm import (
    Arena,
    BradleyTerrySampler,
    JudgePruner,
    JudgeRequest,
    PairwiseJudge,
    Verdict,
)
from optuna_pandalm.demo.tasks import make_data
from optuna_pandalm.demo.tiny_model import char_tokenizer, tiny_llama
from optuna_pandalm.training.callback import JudgeCallback
from optuna_pandalm.training.hf_search import judge_objective, judged_hp_space
from optuna_pandalm.training.judge_metrics import JUDGE_METRICS
from optuna_pandalm.training.tuning import InstructionDataset, make_collator

DATA = make_data(seed=0, n_train=8, n_judge=2, n_heldout=2)


@pytest.fixture
def tokenizer():
    return char_tokenizer(model_max_length=512)


class _HashJudge(PairwiseJudge):
    """Prefers the response with the larger SHA-256 (ties only between equal responses):
    an arbitrary but consistent taste, so that a tiny random model's checkpoints get
    different scores as soon as their answers differ."""

    name = "sha256-taste"

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        def taste(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        return [
            Verdict(
                winner=0
                if r.response_1 == r.response_2
                else (1 if taste(r.response_1) > taste(r.response_2) else 2)
            )
            for r in requests
        ]


def _arena(tmp_path, name="hf"):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'hf.db'}"
    return url, Arena(url, name, _HashJudge(), DATA.judge_prompts, racing=False)


def _trainer(tokenizer, tmp_path, callback, *, model_init=None, **arguments):
    import transformers

    dataset = InstructionDataset(DATA.train, tokenizer, "alpaca", 256)
    settings = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = transformers.Trainer(
        model=None if model_init else tiny_llama(tokenizer, context=512),
        model_init=model_init,
        args=transformers.TrainingArguments(**{**settings, **arguments}),
        train_dataset=dataset,
        eval_dataset=dataset if arguments.get("eval_strategy", "no") != "no" else None,
        data_collator=make_collator(tokenizer.pad_token_id),
        callbacks=[callback],
    )
    callback.trainer = trainer
    return trainer


def test_judge_figures_reach_tensorboard_event_files_at_each_judged_step(tokenizer, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    url, arena = _arena(tmp_path)
    study = optuna.create_study(study_name="hf", storage=url, direction="maximize")
    callback = JudgeCallback(
        arena, study.ask(), tokenizer, every_n_steps=1, max_new_tokens=2, batch_size=2
    )
    trainer = _trainer(
        tokenizer, tmp_path, callback, max_steps=2, report_to=["tensorboard"], logging_steps=1
    )
    trainer.train()
    (events,) = {p.parent for p in Path(tmp_path / "out").rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()

    def logged(name):
        return {e.step: e.value for e in accumulator.Scalars(f"train/{name}")}

    assert set(accumulator.Tags()["scalars"]) >= {f"train/{m}" for m in JUDGE_METRICS}
    assert "train/loss" in accumulator.Tags()["scalars"]  # the Trainer's own log still there
    for figure in ("score", "ci_low", "ci_high"):
        expected = {r.player.step: getattr(r, figure) for r in callback.results}
        assert logged(f"judge/{figure}") == pytest.approx(expected, abs=1e-6)
    assert logged("judge/games") == {r.player.step: r.games for r in callback.results}
    second = callback.results[1]  # the first checkpoint had nobody to play
    win_rate = (second.wins + second.ties / 2) / second.games
    assert logged("judge/win_rate_vs_opponent") == pytest.approx({2: win_rate})
    assert logged("judge/pruned") == {1: 0.0, 2: 0.0}
    assert all(0.0 <= v <= 1.0 for v in logged("judge/p_best").values())


def test_metric_for_best_model_reads_the_judge_score_and_loads_the_best_checkpoint(
    tokenizer, tmp_path
):
    import safetensors.torch

    url, arena = _arena(tmp_path)
    study = optuna.create_study(study_name="hf", storage=url, direction="maximize")
    # Judged when the Trainer evaluates (every step), not only at the epoch's end.
    callback = JudgeCallback(arena, study.ask(), tokenizer, max_new_tokens=3, batch_size=2)
    trainer = _trainer(
        tokenizer,
        tmp_path,
        callback,
        max_steps=3,
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="steps",
        save_steps=1,
        metric_for_best_model="judge/score",
        load_best_model_at_end=True,
    )
    trainer.train()
    scores = {r.player.step: r.score for r in callback.results}
    assert [r.player.step for r in callback.results] == [1, 2, 3]  # each step judged once
    best_step = max(scores, key=lambda step: (scores[step], -step))
    assert trainer.state.best_metric == pytest.approx(scores[best_step])
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best_step}")
    saved = safetensors.torch.load_file(
        str(Path(trainer.state.best_model_checkpoint) / "model.safetensors")
    )
    name = "model.layers.0.self_attn.q_proj.weight"
    assert trainer.model.state_dict()[name].equal(saved[name])


class _CountingPruner(JudgePruner):
    calls = 0

    def prune(self, study, trial):
        type(self).calls += 1
        return super().prune(study, trial)


class _CountingSampler(BradleyTerrySampler):
    calls = 0

    def sample_independent(self, study, trial, name, distribution):
        type(self).calls += 1
        return super().sample_independent(study, trial, name, distribution)


def _search(tokenizer, tmp_path, *, max_steps, hp_space, **search):
    """Trainer.hyperparameter_search over a tiny Llama, evaluated (and judged) every step;
    ``search`` values that are callables are called with the arena (our sampler, pruner).
    Returns the study, the arena, the callback and the best run."""
    url, arena = _arena(tmp_path)
    callback = JudgeCallback(arena, None, tokenizer, every_n_steps=1, max_new_tokens=2)
    trainer = _trainer(
        tokenizer,
        tmp_path,
        callback,
        model_init=lambda trial: tiny_llama(tokenizer, context=512),
        max_steps=max_steps,
        eval_strategy="steps",
        eval_steps=1,
    )
    best = trainer.hyperparameter_search(
        hp_space=judged_hp_space(callback, hp_space),
        compute_objective=judge_objective,
        direction="maximize",
        backend="optuna",
        storage=url,
        study_name="hf",
        **{key: value(arena) if callable(value) else value for key, value in search.items()},
    )
    return optuna.load_study(study_name="hf", storage=url), arena, callback, best


def test_hyperparameter_search_with_our_sampler_pruner_and_the_judge_score(tokenizer, tmp_path):
    study, arena, _, best = _search(
        tokenizer,
        tmp_path,
        max_steps=2,
        hp_space=lambda trial: {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2)},
        n_trials=3,
        sampler=lambda arena: _CountingSampler(arena, optuna.samplers.RandomSampler(seed=0)),
        pruner=_CountingPruner,
    )
    assert len(study.trials) == 3
    for trial in study.trials:
        # The callback judged this very trial: its checkpoints are in the arena and the
        # trial's intermediate values are their scores.
        steps = [p.step for p in arena.trial_players(trial.number)]
        assert steps == sorted(trial.intermediate_values) == [1, 2]
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for trial in finished:  # compute_objective read the judge's score of the last step
        assert trial.value == trial.intermediate_values[2]
    assert best.objective == max(t.value for t in finished)
    assert _CountingSampler.calls >= 2  # trials 1 and 2 were sampled by our sampler
    assert _CountingPruner.calls >= 6  # our pruner decided at each judged checkpoint


def test_a_callback_without_a_trial_says_how_to_give_it_one(tokenizer, tmp_path):
    _, arena = _arena(tmp_path)
    callback = JudgeCallback(arena, None, tokenizer, every_n_steps=1, max_new_tokens=1)
    trainer = _trainer(tokenizer, tmp_path, callback, max_steps=1)
    with pytest.raises(ValueError, match="wrap hp_space with judged_hp_space"):
        trainer.train()


class _PruneAfterTheFirstTrial(optuna.pruners.BasePruner):
    # transformers reads study.best_trial at the end: one trial must complete.
    def prune(self, study, trial):
        return trial.number > 0


def test_hyperparameter_search_records_a_trial_the_pruner_stops_as_pruned(tokenizer, tmp_path):
    study, _, callback, _ = _search(
        tokenizer,
        tmp_path,
        max_steps=3,
        hp_space=lambda trial: {},
        n_trials=2,
        pruner=_PruneAfterTheFirstTrial(),
    )
    _, trial = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]  # stopped at the first judged step
    assert callback.metrics["judge/pruned"] == 1.0
