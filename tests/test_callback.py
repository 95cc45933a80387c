"""JudgeCallback with a real Trainer, a tiny Llama and LoRA on CPU; sharding across ranks."""

from __future__ import annotations

import multiprocessing
import os
import socket
import types

import optuna
import pytest

from optuna_pandalm import Arena
from optuna_pandalm.demo.tasks import make_data
from optuna_pandalm.judges import ReferenceJudge
from optuna_pandalm.training.callback import JudgeCallback, merge_shards
from optuna_pandalm.training.generation import generate_responses
from optuna_pandalm.training.tuning import SearchSpace, TuneConfig, make_objective

DATA = make_data(seed=0, n_train=40, n_judge=6, n_heldout=4)


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def _config(
    path: str, tmp_path, *, epochs: int, method: str = "lora", save_best: bool = False
) -> TuneConfig:
    return TuneConfig(
        save_best=save_best,
        base_model=path,
        train_data="(memory)",
        eval_prompts="(memory)",
        judge="reference:char_ratio",
        search_space=SearchSpace(
            learning_rate=(1e-3, 1e-3),
            epochs=epochs,
            optimizer=["adamw"],
            scheduler=["linear"],
            batch_size=[8],
            method=[method],
            lora_rank=[4],
            lora_alpha=[8],
            target_modules=["q_proj", "v_proj"],
        ),
        output_dir=str(tmp_path / "runs"),
        max_length=96,
        max_new_tokens=6,
    )


def _study(tmp_path, pruner=None):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'cb.db'}"
    arena = Arena(url, "cb", ReferenceJudge("char_ratio"), DATA.judge_prompts, racing=False)
    study = optuna.create_study(study_name="cb", storage=url, direction="maximize", pruner=pruner)
    return arena, study


def test_callback_scores_each_epoch_of_a_lora_trainer_and_finalize_picks_the_best(
    tiny_llama_path, tmp_path
):
    arena, study = _study(tmp_path)
    seen = {}
    objective = make_objective(
        _config(tiny_llama_path, tmp_path, epochs=2, save_best=True),
        arena,
        train_records=DATA.train,
        on_trial_end=lambda trial, model, tokenizer: seen.update(model=type(model).__name__),
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert len(trial.intermediate_values) == 2  # one judged checkpoint per epoch
    assert trial.user_attrs["pandalm_best_step"] in trial.intermediate_values
    assert "Peft" in seen["model"]
    assert trial.value == pytest.approx(max(arena.scores().values()), abs=1e-9)
    saved = tmp_path / "runs" / "best" / "trial-0"
    assert (saved / "adapter_config.json").is_file()  # the LoRA adapter, not the whole model
    assert int((saved / "pandalm_step.txt").read_text()) == trial.user_attrs["pandalm_best_step"]


def test_prune_stops_training_and_finalize_raises_trial_pruned(tiny_llama_path, tmp_path):
    arena, study = _study(tmp_path, pruner=_AlwaysPrune())
    objective = make_objective(
        _config(tiny_llama_path, tmp_path, epochs=3, method="full"),
        arena,
        train_records=DATA.train,
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert len(trial.intermediate_values) == 1  # training stopped after the first epoch


def test_generation_restores_train_mode_and_padding_side(tiny_llama_path):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_llama_path)
    tokenizer.padding_side = "right"
    model.train()
    answers = generate_responses(
        model, tokenizer, DATA.judge_prompts, max_new_tokens=4, batch_size=4
    )
    assert len(answers) == len(DATA.judge_prompts)
    assert model.training and tokenizer.padding_side == "right"
    alone = generate_responses(model, tokenizer, DATA.judge_prompts[:1], max_new_tokens=4)
    assert alone[0] == answers[0]  # batching with left padding changes nothing


def test_merge_shards_refuses_missing_prompts():
    with pytest.raises(RuntimeError, match=r"no rank generated prompts \[1\]"):
        merge_shards([([0, 2], ["a", "c"])], 3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _RecordingArena:
    def __init__(self, prompts):
        self.prompts = prompts
        self.judge = types.SimpleNamespace()
        self.received = None

    def evaluate(self, trial, step, answers):
        self.received = answers
        return types.SimpleNamespace(
            player=types.SimpleNamespace(id=1, trial=0, step=step),
            **dict(score=0.5, ci_low=0.0, ci_high=1.0, wins=1, ties=0, losses=0, games=1),
        )

    def standings(self):
        return types.SimpleNamespace(index={1: 0}, p_best=lambda: [1.0])


def _rank(rank: int, port: int, path: str, queue) -> None:
    import torch.distributed as dist
    import transformers

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path)
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        arena = _RecordingArena(DATA.judge_prompts)
        trial = types.SimpleNamespace(should_prune=lambda: True) if rank == 0 else None
        callback = JudgeCallback(arena, trial, tokenizer, max_new_tokens=4)
        control = types.SimpleNamespace(should_training_stop=False)
        state = types.SimpleNamespace(global_step=7)
        args = types.SimpleNamespace(bf16=False, fp16=False)
        callback.on_epoch_end(args, state, control, model=model)  # judged at each epoch's end
        queue.put((rank, arena.received, control.should_training_stop, callback.metrics))
    finally:
        dist.destroy_process_group()


def test_two_ranks_generate_shards_the_main_rank_judges_and_both_stop(tiny_llama_path):
    import transformers

    context = multiprocessing.get_context("spawn")
    queue, port = context.Queue(), _free_port()
    ranks = [
        context.Process(target=_rank, args=(r, port, tiny_llama_path, queue)) for r in range(2)
    ]
    for process in ranks:
        process.start()
    results = dict(
        (r, (answers, stop, metrics))
        for r, answers, stop, metrics in (queue.get(timeout=180) for _ in ranks)
    )
    for process in ranks:
        process.join(60)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_llama_path)
    expected = generate_responses(model, tokenizer, DATA.judge_prompts, max_new_tokens=4)
    assert results[0][0] == expected  # gathered in prompt order on the main rank
    assert results[1][0] is None  # other ranks do not judge
    assert results[0][1] and results[1][1]  # the pruning decision reached every rank
    assert results[1][2] == results[0][2] and results[1][2]["judge/pruned"] == 1.0
