"""BradleyTerrySampler on CPU in seconds: PandaLM's search space, simulated checkpoints.

No model is trained here. ``optuna_pandalm.testing`` simulates each checkpoint's answers
(``Landscape``) and a judge with PandaLM-7B's error profile (``SimulatedJudge``). In a real
study the answers are your checkpoints' generations (``JudgeCallback`` in a Hugging Face
``Trainer``) and the judge is ``PandaLMJudge`` or ``RemoteJudge``.
"""

import tempfile
from pathlib import Path

import optuna
import optunahub

from optuna_pandalm.testing import Landscape, SimulatedJudge, simulated_prompts

module = optunahub.load_module("samplers/pandalm_bradley_terry")

prompts = simulated_prompts(12, seed=0)
landscape = Landscape("narrow_lr", seed=0)

with tempfile.TemporaryDirectory() as folder:
    url = f"sqlite:///{Path(folder) / 'study.db'}"
    arena = module.Arena(url, "hub-sampler", SimulatedJudge.pandalm_7b(seed=0), prompts, seed=0)
    # The wrapped sampler proposes; the wrapper feeds it the judge's Bradley-Terry scores.
    sampler = module.BradleyTerrySampler(
        arena, optuna.samplers.TPESampler(seed=0, n_startup_trials=4)
    )
    study = optuna.create_study(
        study_name="hub-sampler", storage=url, direction="maximize", sampler=sampler
    )

    def objective(trial: optuna.Trial) -> float:
        params = Landscape.suggest(trial)
        for epoch in range(1, landscape.epochs + 1):
            answers = landscape.generations(params, epoch, prompts, key=trial.number)
            arena.evaluate(trial, epoch, answers)  # judged against the incumbent
        return arena.finalize(trial)  # the trial's best checkpoint's score

    study.optimize(objective, n_trials=6)
    print(f"best trial {study.best_trial.number}: {study.best_trial.params}")
    for row in arena.leaderboard(top=3):
        print(f"{row.label:>12}  score {row.score:+.2f}  P(best) {row.p_best:.2f}")
