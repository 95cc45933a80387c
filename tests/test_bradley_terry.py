"""Specification of fit_bradley_terry: recovery, uncertainty, edge cases, input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from optuna_pandalm import fit_bradley_terry
from optuna_pandalm.statistics import _hessian, _p_best, _result
from optuna_pandalm.testing import ladder_games
from tests.simulation import simulate


def _assert_finite(result) -> None:
    assert np.all(np.isfinite(result.scores))
    assert np.all(np.isfinite(result.stderr))
    assert math.isfinite(result.position_effect)
    assert math.isfinite(result.tie_strength)
    assert all(math.isfinite(v) for v in result.effect_stderr.values())
    p_best = result.p_best(n_samples=500, seed=0)
    assert np.all(np.isfinite(p_best))
    if result.n_players:
        assert p_best.sum() == pytest.approx(1.0)


def test_recovers_planted_ranking_of_100_players_from_10k_games():
    sim = simulate(100, 10_000, seed=1)
    result = fit_bradley_terry(sim.first, sim.second, sim.outcome)
    assert result.converged
    assert stats.spearmanr(sim.strengths, result.scores).statistic >= 0.95


def test_recovers_tie_strength_and_position_effect_within_two_standard_errors():
    sim = simulate(50, 20_000, seed=2, position=0.4, tie=0.6)
    result = fit_bradley_terry(sim.first, sim.second, sim.outcome)
    errors = result.effect_stderr
    assert abs(result.position_effect - 0.4) <= 2 * errors["position_effect"]
    assert abs(math.log(result.tie_strength) - math.log(0.6)) <= 2 * errors["log_tie_strength"]


def test_recovers_length_effect():
    sim = simulate(30, 20_000, seed=3, length=0.5)
    result = fit_bradley_terry(sim.first, sim.second, sim.outcome, length_diff=sim.length_diff)
    assert abs(result.length_effect - 0.5) <= 2 * result.effect_stderr["length_effect"]
    assert fit_bradley_terry(sim.first, sim.second, sim.outcome).length_effect is None


def _coverage(replicas: int, *, clustered: bool, repeats: int = 60) -> float:
    covered = []
    for seed in range(repeats):
        sim = simulate(15, 1_500 // replicas, seed=seed, replicas=replicas)
        result = fit_bradley_terry(
            sim.first,
            sim.second,
            sim.outcome,
            clusters=sim.prompt if clustered else None,
        )
        low, high = result.interval(0.95)
        planted = sim.strengths - sim.strengths[0]
        covered.extend(((low <= planted) & (planted <= high))[1:])
    return float(np.mean(covered))


def test_95_percent_intervals_cover_between_90_and_98_percent():
    assert 0.90 <= _coverage(1, clustered=False) <= 0.98


def test_cluster_robust_intervals_keep_coverage_when_games_in_a_cluster_are_correlated():
    plain = _coverage(4, clustered=False)
    robust = _coverage(4, clustered=True)
    assert plain < 0.8  # naive errors are half what they should be
    assert 0.90 <= robust <= 0.98


def test_aggregated_weights_give_the_same_fit_as_repeated_games():
    first, second, outcome = [0, 0, 1, 2, 2], [1, 2, 2, 0, 1], [1, 0, 2, 1, 1]
    counts = [3, 1, 2, 4, 2]
    repeated = fit_bradley_terry(
        np.repeat(first, counts), np.repeat(second, counts), np.repeat(outcome, counts)
    )
    weighted = fit_bradley_terry(first, second, outcome, weights=counts)
    np.testing.assert_allclose(weighted.scores, repeated.scores, atol=1e-9)
    np.testing.assert_allclose(weighted.stderr, repeated.stderr, atol=1e-9)
    assert weighted.n_games == repeated.n_games == sum(counts)


def test_anchor_has_score_zero_and_shifts_the_others():
    sim = simulate(10, 2_000, seed=4)
    by_zero = fit_bradley_terry(sim.first, sim.second, sim.outcome)
    by_three = fit_bradley_terry(sim.first, sim.second, sim.outcome, anchor=3)
    assert by_three.scores[3] == 0.0 and by_three.stderr[3] == 0.0
    np.testing.assert_allclose(by_three.scores, by_zero.scores - by_zero.scores[3], atol=1e-9)


def test_contrast_variance_matches_the_full_covariance():
    sim = simulate(20, 3_000, seed=5)
    for clusters in (None, sim.prompt):
        result = fit_bradley_terry(sim.first, sim.second, sim.outcome, clusters=clusters)
        cov = result.covariance()
        expected = cov[4, 4] + cov[7, 7] - 2 * cov[4, 7]
        assert result.contrast_variance(4, 7) == pytest.approx(expected, rel=1e-8)
        assert result.stderr[7] ** 2 == pytest.approx(result.contrast_variance(7, 0), rel=1e-8)


def test_sparse_solver_path_agrees_with_dense(monkeypatch):
    sim = simulate(60, 6_000, seed=6)
    dense = fit_bradley_terry(sim.first, sim.second, sim.outcome, clusters=sim.prompt)
    monkeypatch.setattr(_hessian, "_DENSE_LIMIT", 10)
    sparse = fit_bradley_terry(sim.first, sim.second, sim.outcome, clusters=sim.prompt)
    np.testing.assert_allclose(sparse.scores, dense.scores, atol=1e-6)
    assert sparse.contrast_variance(3, 9) == pytest.approx(dense.contrast_variance(3, 9), rel=1e-6)
    assert sparse.position_effect == pytest.approx(dense.position_effect, abs=1e-6)


def test_sparse_p_best_restricted_to_top_candidates_matches_dense(monkeypatch):
    sim = simulate(40, 8_000, seed=7, spread=0.3)
    dense = fit_bradley_terry(sim.first, sim.second, sim.outcome)
    monkeypatch.setattr(_hessian, "_DENSE_LIMIT", 10)
    monkeypatch.setattr(_result, "_FULL_POSTERIOR_LIMIT", 10)
    sparse = fit_bradley_terry(sim.first, sim.second, sim.outcome)
    full = dense.p_best(n_samples=20_000, seed=0)
    top = sparse.p_best(n_samples=20_000, seed=0, max_candidates=12)
    assert np.count_nonzero(top) <= 12
    np.testing.assert_allclose(top, full, atol=0.02)


def test_p_best_of_many_players_draws_top_candidates_and_matches_the_full_posterior(
    monkeypatch,
):
    first, second, outcome = ladder_games(800, seed=4)
    result = fit_bradley_terry(first, second, outcome)
    assert result.n_players > _result._FULL_POSTERIOR_LIMIT
    fast = result.p_best(n_samples=20_000, seed=0)
    assert 0 < np.count_nonzero(fast) <= 256
    monkeypatch.setattr(_result, "_FULL_POSTERIOR_LIMIT", 10**9)
    full = fit_bradley_terry(first, second, outcome).p_best(n_samples=20_000, seed=0)
    assert fast.sum() == pytest.approx(1.0)
    assert full[fast == 0].sum() < 0.05  # the players left out rarely come out on top
    np.testing.assert_allclose(fast, full, atol=0.02)
    assert fast.argmax() == full.argmax()


@pytest.mark.parametrize("dense_limit", [100, 10])
@pytest.mark.parametrize("robust", [False, True])
def test_stderr_of_some_players_equals_the_full_stderr(monkeypatch, dense_limit, robust):
    monkeypatch.setattr(_hessian, "_DENSE_LIMIT", dense_limit)
    sim = simulate(60, 6_000, seed=8)
    clusters = sim.prompt if robust else None
    result = fit_bradley_terry(sim.first, sim.second, sim.outcome, clusters=clusters, anchor=3)
    chosen = [7, 3, 59, 0]
    some = result.stderr_of(chosen)
    low, high = result.interval(0.9, players=chosen)
    full_low, full_high = result.interval(0.9)  # the dense inverse (caches stderr)
    np.testing.assert_allclose(some, result.stderr[chosen], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(low, full_low[chosen], rtol=1e-8)
    np.testing.assert_allclose(high, full_high[chosen], rtol=1e-8)
    assert some[1] == 0.0  # the anchor
    with pytest.raises(IndexError, match="out of range"):
        fit_bradley_terry(sim.first, sim.second, sim.outcome).stderr_of([60])


def test_p_best_leaves_out_only_players_hopelessly_behind(monkeypatch):
    sim = simulate(200, 20_000, seed=3, spread=1.5)
    result = fit_bradley_terry(sim.first, sim.second, sim.outcome)
    bounded = result.p_best(n_samples=20_000, seed=0)
    monkeypatch.setattr(_p_best, "_P_BEST_SIGMAS", 1e9)  # every player drawn
    everyone = result.p_best(n_samples=20_000, seed=0)
    reach = result.scores + 5 * result.stderr
    drawn = reach >= np.max(result.scores - 5 * result.stderr)
    assert drawn.sum() < 50  # 32 of 200 players are drawn
    assert np.all(bounded[~drawn] == 0)
    assert np.all(everyone[~drawn] == 0)  # drawing them too, none ever came out on top
    assert bounded.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(bounded, everyone, atol=0.02)


def test_warm_start_reaches_the_same_optimum_in_fewer_iterations():
    sim = simulate(50, 10_000, seed=8)
    cold = fit_bradley_terry(sim.first[:9_000], sim.second[:9_000], sim.outcome[:9_000])
    fresh = fit_bradley_terry(sim.first, sim.second, sim.outcome)
    warm = fit_bradley_terry(sim.first, sim.second, sim.outcome, init=cold)
    np.testing.assert_allclose(warm.scores, fresh.scores, atol=1e-7)
    assert warm.n_iter < fresh.n_iter


def test_warm_start_accepts_new_players():
    old = fit_bradley_terry([0, 1], [1, 0], [1, 2])
    new = fit_bradley_terry([0, 1, 2], [1, 2, 0], [1, 2, 0], init=old)
    assert new.converged and len(new.scores) == 3


def test_p_best_favours_a_dominant_player_and_is_reproducible():
    sim = simulate(8, 4_000, seed=9)
    result = fit_bradley_terry(sim.first, sim.second, sim.outcome)
    p = result.p_best(n_samples=5_000, seed=3)
    assert p.sum() == pytest.approx(1.0)
    assert int(np.argmax(p)) == int(np.argmax(sim.strengths))
    np.testing.assert_array_equal(p, result.p_best(n_samples=5_000, seed=3))


def test_strengths_have_zero_mean_and_scores_are_anchored():
    sim = simulate(12, 1_000, seed=10)
    result = fit_bradley_terry(sim.first, sim.second, sim.outcome, anchor=2)
    assert abs(result.strengths.mean()) < 1e-9
    np.testing.assert_allclose(result.scores, result.strengths - result.strengths[2])


@pytest.mark.parametrize(
    ("first", "second", "outcome", "n_players"),
    [
        pytest.param([], [], [], None, id="no games, no players"),
        pytest.param([], [], [], 3, id="no games, three players"),
        pytest.param([], [], [], 1, id="single player"),
        pytest.param([0], [1], [1], None, id="one game"),
        pytest.param([0] * 20, [1] * 20, [1] * 20, None, id="perfect record"),
        pytest.param([0, 1] * 10, [1, 0] * 10, [1, 2] * 10, None, id="perfect record both orders"),
        pytest.param([0, 2], [1, 3], [1, 2], None, id="disconnected graph"),
        pytest.param([0, 1, 2], [1, 2, 0], [0, 0, 0], None, id="only ties"),
        pytest.param([0, 1, 2], [1, 2, 0], [1, 1, 1], 5, id="players without games"),
    ],
)
def test_edge_cases_give_finite_answers(first, second, outcome, n_players):
    result = fit_bradley_terry(first, second, outcome, n_players=n_players)
    assert result.converged
    _assert_finite(result)


def test_perfect_record_ranks_the_winner_first():
    result = fit_bradley_terry([0] * 20, [1] * 20, [2] * 20, fit_position=False)
    assert result.scores[1] > 2.0
    assert result.p_best(n_samples=2_000, seed=0)[1] > 0.95


def test_zero_weights_count_as_no_games():
    result = fit_bradley_terry([0, 1], [1, 0], [1, 1], weights=[0, 0])
    assert result.n_games == 0
    np.testing.assert_allclose(result.scores, [0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first": [0, 1], "second": [1], "outcome": [1, 1]}, "second has 1 entries"),
        ({"first": [0], "second": [1], "outcome": [3]}, "outcome must be 0"),
        ({"first": [0], "second": [0], "outcome": [1]}, "playing itself"),
        ({"first": [-1], "second": [1], "outcome": [1]}, "must be >= 0"),
        ({"first": [0.5], "second": [1], "outcome": [1]}, "first must hold integers"),
        ({"first": [0], "second": [1], "outcome": [1], "weights": [-1]}, "weights"),
        ({"first": [0], "second": [1], "outcome": [1], "weights": [np.nan]}, "weights"),
        ({"first": [0], "second": [1], "outcome": [1], "length_diff": [np.inf]}, "length_diff"),
        ({"first": [0], "second": [5], "outcome": [1], "n_players": 3}, "n_players=3"),
        ({"first": [0], "second": [1], "outcome": [1], "anchor": 2}, "anchor 2"),
        ({"first": [0], "second": [1], "outcome": [1], "prior_scale": 0}, "prior_scale"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(kwargs, message):
    kwargs = dict(kwargs)
    with pytest.raises(ValueError, match=message):
        fit_bradley_terry(
            kwargs.pop("first"), kwargs.pop("second"), kwargs.pop("outcome"), **kwargs
        )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=2, max_value=6).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(
                st.tuples(
                    st.integers(0, n - 1),
                    st.integers(1, n - 1),
                    st.integers(0, 2),
                    st.integers(0, 4),
                ),
                max_size=25,
            ),
        )
    )
)
def test_any_small_tournament_fits_without_nan(case):
    n, games = case
    first = [g[0] for g in games]
    second = [(g[0] + g[1]) % n for g in games]
    outcome = [g[2] for g in games]
    clusters = [g[3] for g in games]
    result = fit_bradley_terry(first, second, outcome, n_players=n, clusters=clusters or None)
    _assert_finite(result)
