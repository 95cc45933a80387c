"""The simulated judge calibrated to PandaLM-7B: the fit, its preset and the simulator agree."""

from __future__ import annotations

import numpy as np
import pytest

from optuna_pandalm.judges.evaluation import load_testset, read_predictions
from optuna_pandalm.testing import PANDALM_7B, SimulatedJudge
from optuna_pandalm.testing.calibration import calibrate_simulated_judge, judge_rates, replay
from tests.pandalm_data import RECORDED_7B


@pytest.fixture(scope="module")
def calibration():
    pairs = load_testset("pandalm")
    predicted = read_predictions(RECORDED_7B)
    return calibrate_simulated_judge(pairs, predicted, n_samples=20_000)


def test_fit_matches_pandalm_7b_rates(calibration) -> None:
    measured = calibration.measured
    assert measured["agreement"] == pytest.approx(667 / 999)
    assert measured["judge_tie"] == pytest.approx(107 / 999)
    assert calibration.loss < 1e-8
    for key, value in measured.items():
        assert calibration.fitted[key] == pytest.approx(value, abs=1e-3), key


def test_preset_is_the_fit(calibration) -> None:
    for key, value in PANDALM_7B.items():
        assert calibration.judge[key] == pytest.approx(value, abs=0.05), key


def test_simulator_reproduces_the_rates(calibration) -> None:
    rates = replay(calibration, n_pairs=20_000, seed=1)
    for key, value in calibration.measured.items():
        assert rates[key] == pytest.approx(value, abs=0.015), key


def test_preset_ties_near_equal_responses_like_pandalm_table_9() -> None:
    judge = SimulatedJudge.pandalm_7b(seed=3)
    verdicts = judge.draw(np.zeros(20_000), np.zeros(20_000), rng=np.random.default_rng(0))
    # PandaLM-7B called 41-55% of LoRA-vs-full-fine-tuning games ties (Table 9).
    assert 0.40 < np.mean(verdicts == 0) < 0.50


def test_rates_need_matching_lengths() -> None:
    with pytest.raises(ValueError, match="as many predictions"):
        judge_rates([0, 1], [1], flip_rate=0.1)
