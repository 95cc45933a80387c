"""Games simulated from a planted Bradley–Terry–Davidson model, for the statistics tests."""

from __future__ import annotations

import dataclasses

import numpy as np

from optuna_pandalm.testing import simulated_verdicts


@dataclasses.dataclass
class Simulated:
    strengths: np.ndarray
    first: np.ndarray
    second: np.ndarray
    outcome: np.ndarray
    prompt: np.ndarray
    length_diff: np.ndarray


def simulate(
    n_players: int,
    n_games: int,
    *,
    seed: int,
    position: float = 0.3,
    tie: float = 0.5,
    length: float = 0.0,
    n_prompts: int = 50,
    replicas: int = 1,
    spread: float = 1.0,
) -> Simulated:
    """Games between random distinct pairs.

    With ``replicas > 1`` each verdict is repeated that many times under one cluster id
    (``prompt``): games in a cluster are then perfectly correlated, so naive standard errors
    are too small by ``sqrt(replicas)`` while the planted strengths stay the estimand.
    """
    rng = np.random.default_rng(seed)
    strengths = rng.normal(0, spread, n_players)
    first = rng.integers(0, n_players, n_games)
    second = (first + rng.integers(1, n_players, n_games)) % n_players
    prompt = rng.integers(0, n_prompts, n_games)
    length_diff = np.round(rng.normal(0, 1, n_games), 1)
    outcome = simulated_verdicts(
        strengths[first],
        strengths[second],
        length_ratio=np.exp(length_diff),
        uniforms=rng.random(n_games),
        position_bias=position,
        length_bias=length,
        tie_strength=tie,
    )
    if replicas > 1:
        first, second, outcome, length_diff = (
            np.repeat(a, replicas) for a in (first, second, outcome, length_diff)
        )
        prompt = np.repeat(np.arange(n_games), replicas)
    return Simulated(strengths, first, second, outcome, prompt, length_diff)
