"""Many workers on one PostgreSQL study: nothing lost, nothing counted twice, one incumbent."""

from __future__ import annotations

import multiprocessing
import time

import optuna
import pytest
import sqlalchemy as sa

from optuna_pandalm.study.check import check_study
from tests.conftest import _postgres_database


@pytest.fixture
def postgres_url():
    yield from _postgres_database()


def _most_games_per_pair_and_prompt(url: str) -> int:
    """Games of one pair on one prompt, whoever was shown first: 1 when nothing is doubled."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        most = connection.execute(
            sa.text(
                "select max(n) from (select count(*) n from pandalm_games "
                "group by least(first_player_id, second_player_id), "
                "greatest(first_player_id, second_player_id), prompt_position) t"
            )
        ).scalar()
    engine.dispose()
    return int(most)


def _worker(url: str, seed: int, n_trials: int, barrier, queue) -> None:
    import traceback

    from tests.studies import run_study

    try:
        barrier.wait()  # all workers create tables and the study at the same moment
        for attempt in range(20):
            try:
                run = run_study(
                    url, seed=0, sampler="tpe", n_trials=n_trials, n_prompts=20, load=True
                )
                break
            except optuna.exceptions.DuplicatedStudyError:
                time.sleep(0.05 * (attempt + 1))
        queue.put((seed, run.arena.incumbent().id, run.judge.calls, run.arena.cache_hits))
    except BaseException:
        queue.put(("error", traceback.format_exc()))
        raise


def test_four_workers_share_one_postgresql_study(postgres_url):
    # Optuna's own schema races when several processes create it at once on PostgreSQL
    # (its enum types); Optuna's advice is to create the storage first. Our pandalm_ tables
    # are still created by the four workers at the same moment.
    optuna.storages.RDBStorage(postgres_url)
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(4), context.Queue()
    workers = [
        context.Process(target=_worker, args=(postgres_url, s, 4, barrier, queue))
        for s in range(4)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(60)
    errors = [r[1] for r in results if r[0] == "error"]
    assert not errors, errors[0]
    assert [w.exitcode for w in workers] == [0] * 4

    from optuna_pandalm import Arena

    study = optuna.load_study(study_name="study-0", storage=postgres_url)
    assert len(study.trials) == 16
    arena = Arena.load(postgres_url, "study-0")
    assert not any(check_study(arena, study).values())  # no duplicates, orphans; scores reproduce
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        verdicts = connection.execute(sa.text("select count(*) from pandalm_verdicts")).scalar()
    engine.dispose()
    assert _most_games_per_pair_and_prompt(postgres_url) == 1
    assert verdicts <= sum(calls for _, _, calls, _ in results)  # every call stored at most once
    final = arena.incumbent().id
    for _ in range(2):  # every process computes the same incumbent from the same games
        assert Arena.load(postgres_url, "study-0").incumbent().id == final


def _dying_worker(url: str, barrier, queue) -> None:
    """A worker whose judge is SIGKILLed on its 5th call, in the middle of a match."""
    import os
    import signal

    import tests.studies as studies
    from optuna_pandalm.testing import SimulatedJudge

    class Dies(SimulatedJudge):
        def judge(self, requests):
            if self.calls >= 4 * 12:  # batches of 12: the 5th batch never returns
                os.kill(os.getpid(), signal.SIGKILL)
            return super().judge(requests)

    studies.SimulatedJudge = Dies
    _worker(url, 99, 4, barrier, queue)


def test_a_worker_killed_mid_match_loses_nothing_and_a_restart_finishes(postgres_url):
    optuna.storages.RDBStorage(postgres_url)
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_dying_worker, args=(postgres_url, barrier, queue))]
    workers += [
        context.Process(target=_worker, args=(postgres_url, s, 4, barrier, queue))
        for s in range(1, 4)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=600) for _ in workers[1:]]  # the killed one says nothing
    for worker in workers:
        worker.join(60)
    errors = [r[1] for r in results if r[0] == "error"]
    assert not errors, errors[0]
    assert workers[0].exitcode == -9 and [w.exitcode for w in workers[1:]] == [0] * 3

    from optuna_pandalm import Arena
    from tests.studies import run_study

    # Restart: a new worker finishes the study on the same storage.
    run_study(postgres_url, seed=0, sampler="tpe", n_trials=4, n_prompts=20, load=True)
    study = optuna.load_study(study_name="study-0", storage=postgres_url)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.RUNNING) == 1  # the killed worker's trial
    assert (
        states.count(optuna.trial.TrialState.COMPLETE)
        + states.count(optuna.trial.TrialState.PRUNED)
        == len(states) - 1
    )
    arena = Arena.load(postgres_url, "study-0")
    problems = check_study(arena, study)
    killed = next(t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING)
    running = problems.pop("trials left RUNNING")  # no heartbeat in this test: check says so
    assert len(running) == 1 and running[0].startswith(f"trial {killed}: RUNNING")
    assert "with no heartbeat" in running[0] and "state=TrialState.FAIL" in running[0]
    assert not any(problems.values())
    assert _most_games_per_pair_and_prompt(postgres_url) == 1
