"""Measure one default of the library at a time on ``bt_tpe`` (``hpo_efficiency.py``'s world).

Each lever is a set of keyword defaults of ``Arena`` or ``JudgePruner``, changed in the
worker process before the run (each run starts from the library's defaults); every lever
runs the same seeds at ``--budget`` trainings (20 by default). The judge is the preset
``SimulatedJudge.pandalm_7b()`` fit (no refit per run), lengths with the test set's spread.

    python benchmarks/hpo_levers.py --seeds 20 --jobs 2 base racing_alpha=0.05
    python benchmarks/hpo_levers.py --seeds 20 --budget 40 "short_match=32"
    python benchmarks/hpo_levers.py --seeds 20 "rank_keep=None,contender_floor=None"

A lever is ``base`` (today's defaults) or ``name=value[,name=value]`` with names of
``Arena`` or ``JudgePruner`` keyword arguments.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
import warnings
from typing import Any

BUDGET = 20
LENGTH_LOG_SD = 1.32  # the test set's, as ``calibrate`` measures it
_ORIGINAL: dict[str, dict[str, Any]] = {}  # per worker: the defaults before any lever


def parse(lever: str) -> dict[str, Any]:
    """``"a=1,b=x"`` -> ``{"a": 1, "b": "x"}`` (numbers, booleans and ``None`` parsed)."""
    if lever == "base":
        return {}
    out: dict[str, Any] = {}
    for item in lever.split(","):
        name, _, text = item.partition("=")
        literals = {"True": True, "False": False, "None": None}
        out[name] = literals[text] if text in literals else json.loads(text)
    return out


def _run(task: tuple[str, int, int]) -> dict[str, Any]:
    lever, seed, budget = task
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import hpo_efficiency
    import optuna
    from hpo_world import World, load_test_prompts

    from optuna_pandalm import Arena, JudgePruner
    from optuna_pandalm.testing import PANDALM_7B

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    # A pool worker runs many tasks: start each from the library's own defaults, or a
    # lever would inherit the settings of the one the worker ran before.
    owners = (Arena.__init__, JudgePruner.__init__)
    for owner in owners:
        original = _ORIGINAL.setdefault(owner.__qualname__, dict(owner.__kwdefaults__ or {}))
        owner.__kwdefaults__ = dict(original)
    for name, value in parse(lever).items():
        for owner in owners:
            if name in (owner.__kwdefaults__ or {}):
                owner.__kwdefaults__[name] = value
                break
        else:
            raise SystemExit(f"{name!r} is not a keyword argument of Arena or JudgePruner")
    hpo_efficiency.BUDGETS = (budget,)
    calibration = {"judge": dict(PANDALM_7B), "length_log_sd": LENGTH_LOG_SD}
    world = World(seed, calibration, load_test_prompts())
    (record,) = hpo_efficiency.RUNNERS["bt_tpe"](world)
    return {"lever": lever, "seed": seed, "shape": world.shape, **record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("levers", nargs="+")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--budget", type=int, default=BUDGET, help="trainings per run")
    args = parser.parse_args()
    started = time.perf_counter()
    tasks = [
        (lever, seed, args.budget)
        for lever in args.levers
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        rows = pool.map(_run, tasks)
    print(f"{'lever':40} {'regret':>7} {'mean':>6} {'epochs':>7} {'calls':>7}  per seed regret")
    for lever in args.levers:
        mine = [r for r in rows if r["lever"] == lever]
        regret = [r["regret"] for r in mine]
        print(
            f"{lever:40} {statistics.median(regret):7.3f} {statistics.mean(regret):6.3f} "
            f"{statistics.median(r['training_epochs'] for r in mine):7.1f} "
            f"{statistics.median(r['judge_calls'] for r in mine):7.0f}  "
            + " ".join(f"{x:.2f}" for x in regret)
        )
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
