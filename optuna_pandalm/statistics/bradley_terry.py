"""Bradley–Terry strengths from pairwise games, with Davidson ties and a position effect.

This module, with its steps in the private modules beside it (``statistics/__init__.py``
lists them), is the numeric core of the product. It knows nothing of judges, SQL or
Optuna: it takes integer arrays and returns numpy arrays.

The model, for a game in which player ``i`` is shown first and player ``j`` second::

    delta = s_i - s_j + h + beta * x           (x: optional length difference of the game)
    u = delta / 2
    Z = exp(u) + exp(-u) + nu
    P(first-shown wins)  = exp(u) / Z
    P(second-shown wins) = exp(-u) / Z
    P(tie)               = nu / Z

``s`` are strengths in log-odds, ``h`` is the first-shown advantage (``position_effect``),
``nu = exp(theta)`` is Davidson's tie strength and ``beta`` the optional length effect. With
``h = beta = 0`` this is Davidson's (1970) model, and without ties it is Bradley–Terry:
``sigmoid(s_i - s_j)`` is the chance that ``i`` wins a decisive game against ``j``.

Independent Gaussian priors (``s ~ N(0, prior_scale**2)``, weak priors on ``h``, ``beta`` and
``theta``) give finite answers for disconnected comparison graphs, perfect records, single
players and no games at all. The posterior mode is found by Newton's method on counts
aggregated per (first, second, outcome[, length]) so the cost grows with the number of
distinct pairs, not the number of games. The negative log posterior is convex (a log-sum-exp
of linear functions plus quadratics), so Newton with backtracking converges from any start.
Uncertainty comes from the Laplace approximation (the inverse Hessian at the mode), optionally
made cluster-robust by a sandwich summed per cluster (per prompt: verdicts on one prompt are
not independent).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from optuna_pandalm.statistics._games import (
    _aggregate,
    _canonical_input,
    _Float,
    _Games,
    _merge_clusters,
)
from optuna_pandalm.statistics._newton import _posterior_mode, _start
from optuna_pandalm.statistics._problem import _Prior, _Problem
from optuna_pandalm.statistics._result import BradleyTerryResult

__all__ = ["BradleyTerryResult", "fit_bradley_terry", "refit_with_players"]


def fit_bradley_terry(
    first: Sequence[int] | NDArray[np.integer[Any]],
    second: Sequence[int] | NDArray[np.integer[Any]],
    outcome: Sequence[int] | NDArray[np.integer[Any]],
    *,
    n_players: int | None = None,
    weights: Sequence[float] | NDArray[np.number[Any]] | None = None,
    length_diff: Sequence[float] | NDArray[np.number[Any]] | None = None,
    clusters: Sequence[Any] | NDArray[Any] | None = None,
    annotators: Sequence[int] | NDArray[np.integer[Any]] | None = None,
    human_annotators: Sequence[int] = (),
    anchor: int = 0,
    fit_position: bool = True,
    prior_scale: float = 3.0,
    reliability_scale: float = 0.5,
    bias_scale: float = 1.0,
    tol: float = 1e-12,
    max_iter: int = 100,
    init: BradleyTerryResult | None = None,
) -> BradleyTerryResult:
    """Fit Bradley–Terry strengths with Davidson ties and a first-shown advantage.

    The fit is the posterior mode (MAP) of the model in the module docstring, with the
    log-odds of game ``g``, between ``i`` shown first and ``j`` second, judged by annotator
    ``a``::

        delta_g = gamma_a * (s_i - s_j) + b_{a,i} - b_{a,j} + h + beta * x_g

    (``gamma_0 = 1`` and no ``b`` with one annotator; ``h`` only with ``fit_position``,
    ``beta * x_g`` only with ``length_diff``), minimising over all parameters ``p`` with
    prior means ``m`` and sds ``sd``::

        -sum_g w_g * log P(outcome_g | delta_g, nu) + sum_k (p_k - m_k)**2 / (2 * sd_k**2)

    In steps: the games are checked and canonicalised once (``_canonical_input``), counted
    per distinct (cluster, first, second, length, annotator) row (``_aggregate``), the
    design built on those rows (``_Problem``: strengths, deviations, effects, reliabilities,
    tie), the mode found by damped Newton (``_posterior_mode``); the Laplace uncertainty
    (the inverse Hessian at the mode, per-cluster sandwich when ``clusters`` are given) is
    computed on demand by the result.

    Args:
        first: Player id (``0..n_players-1``) shown first in each game.
        second: Player id shown second in each game.
        outcome: 0 = tie, 1 = the first-shown won, 2 = the second-shown won.
        n_players: Number of players; players without games get the prior (score near 0
            relative to a centred field). Defaults to the largest id + 1.
        weights: Optional count of each game (for aggregated input); non-negative.
        length_diff: Optional per-game covariate, for example ``log(len(first response) /
            len(second response))``; its effect is fitted as ``length_effect``. Games are
            aggregated per distinct value, so round it if it takes many values.
        clusters: Optional cluster id per game (for example the prompt). When given,
            standard errors are cluster-robust (a sandwich summed per cluster with a
            ``C / (C - 1)`` correction): games on one prompt are not independent.
        annotators: Optional annotator code per game (``0..A-1``; 0 is the reference, for
            example the study's judge). With more than one annotator each annotator ``a``
            but the reference gets a reliability ``gamma_a`` multiplying ``s_i - s_j`` in its
            games (the judge-aware Bradley–Terry of arXiv 2601.21817), with
            ``log(gamma_a) ~ N(0, reliability_scale**2)``. With one annotator the fit is
            exactly the plain one.
        human_annotators: Codes of the annotators whose verdicts define the strengths (people).
            When any of them has games, every other annotator ``a`` also gets a deviation
            ``b_{a,i} ~ N(0, bias_scale**2)`` on each player, added to the strengths in its own
            games only (the residual disagreement of judge-aware ranking, arXiv 2605.05073):
            a judge that favours some players is corrected where people voted on them, and a
            few votes can outweigh many verdicts.
        anchor: The player whose score is 0.
        fit_position: Fit the first-shown advantage; set False when the order is not
            recorded or is always balanced.
        prior_scale: Standard deviation of the Gaussian prior on strengths (log-odds).
            Weak by default; it keeps estimates finite for perfect records and
            disconnected comparison graphs.
        reliability_scale: Prior sd of each annotator's ``log(gamma_a)``: 0.5 lets a
            reliability range over about 0.4..2.7 (95%), so a handful of votes cannot make
            an annotator's reliability extreme.
        bias_scale: Prior sd (log-odds) of a judge's deviation on one player when people
            have voted: 1 lets the judge be off by about a log-odds unit on a checkpoint.
        tol: Convergence tolerance on Newton's decrement, relative to ``1 + |objective|``.
            Set explicitly: a loose tolerance (like L-BFGS's default) stops visibly early.
        max_iter: Maximum Newton iterations.
        init: A previous result to warm-start from (new players start at 0).

    Returns:
        A :class:`BradleyTerryResult`. Standard errors, covariances and ``p_best`` are
        computed on demand.

    Example:
        >>> import numpy as np
        >>> from optuna_pandalm import fit_bradley_terry
        >>> result = fit_bradley_terry([0, 0, 1, 2, 1], [1, 2, 0, 1, 2], [1, 1, 2, 0, 1])
        >>> result.scores.round(2).tolist()
        [0.0, -3.23, -4.36]
        >>> bool(result.p_best(n_samples=2000, seed=0).argmax() == 0)
        True
    """
    _check_options(
        prior_scale=prior_scale,
        reliability_scale=reliability_scale,
        bias_scale=bias_scale,
        max_iter=max_iter,
    )
    games = _canonical_input(
        first,
        second,
        outcome,
        n_players=n_players,
        weights=weights,
        length_diff=length_diff,
        clusters=clusters,
        annotators=annotators,
    )
    fine = _aggregate(games)  # per cluster too: what cluster-robust errors sum over
    rows = _merge_clusters(fine)
    n = rows.n_players
    if n and not 0 <= anchor < n:
        raise ValueError(f"anchor {anchor} out of range 0..{n - 1}")
    problem = _Problem(
        rows,
        _prior(prior_scale, reliability_scale=reliability_scale, bias_scale=bias_scale),
        fit_position=fit_position,
        human_annotators=frozenset(int(a) for a in human_annotators),
    )
    params, converged, n_iter = _posterior_mode(
        problem, _start(problem, init), tol=tol, max_iter=max_iter
    )
    return _result(
        problem,
        params,
        anchor=anchor,
        converged=converged,
        n_iter=n_iter,
        fine=fine if clusters is not None else None,
    )


def refit_with_players(
    result: BradleyTerryResult, n_players: int, *, tol: float = 1e-12, max_iter: int = 100
) -> BradleyTerryResult:
    """``fit_bradley_terry`` on the games ``result`` was fitted on, with ``n_players``
    players (those added have no games), warm-started from ``result``.

    Bit for bit what that call gives (the same aggregated rows, start and Newton steps) with
    the options ``result`` was fitted with, without checking, counting and aggregating the
    games again: an arena refits this way when the only thing stored since its last fit is
    a new checkpoint, so that its scores follow exactly the path a full refit would.

    Example:
        >>> result = fit_bradley_terry([0, 0, 1], [1, 2, 2], [1, 1, 0])
        >>> bigger = refit_with_players(result, 4)
        >>> full = fit_bradley_terry([0, 0, 1], [1, 2, 2], [1, 1, 0], n_players=4, init=result)
        >>> bool((bigger.scores == full.scores).all()), round(float(bigger.scores[3]), 2)
        (True, -2.11)
    """
    problem = result._problem
    n = problem.n_players
    if n_players < n:
        raise ValueError(f"n_players must be >= {n} (the players fitted), got {n_players}")
    rows = dataclasses.replace(problem.games, n_players=n_players)
    bigger = _Problem(
        rows,
        problem.prior,
        fit_position="position" in problem.names,
        human_annotators=problem.human_annotators,
    )
    params, converged, n_iter = _posterior_mode(
        bigger, _start(bigger, result), tol=tol, max_iter=max_iter
    )
    fine = result._fine_games
    return _result(
        bigger,
        params,
        anchor=result.anchor,
        converged=converged,
        n_iter=n_iter,
        fine=None if fine is None else dataclasses.replace(fine, n_players=n_players),
    )


def _check_options(
    *, prior_scale: float, reliability_scale: float, bias_scale: float, max_iter: int
) -> None:
    """The fit's scalar options: positive finite scales, at least one iteration."""
    if prior_scale <= 0 or not math.isfinite(prior_scale):
        raise ValueError(f"prior_scale must be a positive number, got {prior_scale}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    for name, value in (("reliability_scale", reliability_scale), ("bias_scale", bias_scale)):
        if value <= 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be a positive number, got {value}")


def _prior(prior_scale: float, *, reliability_scale: float, bias_scale: float) -> _Prior:
    """The priors: the given scales, weak ones (sd 2) on the position and length effects,
    and ``theta ~ N(log(2/3), 3**2)``."""
    return _Prior(
        scale=prior_scale,
        position_scale=2.0,
        length_scale=2.0,
        tie_mean=math.log(2 / 3),  # nu = 2/3: one tie in four between equals
        tie_scale=3.0,
        reliability_scale=reliability_scale,
        bias_scale=bias_scale,
    )


def _result(
    problem: _Problem,
    params: _Float,
    *,
    anchor: int,
    converged: bool,
    n_iter: int,
    fine: _Games | None,
) -> BradleyTerryResult:
    """The result at the mode ``params``; its uncertainty (the Laplace approximation, made
    cluster-robust from the per-cluster rows ``fine``) is computed on demand."""
    n = problem.n_players
    point = problem.evaluate(params)
    strengths = params[:n].copy()
    names = problem.names
    nodes = problem.n
    return BradleyTerryResult(
        scores=strengths - (strengths[anchor] if n else 0.0),
        strengths=strengths,
        anchor=anchor,
        position_effect=(
            float(params[nodes + names.index("position")]) if "position" in names else 0.0
        ),
        tie_strength=float(math.exp(params[-1])),
        length_effect=(
            float(params[nodes + names.index("length")]) if "length" in names else None
        ),
        log_likelihood=point.log_likelihood,
        converged=converged,
        n_iter=n_iter,
        n_games=float(problem.games.counts.sum()),
        n_clusters=0 if fine is None else fine.n_clusters,
        robust=fine is not None,
        _params=params,
        _problem=problem,
        _point=point,
        _fine_games=fine,
    )
