"""Specification: a database outage stops no worker and loses no judge call."""

from __future__ import annotations

import threading
import time

import optuna
import pytest

from optuna_pandalm import Arena, PublishCallback, StoreError
from optuna_pandalm.study.check import check_study
from optuna_pandalm.study.optuna_storage import OutageTolerantStorage
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response
from tests.test_store_outage import postgres_url  # noqa: F401 - fixture

PROMPTS = simulated_prompts(16, seed=2)


class _Counting(SimulatedJudge):
    def __init__(self) -> None:
        super().__init__(seed=0)
        self.asked = 0

    def judge(self, requests):
        self.asked += len(requests)
        return super().judge(requests)


def test_verdicts_judged_while_the_database_is_away_are_stored_when_it_returns(monkeypatch):
    judge = _Counting()
    arena = Arena("sqlite://", "s", judge, PROMPTS, seed=0, racing=False, batch_size=8)
    arena.evaluate(0, 1, [simulated_response(0.0, text=f"a{i}") for i in range(16)])
    save = arena.store.save_verdicts
    failures = iter([StoreError("save_verdicts failed on 'sqlite://': database unreachable")])

    def flaky_save(*args, **kwargs):
        error = next(failures, None)
        if error is not None:
            raise error
        return save(*args, **kwargs)

    monkeypatch.setattr(arena.store, "save_verdicts", flaky_save)
    strong = [simulated_response(1.0, text=f"b{i}") for i in range(16)]
    with pytest.raises(StoreError, match="database unreachable"):
        arena.evaluate(1, 1, strong)
    assert judge.asked == 8  # the first batch was judged, then the database was away
    result = arena.evaluate(1, 1, strong)  # the database is back: the study goes on
    assert judge.asked == 16  # the first batch's verdicts were kept, not judged again
    assert result.games == 16 and arena.cache_hits == 8
    assert not any(arena.check().values())


@pytest.mark.postgres
def test_a_worker_rides_out_a_database_restart_and_its_study_goes_on(
    outage_server,
    postgres_url,  # noqa: F811
):
    judge = _Counting()
    arena = Arena(postgres_url, "outage", judge, PROMPTS, seed=0, batch_size=4)
    storage = OutageTolerantStorage(postgres_url, outage_timeout=60)
    study = optuna.create_study(study_name="outage", storage=storage, direction="maximize")
    evaluated = threading.Event()

    def objective(trial: optuna.Trial) -> float:
        quality = trial.suggest_float("quality", -1.0, 1.0)
        for step in (1, 2):
            texts = [
                simulated_response(quality + step, text=f"{trial.number}-{i}") for i in range(16)
            ]
            arena.evaluate(trial, step, texts)
            evaluated.set()
            time.sleep(0.2)
        return arena.finalize(trial)

    errors: list[BaseException] = []

    def work() -> None:
        try:
            study.optimize(objective, n_trials=8, callbacks=[PublishCallback(arena)])
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=work)
    worker.start()
    assert evaluated.wait(60)
    with outage_server.stopped(6):
        pass
    worker.join(300)
    assert not worker.is_alive() and not errors, errors
    states = [t.state for t in study.get_trials()]
    assert len(states) == 8 and optuna.trial.TrialState.FAIL not in states
    assert optuna.trial.TrialState.RUNNING not in states
    assert not any(check_study(Arena.load(postgres_url, "outage"), study).values())
