"""Specification: a hung judge fails its trial and the study goes on; a trial left RUNNING
without a heartbeat is failed by the next worker; ``check`` names a stalled worker."""

from __future__ import annotations

import threading
import time

import optuna
import pytest

from optuna_pandalm import Arena, JudgeRequest, Verdict
from optuna_pandalm.arena._match_play import IDENTICAL_REASON
from optuna_pandalm.attributes import ERROR_ATTR
from optuna_pandalm.errors import JudgeFailedError, JudgeTimeoutError
from optuna_pandalm.judges import PairwiseJudge
from optuna_pandalm.study.judged_study import open_judged_study, optimize
from optuna_pandalm.testing import simulated_prompts, simulated_response

PROMPTS = simulated_prompts(8)
ANSWERS = [simulated_response(1.0)] * 8
BASELINE = ("defaults", [simulated_response(0.0)] * 8)


class _HangsOnce(PairwiseJudge):
    """Hangs on its first call until released (then answers "late"); answers at once after."""

    name = "hangs-once"

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.late_answer_returned = threading.Event()

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        self.calls += 1
        if self.calls == 1:
            self.release.wait(60)
            self.late_answer_returned.set()
            return [Verdict(1, reason="late") for _ in requests]
        return [Verdict(2, reason="in time") for _ in requests]


def _objective(arena):
    def objective(trial):
        arena.evaluate(trial, 1, ANSWERS)
        return arena.finalize(trial)

    return objective


def test_a_hung_judge_fails_its_trial_naming_the_timeout_and_the_next_trial_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    judge = _HangsOnce()
    arena = Arena(
        url, "s", judge, PROMPTS, baseline=BASELINE, batch_size=8, min_games=8, judge_timeout=0.5
    )
    study = open_judged_study(arena, url, base_sampler=optuna.samplers.RandomSampler(seed=0))
    try:
        optimize(study, _objective(arena), arena=arena, n_trials=2)
        hung, after = study.trials
        assert hung.state == optuna.trial.TrialState.FAIL  # not retried: a retry answers
        assert "timed out" in hung.user_attrs[ERROR_ATTR]
        assert "judge_timeout = 0.5 s" in hung.user_attrs[ERROR_ATTR]
        assert after.state == optuna.trial.TrialState.COMPLETE
    finally:
        judge.release.set()
    assert judge.late_answer_returned.wait(10)
    # The late answers (winner 1, "late") are used nowhere: trial 0 has no game, and trial
    # 1's games, on the same requests, are the answers given in time (and, against trial 0's
    # identical answers, certain ties that asked no judge).
    assert arena.match_record(arena.trial_players(0)[0], arena.baseline) == (0, 0, 0)
    reasons = {reason for _, reason in arena.reasons(arena.trial_players(1)[0], limit=100)}
    assert reasons - {IDENTICAL_REASON} == {"in time"}


def test_judge_timeout_error_is_handled_as_a_judge_failure():
    assert issubclass(JudgeTimeoutError, JudgeFailedError)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_a_judge_timeout_that_is_not_a_positive_number_of_seconds_is_refused(bad):
    with pytest.raises(ValueError, match="judge_timeout"):
        Arena("sqlite://", "s", _HangsOnce(), PROMPTS, judge_timeout=bad)


def test_a_remote_judges_default_timeout_is_its_own_http_bound():
    from optuna_pandalm.arena._judge_deadline import call_deadline
    from optuna_pandalm.judges import RemoteJudge

    judge = RemoteJudge("http://judge:8000/v1", "m", timeout=10, max_retries=2, backoff=1)
    # per request: 3 attempts of 10 s, 2 waits of at most 30 s; 16 requests at 8 at once:
    # 2 waves, plus one for the label lookup
    assert call_deadline(judge, 16) == 3 * (3 * 10 + 2 * 30)


# --- a trial whose worker died before its first heartbeat ------------------------------------
def _heartbeat_storage(url: str, grace_period: int):
    from optuna_pandalm.study.optuna_storage import OutageTolerantStorage

    return OutageTolerantStorage(url, heartbeat_interval=1, grace_period=grace_period)


def _arena(url: str) -> Arena:
    from optuna_pandalm.testing import SimulatedJudge

    return Arena(url, "s", SimulatedJudge(), PROMPTS, baseline=BASELINE, batch_size=8)


def test_a_resumed_worker_fails_a_trial_whose_worker_died_before_its_first_heartbeat(
    tmp_path, caplog
):
    from optuna_pandalm.study import check_study

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    arena = _arena(url)
    storage = _heartbeat_storage(url, grace_period=1)
    sampler = optuna.samplers.RandomSampler(seed=0)
    dead = open_judged_study(arena, storage, base_sampler=sampler).ask()  # no heartbeat: ask()
    time.sleep(1.5)  # past the grace period
    resumed = open_judged_study(arena, storage, base_sampler=sampler)
    with caplog.at_level("WARNING", logger="optuna_pandalm"):
        optimize(resumed, _objective(arena), arena=arena, n_trials=1)
    first, second = resumed.trials
    assert first.number == dead.number and first.state == optuna.trial.TrialState.FAIL
    assert "before its first heartbeat" in first.user_attrs[ERROR_ATTR]
    assert f"trial {dead.number} failed" in caplog.text
    assert second.state == optuna.trial.TrialState.COMPLETE
    assert check_study(arena, resumed, grace_period=1)["trials left RUNNING"] == []


def test_a_trial_without_heartbeat_is_left_running_within_the_grace_period(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    arena = _arena(url)
    storage = _heartbeat_storage(url, grace_period=600)
    sampler = optuna.samplers.RandomSampler(seed=0)
    young = open_judged_study(arena, storage, base_sampler=sampler).ask()
    resumed = open_judged_study(arena, storage, base_sampler=sampler)
    optimize(resumed, _objective(arena), arena=arena, n_trials=1)
    assert resumed.trials[young.number].state == optuna.trial.TrialState.RUNNING


def test_without_a_heartbeat_no_running_trial_is_failed(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    arena = _arena(url)
    storage = optuna.storages.RDBStorage(url)  # no heartbeat: running and dead look alike
    sampler = optuna.samplers.RandomSampler(seed=0)
    other = open_judged_study(arena, storage, base_sampler=sampler).ask()
    time.sleep(1.1)
    resumed = open_judged_study(arena, storage, base_sampler=sampler)
    optimize(resumed, _objective(arena), arena=arena, n_trials=1)
    assert resumed.trials[other.number].state == optuna.trial.TrialState.RUNNING


def test_tune_and_the_demo_open_their_study_with_a_heartbeat(tmp_path):
    from optuna_pandalm.study.judged_study import GRACE_PERIOD, HEARTBEAT_INTERVAL

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = open_judged_study(_arena(url), url, base_sampler=optuna.samplers.RandomSampler())
    assert study._storage.get_heartbeat_interval() == HEARTBEAT_INTERVAL
    assert GRACE_PERIOD == 180  # check's default grace period


# --- check names the worker of a trial whose judging stalled ---------------------------------
def test_check_names_the_host_and_process_of_a_trial_whose_judging_stalled(tmp_path):
    import math
    import os
    import socket

    from optuna_pandalm.study import check_study

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    judge = _HangsOnce()
    arena = Arena(url, "s", judge, PROMPTS, baseline=BASELINE, judge_timeout=math.inf)
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    trial = study.ask()
    worker = threading.Thread(target=arena.evaluate, args=(trial, 1, ANSWERS))
    worker.start()
    try:
        while judge.calls == 0:  # the match has begun: its judge call hangs
            time.sleep(0.05)
        time.sleep(1.0)
        stalled = check_study(arena, study, stall_limit=0.5)["trials whose judging stalled"]
        assert len(stalled) == 1
        assert stalled[0].startswith("trial 0: judging step 1 against baseline defaults")
        assert f"worker {socket.gethostname()}:{os.getpid()} (host:pid)" in stalled[0]
        assert check_study(arena, study, stall_limit=600)["trials whose judging stalled"] == []
    finally:
        judge.release.set()
        worker.join(30)
    time.sleep(1.0)  # the trial now trains on (its score reported): no stall
    assert check_study(arena, study, stall_limit=0.5)["trials whose judging stalled"] == []


@pytest.mark.parametrize("bad", ["-5", "0", "nan"])
def test_check_refuses_a_stall_limit_that_is_not_positive_seconds(bad, tmp_path, capsys):
    from optuna_pandalm.commands.cli import main

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["check", "--storage", url, "--study-name", "s", "--stall-limit", bad]) == 2
    assert "--stall-limit must be a positive number of seconds" in capsys.readouterr().err
    assert not (tmp_path / "db.sqlite").exists()  # read-only: nothing created


class _SlowOnce(PairwiseJudge):
    """Takes 2 s on its first call, answers at once after; picklable."""

    name = "slow-once"

    def __init__(self) -> None:
        self.calls = 0

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        self.calls += 1
        if self.calls == 1:
            time.sleep(2)
        return [Verdict(1) for _ in requests]


def test_an_arena_that_abandoned_a_judge_call_still_pickles_and_its_copy_judges(tmp_path):
    import pickle

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    arena = Arena(url, "s", _SlowOnce(), PROMPTS, baseline=BASELINE, judge_timeout=0.2)
    with pytest.raises(JudgeTimeoutError):
        arena.evaluate(0, 1, ANSWERS)
    copy = pickle.loads(pickle.dumps(arena))
    assert copy.evaluate(1, 1, ANSWERS).games == len(PROMPTS)
