"""The world every strategy of ``hpo_efficiency.py`` shares: prompts, the calibrated judge,
one seed's landscape, and games between two checkpoints' responses drawn from that judge."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "pandalm"


def load_test_prompts() -> list[Any]:
    """PandaLM's 170 test prompts (a placeholder instruction for the one that is blank)."""
    from optuna_pandalm import Prompt
    from optuna_pandalm.testing import simulated_prompts

    path = SHARED / "testset-inference-v1.json"
    if not path.exists():
        return simulated_prompts(170)
    records = json.loads(path.read_text(encoding="utf-8"))
    return [
        Prompt(
            (r.get("instruction") or "").strip() or f"(PandaLM test prompt {i} is blank)",
            input=r.get("input") or "",
        )
        for i, r in enumerate(records)
    ]


def calibrate() -> dict[str, Any]:
    """Fit the simulated judge to PandaLM-7B and measure the test set's response lengths."""
    from optuna_pandalm.testing import PANDALM_7B

    if not (SHARED / "testset-v1.json").exists():
        return {"source": "preset (shared data absent)", "judge": dict(PANDALM_7B)}
    from optuna_pandalm.judges.evaluation import (
        evaluate_predictions,
        load_testset,
        read_predictions,
    )
    from optuna_pandalm.testing.calibration import calibrate_simulated_judge, replay

    pairs = load_testset(SHARED / "testset-v1.json")
    predicted = read_predictions(SHARED / "pandalm-7b-testset-v1.json")
    fit = calibrate_simulated_judge(pairs, predicted, n_samples=20_000)
    pandalm = evaluate_predictions(pairs, predicted)
    lengths = [len(t) for p in pairs for t in (p.response_1, p.response_2) if t]
    return {
        "source": str(SHARED),
        "pandalm_7b": {
            "accuracy": pandalm["accuracy"],
            "decisive_accuracy": _decisive_accuracy(pairs, predicted),
            "tie_rate": fit.measured["judge_tie"],
            "human_tie_rate": fit.measured["human_tie"],
            "length_preference": pandalm["length_preference"],
            "human_length_preference": pandalm["human_length_preference"],
            "swap_flip_rate": fit.measured["flips"],
            "swap_flip_source": "PandaLM users' report (not in the released data)",
        },
        "model_rates": fit.fitted,
        "simulator_rates": replay(fit, n_pairs=20_000, seed=1),
        "test_set_model": fit.test_set,
        "judge": fit.judge,
        "length_bias_stderr": fit.length_bias_stderr,
        "length_log_sd": float(np.std(np.log(lengths))),
        "fit_loss": fit.loss,
    }


def _decisive_accuracy(pairs: list[Any], predicted: dict[int, int | None]) -> float:
    both = [(p.truth, predicted.get(p.idx)) for p in pairs]
    decisive = [(h, j) for h, j in both if h in (1, 2) and j in (1, 2)]
    return sum(h == j for h, j in decisive) / len(decisive)


class World:
    """One seed's landscape, judge and prompts, shared by every strategy."""

    def __init__(self, seed: int, calibration: dict[str, Any], prompts: list[Any]) -> None:
        from optuna_pandalm.testing import LANDSCAPES, Landscape, SimulatedJudge

        self.seed = seed
        self.shape = LANDSCAPES[seed % len(LANDSCAPES)]
        self.landscape = Landscape(
            self.shape, seed=seed, length_spread=calibration.get("length_log_sd", 0.0)
        )
        self.prompts = prompts
        self.judge = SimulatedJudge(seed=seed, **calibration["judge"])
        self.reward_noise: float | None = calibration.get("reward_noise")  # hpo_reward.py
        self.best = self.landscape.best_quality()
        self.difficulty = np.array([self.judge.difficulty(p.instruction) for p in prompts])

    def responses(self, params: dict[str, Any], epoch: int, key: Any) -> tuple[np.ndarray, ...]:
        return (
            self.landscape.response_qualities(params, epoch, self.prompts, key=key),
            self.landscape.response_lengths(epoch, self.prompts, key=key),
        )


def record(world: World, budget: int, quality: float, epochs: int, start: float) -> dict:
    return {
        "budget": budget,
        "regret": world.best - quality,
        "judge_calls": world.judge.calls,
        "training_epochs": epochs,
        "wall_s": time.perf_counter() - start,
    }


def games(
    world: World,
    a: tuple[np.ndarray, ...],
    b: tuple[np.ndarray, ...],
    prompts: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """One judged game of ``a`` against ``b`` (quality and length per prompt) on each of
    ``prompts``, the shown order by a coin: +1 ``a`` won, 0 tie, -1 ``b`` won."""
    swap = rng.random(len(prompts)) < 0.5
    first_q = np.where(swap, b[0][prompts], a[0][prompts])
    second_q = np.where(swap, a[0][prompts], b[0][prompts])
    ratio = np.where(swap, b[1][prompts] / a[1][prompts], a[1][prompts] / b[1][prompts])
    verdict = world.judge.draw(
        first_q, second_q, difficulty=world.difficulty[prompts], length_ratio=ratio, rng=rng
    )
    a_won = np.where(swap, verdict == 2, verdict == 1)
    b_won = np.where(swap, verdict == 1, verdict == 2)
    return a_won.astype(int) - b_won.astype(int)
