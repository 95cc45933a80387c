"""Newton's method for the posterior mode: where it starts (the observed tie rate, a warm
start or each player's smoothed log-odds of scoring) and the damped iterations to the mode."""

from __future__ import annotations

import logging
import math

import numpy as np

from optuna_pandalm.statistics._games import _Float
from optuna_pandalm.statistics._problem import _Problem
from optuna_pandalm.statistics._result import BradleyTerryResult

_logger = logging.getLogger(__name__)


def _start(problem: _Problem, init: BradleyTerryResult | None) -> _Float:
    """Newton's starting point: ``nu`` matching the observed tie rate, and the strengths
    of ``init`` (a warm start; its effects by name, new players at 0) or, without it, each
    player's smoothed log-odds of scoring (saves an iteration); strengths centred."""
    games = problem.games
    n = games.n_players
    ties = games.counts[:, 0].sum()
    total = games.counts.sum()
    tie_rate = (ties + 1) / (total + 3)  # smoothed share of ties
    params = np.zeros(problem.size)
    params[-1] = math.log(2 * tie_rate / (1 - tie_rate))  # nu matching the observed tie rate
    if init is None and total:
        c = games.counts
        points_first = c[:, 1] + 0.5 * c[:, 0]
        points_second = c[:, 2] + 0.5 * c[:, 0]
        played = np.bincount(games.first, c.sum(axis=1), minlength=n) + np.bincount(
            games.second, c.sum(axis=1), minlength=n
        )
        scored = np.bincount(games.first, points_first, minlength=n) + np.bincount(
            games.second, points_second, minlength=n
        )
        params[:n] = np.log((scored + 1) / (played - scored + 1))
    if init is not None:
        previous = init._params
        copied = min(n, init.n_players)
        params[:copied] = previous[:copied]
        for name in problem.names:
            if name in init._problem.names:
                params[problem.n + problem.names.index(name)] = previous[
                    init._problem.n + init._problem.names.index(name)
                ]
    if n:
        params[:n] -= params[:n].mean()
    return params


def _posterior_mode(
    problem: _Problem, params: _Float, *, tol: float, max_iter: int
) -> tuple[_Float, bool, int]:
    """The MAP parameters by damped Newton from ``params``: inexact solves, backtracking
    on the Armijo condition, stopped when half Newton's decrement is below
    ``tol * (1 + |objective|)``. Returns (parameters, converged, iterations)."""
    n = problem.n_players
    point = problem.evaluate(params)
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        grad, hessian = problem.gradient_and_hessian(point)
        # Inexact Newton: the linear solve only needs to be as accurate as the step matters.
        forcing = min(0.1, float(np.abs(grad).max()))
        step = -hessian.solve(grad, rtol=max(forcing, 1e-12))
        decrement = -float(grad @ step)
        if decrement / 2 <= tol * (1 + abs(point.value)):
            params = point.params + step
            converged = True
            break
        scale = 1.0
        candidate = problem.evaluate(point.params + step)
        while candidate.value > point.value - 0.25 * scale * decrement and scale > 1e-12:
            scale /= 2
            candidate = problem.evaluate(point.params + scale * step)
        if scale <= 1e-12:
            # No decrease is possible at machine precision: this is the optimum.
            converged = decrement / 2 <= 1e-6 * (1 + abs(point.value))
            params = point.params
            break
        point = candidate
    else:
        params = point.params
        _logger.warning("Bradley-Terry fit did not converge in %d iterations", iteration)
    if n:
        # The prior makes the mean strength exactly 0 at the mode; remove rounding drift.
        params = params.copy()
        params[:n] -= params[:n].mean()
    return params, converged, iteration
