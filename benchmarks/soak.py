"""Soak: many workers x many trials on one PostgreSQL study, with SimulatedJudge.

Each worker runs ``study.optimize`` (BradleyTerrySampler(TPE) + JudgePruner, 24 prompts,
4 checkpoints per trial on the ``narrow_lr`` landscape) on one study in a fresh database.
Printed: trials per minute (all workers), p50 / p95 of ``Arena.evaluate`` time excluding
the judge (storage, matches, fits), the database size, and verdicts lost (verdicts the judge
returned whose key is not in ``pandalm_verdicts`` afterwards: must be 0), plus
``Arena.check`` on the result. Needs a PostgreSQL server:

    OPTUNA_PANDALM_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:54329/postgres \\
        python benchmarks/soak.py --workers 4 --trials 200
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from queue import Empty

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _worker(url: str, seed: int, n_trials: int, queue, profile: str | None) -> None:
    import cProfile

    import optuna
    from simulated_worker import RecordingJudge, landscape_objective

    from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner, PublishCallback
    from optuna_pandalm.testing import Landscape, simulated_prompts

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prompts = simulated_prompts(24)
    judge = RecordingJudge(prompts)
    landscape = Landscape("narrow_lr", seed=0)
    arena = Arena(url, "soak", judge, prompts, seed=0)
    study = optuna.load_study(
        study_name="soak",
        storage=url,
        sampler=BradleyTerrySampler(arena, optuna.samplers.TPESampler(seed=seed)),
        pruner=JudgePruner(arena),
    )
    evaluate_ms: list[float] = []
    objective = landscape_objective(
        arena,
        judge,
        landscape,
        prompts,
        epochs=landscape.epochs,
        key=seed,
        evaluate_ms=evaluate_ms,
    )

    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    study.optimize(objective, n_trials=n_trials, callbacks=[PublishCallback(arena)])
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(Path(profile) / f"worker{seed}.prof"))
    queue.put((evaluate_ms, sorted(judge.judged), arena.judge_calls))


def _finished(url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            query = "select count(*) from trials where state in ('COMPLETE', 'PRUNED', 'FAIL')"
            return int(connection.execute(sa.text(query)).scalar())
    finally:
        engine.dispose()


def main() -> None:
    import sqlalchemy as sa
    from simulated_worker import stored_verdict_keys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=200, help="per worker")
    parser.add_argument("--url", default=os.environ.get("OPTUNA_PANDALM_TEST_POSTGRES_URL"))
    parser.add_argument("--profile", metavar="DIR", help="write each worker's cProfile here")
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set OPTUNA_PANDALM_TEST_POSTGRES_URL (a PostgreSQL server)")
    import optuna

    from optuna_pandalm import Arena
    from optuna_pandalm.study import check_study

    admin = sa.create_engine(args.url, isolation_level="AUTOCOMMIT")
    name = f"soak_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(args.url).set(database=name).render_as_string(hide_password=False)
    try:
        optuna.create_study(study_name="soak", storage=url, direction="maximize")
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        workers = [
            context.Process(target=_worker, args=(url, seed, args.trials, queue, args.profile))
            for seed in range(args.workers)
        ]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        results = []
        while len(results) < len(workers):
            try:
                results.append(queue.get(timeout=60))
            except Empty:  # a progress line once a minute
                done = _finished(url)
                elapsed = (time.perf_counter() - start) / 60
                print(f"[soak] {elapsed:.1f} min: {done} trials finished", file=sys.stderr)
        for worker in workers:
            worker.join()
        minutes = (time.perf_counter() - start) / 60
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            stored = stored_verdict_keys(connection)
            size = connection.execute(sa.text("select pg_database_size(current_database())"))
            size_mb = size.scalar() / 2**20
            n_games = connection.execute(sa.text("select count(*) from pandalm_games")).scalar()
        engine.dispose()
        judged = {tuple(key) for _, keys, _ in results for key in keys}
        times = sorted(t for ms, _, _ in results for t in ms)
        study = optuna.load_study(study_name="soak", storage=url)
        problems = check_study(Arena.load(url, "soak"), study)
        states = [t.state.name for t in study.trials]
        print(
            json.dumps(
                {
                    "benchmark": "soak",
                    "workers": args.workers,
                    "trials": len(states),
                    "complete": states.count("COMPLETE"),
                    "pruned": states.count("PRUNED"),
                    "failed": states.count("FAIL"),
                    "minutes": round(minutes, 2),
                    "trials_per_minute": round(len(states) / minutes, 1),
                    "evaluations": len(times),
                    "evaluate_ms_excluding_judge_p50": round(statistics.median(times), 1),
                    "evaluate_ms_excluding_judge_p95": round(times[int(0.95 * len(times))], 1),
                    "judge_calls": sum(calls for _, _, calls in results),
                    "verdicts_stored": len(stored),
                    "games": n_games,
                    "verdicts_lost": len(judged - stored),
                    "database_mb": round(size_mb, 1),
                    "check_problems": {k: len(v) for k, v in problems.items() if v},
                },
                indent=2,
            )
        )
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
