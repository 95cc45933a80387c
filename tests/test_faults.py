"""Faults: a judge that raises, training that diverges, and the integrity check."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import types

import optuna
import pytest

from optuna_pandalm import Arena, JudgeRequest
from optuna_pandalm.arena import JudgeFailedError
from optuna_pandalm.callback import JudgeCallback, TrainingDivergedError
from optuna_pandalm.judges import PairwiseJudge
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response


class _Failing(PairwiseJudge):
    """Raises ``failures`` times (like CUDA OOM or an HTTP 500), then judges."""

    def __init__(self, failures: int):
        self.inner = SimulatedJudge(seed=1)
        self.name = self.inner.name
        self.failures = failures
        self.attempts = 0

    def judge(self, requests: list[JudgeRequest]):
        self.attempts += 1
        if self.attempts <= self.failures:
            raise RuntimeError("CUDA out of memory")
        return self.inner.judge(requests)


def _study(tmp_path, judge, **arena_options):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    arena = Arena(
        url, "f", judge, simulated_prompts(16), racing=False, judge_backoff=0.01, **arena_options
    )
    study = optuna.create_study(study_name="f", storage=url, direction="maximize")
    return url, arena, study


def _objective(arena):
    def objective(trial):
        for step in (1, 2):
            arena.evaluate(
                trial, step, [simulated_response(trial.number + step, text=str(step))] * 16
            )
        return arena.finalize(trial)

    return objective


def test_a_judge_that_fails_then_recovers_is_retried(tmp_path):
    judge = _Failing(failures=2)
    _, arena, study = _study(tmp_path, judge)
    study.optimize(_objective(arena), n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert judge.attempts == 3


def test_a_judge_that_keeps_failing_fails_the_trial_with_the_cause_and_keeps_the_data(tmp_path):
    url, arena, study = _study(tmp_path, SimulatedJudge(seed=1))
    study.optimize(_objective(arena), n_trials=1)
    games_before = arena.store.games_version(arena.arena_id)[0]
    broken = Arena(
        url, "f", _Failing(failures=100), simulated_prompts(16), racing=False, judge_backoff=0.01
    )
    study.optimize(_objective(broken), n_trials=1, catch=(JudgeFailedError,))
    failed = study.trials[1]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert "CUDA out of memory" in failed.user_attrs["pandalm_error"]
    assert "failed 4 times" in failed.user_attrs["pandalm_error"]
    assert broken.store.games_version(broken.arena_id)[0] == games_before  # nothing lost
    assert not any(broken.check(study).values())


def test_nan_weights_fail_the_trial_clearly_and_never_reach_the_arena(tiny_llama_path, tmp_path):
    import torch
    import transformers

    _, arena, study = _study(tmp_path, SimulatedJudge(seed=1))
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_llama_path)
    with torch.no_grad():
        next(model.parameters()).fill_(math.nan)
    trial = study.ask()
    callback = JudgeCallback(arena, trial, tokenizer)
    state = types.SimpleNamespace(global_step=5)
    control = types.SimpleNamespace(should_training_stop=False)
    with pytest.raises(TrainingDivergedError, match="NaN or infinite values at step 5"):
        callback.on_epoch_end(
            types.SimpleNamespace(bf16=False, fp16=False), state, control, model=model
        )
    assert "NaN" in trial.user_attrs["pandalm_error"]
    assert arena.players() == []  # the arena never saw the diverged checkpoint


def test_a_nan_loss_in_the_logs_stops_the_run():
    trial = types.SimpleNamespace(set_user_attr=lambda *a: None)
    callback = JudgeCallback(types.SimpleNamespace(prompts=[]), trial, tokenizer=None)
    with pytest.raises(TrainingDivergedError, match="loss is nan at step 7"):
        callback.on_log(
            None, types.SimpleNamespace(global_step=7), None, logs={"loss": float("nan")}
        )


def _check(url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "optuna_pandalm.cli",
            "check",
            "--storage",
            url,
            "--study-name",
            "f",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_check_passes_on_sound_data_and_reports_each_kind_of_problem(tmp_path):
    url, arena, study = _study(tmp_path, SimulatedJudge(seed=1))
    study.optimize(_objective(arena), n_trials=3)
    done = _check(url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no problems found" in done.stdout

    snapshot = dict(study.user_attrs["pandalm_fit"])
    key = next(iter(snapshot["scores"]))
    snapshot["scores"] = {**snapshot["scores"], key: snapshot["scores"][key] + 0.5}
    study.set_user_attr("pandalm_fit", snapshot)  # a score nobody could have computed
    arena.store.player(arena.arena_id, trial=99, step=1, generations=["x"] * 16)
    with sqlite3.connect(tmp_path / "faults.db") as connection:
        connection.execute("DELETE FROM pandalm_generations WHERE position = 0 AND player_id = 1")
    done = _check(url)
    assert done.returncode == 1
    assert "FAIL  stored scores that a refit does not reproduce: 1" in done.stdout
    assert f"{key}: stored" in done.stdout
    assert "FAIL  players of unknown trials: 1" in done.stdout and "trial 99 step 1" in done.stdout
    assert "FAIL  players without a full set of generations: 1" in done.stdout


def test_non_utf8_responses_are_judged_stored_and_cached_or_refused_clearly(tmp_path):
    url, arena, study = _study(tmp_path, SimulatedJudge(seed=1))
    # Invalid UTF-8 from a tokenizer, decoded the lenient way: lone surrogates.
    broken = b"caf\xe9 \xff\xfe".decode("utf-8", "surrogateescape")
    texts = [simulated_response(1.0, text=broken + str(i)) for i in range(16)]
    first, second = study.ask(), study.ask()
    arena.evaluate(first, 1, [simulated_response(0.0, text="plain")] * 16)
    result = arena.evaluate(second, 1, texts)
    assert result.wins + result.ties + result.losses == 16
    stored = arena.store.generations(result.player.id)
    assert len(stored) == 16 and all("caf" in text for text in stored)
    # Another study with the same judge meets the same texts: every verdict from the cache.
    again = Arena(url, "g", SimulatedJudge(seed=1), simulated_prompts(16), racing=False)
    other = optuna.create_study(study_name="g", storage=url, direction="maximize")
    again.evaluate(other.ask(), 1, [simulated_response(0.0, text="plain")] * 16)
    repeat = again.evaluate(other.ask(), 1, texts)
    assert (repeat.wins, repeat.ties, repeat.losses) == (result.wins, result.ties, result.losses)
    assert again.judge_calls == 0 and again.cache_hits == 16

    # Raw bytes are refused before anything is stored, naming the checkpoint and position.
    third = study.ask()
    raw = [text.encode("utf-8", "surrogateescape") for text in texts]
    with pytest.raises(ValueError, match=r"trial 2 step 1: generation 0 is bytes, not str"):
        arena.evaluate(third, 1, raw)
    assert arena.trial_players(third.number) == []
    assert not any(arena.check(study).values())
