"""Speed of fit_bradley_terry against a plain scipy L-BFGS on the same objective and
against choix.ilsr_pairwise, on the same simulated games.

Prints one JSON document. The L-BFGS (``scipy.optimize.minimize(method="L-BFGS-B")`` with
the analytic gradient, on the same per-pair counts) minimises exactly our objective
(Davidson ties, position effect, prior sd 3 on strengths): once with scipy's default
tolerances, once with a tolerance that reaches our fit's accuracy; each time, interleaved
with ours, so the ratios come from one run. ``warm``: both restarted from the fit of the
same games less the last 1% (what the arena does after a match). choix is installed into
the running environment when missing unless ``--no-choix`` (it is a benchmark dependency,
not a project dependency). choix has no ties: they are dropped for it, while our fit uses
them (Davidson) and fits a position effect too.

    python benchmarks/bench_bradley_terry.py            # 1k/200k and 10k/1M
    python benchmarks/bench_bradley_terry.py --sizes 1000x200000 --no-choix
    python benchmarks/bench_bradley_terry.py --quick    # small sizes, for a smoke run
"""

from __future__ import annotations

import argparse
import functools
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


def _lbfgs_objective(first, second, outcome, n_players):
    """Our negative log posterior (``fit_bradley_terry``'s defaults: prior sd 3 on
    strengths, 2 on the position effect, ``theta ~ N(log 2/3, 3)``) on per-pair counts,
    with its gradient, written plainly for ``scipy.optimize.minimize``."""
    n = n_players
    counts = np.bincount((first * n + second) * 3 + outcome, minlength=n * n * 3)
    counts = counts.reshape(n * n, 3)
    rows = np.flatnonzero(counts.sum(axis=1))
    c = counts[rows].astype(np.float64)
    i, j = rows // n, rows % n
    total, ties, margin = c.sum(axis=1), c[:, 0].sum(), c[:, 1] - c[:, 2]
    tie_mean = np.log(2 / 3)

    def objective(x):
        s, h, theta = x[:n], x[n], x[n + 1]
        u = 0.5 * (s[i] - s[j] + h)
        top = np.maximum(np.abs(u), theta)
        e1, e2, e0 = np.exp(u - top), np.exp(-u - top), np.exp(theta - top)
        z = e1 + e2 + e0
        loglik = margin @ u + theta * ties - total @ (top + np.log(z))
        value = -loglik + s @ s / 18 + h * h / 8 + (theta - tie_mean) ** 2 / 18
        g_u = margin - total * (e1 - e2) / z
        grad = np.empty(n + 2)
        grad[:n] = -0.5 * (np.bincount(i, g_u, n) - np.bincount(j, g_u, n)) + s / 9
        grad[n] = -0.5 * g_u.sum() + h / 4
        grad[n + 1] = -(ties - total @ (e0 / z)) + (theta - tie_mean) / 9
        return value, grad

    return objective


def _lbfgs(objective, start, options):
    from scipy import optimize

    return optimize.minimize(objective, start, jac=True, method="L-BFGS-B", options=options)


def _lbfgs_start(result, n_players):
    """L-BFGS's parameters ``[s, h, theta]`` from one of our fits (a warm start)."""
    return np.concatenate(
        [result.strengths, [result.position_effect], [np.log(result.tie_strength)]]
    )


def compare_lbfgs(first, second, outcome, n_players, *, repeats):
    """Ours against L-BFGS on the same objective, interleaved: cold (L-BFGS from zero,
    ours from its own start) and warm (both from the fit without the last 1% of games)."""
    objective = _lbfgs_objective(first, second, outcome, n_players)
    reference = fit_bradley_terry(first, second, outcome, n_players=n_players, tol=1e-16)
    cut = len(first) - len(first) // 100
    earlier = fit_bradley_terry(first[:cut], second[:cut], outcome[:cut], n_players=n_players)
    tight = {"maxiter": 100_000, "ftol": 1e-15, "gtol": 1e-7}
    cases = {
        "cold": (None, np.zeros(n_players + 2)),
        "warm": (earlier, _lbfgs_start(earlier, n_players)),
    }
    record = {}
    for case, (init, start) in cases.items():
        times = {"ours": [], "lbfgs_default": [], "lbfgs_matched": []}
        found = {}
        runs = {
            "ours": functools.partial(
                fit_bradley_terry, first, second, outcome, n_players=n_players, init=init
            ),
            "lbfgs_default": functools.partial(_lbfgs, objective, start, {}),
            "lbfgs_matched": functools.partial(_lbfgs, objective, start, tight),
        }
        for _ in range(repeats):  # interleaved: a change of load hits all three
            for name, run in runs.items():
                seconds, found[name] = _best_of(1, run)
                times[name].append(seconds)
        ours = min(times["ours"])
        entry = {"ours_s": round(ours, 4), "ours_newton_iterations": found["ours"].n_iter}
        entry["ours_max_abs_error"] = float(np.abs(found["ours"].scores - reference.scores).max())
        for name in ("lbfgs_default", "lbfgs_matched"):
            fitted = found[name].x[:n_players]
            error = np.abs(fitted - fitted[0] - reference.scores).max()
            entry[f"{name}_s"] = round(min(times[name]), 4)
            entry[f"{name}_iterations"] = int(found[name].nit)
            entry[f"{name}_max_abs_error"] = float(error)
            entry[f"speedup_vs_{name}"] = round(min(times[name]) / ours, 2)
        record[case] = entry
    return record


def _run_choix(n_players, winners, losers, queue):
    choix = _choix()
    data = list(zip(winners.tolist(), losers.tolist(), strict=True))
    start = time.perf_counter()
    params = choix.ilsr_pairwise(n_players, data, alpha=1e-4)
    queue.put((time.perf_counter() - start, np.asarray(params).tolist()))


def bench(
    n_players: int,
    n_games: int,
    *,
    repeats: int,
    choix_timeout: float,
    seed: int = 0,
    choix: bool = True,
):
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

    if n_players <= 2_000:
        record["lbfgs"] = compare_lbfgs(first, second, outcome, n_players, repeats=repeats)
    if not choix:
        record["choix_note"] = "not run (--no-choix)"
        return record
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
    parser.add_argument("--no-choix", action="store_true", help="L-BFGS only")
    parser.add_argument(
        "--sizes",
        default="1000x200000,10000x1000000",
        help="comma-separated PLAYERSxGAMES (default: the two targets)",
    )
    args = parser.parse_args()
    if not args.no_choix:
        _choix()
    _ = fit_bradley_terry([0], [1], [1]).stderr  # import scipy's pieces before timing
    sizes = (
        [(100, 10_000), (300, 30_000)]
        if args.quick
        else [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    )
    results = [
        bench(
            n, g, repeats=args.repeats, choix_timeout=args.choix_timeout, choix=not args.no_choix
        )
        for n, g in sizes
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
