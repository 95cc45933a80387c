"""Faults: a judge that raises, training that diverges, and the integrity check."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import optuna
import pytest

from optuna_pandalm import Arena, JudgeRequest, PublishCallback
from optuna_pandalm.arena import JudgeFailedError
from optuna_pandalm.judges import PairwiseJudge
from optuna_pandalm.study.check import check_study
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response
from optuna_pandalm.training.callback import JudgeCallback, TrainingDivergedError


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
    games_before = arena.store.version(arena.arena_id)[0]
    broken = Arena(
        url, "f", _Failing(failures=100), simulated_prompts(16), racing=False, judge_backoff=0.01
    )
    study.optimize(_objective(broken), n_trials=1, catch=(JudgeFailedError,))
    failed = study.trials[1]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert "CUDA out of memory" in failed.user_attrs["pandalm_error"]
    assert "failed 4 times" in failed.user_attrs["pandalm_error"]
    assert broken.store.version(broken.arena_id)[0] == games_before  # nothing lost
    assert not any(check_study(broken, study).values())


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
            "optuna_pandalm.commands.cli",
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
    study.optimize(_objective(arena), n_trials=3, callbacks=[PublishCallback(arena)])
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
    for trial in (first, second, third):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert not any(check_study(arena, study).values())


_WORKER = '''
import os, signal, sys
import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna_pandalm import Arena
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
sys.path.insert(0, {root!r})
from tests.test_faults import heartbeat_objective

class Dies(SimulatedJudge):
    """Killed (SIGKILL, no cleanup) on its third call: two batches are committed by then."""
    def judge(self, requests):
        self.batches = getattr(self, "batches", 0) + 1
        if self.batches == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().judge(requests)

storage = RDBStorage({url!r}, heartbeat_interval=1, grace_period=2,
                     heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
arena = Arena({url!r}, "hb", Dies(seed=1), simulated_prompts(48), racing=False, batch_size=8)
study = optuna.load_study(study_name="hb", storage=storage)
study.optimize(heartbeat_objective(arena), n_trials=1)
'''


def heartbeat_objective(arena):
    """One checkpoint per trial whose responses depend only on the parameters, so a retried
    trial writes exactly what the dead one wrote."""

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        quality = 2.0 if trial.number == 0 else -x
        texts = [simulated_response(quality, text=f"x={x:.6f} {i}") for i in range(48)]
        arena.evaluate(trial, 1, texts)
        return arena.finalize(trial)

    return objective


def test_heartbeat_fails_a_killed_workers_trial_and_the_retry_reuses_its_verdicts(tmp_path):
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    url = f"sqlite:///{tmp_path / 'hb.db'}"
    storage = RDBStorage(
        url,
        heartbeat_interval=1,
        grace_period=2,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
    )
    judge = SimulatedJudge(seed=1)
    arena = Arena(url, "hb", judge, simulated_prompts(48), racing=False, batch_size=8)
    study = optuna.create_study(study_name="hb", storage=storage, direction="maximize")
    study.optimize(heartbeat_objective(arena), n_trials=1)  # trial 0: the incumbent

    worker = subprocess.run(
        [
            sys.executable,
            "-c",
            _WORKER.format(url=url, root=str(Path(__file__).resolve().parents[1])),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == -9, worker.stderr  # SIGKILL, in the middle of the match
    dead = study.trials[1]
    assert dead.state == optuna.trial.TrialState.RUNNING  # nobody has noticed yet
    (dead_player,) = arena.trial_players(1)
    assert sum(arena.match_record(dead_player, arena.trial_players(0)[0])) == 16

    time.sleep(3)  # past the grace period: the heartbeat is stale
    study.optimize(heartbeat_objective(arena), n_trials=1)
    trials = study.trials
    assert trials[1].state == optuna.trial.TrialState.FAIL
    retry = trials[2]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 1
    assert retry.params == dead.params
    # The retry's checkpoint has the same responses: the 16 verdicts the dead worker
    # committed come from the cache, only the other 32 reach the judge.
    assert arena.cache_hits == 16 and judge.calls == 32
    (retry_player,) = arena.trial_players(2)
    incumbent_player = arena.trial_players(0)[0]
    assert sum(arena.match_record(retry_player, incumbent_player)) == 48
    # The dead trial's games stay as they were, counted once, and the data is sound.
    assert sum(arena.match_record(dead_player, incumbent_player)) == 16
    assert not any(check_study(arena, study).values())


def test_a_database_connection_dropped_mid_write_is_retried_and_counts_nothing_twice(caplog):
    import sqlalchemy as sa

    from tests.conftest import _postgres_database

    databases = _postgres_database()
    url = next(databases)
    try:
        arena = Arena(
            url, "drop", SimulatedJudge(seed=1), simulated_prompts(24), racing=False, batch_size=8
        )
        study = optuna.create_study(study_name="drop", storage=url, direction="maximize")
        first = study.ask()
        arena.evaluate(first, 1, [simulated_response(0.0, text="a")] * 24)
        admin = sa.create_engine(url)
        dropped = []

        @sa.event.listens_for(arena.store.engine, "before_cursor_execute")
        def kill_connection(connection, cursor, statement, *args):
            # The server ends this session in the middle of the second batch's game insert.
            if statement.startswith("INSERT INTO pandalm_games") and len(dropped) < 2:
                dropped.append(statement)
                if len(dropped) == 2:
                    pid = connection.connection.dbapi_connection.info.backend_pid
                    with admin.connect() as other:
                        other.execute(sa.text(f"select pg_terminate_backend({pid})"))

        second = study.ask()
        with caplog.at_level("WARNING", logger="optuna_pandalm.store"):
            result = arena.evaluate(second, 1, [simulated_response(1.0, text="b")] * 24)
        admin.dispose()
        assert len(dropped) == 2
        assert "database connection lost in save_games" in caplog.text
        assert url.split("@")[0] not in caplog.text  # no credentials in the log
        assert result.wins + result.ties + result.losses == 24
        assert sum(arena.match_record(result.player, result.opponent)) == 24
        study.tell(first, 0.0)
        study.tell(second, result.score)
        assert not any(check_study(arena, study).values())
    finally:
        next(databases, None)
