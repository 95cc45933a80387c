"""The fit's objective: the negative log posterior on aggregated rows, with its gradient and
Hessian (:class:`_Problem`), the priors (:class:`_Prior`) and one evaluated point
(:class:`_Point`). The parameter layout and the design are documented on :class:`_Problem`."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from optuna_pandalm.statistics._games import _Float, _Games
from optuna_pandalm.statistics._hessian import _Hessian


@dataclasses.dataclass(frozen=True)
class _Prior:
    scale: float  # sd of strengths
    position_scale: float
    length_scale: float
    tie_mean: float  # prior mean of theta = log(nu)
    tie_scale: float
    reliability_scale: float = 0.5  # sd of log(gamma_a), an annotator's reliability
    bias_scale: float = 1.0  # sd of a machine judge's deviation on one player


@dataclasses.dataclass(frozen=True)
class _Point:
    """The objective at one parameter vector, with the per-row outcome probabilities."""

    params: _Float
    value: float
    log_likelihood: float
    p_tie: _Float
    p_first: _Float
    p_second: _Float


class _Problem:
    """Negative log posterior, its gradient and Hessian, on aggregated rows.

    Parameters are laid out as ``[s_0 .. s_{n-1}, b?, h?, beta?, eta_1.., theta]``: the
    strengths, then (with several annotators, some of them human) each machine judge's
    deviation ``b_{a,i}`` from the humans on each player they voted on, the effects, each
    non-reference
    annotator's log reliability ``eta_a = log(gamma_a)``, and the tie parameter. The
    strengths and deviations are the *nodes*: every game's log-odds is linear in them
    through a sparse (nodes x rows) matrix ``M`` (``+gamma`` for the first-shown, ``-gamma``
    for the second-shown), so their Hessian block is ``M diag(a) M^T``. With one annotator
    ``M`` is the comparison graph's incidence matrix and the block a weighted Laplacian.
    With reliabilities, ``M`` and the reliability columns of the Jacobian depend on the
    parameters, and the Hessian is the Fisher information (Gauss-Newton).
    """

    def __init__(
        self,
        games: _Games,
        prior: _Prior,
        *,
        fit_position: bool,
        human_annotators: frozenset[int] = frozenset(),
    ) -> None:
        self.games = games
        self.n_players = games.n_players
        self.human_annotators = human_annotators
        rows = len(games.first)
        annotator = games.annotator
        design = []
        prior_precision = []
        self.names: list[str] = []
        if fit_position:
            design.append(np.ones(rows))
            prior_precision.append(prior.position_scale**-2)
            self.names.append("position")
        if games.length is not None:
            design.append(games.length)
            prior_precision.append(prior.length_scale**-2)
            self.names.append("length")
        self.design = np.stack(design, axis=1) if design else np.zeros((rows, 0))
        # Annotators 1.. get a reliability; machine judges get deviations when people vote.
        self.reliable = list(range(1, games.n_annotators))
        for code in self.reliable:
            prior_precision.append(prior.reliability_scale**-2)
            self.names.append(f"reliability:{code}")
        # Deviations only on players people voted on: elsewhere there is nothing to correct
        # the judge with, and a deviation would only widen every interval by its prior.
        voted = np.zeros(0, dtype=np.int64)
        if annotator is not None and human_annotators:
            by_human = np.isin(annotator, list(human_annotators))
            voted = np.unique(np.concatenate([games.first[by_human], games.second[by_human]]))
        machines = [a for a in range(games.n_annotators) if a not in human_annotators]
        self.biased = machines if len(voted) else []
        self.voted = voted
        self._voted_index = np.full(self.n_players, -1)
        self._voted_index[voted] = np.arange(len(voted))
        self.n = self.n_players + len(self.biased) * len(voted)  # strengths and deviations
        self.p = len(self.names)  # effects, before the tie parameter
        self.names.append("tie")
        self.size = self.n + self.p + 1
        self.prior = prior
        self.prior_precision = np.concatenate(
            [
                np.full(self.n_players, prior.scale**-2),
                np.full(self.n - self.n_players, prior.bias_scale**-2),
                prior_precision,
                [prior.tie_scale**-2],
            ]
        )
        self.prior_mean = np.zeros(self.size)
        self.prior_mean[-1] = prior.tie_mean
        self.totals = games.counts.sum(axis=1)
        self.general = annotator is not None
        if self.general:
            assert annotator is not None
            slot = np.full(games.n_annotators, -1)
            slot[self.biased] = np.arange(len(self.biased))
            self._row_slot = slot[annotator]  # deviation block of each row, -1 none
        self._incidence: Any = None
        self._incidence_t: Any = None
        self._gamma_cache: tuple[_Float, Any, Any] | None = None

    # --- the linear map from nodes to each row's log-odds -----------------------------
    def gamma(self, params: _Float) -> _Float:
        """Each annotator's reliability ``gamma_a`` (1 for the reference annotator)."""
        eta = params[self.n + self.p - len(self.reliable) : self.n + self.p]
        return np.concatenate([[1.0], np.exp(eta)])

    def _build(self, row_gamma: _Float | None) -> Any:
        from scipy import sparse

        games = self.games
        rows = len(games.first)
        index = np.arange(rows)
        scale = np.ones(rows) if row_gamma is None else row_gamma
        node_rows = [games.first, games.second]
        columns = [index, index]
        values = [scale, -scale]
        if self.general and self.biased:
            m = len(self.voted)
            for players, sign in ((games.first, 1.0), (games.second, -1.0)):
                where = self._voted_index[players]
                has = (self._row_slot >= 0) & (where >= 0)
                node_rows.append(self.n_players + self._row_slot[has] * m + where[has])
                columns.append(index[has])
                values.append(np.full(int(has.sum()), sign))
        return sparse.csr_matrix(
            (np.concatenate(values), (np.concatenate(node_rows), np.concatenate(columns))),
            shape=(self.n, rows),
        )

    def incidence_at(self, params: _Float | None) -> tuple[Any, Any]:
        """``M`` and ``M^T`` (CSR) at ``params`` (constant without reliabilities)."""
        if not self.reliable or params is None:
            return self.incidence, self.incidence_t
        gamma = self.gamma(params)
        if self._gamma_cache is None or not np.array_equal(self._gamma_cache[0], gamma):
            assert self.games.annotator is not None
            matrix = self._build(gamma[self.games.annotator])
            self._gamma_cache = (gamma, matrix, matrix.T.tocsr())
        return self._gamma_cache[1], self._gamma_cache[2]

    def jacobian_design(self, params: _Float) -> _Float:
        """Columns of the Jacobian of each row's log-odds for the effects (position, length,
        log reliabilities): fixed, except the reliabilities' ``gamma_a (s_i - s_j)``."""
        if not self.reliable:
            return self.design
        s = params[: self.n_players]
        gamma = self.gamma(params)
        annotator = self.games.annotator
        assert annotator is not None
        contrast = gamma[annotator] * (s[self.games.first] - s[self.games.second])
        columns = [np.where(annotator == code, contrast, 0.0) for code in self.reliable]
        return np.column_stack([self.design, *columns])

    # --- per-row quantities -----------------------------------------------------------
    def _linear(self, params: _Float) -> tuple[_Float, float]:
        if self.general:
            incidence_t = self.incidence_at(params)[1]
            delta = incidence_t @ params[: self.n]
        else:
            s = params[: self.n]
            delta = s[self.games.first] - s[self.games.second]
        fixed = self.design.shape[1]
        if fixed:
            delta = delta + self.design @ params[self.n : self.n + fixed]
        return delta, float(params[-1])

    def _rows(self, params: _Float) -> tuple[float, _Float, _Float, _Float]:
        """Log-likelihood and per-row probabilities (ties, first won, second won)."""
        delta, theta = self._linear(params)
        u = delta / 2
        top = np.maximum(np.abs(u), theta)
        e1, e2, e0 = np.exp(u - top), np.exp(-u - top), np.exp(theta - top)
        total = e1 + e2 + e0
        log_z = top + np.log(total)
        c = self.games.counts
        loglik = float(np.dot(c[:, 1] - c[:, 2], u) + theta * c[:, 0].sum() - self.totals @ log_z)
        return loglik, e0 / total, e1 / total, e2 / total

    def evaluate(self, params: _Float) -> _Point:
        """Negative log posterior (up to a constant), log-likelihood and row probabilities."""
        if len(self.games.first):
            loglik, *probabilities = self._rows(params)
        else:
            loglik, probabilities = 0.0, [np.zeros(0)] * 3
        deviation = params - self.prior_mean
        value = -loglik + 0.5 * float(self.prior_precision @ deviation**2)
        return _Point(params, value, loglik, *probabilities)

    def _row_derivatives(self, point: _Point) -> dict[str, _Float]:
        p0, p1, p2 = point.p_tie, point.p_first, point.p_second
        c, total = self.games.counts, self.totals
        diff = p1 - p2
        return {
            "g_delta": 0.5 * (c[:, 1] - c[:, 2]) - 0.5 * total * diff,
            "g_theta": c[:, 0] - total * p0,
            "a": total * (0.25 * (p1 + p2) - 0.25 * diff**2),
            "b": total * p0 * (1 - p0),
            "c": -0.5 * total * diff * p0,
        }

    @property
    def incidence(self) -> Any:
        """Sparse (nodes x rows) matrix ``M`` at unit reliabilities: +1 for the first-shown,
        -1 for the second-shown (and the same for the judge's deviations on them).

        With one annotator the strength block of the Hessian is ``M diag(a) M^T`` (a
        weighted graph Laplacian), so it is applied without ever being formed.
        """
        if self._incidence is None:
            self._incidence = self._build(None)
        return self._incidence

    @property
    def incidence_t(self) -> Any:
        if self._incidence_t is None:
            self._incidence_t = self.incidence.T.tocsr()
        return self._incidence_t

    def gradient_and_hessian(self, point: _Point) -> tuple[_Float, _Hessian]:
        """Gradient of the negative log posterior and its Hessian (the information)."""
        params = point.params
        d = self._row_derivatives(point)
        n, p = self.n, self.p
        a = d["a"]
        incidence, incidence_t = self.incidence_at(params)
        design = self.jacobian_design(params)
        # One sparse product gives the strength part of the gradient and the cross block.
        by_player = incidence @ np.column_stack([d["g_delta"], a[:, None] * design, d["c"]])
        grad = np.empty(self.size)
        grad[:n] = -by_player[:, 0]
        grad[n : n + p] = -(design.T @ d["g_delta"])
        grad[-1] = -d["g_theta"].sum()
        grad += self.prior_precision * (params - self.prior_mean)

        cross = by_player[:, 1:]  # Hessian block between strengths and the other params
        extra = np.empty((p + 1, p + 1))
        extra[:p, :p] = design.T @ (a[:, None] * design)
        extra[:p, p] = extra[p, :p] = design.T @ d["c"]
        extra[p, p] = d["b"].sum()
        extra += np.diag(self.prior_precision[n:])
        if self.general:
            degree = incidence.multiply(incidence) @ a
        else:
            degree = np.bincount(self.games.first, a, minlength=n) + np.bincount(
                self.games.second, a, minlength=n
            )
        hessian = _Hessian(self, a, degree + self.prior_precision[:n], cross, extra)
        hessian.incidence, hessian.incidence_t = incidence, incidence_t
        return grad, hessian

    def row_scores(self, params: _Float) -> tuple[_Float, _Float]:
        d = self._row_derivatives(self.evaluate(params))
        return d["g_delta"], d["g_theta"]
