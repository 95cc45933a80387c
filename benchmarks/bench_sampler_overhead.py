"""Per-trial overhead of BradleyTerrySampler over plain TPE at 1,000 finished trials (SQLite).

Builds one SQLite study with ``--trials`` finished trials (two judged checkpoints each,
about 20 games per checkpoint), then times ``study.ask()`` plus six ``suggest`` calls with
plain TPE and with ``BradleyTerrySampler(TPE)`` on the same study. ``warm``: the fit is
cached (as in a real loop, where ``Arena.evaluate`` has just refitted); ``cold``: a game was
added since, so the sampler refits first. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution

from optuna_pandalm import Arena, BradleyTerrySampler
from optuna_pandalm.store import GameRecord, StoredVerdict, VerdictKey
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts

SPACE = {
    "learning_rate": FloatDistribution(2e-6, 2e-4, log=True),
    "optimizer": CategoricalDistribution(["adamw", "sgd"]),
    "scheduler": CategoricalDistribution(["cosine", "linear"]),
    "lora_rank": CategoricalDistribution([4, 8, 16, 32]),
    "warmup_ratio": FloatDistribution(0.0, 0.1),
    "weight_decay": FloatDistribution(0.0, 0.1),
}


def build(url: str, n_trials: int, seed: int = 0) -> Arena:
    rng = np.random.default_rng(seed)
    prompts = simulated_prompts(40)
    arena = Arena(url, "overhead", SimulatedJudge(), prompts)
    study = optuna.create_study(study_name="overhead", storage=url, direction="maximize")
    trials = []
    for _ in range(n_trials):
        params = {
            name: d.to_external_repr(d.to_internal_repr(_draw(d, rng)))
            for name, d in SPACE.items()
        }
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions=SPACE,
                value=float(rng.normal()),
                intermediate_values={1: float(rng.normal()), 2: float(rng.normal())},
            )
        )
    study.add_trials(trials)
    key = VerdictKey("p", "a", "b")
    verdict = arena.store.save_verdicts("bench", [(key, StoredVerdict(winner=1))])[key].id
    players = [
        arena.store.player(arena.arena_id, trial=t, step=s)
        for t in range(n_trials)
        for s in (1, 2)
    ]
    strength = rng.normal(size=len(players))
    for k, player in enumerate(players[1:], start=1):
        opponent = players[int(rng.integers(0, k))]
        match = arena.store.start_match(arena.arena_id, player, opponent, kind="incumbent")
        games = []
        for position in range(20):
            p_win = 1 / (1 + np.exp(strength[players.index(opponent)] - strength[k]))
            outcome = 1 if rng.random() < p_win else 2
            games.append(GameRecord(position, player, opponent, verdict, outcome))
        arena.store.save_games(arena.arena_id, match, games)
    return arena


def _draw(distribution, rng):
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[int(rng.integers(len(distribution.choices)))]
    low, high = distribution.low, distribution.high
    if distribution.log:
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high))


def time_asks(study: optuna.Study, n: int, before=None) -> list[float]:
    times = []
    for _ in range(n):
        if before is not None:
            before()
        start = time.perf_counter()
        trial = study.ask()
        for name, distribution in SPACE.items():
            trial._suggest(name, distribution)
        times.append(time.perf_counter() - start)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # FAIL: does not grow the data
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--asks", type=int, default=20)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = Path(tempfile.mkdtemp())
    url = f"sqlite:///{folder / 'overhead.db'}"
    start = time.perf_counter()
    arena = build(url, args.trials)
    build_s = time.perf_counter() - start
    arena.fit()  # as after Arena.evaluate in a real loop
    plain = optuna.load_study(
        study_name="overhead", storage=url, sampler=optuna.samplers.TPESampler(seed=0)
    )
    wrapped = optuna.load_study(
        study_name="overhead",
        storage=url,
        sampler=BradleyTerrySampler(arena, optuna.samplers.TPESampler(seed=0)),
    )
    time_asks(plain, 2)
    time_asks(wrapped, 2)
    plain_times = time_asks(plain, args.asks)
    warm_times = time_asks(wrapped, args.asks)
    players = arena.players()

    def add_game() -> None:
        match = arena.store.start_match(arena.arena_id, players[0].id, players[1].id, kind="bench")
        verdict = arena.store.find_verdicts("bench", [VerdictKey("p", "a", "b")])
        version = arena.store.version(arena.arena_id)[1]
        arena.store.save_games(
            arena.arena_id,
            match,
            [
                GameRecord(
                    1000 + version,
                    players[0].id,
                    players[1].id,
                    next(iter(verdict.values())).id,
                    1,
                )
            ],
        )

    cold_times = time_asks(wrapped, max(5, args.asks // 4), before=add_game)
    median = statistics.median
    print(
        json.dumps(
            {
                "benchmark": "sampler_overhead",
                "finished_trials": args.trials,
                "players": len(players),
                "games": arena.store.version(arena.arena_id)[0],
                "build_s": round(build_s, 1),
                "plain_tpe_ms": round(1000 * median(plain_times), 1),
                "bt_tpe_warm_ms": round(1000 * median(warm_times), 1),
                "bt_tpe_cold_ms": round(1000 * median(cold_times), 1),
                "overhead_warm_ms": round(1000 * (median(warm_times) - median(plain_times)), 1),
                "overhead_cold_ms": round(1000 * (median(cold_times) - median(plain_times)), 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
