"""A reward-model judge for ``hpo_efficiency.py`` and the baselines that use it (issue 27 §3).

A reward model (Skywork-Reward-V2 style) scores each answer alone:
``score = difficulty(prompt) * quality + length_bias * log(length) + noise * z``, with ``z``
fixed per answer (the same text always gets the same score) and the world's pairwise
judge's ``difficulty`` and length pull, so the two judges see the same things. ``noise`` is
calibrated so that its pairwise agreement equals the simulated pairwise judge's: on the
pairs of the fitted test-set model (PandaLM's human-labelled pairs, ``d ~ N(mu,
spread^2)``) that people decided, the share of pairs where the judge prefers the answer
people preferred, a pairwise judge's "Tie" counting half (``reward_noise``).

Cost: one judge call per answer scored (a forward pass of the reward model, as a pairwise
call is one of the pairwise judge); an answer scored once is never scored again, so a
checkpoint costs at most one call per prompt however many games it plays.

* ``tpe_hyperband``: Optuna's ``TPESampler`` + ``HyperbandPruner`` (``min_resource=1``,
  ``max_resource`` = the epochs, ``reduction_factor=3``; Optuna's BOHB-like pairing) on each
  checkpoint's pointwise judge score, the mean reward over the prompts; the chosen
  checkpoint has the best mean reward of all judged checkpoints.
* ``reward_asha``: the same with Optuna's ``SuccessiveHalvingPruner`` at its defaults.
* ``reward_bt``: ``bt_tpe`` (``BradleyTerrySampler`` over TPE, ``JudgePruner``, racing: our
  defaults) with the reward model as the arena's judge: a game is won by the answer with
  the higher reward. It answers "is a pairwise judge worth it?" with the same search.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from hpo_world import World, record

from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict

BUDGETS = (10, 20, 40)


def pairwise_agreement(
    calibration: dict[str, Any], *, gap: float | None = None, n: int = 200_000
) -> float:
    """The pairwise judge's agreement with people on their decided pairs (a tie counts
    half), from the fitted test-set model and judge (both orders averaged); with ``gap``,
    on pairs whose true difference is that many log-odds instead."""
    shape, judge = _test_set(calibration), calibration["judge"]
    d = _decided(shape, n) if gap is None else np.full(n, float(gap))
    rng = np.random.default_rng(1)
    view = d * (1 + judge["relative_noise"] * rng.standard_normal(len(d)))
    share = 0.0
    for position in (judge["position_bias"], -judge["position_bias"]):
        u = view + position
        top = np.abs(u) / 2
        better, worse = np.exp(u / 2 - top), np.exp(-u / 2 - top)
        tie = judge["tie_strength"] * np.exp(-top)
        right = np.where(d > 0, better, worse)
        share += float(np.mean((right + tie / 2) / (better + worse + tie))) / 2
    return share


def reward_noise(calibration: dict[str, Any], *, gap: float | None = None) -> float:
    """The reward model's noise whose agreement on the decided pairs (or at ``gap``)
    equals the pairwise judge's: a pair is ordered right with probability
    ``Phi(|d| / (noise * sqrt 2))``.

    The pairwise judge's error is relative to the difference (``relative_noise``), a
    reward model's additive, so the two agree on one scale only: PandaLM's test pairs are
    far apart (spread ~16 log-odds), checkpoints of one search are not (gaps of 0.1-2), and
    matched on the test pairs the reward model is much the weaker judge between
    checkpoints. ``gap=1`` matches them at the benchmark's scale instead."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    target = pairwise_agreement(calibration, gap=gap)
    d = np.abs(_decided(_test_set(calibration), 200_000)) if gap is None else np.array([gap])

    def gap(noise: float) -> float:
        return float(np.mean(norm.cdf(d / (noise * math.sqrt(2))))) - target

    return float(brentq(gap, 1e-3, 1e3))


def _test_set(calibration: dict[str, Any]) -> dict[str, float]:
    # Without the shared data (the preset judge) a broad spread of differences stands in.
    return calibration.get("test_set_model") or {"mu": 0.0, "spread": 3.0, "tie_band": 0.3}


def _decided(shape: dict[str, float], n: int) -> np.ndarray:
    d = shape["mu"] + shape["spread"] * np.random.default_rng(0).standard_normal(n)
    return d[np.abs(d) >= shape["tie_band"]]


class RewardJudge(PairwiseJudge):
    """The reward model as a pairwise judge (for the arena): the answer with the higher
    reward wins; ``calls`` counts answers scored (each once)."""

    def __init__(self, world: World, noise: float) -> None:
        self.world = world
        self.noise = noise
        self.length_bias = world.judge.length_bias
        self.name = f"reward:seed={world.seed}:noise={noise:.4f}"
        self.calls = 0
        self._scores: dict[tuple[str, str], float] = {}

    def score(self, instruction: str, answer: str) -> float:
        from optuna_pandalm.testing import response_quality

        key = (instruction, answer)
        if key not in self._scores:
            self.calls += 1
            digest = hashlib.blake2b(f"{self.world.seed}\x00{instruction}\x00{answer}".encode())
            z = np.random.default_rng(int.from_bytes(digest.digest()[:8], "big")).normal()
            quality = response_quality(answer) or 0.0
            self._scores[key] = (
                quality * self.world.judge.difficulty(instruction)
                + self.length_bias * math.log(max(len(answer), 1))
                + self.noise * z
            )
        return self._scores[key]

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        verdicts = []
        for r in requests:
            first, second = (self.score(r.instruction, a) for a in (r.response_1, r.response_2))
            winner = 0 if first == second else 1 if first > second else 2
            verdicts.append(Verdict(winner=winner, reason=f"reward {first:+.3f} vs {second:+.3f}"))
        return verdicts


def pointwise_scores(
    world: World, noise: float, responses: tuple[np.ndarray, ...], key: Any
) -> np.ndarray:
    """The reward of each answer of one checkpoint (``responses``: qualities, lengths)."""
    digest = hashlib.blake2b(repr((world.seed, key)).encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    quality, length = responses
    return (
        quality * world.difficulty
        + world.judge.length_bias * np.log(np.maximum(length, 1))
        + noise * rng.standard_normal(len(quality))
    )


def _pointwise_search(world: World, noise: float, pruner: Any) -> list[dict]:
    """TPE on the mean reward of each checkpoint, ``pruner`` on it at each epoch."""
    import optuna

    from optuna_pandalm.testing import Landscape

    start = time.perf_counter()
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=world.seed), pruner=pruner
    )
    calls = epochs = 0
    best = (-math.inf, 0.0)  # (mean reward, true quality) of the chosen checkpoint
    records = []
    for number in range(max(BUDGETS)):
        trial = study.ask()
        params = Landscape.suggest(trial)
        means = []
        for epoch in range(1, world.landscape.epochs + 1):
            epochs += 1
            responses = world.responses(params, epoch, key=number)
            means.append(float(pointwise_scores(world, noise, responses, (number, epoch)).mean()))
            calls += len(world.prompts)
            best = max(best, (means[-1], world.landscape.quality(params, epoch)))
            trial.report(means[-1], epoch)
            if trial.should_prune():
                break
        if len(means) < world.landscape.epochs:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, max(means))
        if number + 1 in BUDGETS:
            row = record(world, number + 1, best[1], epochs, start)
            row["judge_calls"] = calls
            records.append(row)
    return records


def tpe_hyperband(world: World, noise: float) -> list[dict]:
    import optuna

    pruner = optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=world.landscape.epochs, reduction_factor=3
    )
    return _pointwise_search(world, noise, pruner)


def reward_asha(world: World, noise: float) -> list[dict]:
    import optuna

    return _pointwise_search(world, noise, optuna.pruners.SuccessiveHalvingPruner())
