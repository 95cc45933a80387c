"""JudgePruner on CPU in seconds: a trial stops when its checkpoint loses significantly.

No model is trained here. ``optuna_pandalm.testing`` simulates each checkpoint's answers
(``Landscape``) and a judge with PandaLM-7B's error profile (``SimulatedJudge``). Each
checkpoint plays the incumbent's checkpoint at the same epoch; a significant loss (a sign
test) prunes the trial, before it spends more epochs.
"""

import tempfile
from pathlib import Path

import optuna
import optunahub

from optuna_pandalm.testing import Landscape, SimulatedJudge, simulated_prompts

module = optunahub.load_module("pruners/pandalm_judge")

prompts = simulated_prompts(12, seed=1)
landscape = Landscape("narrow_lr", seed=1)

with tempfile.TemporaryDirectory() as folder:
    url = f"sqlite:///{Path(folder) / 'study.db'}"
    arena = module.Arena(url, "hub-pruner", SimulatedJudge.pandalm_7b(seed=1), prompts, seed=1)
    study = optuna.create_study(
        study_name="hub-pruner",
        storage=url,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=1),
        pruner=module.JudgePruner(arena),
    )

    def objective(trial: optuna.Trial) -> float:
        params = Landscape.suggest(trial)
        for epoch in range(1, landscape.epochs + 1):
            arena.evaluate(trial, epoch, landscape.generations(params, epoch, prompts))
            if trial.should_prune():
                raise optuna.TrialPruned()
        return arena.finalize(trial)

    study.optimize(objective, n_trials=6)
    states = [t.state.name for t in study.trials]
    print(f"{states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned")
    print(f"best trial {study.best_trial.number}, score {study.best_value:+.2f}")
