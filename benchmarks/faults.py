"""Faults: four workers on one PostgreSQL study, one SIGKILLed, the database down 30 s.

The workers start at the same instant on an empty database (no study created first), each
with ``Arena(url, ...)`` and Optuna's storage through
:class:`~optuna_pandalm.study.optuna_storage.OutageTolerantStorage` with a heartbeat. While they
run, worker 0 is killed with SIGKILL and, later, the PostgreSQL server is stopped for 30 s
and started again. Printed (one JSON document): trials by state, how long the outage was,
verdicts lost by the surviving workers (judged but not stored: must be 0), verdicts the
killed worker had judged but not stored (its batch in flight), and ``check``. With
``--store-timeout`` shorter than ``--outage``, the workers give up during the outage and die
with verdicts unsaved; their verdict journal (``docs/storage.md``) keeps them, and an
``Arena`` opened afterwards on the same machine stores them: ``verdicts_lost`` counts, for
every worker (the killed one included), what the judge logged as answered and the database
does not hold after that replay (must be 0), ``verdicts_judged_twice`` the keys the judges
answered more than once. Needs the throwaway server of ``.ci/postgres.sh`` (its data folder
and binaries, to stop it):

    eval "$(bash .ci/postgres.sh)"
    python benchmarks/faults.py --trials 40
    python benchmarks/faults.py --trials 12 --kill-at 45 --outage-at 35 --outage 20 \
        --store-timeout 5 --judge-delay 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _worker(
    url: str,
    seed: int,
    n_trials: int,
    log: str,
    barrier,
    timeout: float | None,
    judge_delay: float,
) -> None:
    import logging

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner, PublishCallback
    from optuna_pandalm.store import DEFAULT_OUTAGE_TIMEOUT_S, Store, text_hash
    from optuna_pandalm.study.optuna_storage import OutageTolerantStorage
    from optuna_pandalm.testing import Landscape, SimulatedJudge, simulated_prompts

    logging.basicConfig(level=logging.WARNING, format=f"[worker {seed}] %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prompts = simulated_prompts(24)
    prompt_hash = {p.instruction: p.hash for p in prompts}

    class Logged(SimulatedJudge):
        """Writes each judged request's cache key down as soon as it is judged."""

        def judge(self, requests):
            time.sleep(judge_delay)  # a real judge's cost: the outage finds it judging
            verdicts = super().judge(requests)
            with open(log, "a") as judged:
                for r in requests:
                    first, second = text_hash(r.response_1), text_hash(r.response_2)
                    judged.write(f"{prompt_hash[r.instruction]} {first} {second}\n")
            return verdicts

    barrier.wait()  # every worker opens the empty database at the same instant
    patience = DEFAULT_OUTAGE_TIMEOUT_S if timeout is None else timeout
    store = Store(url, outage_timeout=patience, prepare_optuna=True)
    arena = Arena(store, "faults", Logged(seed=0), prompts, seed=0)
    storage = OutageTolerantStorage(  # Optuna's calls ride out the whole outage
        url,
        heartbeat_interval=5,
        grace_period=60,  # longer than the outage, so live trials are never failed for it
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
    )
    study = optuna.create_study(
        study_name="faults",
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=BradleyTerrySampler(arena, optuna.samplers.TPESampler(seed=seed)),
        pruner=JudgePruner(arena),
    )
    landscape = Landscape("narrow_lr", seed=0)

    def objective(trial: optuna.Trial) -> float:
        params = Landscape.suggest(trial)
        for epoch in range(1, landscape.epochs + 1):
            texts = landscape.generations(params, epoch, prompts, key=(seed, trial.number))
            arena.evaluate(trial, epoch, texts)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return arena.finalize(trial)

    study.optimize(objective, n_trials=n_trials, callbacks=[PublishCallback(arena)])


def _pg_ctl(action: str) -> None:
    data = os.environ["OPTUNA_PANDALM_TEST_POSTGRES_DATA"]
    binary = Path(os.environ["OPTUNA_PANDALM_TEST_POSTGRES_BIN"]) / "pg_ctl"
    port = os.environ.get("PGPORT_TEST", "54329")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c max_connections=200"
    command = [str(binary), "-D", data, "-w", "-l", f"{data}/log"]
    command += ["stop", "-m", "fast"] if action == "stop" else ["-o", options, "start"]
    if os.getuid() == 0:
        command = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{c}'" for c in command)]
    subprocess.run(command, check=True, capture_output=True)


def main() -> None:
    import sqlalchemy as sa

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=40, help="per worker")
    parser.add_argument("--kill-at", type=float, default=20.0, help="seconds: SIGKILL worker 0")
    parser.add_argument("--outage-at", type=float, default=60.0, help="seconds: stop the server")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds the server is down")
    parser.add_argument(
        "--store-timeout",
        type=float,
        default=None,
        help="the outage_timeout of the workers' arena store (default: the store's; their "
        "Optuna storage keeps its default); shorter than --outage, a worker dies in the "
        "outage with verdicts the store did not take, which its journal keeps",
    )
    parser.add_argument(
        "--judge-delay", type=float, default=0.0, help="seconds each judge call takes"
    )
    args = parser.parse_args()
    base = os.environ.get("OPTUNA_PANDALM_TEST_POSTGRES_URL")
    if not base or "OPTUNA_PANDALM_TEST_POSTGRES_DATA" not in os.environ:
        parser.error('start the throwaway server first: eval "$(bash .ci/postgres.sh)"')
    import optuna

    from optuna_pandalm import Arena
    from optuna_pandalm.store import JOURNAL_ENV
    from optuna_pandalm.study import check_study
    from optuna_pandalm.testing import SimulatedJudge, simulated_prompts

    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    name = f"faults_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(base).set(database=name).render_as_string(hide_password=False)
    logs = Path(os.environ["OPTUNA_PANDALM_TEST_POSTGRES_DATA"]) / name
    logs.mkdir()
    os.environ[JOURNAL_ENV] = str(logs / "journal")  # the workers' (spawned: inherited)
    try:
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(args.workers)
        workers = [
            context.Process(
                target=_worker,
                args=(
                    url,
                    seed,
                    args.trials,
                    str(logs / f"{seed}.log"),
                    barrier,
                    args.store_timeout,
                    args.judge_delay,
                ),
            )
            for seed in range(args.workers)
        ]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        time.sleep(args.kill_at)
        os.kill(workers[0].pid, signal.SIGKILL)
        print(f"[faults] {time.perf_counter() - start:.0f} s: worker 0 killed", file=sys.stderr)
        time.sleep(max(0.0, args.outage_at - (time.perf_counter() - start)))
        _pg_ctl("stop")
        down = time.perf_counter()
        print(f"[faults] {down - start:.0f} s: database stopped", file=sys.stderr)
        time.sleep(args.outage)
        _pg_ctl("start")
        outage = time.perf_counter() - down
        print(f"[faults] {time.perf_counter() - start:.0f} s: database back", file=sys.stderr)
        for worker in workers:
            worker.join()
        minutes = (time.perf_counter() - start) / 60

        def stored_keys() -> set[tuple[str, ...]]:
            engine = sa.create_engine(url)
            with engine.connect() as connection:
                query = "select prompt_hash, response_1_hash, response_2_hash "
                query += "from pandalm_verdicts"
                keys = {tuple(row) for row in connection.execute(sa.text(query))}
            engine.dispose()
            return keys

        def answered(seeds) -> list[tuple[str, ...]]:
            keys = []
            for seed in seeds:
                path = logs / f"{seed}.log"
                if path.exists():
                    keys += [tuple(line.split()) for line in path.read_text().splitlines()]
            return keys

        def judged(seeds) -> set[tuple[str, ...]]:
            return set(answered(seeds))

        before_replay = stored_keys()
        # The next worker on this machine: opening its arena stores the journal.
        Arena(url, "faults", SimulatedJudge(seed=0), simulated_prompts(24), seed=0)
        stored = stored_keys()
        every = answered(range(args.workers))

        study = optuna.load_study(study_name="faults", storage=url)
        problems = check_study(Arena.load(url, "faults"), study)
        states = [t.state.name for t in study.trials]
        print(
            json.dumps(
                {
                    "benchmark": "faults",
                    "workers": args.workers,
                    "exit_codes": [w.exitcode for w in workers],
                    "outage_seconds": round(outage, 1),
                    "minutes": round(minutes, 2),
                    "trials": len(states),
                    **{s.lower(): states.count(s) for s in sorted(set(states))},
                    "verdicts_stored": len(stored),
                    "verdicts_lost_by_surviving_workers": len(
                        judged(range(1, args.workers)) - stored
                    ),
                    "verdicts_in_flight_in_the_killed_worker": len(judged([0]) - stored),
                    "store_timeout": args.store_timeout,
                    "verdicts_judged": len(every),
                    "verdicts_lost_before_the_journal_replay": len(set(every) - before_replay),
                    "verdicts_stored_from_the_journal": len(stored - before_replay),
                    "verdicts_lost": len(set(every) - stored),
                    "verdicts_judged_twice": len(every) - len(set(every)),
                    "verdicts_judged_twice_by_one_worker": sum(
                        len(keys) - len(set(keys))
                        for keys in (answered([seed]) for seed in range(args.workers))
                    ),
                    "check_problems": {k: v for k, v in problems.items() if v},
                },
                indent=2,
            )
        )
    finally:
        shutil.rmtree(logs)
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
