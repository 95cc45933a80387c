"""Ray Tune with the judge: Tune schedules the trials, Optuna's sampler (on current
Bradley–Terry scores) suggests them, the arena judges every checkpoint, and JudgePruner's
rule stops the losers through a Tune scheduler. See docs/ray_tune.md.

    pip install 'optuna-pandalm[ray]'
    python examples/ray_tune.py                  # a SQLite file in ./ray-tune-example/
    python examples/ray_tune.py --storage postgresql+psycopg://user:pw@host/db --trials 20

The training is simulated (each checkpoint's answers carry a latent quality that is best
near a learning rate of 3e-5 and grows with training) and so is the judge
(``SimulatedJudge``), so this runs on 2 CPUs in a minute or two. For real work, replace
``train_and_answer`` with your training and the prompt set's generation, and the judge with
PandaLM or a vLLM server (docs/judges.md); give each trial a GPU with
``tune.with_resources(trainable, {"gpu": 1})``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner
from optuna_pandalm.study.optuna_storage import OutageTolerantStorage
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response
from optuna_pandalm.training.ray_tune import (
    TRIAL_NUMBER,
    JudgedOptunaSearch,
    JudgePrunerScheduler,
    JudgePublishCallback,
    judged_trial,
    report_checkpoint,
    report_final,
)

STUDY = "ray-tune-example"
PROMPTS = simulated_prompts(24, seed=0)
EPOCHS = 3


def make_arena(storage: str) -> Arena:
    """The study's arena, built the same way in the driver and in every worker."""
    return Arena(storage, STUDY, SimulatedJudge(seed=0), PROMPTS, seed=0)


def space(trial: optuna.Trial) -> None:
    """The search space, define-by-run (suggestions only: no training here)."""
    trial.suggest_float("learning_rate", 1e-6, 1e-3, log=True)
    trial.suggest_categorical("lora_rank", [8, 16, 32])


def train_and_answer(config: dict, epoch: int) -> list[str]:
    """Train one more epoch and answer the prompt set (simulated)."""
    distance = math.log10(config["learning_rate"] / 3e-5)
    quality = 1.5 - distance**2 + 0.2 * math.log2(config["lora_rank"] / 8) + 0.3 * epoch
    return [simulated_response(quality, text=f"answer {i}") for i in range(len(PROMPTS))]


def trainable(config: dict, *, storage: str) -> None:
    """One Tune trial, in a Ray worker process: its Optuna trial, judged at each epoch."""
    arena = make_arena(storage)
    trial = judged_trial(config, storage, study_name=STUDY, pruner=JudgePruner(arena))
    for epoch in range(1, EPOCHS + 1):
        answers = train_and_answer(config, epoch)
        report_checkpoint(arena.evaluate(trial, epoch, answers))
    report_final(arena, trial)  # finalize: the trial's value, or pruned at its end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", help="SQLAlchemy URL (default: a SQLite file)")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--cpus", type=int, default=2, help="the local Ray cluster's CPUs")
    parser.add_argument("--folder", type=Path, default=Path("ray-tune-example"))
    args = parser.parse_args()
    args.folder = args.folder.resolve()
    args.folder.mkdir(parents=True, exist_ok=True)
    storage_url = args.storage or f"sqlite:///{args.folder / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    arena = make_arena(storage_url)  # creates the arena (prompts, settings) before workers
    storage = OutageTolerantStorage(storage_url)
    search = JudgedOptunaSearch(
        space,
        sampler=BradleyTerrySampler(arena, optuna.samplers.TPESampler(seed=0)),
        storage=storage,
        study_name=STUDY,
    )
    tuner = tune.Tuner(
        tune.with_parameters(trainable, storage=storage_url),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(search, max_concurrent=args.cpus),
            scheduler=JudgePrunerScheduler(JudgePruner(arena), storage=storage, study_name=STUDY),
            num_samples=args.trials,
        ),
        run_config=tune.RunConfig(
            name=STUDY,
            storage_path=str(args.folder / "tune"),
            callbacks=[JudgePublishCallback(arena, storage=storage)],
            verbose=0,
        ),
    )
    results = tuner.fit()
    ray.shutdown()

    study = optuna.load_study(study_name=STUDY, storage=storage_url)
    pids = {r.config[TRIAL_NUMBER]: r.metrics.get("pid") for r in results}
    for trial in study.trials:
        value = "" if trial.value is None else f" value {trial.value:+.3f}"
        print(
            f"trial {trial.number} ({trial.state.name}{value}, worker pid {pids[trial.number]}): "
            f"lr {trial.params['learning_rate']:.1e}, rank {trial.params['lora_rank']}, "
            f"{len(trial.intermediate_values)} checkpoint(s) judged"
        )
        if "pandalm_pruned" in trial.user_attrs:
            print(f"    {trial.user_attrs['pandalm_pruned']}")
    print("leaderboard (top 5):")
    for row in arena.leaderboard(top=5):
        print(f"  {row.label:<20} {row.score:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]")
    print(f"check: optuna-pandalm check --storage {storage_url} --study-name {STUDY}")


if __name__ == "__main__":
    main()
