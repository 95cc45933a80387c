"""Run small simulated judge-driven studies, for the arena, sampler and pruner tests."""

from __future__ import annotations

import dataclasses

import optuna

from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner, PublishCallback
from optuna_pandalm.testing import Landscape, SimulatedJudge, simulated_prompts


@dataclasses.dataclass
class StudyRun:
    study: optuna.Study
    arena: Arena
    judge: SimulatedJudge
    landscape: Landscape
    truth: dict[tuple[int, int], float]  # (trial, epoch) -> true quality of the checkpoint
    potential: dict[int, float]  # trial -> true quality of its best epoch (all epochs)


def run_study(
    url: str,
    *,
    seed: int,
    sampler: str = "tpe",
    n_trials: int = 30,
    n_prompts: int = 24,
    shape: str = "narrow_lr",
    prune: bool = True,
    n_jobs: int = 1,
    load: bool = False,
    publish: bool = True,
) -> StudyRun:
    """A simulated study. ``publish``: with :class:`PublishCallback` after each trial (about
    a third of the time of a 30-trial study), which writes the dashboard's attributes and
    changes no decision of the sampler or pruner."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prompts = simulated_prompts(n_prompts, seed=seed)
    landscape = Landscape(shape, seed=seed)
    judge = SimulatedJudge(seed=seed)
    arena = Arena(url, f"study-{seed}", judge, prompts, seed=seed, batch_size=12, min_games=12)
    base = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=8),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed),
    }[sampler]()
    study = optuna.create_study(
        study_name=f"study-{seed}",
        storage=url,
        direction="maximize",
        sampler=BradleyTerrySampler(arena, base),
        pruner=JudgePruner(arena) if prune else optuna.pruners.NopPruner(),
        load_if_exists=load,
    )
    truth: dict[tuple[int, int], float] = {}
    potential: dict[int, float] = {}

    def objective(trial: optuna.Trial) -> float:
        params = Landscape.suggest(trial)
        potential[trial.number] = max(landscape.quality(params, e) for e in range(1, 5))
        for epoch in range(1, landscape.epochs + 1):
            texts = landscape.generations(params, epoch, prompts, key=trial.number)
            arena.evaluate(trial, epoch, texts)
            truth[(trial.number, epoch)] = landscape.quality(params, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return arena.finalize(trial)

    callbacks = [PublishCallback(arena)] if publish else []
    study.optimize(objective, n_trials=n_trials, n_jobs=n_jobs, callbacks=callbacks)
    return StudyRun(study, arena, judge, landscape, truth, potential)
