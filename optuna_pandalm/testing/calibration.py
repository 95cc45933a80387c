"""Fit :class:`~optuna_pandalm.testing.SimulatedJudge` to a real judge's human-labelled record.

Simulated studies are only as telling as their judge. This module finds the simulated judge
whose verdicts on a human-labelled test set look like the real judge's: the same tie rate,
the same agreement with the humans, the same share of verdicts that flip when the two
responses trade places, the same preference for the first-shown response, and the same pull
towards longer responses beyond what the humans saw.

The model behind the fit (everything in the judge's own log-odds):

* each test pair has a true difference ``d ~ N(mu, spread^2)``; the human majority says
  "Tie" when ``|d| < tie_band``, else the better one (the humans are the truth);
* the judge sees ``d * (1 + relative_noise * z)`` with ``z ~ N(0, 1)`` fixed for the pair
  (so it keeps its opinion when the order is swapped), adds ``position_bias`` and answers
  with Davidson's probabilities (``tie_strength``).

Six unknowns, six measured rates: the fit is exact when the model can express the judge.
The length pull is a separate logistic regression (the judge's choice on the human label
and the log length ratio). The flip rate is not in PandaLM's released data (its code never
swaps); 17% is what PandaLM users report, and it can be passed in.

scipy is imported inside the functions that fit, so importing this module stays cheap.

Example (PandaLM-7B: the packaged test set, its recorded verdicts from PandaLM's repository,
a copy in this repository's ``tests/data/pandalm/``):

    >>> from optuna_pandalm.judges.evaluation import load_testset, read_predictions
    >>> pairs = load_testset("pandalm")  # doctest: +SKIP
    >>> verdicts = read_predictions("pandalm-7b-testset-v1.json")  # doctest: +SKIP
    >>> fit = calibrate_simulated_judge(pairs, verdicts)  # doctest: +SKIP
    >>> round(fit.judge["relative_noise"], 2)  # doctest: +SKIP
    1.47
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from optuna_pandalm.judges.base import JudgeRequest, mirrored
from optuna_pandalm.judges.evaluation import LabelledPair
from optuna_pandalm.testing import SimulatedJudge, simulated_response

__all__ = ["Calibration", "calibrate_simulated_judge", "judge_rates", "replay"]


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The measured rates, the fitted test-set model and the simulated judge's settings.

    ``judge`` holds :class:`~optuna_pandalm.testing.SimulatedJudge` keyword arguments;
    ``fitted`` the rates the fitted model implies (compare with ``measured``); ``test_set``
    the fitted distribution of true differences (``mu``, ``spread``, ``tie_band``).
    """

    measured: dict[str, float]
    fitted: dict[str, float]
    test_set: dict[str, float]
    judge: dict[str, float]
    length_bias_stderr: float
    loss: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def judge_rates(
    truth: Sequence[int], predicted: Sequence[int | None], *, flip_rate: float
) -> dict[str, float]:
    """The six rates the fit matches: human and judge tie rates, the share of "1" among
    decisive human and judge labels, 3-way agreement, and the given swap flip rate.
    Invalid predictions count as ties, as in PandaLM's scoring."""
    h = np.asarray(truth)
    j = np.array([0 if p is None else p for p in predicted])
    if len(h) != len(j) or len(h) == 0:
        raise ValueError(f"need as many predictions as labels, got {len(j)} and {len(h)}")
    return {
        "human_tie": float(np.mean(h == 0)),
        "human_first": float(np.sum(h == 1) / max(np.sum(h > 0), 1)),
        "judge_tie": float(np.mean(j == 0)),
        "judge_first": float(np.sum(j == 1) / max(np.sum(j > 0), 1)),
        "agreement": float(np.mean(h == j)),
        "flips": float(flip_rate),
    }


def _davidson(
    u: NDArray[np.float64], tie_strength: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    top = np.abs(u) / 2
    first, second = np.exp(u / 2 - top), np.exp(-u / 2 - top)
    tie = tie_strength * np.exp(-top)
    total = first + second + tie
    return tie / total, first / total, second / total


def _model_rates(
    x: NDArray[np.float64], z_pair: NDArray[np.float64], z_view: NDArray[np.float64]
) -> dict[str, float]:
    from scipy.stats import norm

    mu, log_spread, log_band, log_tie, log_relative, position = x
    spread, band = math.exp(log_spread), math.exp(log_band)
    d = mu + spread * z_pair
    # The humans' tie band, smoothed a little so the fit's objective is smooth.
    human_tie = norm.cdf((band - np.abs(d)) / (0.02 * spread))
    human_1, human_2 = (1 - human_tie) * (d > 0), (1 - human_tie) * (d <= 0)
    view = d * (1 + math.exp(log_relative) * z_view)
    tie, one, two = _davidson(view + position, math.exp(log_tie))
    tie_s, one_s, two_s = _davidson(-view + position, math.exp(log_tie))
    same = tie * tie_s + one * two_s + two * one_s  # "1" shown second is "2"
    return {
        "human_tie": float(human_tie.mean()),
        "human_first": float(human_1.mean() / (human_1 + human_2).mean()),
        "judge_tie": float(tie.mean()),
        "judge_first": float(one.mean() / (one + two).mean()),
        "agreement": float((human_tie * tie + human_1 * one + human_2 * two).mean()),
        "flips": float(1 - same.mean()),
    }


def _length_pull(
    pairs: Sequence[LabelledPair], predicted: Mapping[int, int | None]
) -> tuple[float, float]:
    """The judge's log-odds per unit log length ratio beyond the human label, and its SE
    (logistic regression on pairs where both are decisive and the lengths differ)."""
    rows = [
        (p, predicted.get(p.idx))
        for p in pairs
        if p.truth > 0
        and predicted.get(p.idx) in (1, 2)
        and len(p.response_1) != len(p.response_2)
    ]
    y = np.array([float(v == 1) for _, v in rows])
    x = np.array(
        [
            [
                1.0,
                1.0 if p.truth == 1 else -1.0,
                math.log(max(len(p.response_1), 1) / max(len(p.response_2), 1)),
            ]
            for p, _ in rows
        ]
    )
    w = np.zeros(3)
    hessian = np.eye(3)
    for _ in range(50):  # Newton on the logistic log-likelihood
        p = 1 / (1 + np.exp(-x @ w))
        hessian = (x * (p * (1 - p))[:, None]).T @ x
        step = np.linalg.solve(hessian, x.T @ (y - p))
        w += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(w[2]), float(math.sqrt(np.linalg.inv(hessian)[2, 2]))


def calibrate_simulated_judge(
    pairs: Sequence[LabelledPair],
    predicted: Mapping[int, int | None],
    *,
    flip_rate: float = 0.17,
    n_samples: int = 40_000,
    seed: int = 0,
) -> Calibration:
    """Fit the simulated judge to ``predicted`` (idx -> 0, 1, 2 or None) on ``pairs``.

    Monte Carlo over ``n_samples`` test pairs with common random numbers, minimised by
    Nelder-Mead from a few starts; ``loss`` is the sum of squared rate errors (about 1e-15
    when the fit is exact).
    """
    from scipy.optimize import minimize

    measured = judge_rates(
        [p.truth for p in pairs], [predicted.get(p.idx) for p in pairs], flip_rate=flip_rate
    )
    rng = np.random.default_rng(seed)
    z_pair, z_view = rng.standard_normal(n_samples), rng.standard_normal(n_samples)

    def loss(x: NDArray[np.float64]) -> float:
        rates = _model_rates(x, z_pair, z_view)
        return sum((rates[k] - measured[k]) ** 2 for k in measured)

    best = None
    for spread in (10.0, 3.0):
        start = np.array([0.0, math.log(spread), math.log(0.1 * spread), 0.0, 0.0, 0.0])
        result = minimize(
            loss,
            start,
            method="Nelder-Mead",
            options={"maxiter": 8000, "xatol": 1e-7, "fatol": 1e-16},
        )
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None
    mu, log_spread, log_band, log_tie, log_relative, position = best.x
    length_bias, length_se = _length_pull(pairs, predicted)
    return Calibration(
        measured=measured,
        fitted=_model_rates(best.x, z_pair, z_view),
        test_set={
            "mu": float(mu),
            "spread": math.exp(log_spread),
            "tie_band": math.exp(log_band),
        },
        judge={
            "noise": 0.0,
            "relative_noise": math.exp(log_relative),
            "tie_strength": math.exp(log_tie),
            "position_bias": float(position),
            "length_bias": length_bias,
        },
        length_bias_stderr=length_se,
        loss=float(best.fun),
    )


def replay(calibration: Calibration, *, n_pairs: int = 20_000, seed: int = 0) -> dict[str, float]:
    """The six rates of a real :class:`~optuna_pandalm.testing.SimulatedJudge` with the fitted
    settings, asked in both orders on ``n_pairs`` synthetic test pairs drawn from the fitted
    test-set model: the check that the simulator implements the model that was fitted."""
    rng = np.random.default_rng(seed)
    shape = calibration.test_set
    d = shape["mu"] + shape["spread"] * rng.standard_normal(n_pairs)
    truth = np.where(np.abs(d) < shape["tie_band"], 0, np.where(d > 0, 1, 2))
    settings: dict[str, Any] = {**calibration.judge, "length_bias": 0.0}  # equal lengths
    judge = SimulatedJudge(seed=seed, difficulty_spread=0.0, **settings)
    first = [simulated_response(float(q)) for q in d]
    second = [simulated_response(0.0, text="other")] * n_pairs
    shown = judge.judge(
        [
            JudgeRequest(f"task {i}", a, b)
            for i, (a, b) in enumerate(zip(first, second, strict=True))
        ]
    )
    swapped = judge.judge(
        [
            JudgeRequest(f"task {i}", b, a)
            for i, (a, b) in enumerate(zip(first, second, strict=True))
        ]
    )
    labels = [0 if v.winner is None else v.winner for v in shown]
    mirrored_labels = [mirrored(0 if v.winner is None else v.winner) for v in swapped]
    rates = judge_rates(
        truth.tolist(),
        labels,
        flip_rate=float(np.mean(np.array(labels) != np.array(mirrored_labels))),
    )
    return rates
