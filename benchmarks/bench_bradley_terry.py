"""Speed of fit_bradley_terry against choix.ilsr_pairwise on the same simulated games.

Prints one JSON document. choix is installed into the running environment when missing
(it is a benchmark dependency, not a project dependency). choix has no ties: they are
dropped for it, while our fit uses them (Davidson) and fits a position effect too.

    python benchmarks/bench_bradley_terry.py            # 1k/200k and 10k/1M
    python benchmarks/bench_bradley_terry.py --quick    # small sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import platform
import subprocess
import sys
import time

import numpy as np
from scipy import stats

from optuna_pandalm import fit_bradley_terry
from optuna_pandalm.testing import simulated_verdicts


def _choix():
    try:
        return importlib.import_module("choix")
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "choix"], check=True)
        return importlib.import_module("choix")


def simulate(n_players: int, n_games: int, seed: int):
    rng = np.random.default_rng(seed)
    strengths = rng.normal(0, 1, n_players)
    first = rng.integers(0, n_players, n_games)
    second = (first + rng.integers(1, n_players, n_games)) % n_players
    outcome = simulated_verdicts(
        strengths[first],
        strengths[second],
        uniforms=rng.random(n_games),
        position_bias=0.3,
        tie_strength=0.5,
    )
    return strengths, first, second, outcome


def _best_of(repeats: int, function):
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return min(times), value


def _run_choix(n_players, winners, losers, queue):
    choix = _choix()
    data = list(zip(winners.tolist(), losers.tolist(), strict=True))
    start = time.perf_counter()
    params = choix.ilsr_pairwise(n_players, data, alpha=1e-4)
    queue.put((time.perf_counter() - start, np.asarray(params).tolist()))


def bench(n_players: int, n_games: int, *, repeats: int, choix_timeout: float, seed: int = 0):
    strengths, first, second, outcome = simulate(n_players, n_games, seed)
    fit_time, result = _best_of(
        repeats, lambda: fit_bradley_terry(first, second, outcome, n_players=n_players)
    )
    record = {
        "n_players": n_players,
        "n_games": n_games,
        "ours_fit_s": round(fit_time, 4),
        "ours_newton_iterations": result.n_iter,
        "ours_converged": result.converged,
        "ours_spearman_vs_truth": round(float(stats.spearmanr(strengths, result.scores)[0]), 4),
    }
    if n_players <= 2_000:

        def fit_and_errors():
            fitted = fit_bradley_terry(first, second, outcome, n_players=n_players)
            return fitted.stderr

        errors_time, _ = _best_of(repeats, fit_and_errors)
        record["ours_fit_plus_stderr_s"] = round(errors_time, 4)
        record["stderr_extra_s"] = round(errors_time - fit_time, 4)
    start = time.perf_counter()
    result.contrast_variance(0, 1)
    record["contrast_variance_s"] = round(time.perf_counter() - start, 4)

    decisive = outcome != 0
    winners = np.where(outcome[decisive] == 1, first[decisive], second[decisive])
    losers = np.where(outcome[decisive] == 1, second[decisive], first[decisive])
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run_choix, args=(n_players, winners, losers, queue))
    process.start()
    try:
        # Read before joining: a child whose result exceeds the pipe buffer cannot exit
        # until the result is read.
        choix_time, params = queue.get(timeout=choix_timeout)
    except Exception:  # queue.Empty: choix is still running
        choix_time = params = None
    process.join(5)
    if process.is_alive():
        process.terminate()
        process.join()
    if params is None:
        record["choix_ilsr_s"] = None
        record["choix_note"] = f"did not finish within {choix_timeout:.0f} s"
        record["speedup_vs_choix"] = f">= {choix_timeout / fit_time:.0f}"
    else:
        record["choix_ilsr_s"] = round(choix_time, 4)
        record["choix_spearman_vs_truth"] = round(float(stats.spearmanr(strengths, params)[0]), 4)
        record["speedup_vs_choix"] = round(choix_time / fit_time, 2)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many fits")
    parser.add_argument("--choix-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument(
        "--sizes",
        default="1000x200000,10000x1000000",
        help="comma-separated PLAYERSxGAMES (default: the two targets)",
    )
    args = parser.parse_args()
    _choix()
    _ = fit_bradley_terry([0], [1], [1]).stderr  # import scipy's pieces before timing
    sizes = (
        [(100, 10_000), (300, 30_000)]
        if args.quick
        else [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    )
    results = [
        bench(n, g, repeats=args.repeats, choix_timeout=args.choix_timeout) for n, g in sizes
    ]
    print(
        json.dumps(
            {
                "benchmark": "bradley_terry",
                "machine": {
                    "python": platform.python_version(),
                    "cpus": multiprocessing.cpu_count(),
                },
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
