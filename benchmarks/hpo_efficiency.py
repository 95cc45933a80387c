"""HPO efficiency: judge-driven search against PandaLM's exhaustive protocol and preference BO.

Every strategy tunes the same simulated instruction-tuning landscapes
(``optuna_pandalm.testing.Landscape``; seed ``s`` uses shape ``LANDSCAPES[s % 4]``) with the
same judge: ``SimulatedJudge`` calibrated, at the start of the run, to PandaLM-7B's verdicts
on PandaLM's human-annotated test set (``optuna_pandalm.testing.calibration``), on
PandaLM's 170 test prompts. Responses carry the test set's spread of lengths, so the judge's
length pull acts.

Strategies (costs: training epochs actually run, judge calls that reached the judge):

* ``pandalm_protocol``: PandaLM's Appendix J grid (lr x optimizer x scheduler = 20
  trainings of 4 epochs = 80 checkpoints), every pair judged on every prompt (537,200 calls,
  drawn in bulk from the same judge model), winner by win count.
* ``bt_tpe`` / ``bt_gp`` / ``bt_random``: ``BradleyTerrySampler`` over Optuna's TPE, GP or
  random sampler, with ``JudgePruner`` and racing, all at their defaults; the chosen
  checkpoint is ``Arena.incumbent()``.
* ``preferential_gp``: optuna-dashboard's ``PreferentialGPSampler``; each training's last
  checkpoint plays a racing match (the arena's defaults: sign test at 0.01 after 16 games)
  against the champion, and the preference is reported; the chosen one is the champion.
* ``pointwise_tpe``: plain TPE on a pointwise metric, the checkpoint's true quality plus
  N(0, 0.5) measurement noise (an assumption: no data here calibrates it); the chosen
  checkpoint has the best metric.
* ``asha``: ``bt_tpe`` with Optuna's ``SuccessiveHalvingPruner`` (its defaults) on the
  reported Bradley–Terry scores instead of ``JudgePruner``.
* ``bt_tpe_lean``: ``bt_tpe`` with the opt-in settings ``LEAN``: ``JudgePruner``'s rank
  rule and the arena's ``contender_floor`` (a new checkpoint's match ends once its P(best)
  is below 0.01), measured beside the defaults.
* ``bt_tpe_stop``: ``bt_tpe`` with ``JudgePruner(stop_matches=True)``: a new checkpoint's
  match stops once no outcome of its prompts left can change the pruner's test or the
  incumbent (``optuna_pandalm/arena/_decision.py``); ``bt_tpe_stop_risk`` with
  ``stop_risk=0.1``: once the outcomes still likely cannot change them.
* ``bt_tpe_curve``: ``bt_tpe`` with ``JudgePruner(curve_floor=0.02)``: also prunes a trial
  whose predicted P(best), from a shared-shape learning-curve model
  (``optuna_pandalm/study/_curves.py``), is below 2%; ``bt_tpe_curve2``: the curve rule on a
  trial's first two checkpoints only (``curve_checkpoints=2``); ``bt_tpe_v3``: both levers,
  the curve rule on the first two checkpoints (the whole-curve rule misjudges the ``dips``
  landscape) and the risky stop.
* ``one_epoch_topk``, ``winrate_wilcoxon`` and ``default_configs``: see ``hpo_baselines.py``.
* ``tpe_hyperband``, ``reward_asha`` and ``reward_bt`` (a reward-model judge, its noise
  calibrated at the start of the run to the pairwise judge's agreement): see
  ``hpo_reward.py``.

Each comparison with ``bt_tpe`` is also reported paired, seed by seed, with a bootstrap 90%
interval (``paired_vs_bt_tpe`` in ``--json``; ``hpo_report.py``).

The search strategies (all but ``one_epoch_topk``, which runs each budget on its own) run
40 trainings; their state after 10 and 20 trainings is exactly
that of a 10- or 20-training run (nothing in a run looks ahead), which gives the budgets.
Regret is the landscape's best quality (a dense grid of the whole space, all epochs) minus
the chosen checkpoint's true quality. Wall time is the strategy's own time (sampling,
judging, fitting, storage), training being simulated.

    python benchmarks/hpo_efficiency.py --seeds 20 --jobs 2 --json --plot docs/hpo_efficiency.html
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hpo_world
import numpy as np
from hpo_baselines import default_configs, one_epoch_topk, winrate_wilcoxon
from hpo_report import paired_differences, plot, quartiles, targets
from hpo_reward import RewardJudge, reward_asha, reward_noise, tpe_hyperband
from hpo_world import World, calibrate, games, load_test_prompts

STRATEGIES = (
    "pandalm_protocol",
    "bt_tpe",
    "bt_gp",
    "bt_random",
    "preferential_gp",
    "pointwise_tpe",
    "one_epoch_topk",
    "asha",
    "winrate_wilcoxon",
    "bt_tpe_lean",
    "tpe_hyperband",
    "reward_asha",
    "reward_bt",
    "default_configs",
    "bt_tpe_stop",
    "bt_tpe_stop_risk",
    "bt_tpe_curve",
    "bt_tpe_v3",
    "bt_tpe_curve2",
)
# Run by default: the levers that make up bt_tpe_v3 and bt_tpe_lean run by name only
# (--strategies), to keep the whole run near its 15 minutes on 2 cores.
DEFAULT_STRATEGIES = tuple(
    s
    for s in STRATEGIES
    if s not in ("bt_tpe_lean", "bt_tpe_stop", "bt_tpe_stop_risk", "bt_tpe_curve", "bt_tpe_curve2")
)
BUDGETS = (10, 20, 40)
DEFAULT_BUDGET = 20
POINTWISE_NOISE = 0.5
LEAN = {"arena": {"contender_floor": 0.01}, "pruner": {"rank_keep": 0.25}}
V3 = "bt_tpe_v3"
PRUNER_OPTIONS: dict[str, dict[str, Any]] = {
    "judge": {},
    "lean": LEAN["pruner"],
    "stop": {"stop_matches": True},
    "stop_risk": {"stop_matches": True, "stop_risk": 0.1},
    "curve": {"curve_floor": 0.02},
    "curve2": {"curve_floor": 0.02, "curve_checkpoints": 2},
    "v3": {"curve_floor": 0.02, "curve_checkpoints": 2, "stop_matches": True, "stop_risk": 0.1},
}
PROTOCOL_GRID = {
    "learning_rate": (2e-6, 1e-5, 2e-5, 1e-4, 2e-4),
    "optimizer": ("adamw", "sgd"),
    "scheduler": ("cosine", "linear"),
}
FIXED = {"lora_rank": 8, "warmup_ratio": 0.03, "weight_decay": 0.0}  # PandaLM's defaults


# --- strategies ---------------------------------------------------------------------------
def pandalm_protocol(world: World) -> list[dict]:
    start = time.perf_counter()
    rng = np.random.default_rng([world.seed, 1])
    configs = [
        {"learning_rate": lr, "optimizer": opt, "scheduler": sched, **FIXED}
        for lr in PROTOCOL_GRID["learning_rate"]
        for opt in PROTOCOL_GRID["optimizer"]
        for sched in PROTOCOL_GRID["scheduler"]
    ]
    checkpoints = [(c, e, k) for k, c in enumerate(configs) for e in range(1, 5)]
    responses = [world.responses(c, e, key=("grid", k)) for c, e, k in checkpoints]
    quality = np.array([r[0] for r in responses])  # (80, prompts)
    length = np.array([r[1] for r in responses], dtype=float)
    first, second = np.triu_indices(len(checkpoints), k=1)
    wins = np.zeros(len(checkpoints))
    for prompt in range(len(world.prompts)):  # all 3,160 pairs on one prompt at a time
        swap = rng.random(len(first)) < 0.5  # who is shown first
        a, b = np.where(swap, second, first), np.where(swap, first, second)
        verdict = world.judge.draw(
            quality[a, prompt],
            quality[b, prompt],
            difficulty=world.difficulty[prompt],
            length_ratio=length[a, prompt] / length[b, prompt],
            rng=rng,
        )
        np.add.at(wins, a, verdict == 1)
        np.add.at(wins, b, verdict == 2)
    config, epoch, _ = checkpoints[int(np.argmax(wins))]
    chosen = world.landscape.quality(config, epoch)
    return [hpo_world.record(world, DEFAULT_BUDGET, chosen, 4 * len(configs), start)]


def _judge_search(
    world: World, base: str, pruning: str = "judge", judge: Any = None
) -> list[dict]:
    """``BradleyTerrySampler`` over ``base`` with ``JudgePruner`` (``pruning="judge"``, or
    ``"lean"`` with ``LEAN``) or Optuna's ``SuccessiveHalvingPruner`` on the reported
    scores (``"asha"``); ``judge``: the arena's judge (the world's by default)."""
    import optuna

    from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner, PublishCallback

    start = time.perf_counter()
    name = f"hpo-{base}-{world.seed}"
    lean = pruning == "lean"
    judge = world.judge if judge is None else judge
    arena = Arena(
        "sqlite:///:memory:",
        name,
        judge,
        world.prompts,
        seed=world.seed,
        **(LEAN["arena"] if lean else {}),
    )
    sampler = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=world.seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=world.seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=world.seed),
    }[base]()
    study = optuna.create_study(
        study_name=name,
        direction="maximize",
        sampler=BradleyTerrySampler(arena, sampler),
        pruner=(
            optuna.pruners.SuccessiveHalvingPruner()
            if pruning == "asha"
            else JudgePruner(arena, **PRUNER_OPTIONS[pruning])
        ),
    )
    truth: dict[tuple[int, int], float] = {}
    potential: dict[int, float] = {}  # trial -> true quality of its best epoch, had it run all
    epochs = 0
    records: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        nonlocal epochs
        from optuna_pandalm.testing import Landscape

        params = Landscape.suggest(trial)
        potential[trial.number] = max(
            world.landscape.quality(params, e) for e in range(1, world.landscape.epochs + 1)
        )
        for epoch in range(1, world.landscape.epochs + 1):
            texts = world.landscape.generations(params, epoch, world.prompts, key=trial.number)
            epochs += 1
            truth[(trial.number, epoch)] = world.landscape.quality(params, epoch)
            arena.evaluate(trial, epoch, texts)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return arena.finalize(trial)

    def at_budget(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if len(study.trials) in BUDGETS:
            best = arena.incumbent()
            assert best is not None and best.trial is not None and best.step is not None
            record = hpo_world.record(
                world, len(study.trials), truth[(best.trial, best.step)], epochs, start
            )
            record["judge_calls"] = judge.calls
            pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
            # A false prune: the trial that would have been best (had it run every epoch) was
            # pruned.
            top = max(potential, key=potential.__getitem__)
            record["pruned"] = len(pruned)
            record["pruned_at_step"] = sorted(t.last_step for t in pruned)
            record["best_trial_pruned"] = top in {t.number for t in pruned}
            records.append(record)

    study.optimize(objective, n_trials=max(BUDGETS), callbacks=[PublishCallback(arena), at_budget])
    return records


def _match(world: World, a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...], rng) -> int:
    """A racing match of ``a`` against ``b`` (the arena's defaults): +1, 0 or -1 for ``a``."""
    from optuna_pandalm.arena import sign_test

    order = rng.permutation(len(world.prompts))
    wins = ties = losses = 0
    for begin in range(0, len(order), 16):
        outcome = games(world, a, b, order[begin : begin + 16], rng)
        wins, ties, losses = (
            wins + (outcome == 1).sum(),
            ties + (outcome == 0).sum(),
            losses + (outcome == -1).sum(),
        )
        if wins + ties + losses >= 16 and sign_test(wins, ties, losses) < 0.01:
            break
    return int(np.sign(wins - losses))


def preferential_gp(world: World) -> list[dict]:
    from optuna_dashboard.preferential import create_study
    from optuna_dashboard.preferential.samplers.gp import PreferentialGPSampler

    from optuna_pandalm.testing import Landscape

    start = time.perf_counter()
    rng = np.random.default_rng([world.seed, 2])
    warnings.filterwarnings("ignore", module="optuna_dashboard")
    study = create_study(n_generate=1, sampler=PreferentialGPSampler(seed=world.seed))
    champion: tuple[Any, float, tuple[np.ndarray, ...]] | None = None
    records = []
    for number in range(max(BUDGETS)):
        trial = study.ask()
        params = Landscape.suggest(trial)
        frozen = study.get_trials(deepcopy=False)[trial.number]
        last = world.landscape.epochs
        responses = world.responses(params, last, key=number)
        quality = world.landscape.quality(params, last)
        if champion is None:
            champion = (frozen, quality, responses)
        elif _match(world, responses, champion[2], rng) > 0:
            study.report_preference(frozen, champion[0])
            champion = (frozen, quality, responses)
        else:
            study.report_preference(champion[0], frozen)
        if number + 1 in BUDGETS:
            epochs = (number + 1) * last
            records.append(hpo_world.record(world, number + 1, champion[1], epochs, start))
    return records


def pointwise_tpe(world: World) -> list[dict]:
    import optuna

    from optuna_pandalm.testing import Landscape

    start = time.perf_counter()
    rng = np.random.default_rng([world.seed, 3])
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=world.seed)
    )
    best: tuple[float, float] = (-math.inf, 0.0)  # (metric, true quality) of the chosen one
    records = []
    for number in range(max(BUDGETS)):
        trial = study.ask()
        params = Landscape.suggest(trial)
        metrics = []
        for epoch in range(1, world.landscape.epochs + 1):
            quality = world.landscape.quality(params, epoch)
            metric = quality + POINTWISE_NOISE * rng.standard_normal()
            metrics.append(metric)
            best = max(best, (metric, quality))
        study.tell(trial, max(metrics))
        if number + 1 in BUDGETS:
            epochs = (number + 1) * world.landscape.epochs
            records.append(hpo_world.record(world, number + 1, best[1], epochs, start))
    return records


RUNNERS: dict[str, Callable[[World], list[dict]]] = {
    "pandalm_protocol": pandalm_protocol,
    "bt_tpe": lambda w: _judge_search(w, "tpe"),
    "bt_gp": lambda w: _judge_search(w, "gp"),
    "bt_random": lambda w: _judge_search(w, "random"),
    "preferential_gp": preferential_gp,
    "pointwise_tpe": pointwise_tpe,
    "one_epoch_topk": one_epoch_topk,
    "asha": lambda w: _judge_search(w, "tpe", pruning="asha"),
    "winrate_wilcoxon": winrate_wilcoxon,
    "bt_tpe_lean": lambda w: _judge_search(w, "tpe", pruning="lean"),
    "tpe_hyperband": lambda w: tpe_hyperband(w, _noise(w)),
    "reward_asha": lambda w: reward_asha(w, _noise(w)),
    "reward_bt": lambda w: _judge_search(w, "tpe", judge=RewardJudge(w, _noise(w))),
    "default_configs": default_configs,
    "bt_tpe_stop": lambda w: _judge_search(w, "tpe", pruning="stop"),
    "bt_tpe_stop_risk": lambda w: _judge_search(w, "tpe", pruning="stop_risk"),
    "bt_tpe_curve": lambda w: _judge_search(w, "tpe", pruning="curve"),
    "bt_tpe_v3": lambda w: _judge_search(w, "tpe", pruning="v3"),
    "bt_tpe_curve2": lambda w: _judge_search(w, "tpe", pruning="curve2"),
}


def _noise(world: World) -> float:
    assert world.reward_noise is not None, "calibrate() sets it"
    return world.reward_noise


def _run(task: tuple[str, int, dict[str, Any]]) -> list[dict]:
    strategy, seed, calibration = task
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    world = World(seed, calibration, load_test_prompts())
    records = RUNNERS[strategy](world)
    for record in records:
        record.update(strategy=strategy, seed=seed, shape=world.shape)
    return records


# --- summary ------------------------------------------------------------------------------
def summarise(rows: list[dict]) -> dict[str, Any]:
    def stats(selected: list[dict]) -> dict[str, Any]:
        regret = quartiles([r["regret"] for r in selected])
        calls = quartiles([r["judge_calls"] for r in selected])
        epochs = quartiles([r["training_epochs"] for r in selected])
        return {
            "median_regret": regret["median"],
            "regret_q1": regret["q1"],
            "regret_q3": regret["q3"],
            "median_judge_calls": calls["median"],
            "judge_calls_q1": calls["q1"],
            "judge_calls_q3": calls["q3"],
            "median_training_epochs": epochs["median"],
            "median_wall_s": statistics.median(r["wall_s"] for r in selected),
            "n_seeds": len({r["seed"] for r in selected}),
        }

    strategies, curves, shapes = {}, {}, {}
    for name in STRATEGIES:
        mine = [r for r in rows if r["strategy"] == name]
        if not mine:
            continue
        default = [r for r in mine if r["budget"] == DEFAULT_BUDGET]
        strategies[name] = {"budget_trainings": DEFAULT_BUDGET, **stats(default)}
        curves[name] = {
            str(b): stats([r for r in mine if r["budget"] == b])
            for b in sorted({r["budget"] for r in mine})
        }
        shapes[name] = {
            shape: stats([r for r in default if r["shape"] == shape])
            for shape in sorted({r["shape"] for r in default})
        }
    return {"strategies": strategies, "budgets": curves, "by_shape": shapes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds from this one")
    parser.add_argument(
        "--strategies",
        default=",".join(DEFAULT_STRATEGIES),
        help=f"comma-separated, from {','.join(STRATEGIES)}",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--rows", action="store_true", help="include per-run rows in the JSON")
    parser.add_argument(
        "--add-rows",
        action="append",
        default=[],
        metavar="FILE",
        help="also summarise the rows of an earlier `--json --rows` document (repeatable)",
    )
    parser.add_argument(
        "--plot", help="write the plotly figure here (HTML; a PNG beside it with kaleido)"
    )
    parser.add_argument(
        "--reward-gap",
        type=float,
        help="calibrate the reward model's noise to the pairwise judge's agreement at this "
        "gap (log-odds) instead of on PandaLM's test pairs (hpo_reward.reward_noise)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    earlier = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args.add_rows]
    # Summarising earlier runs only (--seeds 0) reuses their calibration.
    calibration = earlier[0]["calibration"] if earlier and not args.seeds else calibrate()
    if args.reward_gap is not None:
        calibration["reward_noise"] = reward_noise(calibration, gap=args.reward_gap)
        calibration["reward_gap"] = args.reward_gap
    calibration.setdefault("reward_noise", reward_noise(calibration))
    names = args.strategies.split(",")
    unknown = set(names) - set(STRATEGIES)
    if unknown:
        parser.error(f"unknown strategies {sorted(unknown)}; choose from {STRATEGIES}")
    if "preferential_gp" in names:
        try:
            import botorch  # noqa: F401
            import optuna_dashboard  # noqa: F401
        except ImportError as error:
            parser.error(
                f"preferential_gp needs optuna-dashboard and botorch ({error}): "
                "pip install optuna-dashboard botorch, or leave it out with --strategies"
            )
    # The slow ones first, so two cores stay busy to the end.
    order = {
        "bt_gp": 0,
        "preferential_gp": 1,
        "one_epoch_topk": 2,
        "bt_tpe": 3,
        "bt_tpe_lean": 3,
        "reward_bt": 3,
        "bt_tpe_stop": 3,
        "bt_tpe_stop_risk": 3,
        "bt_tpe_curve": 3,
        "bt_tpe_v3": 3,
        "bt_tpe_curve2": 3,
        "asha": 4,
    }
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    tasks = sorted(
        ((name, seed, calibration) for name in names for seed in seeds),
        key=lambda t: (order.get(t[0], 9), t[1]),
    )
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        rows = [r for chunk in pool.imap_unordered(_run, tasks) for r in chunk]
    for document in earlier:
        rows += document["rows"]
    summary = summarise(rows)
    document = {
        "benchmark": "hpo_efficiency",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "seeds": len({r["seed"] for r in rows}),
        "wall_s": round(time.perf_counter() - started, 1),
        **summary,
        "paired_vs_bt_tpe": (paired := paired_differences(rows)),
        "targets": targets(summary, DEFAULT_BUDGET, paired),
        # Issue 27's "one documented setting": the same targets for bt_tpe_v3.
        "targets_bt_tpe_v3": targets(
            summary, DEFAULT_BUDGET, paired_differences(rows, ours=V3), ours=V3
        ),
        "calibration": calibration,
    }
    if args.rows:
        document["rows"] = rows
    if args.plot:
        plot(summary, args.plot)
    if args.json:
        print(json.dumps(document, indent=2))
        return
    print(f"{'strategy':18} {'regret':>8} {'q1':>7} {'q3':>7} {'judge calls':>12} {'epochs':>7}")
    for name, s in summary["strategies"].items():
        print(
            f"{name:18} {s['median_regret']:8.3f} {s['regret_q1']:7.3f} {s['regret_q3']:7.3f} "
            f"{s['median_judge_calls']:12.0f} {s['median_training_epochs']:7.0f}"
        )
    print(
        f"\npaired per-seed differences, theirs - {'bt_tpe'}'s (median [90% bootstrap interval])"
    )
    for budget, comparisons in document["paired_vs_bt_tpe"].items():
        for name, d in comparisons.items():
            print(
                f"{budget:>3} trainings {name:18} regret {d['regret']['median']:+.3f} "
                f"{d['regret']['interval']}  epochs {d['training_epochs']['median']:+.1f}  "
                f"calls {d['judge_calls']['median']:+.0f}  bt_tpe lower in "
                f"{d['seeds_ours_lower']} of {d['n_seeds']} seeds"
            )
    print(json.dumps(document["targets"], indent=2))
    print(f"{document['wall_s']} s")


if __name__ == "__main__":
    main()
