"""Specification of the bookkeeping around the judge: what ``evaluate`` computes, and that
the faster paths give exactly what the plain ones did."""

from __future__ import annotations

import numpy as np
import pytest

from optuna_pandalm import Arena
from optuna_pandalm.arena import _ledger, _standings
from optuna_pandalm.statistics import BradleyTerryResult
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

PROMPTS = simulated_prompts(16, seed=2)


def _arena(tmp_path, name: str = "s") -> Arena:
    return Arena(f"sqlite:///{tmp_path / 'db.sqlite'}", name, SimulatedJudge(), PROMPTS, seed=0)


def _evaluate(arena: Arena, trial: int, quality: float):
    texts = [simulated_response(quality, text=f"t{trial} p{p}") for p in range(len(PROMPTS))]
    return arena.evaluate(trial, 1, texts)


def test_evaluate_fits_once_when_no_other_worker_stored_games(tmp_path, monkeypatch):
    # The opponent comes from the standings cached before the new checkpoint was stored (a
    # player without games changes no other score); only the match's games need a fit.
    arena = _arena(tmp_path)
    for trial, quality in enumerate([0.0, 0.5, 1.0]):
        _evaluate(arena, trial, quality)
    fits = []
    fit = _standings.fit_bradley_terry
    monkeypatch.setattr(
        _standings, "fit_bradley_terry", lambda *a, **k: fits.append(1) or fit(*a, **k)
    )
    result = _evaluate(arena, 3, 0.7)
    assert result.opponent is not None and result.games > 0
    assert len(fits) == 1


def test_evaluate_refits_for_the_opponent_after_another_workers_games(tmp_path):
    arena = _arena(tmp_path)
    for trial, quality in enumerate([0.0, 0.2]):
        _evaluate(arena, trial, quality)
    other = _arena(tmp_path)  # another worker: its strong checkpoint becomes the incumbent
    _evaluate(other, 2, 3.0)
    result = _evaluate(arena, 3, 0.1)
    assert result.opponent is not None and result.opponent.trial == 2


def test_evaluate_computes_the_interval_only_when_read(tmp_path, monkeypatch):
    arena = _arena(tmp_path)
    _evaluate(arena, 0, 0.0)
    calls = []
    interval_of = BradleyTerryResult.interval_of
    monkeypatch.setattr(
        BradleyTerryResult,
        "interval_of",
        lambda self, *a, **k: calls.append(1) or interval_of(self, *a, **k),
    )
    result = _evaluate(arena, 1, 0.5)
    assert calls == []
    low, high = result.ci_low, result.ci_high
    assert low < result.score < high
    assert (result.ci_low, result.ci_high) == (low, high) and len(calls) == 1
    fit = arena.standings()
    assert (low, high) == fit.interval(result.player)


@pytest.mark.parametrize("columns", [3, 5, 8])
def test_merged_counts_group_rows_as_a_row_wise_unique_does(columns):
    rng = np.random.default_rng(columns)
    keys = rng.integers(0, 4, (500, columns))
    keys[:, 0] = rng.integers(0, 3000, 500)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    fast, fast_inverse = _ledger._unique_rows(keys)
    np.testing.assert_array_equal(fast, unique)
    np.testing.assert_array_equal(fast_inverse, inverse.reshape(-1))


def test_merged_counts_fall_back_when_the_key_would_overflow():
    keys = np.array([[2**40, 2**30, 1], [0, 2**30, 1], [2**40, 2**30, 1]], dtype=np.int64)
    fast, inverse = _ledger._unique_rows(keys)
    np.testing.assert_array_equal(fast, np.unique(keys, axis=0))
    assert inverse.tolist() == [1, 0, 1]


def test_the_incumbent_is_the_oldest_of_scores_equal_to_six_decimals(tmp_path):
    arena = _arena(tmp_path)
    for trial, quality in enumerate([0.0, 0.5, 1.0, 1.5]):
        _evaluate(arena, trial, quality)
    standings = arena.standings()
    scores = standings.scores.copy()
    # The youngest 4e-7 above the oldest: the same to 6 decimals, so the older leads; a
    # third 2e-5 below them is not the incumbent whatever the order.
    scores[:] = 0.0
    scores[0], scores[-1], scores[1] = 5.0, 5.0 + 4e-7, 5.0 - 2e-5
    object.__setattr__(standings.result, "scores", scores)
    oldest, youngest = standings.players[0], standings.players[-1]
    assert standings.incumbent() == oldest
    assert standings.incumbent(exclude=oldest) == youngest
    assert (
        standings.incumbent(exclude=oldest, skip_trials={youngest.trial}) == (standings.players[1])
    )
