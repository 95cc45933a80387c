"""Where ``bt_tpe``'s judge calls go: matches by kind and step, their games and calls.

Runs ``hpo_levers.py``'s world (the preset PandaLM-7B judge) at one lever and counts every
match ``MatchPlay.play`` plays: ``incumbent`` (a new checkpoint against its opponent) or
``top`` (finalize's extra matches), by the challenger's step.

    python benchmarks/hpo_match_lengths.py --seeds 20 --jobs 2 base
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import statistics
from typing import Any

import hpo_levers
import hpo_world

_MATCHES: list[tuple[str, int | None, int, int]] = []  # per worker: kind, step, games, calls


def _run(task: tuple[str, int, int]) -> dict[str, Any]:
    from optuna_pandalm.arena import MatchPlay

    if not getattr(MatchPlay.play, "_counted", False):
        play = MatchPlay.play

        def counted(self: MatchPlay, challenger: Any, opponent: Any, **options: Any) -> Any:
            before = self.judge_calls
            outcome = play(self, challenger, opponent, **options)
            games = outcome.wins + outcome.ties + outcome.losses
            _MATCHES.append((options["kind"], challenger.step, games, self.judge_calls - before))
            return outcome

        counted._counted = True  # type: ignore[attr-defined]
        MatchPlay.play = counted  # type: ignore[method-assign]
    _MATCHES.clear()
    record = hpo_levers._run(task)
    return {**record, "matches": list(_MATCHES)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lever", nargs="?", default="base")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--budget", type=int, default=hpo_levers.BUDGET)
    args = parser.parse_args()
    tasks = [(args.lever, seed, args.budget) for seed in range(args.seeds)]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        rows = pool.map(_run, tasks)
    prompts = len(hpo_world.load_test_prompts())
    groups: dict[tuple[str, Any], list[tuple[int, int]]] = collections.defaultdict(list)
    for row in rows:
        for kind, step, games, calls in row["matches"]:
            groups[kind, step].append((games, calls))
    total = sum(calls for group in groups.values() for _, calls in group)
    print(f"{'kind':10} {'step':>4} {'matches':>7} {'calls':>8} {'share':>6} {'all prompts':>11}")
    for (kind, step), group in sorted(groups.items(), key=lambda item: str(item[0])):
        calls = sum(c for _, c in group)
        full = sum(games == prompts for games, _ in group)
        print(f"{kind:10} {step!s:>4} {len(group):7} {calls:8} {calls / total:6.1%} {full:11}")
    print(f"judge calls in all: {total}; median per seed:", end=" ")
    print(statistics.median(r["judge_calls"] for r in rows))


if __name__ == "__main__":
    main()
