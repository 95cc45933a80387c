"""Many worker processes on one PostgreSQL study: connections, throughput, nothing lost.

Each of ``--workers`` processes opens the study as ``tune`` does (an ``Arena`` and
``open_judged_study``: ``OutageTolerantStorage`` with Optuna's heartbeat,
``BradleyTerrySampler(TPE)``, ``JudgePruner``) and runs ``--trials`` small simulated trials
(``--prompts`` prompts, ``--epochs`` checkpoints each) with a ``SimulatedJudge`` that sleeps
``--judge-latency`` seconds per batch, as a shared judge server would. Meanwhile the parent
reads ``pg_stat_activity`` every 0.2 s (its own connection excluded; with several workers
each worker's connections are named ``worker-i``). Printed (JSON): trials per minute (all
workers), the peak number of connections (all, and per ``application_name``), the most
connections one worker held while its judge ran (target: 2), transactions held across a
judge call (idle in a transaction since before the call began; must be 0),
``Arena.evaluate`` p50 / p95 excluding the judge, verdicts lost (returned by the judge but
not in ``pandalm_verdicts``; must be 0) and ``check``'s problems (must be none).

Against a server of your own (the benchmark makes a database there and drops it):

    python benchmarks/many_workers.py --url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Or on a throwaway server with ``max_connections=100`` started by ``.ci/postgres.sh`` on
port ``PGPORT_TEST`` (54331 by default here), stopped and removed afterwards (needs
PostgreSQL's server binaries; run as root or as the user that owns them):

    python benchmarks/many_workers.py --own-server --workers 32

``--pgbouncer`` puts ``.ci/pgbouncer.sh`` (transaction mode) between the workers and the
server; ``--grpc`` sends the workers' Optuna storage calls through Optuna's gRPC storage
proxy (one process, ``OutageTolerantStorage`` inside) while their arenas use the database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY = "many-workers"
SAMPLE_EVERY_S = 0.2
GRPC_PROXY_THREADS = 10  # run_grpc_proxy_server's default thread pool


def _worker(
    url: str, index: int, n_trials: int, options: dict[str, Any], judging: Any, queue: Any
) -> None:
    import traceback

    try:
        queue.put(("done", index, _run_worker(url, index, n_trials, options, judging)))
    except BaseException:
        queue.put(("error", index, traceback.format_exc()))
        raise


def _run_worker(
    url: str, index: int, n_trials: int, options: dict[str, Any], judging: Any
) -> dict[str, Any]:
    import optuna
    import sqlalchemy as sa
    from simulated_worker import RecordingJudge, landscape_objective

    from optuna_pandalm import Arena, PublishCallback
    from optuna_pandalm.study.grpc_proxy import OutageTolerantGrpcStorageProxy
    from optuna_pandalm.study.judged_study import open_judged_study
    from optuna_pandalm.testing import Landscape, simulated_prompts

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened = OpenConnections()  # before the first connection
    if options["name_connections"]:  # so the watch can tell the workers' connections apart
        url = (
            sa.make_url(url)
            .update_query_dict({"application_name": f"worker-{index}"})
            .render_as_string(hide_password=False)
        )
    prompts = simulated_prompts(options["prompts"])
    judge = RecordingJudge(prompts, latency=options["judge_latency"], judging=judging, index=index)
    landscape = Landscape("narrow_lr", seed=0)
    size = options["prompts"]
    arena = Arena(url, STUDY, judge, prompts, seed=0, batch_size=size, min_games=size)
    sampler = optuna.samplers.TPESampler(seed=index, n_startup_trials=4)
    storage: Any = url
    if "grpc_port" in options:
        # Rides out a restart of the proxy (--grpc-outage); Optuna's own client would fail.
        storage = OutageTolerantGrpcStorageProxy(host="127.0.0.1", port=options["grpc_port"])
    with contextlib.redirect_stderr(open(os.devnull, "w")):  # heartbeat: ExperimentalWarning
        study = open_judged_study(arena, storage, base_sampler=sampler)
    evaluate_ms: list[float] = []

    objective = landscape_objective(
        arena,
        judge,
        landscape,
        prompts,
        epochs=options["epochs"],
        key=index,
        evaluate_ms=evaluate_ms,
    )
    study.optimize(objective, n_trials=n_trials, callbacks=[PublishCallback(arena)])
    return {
        "evaluate_ms": evaluate_ms,
        "judged": sorted(judge.judged),
        "peak_open": opened.peak,
        "peak_open_names": opened.peak_names,
    }


class OpenConnections:
    """This process's open database connections, counted exactly from the first one on
    (SQLAlchemy's pool events, every engine: ours, Optuna's, any made at start-up): the
    most open at once, and their ``application_name`` then. Sampling ``pg_stat_activity``
    can miss a peak that lasts milliseconds; this cannot."""

    def __init__(self) -> None:
        import sqlalchemy as sa

        self._open: dict[int, str] = {}
        self._lock = threading.Lock()
        self.peak = 0
        self.peak_names: list[str] = []
        sa.event.listen(sa.pool.Pool, "connect", self._connected)
        sa.event.listen(sa.pool.Pool, "close", lambda dbapi, _record: self._closed(dbapi))
        sa.event.listen(sa.pool.Pool, "close_detached", self._closed)

    def _connected(self, dbapi: Any, _record: Any) -> None:
        info = getattr(dbapi, "info", None)  # psycopg 3: the connection's parameters
        name = info.get_parameters().get("application_name", "?") if info else "?"
        with self._lock:
            self._open[id(dbapi)] = name
            if len(self._open) > self.peak:
                self.peak, self.peak_names = len(self._open), sorted(self._open.values())

    def _closed(self, dbapi: Any) -> None:
        with self._lock:
            self._open.pop(id(dbapi), None)


class _Sampling:
    """A thread that runs ``_run`` (which samples every :data:`SAMPLE_EVERY_S` until
    ``_stop`` is set) for the length of a ``with`` block."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class ConnectionWatch(_Sampling):
    """Samples ``pg_stat_activity`` of one database in a thread, until stopped.

    A connection belongs to worker ``i`` when it is named ``worker-i`` (the benchmark names
    each worker's connections so when it runs several) or when there is one worker.
    ``judging[i]`` is the wall-clock start of worker ``i``'s running judge call (0: none);
    a connection of that worker idle in a transaction since before then holds the
    transaction across the judge call (one machine: one clock)."""

    def __init__(self, admin_url: str, database: str, judging: Any):
        import sqlalchemy as sa

        self._engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
        self._database = database
        self._judging = judging
        self.peak = 0
        self.peak_by_name: Counter[str] = Counter()
        # The most connections one worker held while its judge ran (None: never sampled),
        # and at any time (start-up included).
        self.peak_per_worker_while_judging: int | None = None
        self.peak_per_worker = 0
        self.held_across_judge: list[tuple[Any, ...]] = []
        self.samples = 0
        super().__init__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._engine.dispose()

    def _worker_of(self, name: str) -> int | None:
        if not name:  # a backend still starting up: not yet a worker's connection
            return None
        if len(self._judging) == 1:
            return 0
        if name.startswith("worker-") and name[len("worker-") :].isdigit():
            return int(name[len("worker-") :])
        return None

    def _run(self) -> None:
        import sqlalchemy as sa

        query = sa.text(
            "select application_name, state, extract(epoch from state_change), "
            "left(query, 80) from pg_stat_activity where datname = :database "
            "and pid <> pg_backend_pid()"
        )
        with self._engine.connect() as connection:
            while not self._stop.wait(SAMPLE_EVERY_S):
                before = self._judging[:]
                rows = connection.execute(query, {"database": self._database}).all()
                after = self._judging[:]
                # Judge calls that ran, the same one, all through the sample.
                pairs = enumerate(zip(before, after, strict=True))
                judging = {i for i, (b, a) in pairs if b and b == a}
                self.samples += 1
                self.peak = max(self.peak, len(rows))
                for name, count in Counter(r[0] for r in rows).items():
                    self.peak_by_name[name] = max(self.peak_by_name[name], count)
                held: Counter[int] = Counter()
                per_worker = Counter(self._worker_of(r[0]) for r in rows)
                per_worker.pop(None, None)
                self.peak_per_worker = max([self.peak_per_worker, *per_worker.values()])
                for name, state, changed, text in rows:
                    worker = self._worker_of(name)
                    if worker not in judging:
                        continue
                    held[worker] += 1
                    if state == "idle in transaction" and float(changed) < before[worker]:
                        self.held_across_judge.append((name, text))
                for count in held.values():
                    peak = self.peak_per_worker_while_judging or 0
                    self.peak_per_worker_while_judging = max(peak, count)


class BouncerWatch(_Sampling):
    """Samples PgBouncer's ``SHOW CLIENTS`` and ``SHOW POOLS`` (its admin console) in a
    thread, until stopped: the per-worker view through a pooler, where a server connection
    keeps the ``application_name`` of whichever client used it last.

    Kept: the most client connections of one ``application_name`` (a worker's, ours and
    Optuna's together), of all workers and in each state, the most clients waiting for a
    server connection and the longest wait (the pool's ``maxwait``, a client's ``wait``) in
    the workers' database; and the first sample in which a client waited over
    :data:`SLOW_WAIT_S` (what every client and pool was doing then), to explain a stall."""

    SLOW_WAIT_S = 5.0

    def __init__(self, port: int, database: str):
        self._conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=pgbouncer"
        self._database = database
        self.peak_clients = 0
        self.peak_clients_by_name: Counter[str] = Counter()
        self.peak_clients_by_state: Counter[str] = Counter()
        self.peak_waiting = 0
        self.longest_wait_s = 0.0
        self.first_slow_wait: dict[str, Any] | None = None
        super().__init__()

    @staticmethod
    def _show(connection: Any, what: str) -> list[dict[str, Any]]:
        cursor = connection.execute(f"SHOW {what}")
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _run(self) -> None:
        import psycopg

        # The admin console speaks only the simple query protocol: a client-side cursor.
        with psycopg.connect(
            self._conninfo, autocommit=True, cursor_factory=psycopg.ClientCursor
        ) as connection:
            while not self._stop.wait(SAMPLE_EVERY_S):
                clients = [
                    c for c in self._show(connection, "CLIENTS") if c["database"] == self._database
                ]
                pools = [
                    p for p in self._show(connection, "POOLS") if p["database"] == self._database
                ]
                self.peak_clients = max(self.peak_clients, len(clients))
                for state, count in Counter(c["state"] for c in clients).items():
                    self.peak_clients_by_state[state] = max(
                        self.peak_clients_by_state[state], count
                    )
                client_wait = max((c["wait"] + c["wait_us"] / 1e6 for c in clients), default=0)
                self.longest_wait_s = max(self.longest_wait_s, client_wait)
                if client_wait > self.SLOW_WAIT_S and self.first_slow_wait is None:
                    self.first_slow_wait = {"pools": pools, "clients": clients}
                for name, count in Counter(c["application_name"] for c in clients).items():
                    self.peak_clients_by_name[name] = max(self.peak_clients_by_name[name], count)
                for pool in pools:
                    self.peak_waiting = max(self.peak_waiting, pool["cl_waiting"])
                    wait = pool["maxwait"] + pool["maxwait_us"] / 1e6
                    self.longest_wait_s = max(self.longest_wait_s, wait)
                    if wait > self.SLOW_WAIT_S and self.first_slow_wait is None:
                        self.first_slow_wait = {"pools": pools, "clients": clients}

    def figures(self) -> dict[str, Any]:
        workers = {n: c for n, c in self.peak_clients_by_name.items() if n.startswith("worker-")}
        return {
            "pgbouncer_peak_clients": self.peak_clients,
            "pgbouncer_peak_clients_per_worker": max(workers.values(), default=None),
            "pgbouncer_peak_clients_by_application": dict(
                sorted(self.peak_clients_by_name.items())
            ),
            "pgbouncer_peak_clients_by_state": dict(self.peak_clients_by_state),
            "pgbouncer_peak_clients_waiting": self.peak_waiting,
            "pgbouncer_longest_wait_s": round(self.longest_wait_s, 1),
            "pgbouncer_first_slow_wait": self.first_slow_wait,
        }


def _results(queue: Any, processes: list[Any], timeout: float) -> list[tuple[str, int, Any]]:
    """Every worker's result; a worker that died without one fails the run at once."""
    results: list[tuple[str, int, Any]] = []
    deadline = time.monotonic() + timeout
    while len(results) < len(processes):
        try:
            results.append(queue.get(timeout=5))
        except Empty:
            reported = {index for _, index, _ in results}
            dead = [
                i for i, p in enumerate(processes) if p.exitcode is not None and i not in reported
            ]
            if dead or time.monotonic() > deadline:
                for process in processes:
                    process.kill()
                message = f"workers {dead} died without a result (or timed out)"
                raise RuntimeError(message) from None
    return results


@contextlib.contextmanager
def _database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server of ``admin_url``, dropped afterwards; yields its URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"many_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def run(
    admin_url: str,
    *,
    workers: int = 32,
    trials: int = 4,
    judge_latency: float = 1.0,
    prompts: int = 8,
    epochs: int = 2,
    worker_url: Any = None,
    pgbouncer_port: int | None = None,
    grpc: bool = False,
    proxy_outage_s: float | None = None,
    after: Any = None,
    timeout: float = 3600,
) -> dict[str, Any]:
    """Run the benchmark in a fresh database on ``admin_url``'s server; returns the figures.

    ``worker_url(url)`` turns the database's URL into the one the workers use (e.g. through
    PgBouncer); the watch and the checks read the database directly. With ``grpc``, the
    workers' Optuna storage is a ``GrpcStorageProxy`` to :func:`grpc_proxy` (their arenas
    still use the database); with ``proxy_outage_s`` too, the proxy is killed once the
    study has a finished trial and started again that many seconds later (times under
    ``"proxy_outage"``). ``after(url, proxy_port)`` is called before the database is
    dropped (its result under ``"after"``). ``pgbouncer_port``: the workers go through that
    PgBouncer (``worker_url``), whose clients and pools are watched too (:class:`BouncerWatch`)."""
    import optuna
    import sqlalchemy as sa
    from simulated_worker import stored_verdict_keys

    from optuna_pandalm import Arena
    from optuna_pandalm.study import check_study

    options: dict[str, Any] = {
        "judge_latency": judge_latency,
        "prompts": prompts,
        "epochs": epochs,
        # With one worker every connection is its own, and keeps our names (ours, Optuna's).
        "name_connections": workers > 1,
    }
    with _database(admin_url) as url, contextlib.ExitStack() as stack:
        database = sa.make_url(url).database
        assert database is not None
        workers_url = worker_url(url) if worker_url else url
        outage: list[float] = []
        if grpc:
            proxy = stack.enter_context(grpc_proxy(workers_url))
            options["grpc_port"] = proxy.port
            if proxy_outage_s is not None:
                stopped = threading.Event()
                stack.callback(stopped.set)
                outage = _outage_of(proxy, url, proxy_outage_s, stopped)
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        judging = context.Array("d", workers, lock=False)
        processes = [
            context.Process(target=_worker, args=(workers_url, i, trials, options, judging, queue))
            for i in range(workers)
        ]
        bouncer_watch = BouncerWatch(pgbouncer_port, database) if pgbouncer_port else None
        with (
            ConnectionWatch(admin_url, database, judging) as watch,
            bouncer_watch or contextlib.nullcontext(),
        ):
            start = time.perf_counter()
            for process in processes:
                process.start()
            results = _results(queue, processes, timeout)
            minutes = (time.perf_counter() - start) / 60
            for process in processes:
                process.join(60)
        errors = [r[2] for r in results if r[0] == "error"]
        if errors:
            raise RuntimeError(f"{len(errors)} worker(s) failed; the first:\n{errors[0]}")
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            stored = stored_verdict_keys(connection)
        engine.dispose()
        judged = {tuple(key) for _, _, result in results for key in result["judged"]}
        times = sorted(t for _, _, result in results for t in result["evaluate_ms"])
        study = optuna.load_study(study_name=STUDY, storage=url)
        problems = check_study(Arena.load(url, STUDY), study)
        states = [t.state.name for t in study.get_trials(deepcopy=False)]
        after_result = after(url, options.get("grpc_port")) if after else None
    return {
        "after": after_result,
        # How long the proxy was down ([] never killed: the study ended first).
        "proxy_down_s": [round(outage[1] - outage[0], 1)] if len(outage) == 2 else outage,
        "benchmark": "many_workers",
        "workers": workers,
        "trials": len(states),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "exit_codes": sorted({p.exitcode for p in processes}, key=str),
        "minutes": round(minutes, 2),
        "trials_per_minute": round(len(states) / minutes, 1),
        "judge_latency_s": judge_latency,
        "peak_connections": watch.peak,
        "peak_connections_by_application": dict(watch.peak_by_name),
        "peak_connections_per_worker_while_judging": watch.peak_per_worker_while_judging,
        "peak_connections_per_worker_sampled": watch.peak_per_worker,
        "peak_connections_per_worker_counted": max(r[2]["peak_open"] for r in results),
        "peak_connections_counted_names": max((r[2]["peak_open_names"] for r in results), key=len),
        "transactions_held_across_judge": len(watch.held_across_judge),
        "held_across_judge_examples": sorted(set(watch.held_across_judge))[:5],
        "evaluations": len(times),
        "evaluate_ms_excluding_judge_p50": round(statistics.median(times), 1),
        "evaluate_ms_excluding_judge_p95": round(times[int(0.95 * (len(times) - 1))], 1),
        "verdicts_lost": len(judged - stored),
        **(bouncer_watch.figures() if bouncer_watch else {}),
        "check_problems": {kind: len(found) for kind, found in problems.items() if found},
    }


def _serve_grpc_proxy(url: str, port: int) -> None:
    import optuna

    from optuna_pandalm.study.optuna_storage import OutageTolerantStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The proxy owns the database connections, one per server thread (10 by default), and
    # rides out database outages for every worker behind it.
    pool = {"pool_size": GRPC_PROXY_THREADS, "max_overflow": 0}
    storage = optuna.storages.get_storage(OutageTolerantStorage(url, pool))
    optuna.storages.run_grpc_proxy_server(storage, host="127.0.0.1", port=port)


class GrpcProxy:
    """Optuna's gRPC storage proxy (``run_grpc_proxy_server`` around
    ``OutageTolerantStorage(url)``) in a process of its own on a free loopback port, which
    can be killed and started again on the same port (an outage of the proxy)."""

    def __init__(self, url: str):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._url = url
        self._process: Any = None

    def start(self) -> None:
        """Start the proxy and wait until it answers."""
        import optuna

        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve_grpc_proxy, args=(self._url, self.port), daemon=True
        )
        self._process.start()
        client = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=self.port)
        client.wait_server_ready(timeout=120)
        client.close()

    def kill(self) -> None:
        """Kill the proxy at once (SIGKILL: calls in flight are cut)."""
        if self._process is not None:
            self._process.kill()
            self._process.join(30)
            self._process = None


@contextlib.contextmanager
def grpc_proxy(url: str) -> Iterator[GrpcProxy]:
    """A running :class:`GrpcProxy` for ``url`` until the block ends."""
    proxy = GrpcProxy(url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.kill()


def _outage_of(proxy: GrpcProxy, url: str, seconds: float, stop: threading.Event) -> list[float]:
    """In a thread: once the study has a finished trial, kill the proxy, and start it again
    ``seconds`` later. Returns [time killed, time back] (filled in as it happens)."""
    import sqlalchemy as sa

    times: list[float] = []

    def outage() -> None:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        query = sa.text("select count(*) from trials where state <> 'RUNNING'")
        while not stop.wait(0.2):
            with contextlib.suppress(sa.exc.DBAPIError), engine.connect() as connection:
                if connection.execute(query).scalar():
                    break
        engine.dispose()
        if stop.is_set():
            return
        proxy.kill()
        times.append(time.time())
        time.sleep(seconds)
        proxy.start()
        times.append(time.time())

    threading.Thread(target=outage, daemon=True).start()
    return times


@contextlib.contextmanager
def own_server(port: int, max_connections: int) -> Iterator[str]:
    """A throwaway PostgreSQL server from ``.ci/postgres.sh`` on ``port`` with
    ``max_connections``; stopped and its folder removed afterwards. Yields its URL."""
    env = {**os.environ, "PGPORT_TEST": str(port)}
    output = subprocess.run(
        ["bash", str(ROOT / ".ci" / "postgres.sh")], env=env, check=True, capture_output=True
    ).stdout.decode()
    found = dict(
        line.removeprefix("export ").split("=", 1)
        for line in output.splitlines()
        if line.startswith("export ")
    )
    url, data, bin_ = (found[f"OPTUNA_PANDALM_TEST_POSTGRES_{k}"] for k in ("URL", "DATA", "BIN"))

    def pg_ctl(*args: str) -> None:
        command = shlex.join([f"{bin_}/pg_ctl", "-D", data, *args])
        as_postgres = ["su", "postgres", "-s", "/bin/sh", "-c", command]
        argv = as_postgres if os.geteuid() == 0 else ["sh", "-c", command]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    try:
        # postgres.sh starts it with max_connections=200 on its command line; restart with ours.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {data} "
            f"-c max_connections={max_connections} -c fsync=off"
        )
        pg_ctl("-m", "fast", "-w", "stop")
        pg_ctl("-o", options, "-l", f"{data}/log", "-w", "start")
        yield url
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl("-m", "fast", "-w", "stop")
        subprocess.run(["rm", "-rf", data], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--trials", type=int, default=4, help="per worker")
    parser.add_argument("--judge-latency", type=float, default=1.0, help="seconds per batch")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2, help="checkpoints per trial")
    parser.add_argument("--url", default=os.environ.get("OPTUNA_PANDALM_TEST_POSTGRES_URL"))
    parser.add_argument(
        "--own-server", action="store_true", help="start a throwaway server (see above)"
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PGPORT_TEST", 54331)))
    parser.add_argument("--max-connections", type=int, default=100)
    parser.add_argument("--pgbouncer", action="store_true", help="workers go through PgBouncer")
    parser.add_argument(
        "--grpc", action="store_true", help="Optuna's storage through its gRPC proxy"
    )
    parser.add_argument(
        "--grpc-outage",
        type=float,
        metavar="SECONDS",
        help="with --grpc: kill the proxy after a finished trial, restart it SECONDS later",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds before the workers are killed"
    )
    args = parser.parse_args()
    if not args.own_server and not args.url:
        parser.error("give --url, set OPTUNA_PANDALM_TEST_POSTGRES_URL, or --own-server")
    with contextlib.ExitStack() as stack:
        url = (
            stack.enter_context(own_server(args.port, args.max_connections))
            if args.own_server
            else args.url
        )
        worker_url = None
        if args.pgbouncer:
            from tests.pgbouncer import PgBouncer

            bouncer = stack.enter_context(PgBouncer.start(url))
            worker_url = bouncer.url_for
        try:
            figures = run(
                url,
                workers=args.workers,
                trials=args.trials,
                judge_latency=args.judge_latency,
                prompts=args.prompts,
                epochs=args.epochs,
                worker_url=worker_url,
                pgbouncer_port=bouncer.port if args.pgbouncer else None,
                grpc=args.grpc,
                proxy_outage_s=args.grpc_outage,
                timeout=args.timeout,
            )
        except BaseException:
            if args.pgbouncer:  # what PgBouncer saw, before its folder goes
                print(bouncer.log_tail(), file=sys.stderr)
            raise
    print(json.dumps({**figures, "pgbouncer": args.pgbouncer, "grpc": args.grpc}, indent=2))


if __name__ == "__main__":
    main()
