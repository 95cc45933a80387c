"""Our bookkeeping around the judge: ``Arena.evaluate`` and ``Arena.finalize`` (with the
publishing callback) at 300, 1,000 and 3,000 players, on SQLite and PostgreSQL.

Each study is filled through the public store API in bulk (players with their responses,
verdicts of the simulated judge, games in a few large transactions, four
checkpoints per Optuna trial: the shape of a study where each checkpoint plays 16-24
prompts against one of the strongest before it); then ``--evaluations`` new trials each
``evaluate`` one checkpoint, ``finalize`` and are published (``PublishCallback``), the
studies taking turns (interleaved), so a change of load hits them all alike. The simulated
judge's own time is subtracted. CPU is this process's (``time.process_time``) plus, on
PostgreSQL, the server backends' of the study's database (``/proc/PID/stat``, 10 ms ticks)
when the server runs on this machine.

``--compare DIR`` runs the same steps, interleaved step by step, in a second process that
imports ``optuna_pandalm`` from ``DIR`` (another checkout, e.g. main): an A/B in one run.
PostgreSQL comes from ``$OPTUNA_PANDALM_TEST_POSTGRES_URL`` (a database is created per
study and dropped afterwards); unset, PostgreSQL is skipped with a line saying so.

    python benchmarks/bench_bookkeeping.py                                # 300,1000,3000
    python benchmarks/bench_bookkeeping.py --players 300 --evaluations 8 --compare ../main
    python benchmarks/bench_bookkeeping.py --json > bookkeeping.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PROMPTS = 40
STEPS = 4  # checkpoints per trial
POSTGRES_ENV = "OPTUNA_PANDALM_TEST_POSTGRES_URL"


# --- the worker: one process, one code tree, every study -------------------------------------
class _Study:
    """One filled study (a backend and a number of players) and its measured steps."""

    def __init__(self, backend: str, n_players: int, url: str, seed: int) -> None:
        import optuna

        from optuna_pandalm import Arena
        from optuna_pandalm.publish import PublishCallback
        from optuna_pandalm.testing import SimulatedJudge, simulated_prompts

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.backend, self.n_players, self.url = backend, n_players, url
        self.rng = np.random.default_rng(seed)
        self.prompts = simulated_prompts(PROMPTS)
        self.judge = _TimedJudge(SimulatedJudge(seed=seed))
        self.study = optuna.create_study(
            storage=url,
            study_name="bookkeeping",
            direction="maximize",
            pruner=optuna.pruners.NopPruner(),  # every trial finalizes
        )
        started = time.perf_counter()
        n_trials = -(-n_players // STEPS)
        self.study.add_trials(
            [
                optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.0)
                for _ in range(n_trials)
            ]
        )
        judge = self.judge.as_judge
        self.arena = Arena(url, "bookkeeping", judge, self.prompts, seed=0, journal=False)
        self.games = _fill(self.arena, self.judge.inner, n_players, self.rng)
        self.fill_s = time.perf_counter() - started
        self.publish = PublishCallback(self.arena)
        self.server = _ServerCpu(url) if backend == "postgresql" else None

    def measure(self) -> dict[str, dict[str, float]]:
        """One new trial: ``evaluate`` one checkpoint, ``finalize``, publish; each timed."""
        from optuna_pandalm.testing import simulated_response

        trial = self.study.ask()
        quality = float(self.rng.normal(0.0, 1.0))
        texts = [
            simulated_response(quality, text=f"trial {trial.number} prompt {p}")
            for p in range(PROMPTS)
        ]
        out = {}
        with self._timed(out, "evaluate"):
            self.arena.evaluate(trial, 1, texts)
        with self._timed(out, "finalize"):
            value = self.arena.finalize(trial)
        frozen = self.study.tell(trial, value)
        with self._timed(out, "publish"):
            self.publish(self.study, frozen)
        return out

    @contextlib.contextmanager
    def _timed(self, out: dict[str, dict[str, float]], name: str) -> Iterator[None]:
        judge_wall, judge_cpu = self.judge.wall, self.judge.cpu
        server = self.server.seconds() if self.server else None
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out[name] = {
            "wall": wall - (self.judge.wall - judge_wall),
            "cpu": cpu - (self.judge.cpu - judge_cpu),
        }
        if self.server is not None and server is not None:
            out[name]["server_cpu"] = self.server.seconds() - server

    def close(self) -> None:
        self.arena.store.close()
        if self.server is not None:
            self.server.close()


def _fill(arena: Any, judge: Any, n_players: int, rng: np.random.Generator) -> int:
    """Store ``n_players`` checkpoints (``STEPS`` per trial) in bulk: each new one plays
    16-24 prompts against one of the five strongest before it, judged by ``judge``."""
    from optuna_pandalm import JudgeRequest
    from optuna_pandalm.store import GameRecord, StoredVerdict, VerdictKey, text_hash
    from optuna_pandalm.testing import simulated_response

    store, prompts = arena.store, arena.prompts
    quality = np.empty(n_players)
    ids: list[int] = []
    texts: list[list[str]] = []
    for k in range(n_players):
        trial, step = divmod(k, STEPS)
        base = quality[k - step] if step else rng.normal(0.0, 1.0)
        quality[k] = base + (0.1 * step if step else 0.0)
        answers = [
            simulated_response(float(quality[k]), text=f"trial {trial} step {step} prompt {p}")
            for p in range(PROMPTS)
        ]
        ids.append(store.player(arena.arena_id, trial=trial, step=step + 1, generations=answers))
        texts.append(answers)
    plan = []  # (challenger, rival, prompt, challenger shown first)
    for k in range(1, n_players):
        rival = int(rng.choice(np.argsort(-quality[:k])[:5]))
        n_games = int(rng.integers(16, 25))
        for p in rng.choice(PROMPTS, n_games, replace=False):
            plan.append((k, rival, int(p), bool(rng.random() < 0.5)))
    shown = [(a, b) if first else (b, a) for a, b, _, first in plan]
    requests = [
        JudgeRequest(prompts[p].instruction, texts[x][p], texts[y][p])
        for (x, y), (_, _, p, _) in zip(shown, plan, strict=True)
    ]
    keys = [
        VerdictKey(prompts[p].hash, text_hash(texts[x][p]), text_hash(texts[y][p]))
        for (x, y), (_, _, p, _) in zip(shown, plan, strict=True)
    ]
    verdicts = judge.judge(requests)
    stored: dict[Any, Any] = {}
    items = [
        (key, StoredVerdict(v.winner, reason=v.reason))
        for key, v in zip(keys, verdicts, strict=True)
    ]
    for start in range(0, len(items), 2000):
        stored.update(store.save_verdicts(judge.name, items[start : start + 2000]))
    # One match per 100 checkpoints (the rival of its first): a transaction per
    # checkpoint's match would make the fill as slow as the disk's commits. Matches only
    # say who challenged whom; the fits read the games.
    records = []
    for (x, y), (k, _, p, _), key in zip(shown, plan, keys, strict=True):
        verdict = stored[key]
        records.append((k, GameRecord(p, ids[x], ids[y], verdict.id, verdict.winner)))
    for start in range(1, n_players, 100):
        group = [r for k, r in records if start <= k < start + 100]
        first = group[0]
        opponent = sum((first.first_player_id, first.second_player_id)) - ids[start]
        match_id = store.start_match(arena.arena_id, ids[start], opponent, kind="incumbent")
        store.save_games(arena.arena_id, match_id, group)
    return len(plan)


class _TimedJudge:
    """A judge that keeps the time spent in the simulated judge, to subtract it."""

    def __init__(self, inner: Any) -> None:
        from optuna_pandalm import PairwiseJudge

        self.inner = inner
        self.wall = self.cpu = 0.0
        outer = self

        class Timed(PairwiseJudge):
            name = inner.name

            def judge(self, requests: Sequence[Any]) -> list[Any]:
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return list(inner.judge(requests))
                finally:
                    outer.wall += time.perf_counter() - wall
                    outer.cpu += time.thread_time() - cpu

        self.as_judge = Timed()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.as_judge, name)


class _ServerCpu:
    """CPU seconds of the PostgreSQL backends serving one database (``/proc``), when the
    server runs on this machine; ``nan`` otherwise."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.engine = sa.create_engine(url, poolclass=sa.pool.StaticPool)
        self.tick = os.sysconf("SC_CLK_TCK")
        self.sa = sa

    def seconds(self) -> float:
        with self.engine.connect() as connection:
            pids = connection.execute(
                self.sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            ).scalars()
            total = 0.0
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    return float("nan")
                total += (int(fields[11]) + int(fields[12])) / self.tick
        return total

    def close(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def _database(backend: str, tag: str) -> Iterator[str]:
    """A fresh, empty database for one study, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/{tag}.db"
        return
    import sqlalchemy as sa

    admin_url = os.environ[POSTGRES_ENV]
    name = f"bookkeeping_{tag}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(sa.engine.make_url(admin_url).set(database=name))
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def worker() -> None:
    """Answer the parent's commands, one JSON line each: ``fill``, ``measure``, ``close``."""
    studies: dict[str, _Study] = {}
    with contextlib.ExitStack() as stack:
        for line in sys.stdin:
            command = json.loads(line)
            study_key = f"{command['backend']}:{command['players']}"
            if command["do"] == "fill":
                url = stack.enter_context(
                    _database(command["backend"], f"{os.getpid()}_{command['players']}")
                )
                study = _Study(command["backend"], command["players"], url, command["seed"])
                studies[study_key] = study
                stack.callback(study.close)
                import optuna_pandalm

                answer: dict[str, Any] = {
                    "fill_s": study.fill_s,
                    "games": study.games,
                    "package": str(Path(optuna_pandalm.__file__).parent.parent),
                }
            else:
                answer = studies[study_key].measure()
            print(json.dumps(answer), flush=True)


# --- the parent: interleaving, summaries ----------------------------------------------------
class _Worker:
    def __init__(self, label: str, tree: str | None) -> None:
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = str(Path(tree).resolve())
        self.label = label
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.label} died (see its stderr above)")
        return dict(json.loads(line))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=300)


def _summary(values: list[float]) -> dict[str, float]:
    data = np.asarray(values, dtype=np.float64) * 1000.0
    if not len(data) or np.isnan(data).all():
        return {}
    return {
        "p50_ms": round(float(np.nanpercentile(data, 50)), 1),
        "p95_ms": round(float(np.nanpercentile(data, 95)), 1),
        "mean_ms": round(float(np.nanmean(data)), 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    notes = []
    if "postgresql" in backends and not os.environ.get(POSTGRES_ENV):
        notes.append(f"PostgreSQL skipped: {POSTGRES_ENV} is unset")
        backends.remove("postgresql")
    sizes = [int(s) for s in args.players.split(",")]
    workers = [_Worker("this", None)]
    if args.compare:
        workers.append(_Worker(Path(args.compare).resolve().name, args.compare))
    studies = [(b, n) for n in sizes for b in backends]
    results: dict[str, dict[str, Any]] = {}
    load = [os.getloadavg()]
    try:
        for backend, n in studies:
            for w in workers:
                filled = w.ask(do="fill", backend=backend, players=n, seed=args.seed)
                key = f"{w.label} {backend} {n}"
                results[key] = {"code": w.label, "backend": backend, "players": n, **filled}
                results[key]["steps"] = []
        for _ in range(args.evaluations):
            for backend, n in studies:
                for w in workers:
                    step = w.ask(do="measure", backend=backend, players=n)
                    results[f"{w.label} {backend} {n}"]["steps"].append(step)
            load.append(os.getloadavg())
    finally:
        for w in workers:
            w.close()
    rows = []
    for entry in results.values():
        steps = entry.pop("steps")
        for phase in ("evaluate", "finalize", "publish"):
            for measure in ("wall", "cpu", "server_cpu"):
                summary = _summary([s[phase].get(measure, np.nan) for s in steps])
                if summary:
                    entry[f"{phase}_{measure}"] = summary
        entry["fill_s"] = round(entry["fill_s"], 1)
        rows.append(entry)
    one_minute = [round(x[0], 2) for x in load]
    return {
        "evaluations": args.evaluations,
        "prompts": PROMPTS,
        "load_1min": {"min": min(one_minute), "max": max(one_minute), "start": one_minute[0]},
        "notes": notes,
        "results": rows,
    }


def _table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['evaluations']} interleaved evaluations per study; load (1 min) "
        f"{report['load_1min']['min']}-{report['load_1min']['max']}; "
        "ms, p50 / p95; CPU = client + server",
        *report["notes"],
        f"{'code':>10} {'backend':>10} {'players':>7} {'games':>6} "
        f"{'evaluate wall':>15} {'evaluate CPU':>15} {'finalize wall':>15} "
        f"{'finalize CPU':>15} {'publish wall':>15}",
    ]

    def pair(entry: dict[str, Any], phase: str, cpu: bool = False) -> str:
        wall = entry.get(f"{phase}_{'cpu' if cpu else 'wall'}", {})
        if not wall:
            return "-"
        p50, p95 = wall["p50_ms"], wall["p95_ms"]
        server = entry.get(f"{phase}_server_cpu") if cpu else None
        if server:
            p50 += server["p50_ms"]
            p95 += server["p95_ms"]
        return f"{p50:.0f} / {p95:.0f}"

    for e in report["results"]:
        lines.append(
            f"{e['code']:>10} {e['backend']:>10} {e['players']:>7} {e['games']:>6} "
            f"{pair(e, 'evaluate'):>15} {pair(e, 'evaluate', True):>15} "
            f"{pair(e, 'finalize'):>15} {pair(e, 'finalize', True):>15} "
            f"{pair(e, 'publish'):>15}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--players", default="300,1000,3000", help="comma-separated sizes")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--evaluations", type=int, default=36, help="per study")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", help="another checkout to run beside this one (A/B)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else _table(report))


if __name__ == "__main__":
    main()
