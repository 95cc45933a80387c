"""Judge-driven studies on simulated landscapes: regret, judge calls and the false-prune rate.

Runs ``tests.studies.run_study`` (SimulatedJudge, Landscape, BradleyTerrySampler + JudgePruner,
SQLite) for each seed and base sampler, and prints one JSON document with per-study rows and a
summary. Run from the repository root:

    python benchmarks/bench_simulated_studies.py --seeds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.studies import run_study  # the test helper is the experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--samplers", default="tpe,random")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--prompts", type=int, default=24)
    args = parser.parse_args()
    rows = []
    for sampler in args.samplers.split(","):
        for seed in range(args.seeds):
            folder = Path(tempfile.mkdtemp())
            run = run_study(
                f"sqlite:///{folder / 'study.db'}",
                seed=seed,
                sampler=sampler,
                n_trials=args.trials,
                n_prompts=args.prompts,
            )
            pruned = {
                t.number for t in run.study.trials if t.state == optuna.trial.TrialState.PRUNED
            }
            best_potential = max(run.potential.values())
            top = run.arena.leaderboard()[0]
            chosen = run.truth[(top.trial, top.step)]
            rows.append(
                {
                    "sampler": sampler,
                    "seed": seed,
                    "trials": len(run.study.trials),
                    "pruned": len(pruned),
                    "pruned_within_0_1_of_best": sum(
                        run.potential[t] >= best_potential - 0.1 for t in pruned
                    ),
                    "pruned_better_than_chosen": sum(run.potential[t] > chosen for t in pruned),
                    "best_trial_pruned": max(run.potential, key=run.potential.get) in pruned,
                    "regret_vs_best_evaluated": round(max(run.truth.values()) - chosen, 4),
                    "judge_calls": run.judge.calls,
                }
            )
    summary = {
        "studies": len(rows),
        "median_pruned_share": statistics.median(r["pruned"] / r["trials"] for r in rows),
        "best_trial_pruned": sum(r["best_trial_pruned"] for r in rows),
        "pruned_trials": sum(r["pruned"] for r in rows),
        "pruned_within_0_1_of_best": sum(r["pruned_within_0_1_of_best"] for r in rows),
        "by_sampler": {
            s: {
                "median_regret": statistics.median(
                    r["regret_vs_best_evaluated"] for r in rows if r["sampler"] == s
                ),
                "median_judge_calls": statistics.median(
                    r["judge_calls"] for r in rows if r["sampler"] == s
                ),
            }
            for s in args.samplers.split(",")
        },
    }
    print(
        json.dumps({"benchmark": "simulated_studies", "summary": summary, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
