"""P(best) and a top-20 table's errors with thousands of players: sparse path against dense.

On study-shaped games (``optuna_pandalm.testing.ladder_games``: each new checkpoint plays 16
games against one of the five strongest before it), times ``p_best`` with its default path
(above 400 players: 256 candidates, covariance from a sparse LU factorisation) and with the
dense covariance of every player, plus ``stderr_of`` for 20 players against ``stderr`` of
all. Prints one JSON document; ``max_abs_diff`` compares the two P(best) vectors (same seed).

    python benchmarks/bench_p_best.py --players 1000 3000
"""

from __future__ import annotations

import argparse
import json
import time
from unittest import mock

import numpy as np

from optuna_pandalm import fit_bradley_terry
from optuna_pandalm.statistics import _result
from optuna_pandalm.testing import ladder_games


def _timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def bench(n_players: int, n_samples: int) -> dict:
    first, second, outcome = ladder_games(n_players, seed=0)
    fresh = lambda: fit_bradley_terry(first, second, outcome, n_players=n_players)  # noqa: E731
    result = fresh()
    sparse, sparse_s = _timed(lambda: result.p_best(n_samples, seed=0))
    other = fresh()  # errors timed on a fit of their own, factorisation included
    _, top_s = _timed(lambda: other.stderr_of(np.argsort(-other.scores)[:20]))
    with mock.patch.object(_result, "_FULL_POSTERIOR_LIMIT", 10**9):
        result = fresh()
        dense, dense_s = _timed(lambda: result.p_best(n_samples, seed=0))  # forms stderr too
    other = fresh()
    _, all_s = _timed(lambda: other.stderr)
    return {
        "players": n_players,
        "games": len(first),
        "p_best_default_s": round(sparse_s, 4),
        "p_best_dense_s": round(dense_s, 4),
        "max_abs_diff": round(float(np.abs(sparse - dense).max()), 4),
        "dense_mass_left_out": round(float(dense[sparse == 0].sum()), 4),
        "stderr_of_20_s": round(top_s, 4),
        "stderr_all_s": round(all_s, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--samples", type=int, default=4000, help="draws (finalize's number)")
    args = parser.parse_args()
    rows = [bench(n, args.samples) for n in args.players]
    print(json.dumps({"benchmark": "p_best", "samples": args.samples, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
