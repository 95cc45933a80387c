"""Bradley–Terry strengths from pairwise games, with Davidson ties and a position effect.

This module is the numeric core of the product. It knows nothing of judges, SQL or Optuna:
it takes integer arrays and returns numpy arrays.

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
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

_logger = logging.getLogger(__name__)

__all__ = ["BradleyTerryResult", "fit_bradley_terry"]

# Above this many parameters the Newton system is solved by preconditioned conjugate
# gradients on the sparse Hessian instead of a dense Cholesky factorisation.
_DENSE_LIMIT = 100
# Up to this many players P(best) samples every plausible player from the dense covariance
# (O(n**3)); above it, the ``max_candidates`` players with the highest optimistic score, their
# joint covariance from a sparse factorisation.
_FULL_POSTERIOR_LIMIT = 400
_OPTIMISM_SIGMAS = 3.0  # optimistic score: score + this many conditional standard deviations
_P_BEST_SIGMAS = 5.0  # players this far below a rival are not drawn in p_best
# Dense covariance (for all standard errors at once) is refused above this many players:
# it needs n**2 floats of memory and n**3 / 3 flops.
_DENSE_COVARIANCE_LIMIT = 20_000
_OUTCOMES = 3  # 0 tie, 1 first-shown won, 2 second-shown won

_Float = NDArray[np.float64]
_Int = NDArray[np.int64]


@dataclasses.dataclass(frozen=True)
class _Games:
    """Games aggregated per distinct (cluster, first, second, length, annotator) row."""

    first: _Int  # (rows,)
    second: _Int  # (rows,)
    counts: _Float  # (rows, 3): ties, first-shown won, second-shown won
    length: _Float | None  # (rows,)
    cluster: _Int | None  # (rows,) cluster codes
    n_players: int
    n_clusters: int
    annotator: _Int | None = None  # (rows,) annotator codes, 0 the reference
    n_annotators: int = 1


def _codes(values: NDArray[Any]) -> tuple[_Int, int]:
    uniques, inverse = np.unique(values, return_inverse=True)
    return inverse.astype(np.int64).ravel(), len(uniques)


def _group(columns: list[tuple[_Int, int]]) -> tuple[_Int, _Int]:
    """Group rows by several integer columns, each given with its number of values.

    Returns, for every row, its group code, and for every group the index of one member row.
    Columns are combined into one int64 key; when the key would overflow, the partial key
    is recoded to dense codes first.
    """
    key, size = columns[0]
    key = key.astype(np.int64)
    for values, cardinality in columns[1:]:
        if size * cardinality >= 2**62:
            key, size = _codes(key)
        key = key * cardinality + values
        size *= cardinality
    if size <= max(4 * len(key), 1 << 20):
        # Few possible keys: count them instead of sorting (faster; benchmarks/README.md).
        present = np.bincount(key, minlength=size) > 0
        code_of_key = np.cumsum(present) - 1
        inverse = code_of_key[key]
        member = np.empty(int(present.sum()), dtype=np.int64)
        member[inverse] = np.arange(len(key))
        return inverse, member
    # One unstable sort; np.unique(return_index=True) would use a slower stable one.
    order = np.argsort(key)
    ordered = key[order]
    starts = np.empty(len(key), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    inverse = np.empty(len(key), dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return inverse, order[starts]


@dataclasses.dataclass(frozen=True)
class _Input:
    """Games as every later step trusts them, checked and canonicalised once: one entry per
    game, ids, outcomes and codes as ``int64``, weights and lengths as finite ``float64``."""

    first: _Int
    second: _Int
    outcome: _Int  # 0 tie, 1 first-shown won, 2 second-shown won
    n_players: int
    weights: _Float | None
    length: _Float | None
    cluster: _Int | None  # dense cluster codes 0..n_clusters-1
    n_clusters: int
    annotator: _Int | None  # annotator codes; None with one annotator (the plain model)
    n_annotators: int


def _canonical_input(
    first: Any,
    second: Any,
    outcome: Any,
    *,
    n_players: int | None,
    weights: Any,
    length_diff: Any,
    clusters: Any,
    annotators: Any = None,
) -> _Input:
    """Check the per-game arrays (shapes, integer ids and codes, ranges, finite values) and
    canonicalise them into an :class:`_Input`; raises ``ValueError`` naming the array."""
    first_a = np.asarray(first)
    second_a = np.asarray(second)
    outcome_a = np.asarray(outcome)
    arrays = {"first": first_a, "second": second_a, "outcome": outcome_a}
    for name, optional in (("weights", weights), ("length_diff", length_diff)):
        if optional is not None:
            arrays[name] = np.asarray(optional, dtype=np.float64)
    if clusters is not None:
        arrays["clusters"] = np.asarray(clusters)
    if annotators is not None:
        arrays["annotators"] = np.asarray(annotators)
    n_games = len(first_a)
    for name, array in arrays.items():
        if array.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
        if len(array) != n_games:
            raise ValueError(f"{name} has {len(array)} entries but first has {n_games}")
    for name in [k for k in ("first", "second", "outcome", "annotators") if k in arrays]:
        array = arrays[name]
        fractional = n_games and not np.issubdtype(array.dtype, np.integer)
        if fractional and (not np.all(np.isfinite(array)) or np.any(array != np.round(array))):
            raise ValueError(f"{name} must hold integers")
        arrays[name] = array.astype(np.int64)
    first_a, second_a, outcome_a = arrays["first"], arrays["second"], arrays["outcome"]

    if n_games and (first_a.min() < 0 or second_a.min() < 0):
        raise ValueError("player ids must be >= 0")
    seen = int(max(first_a.max(), second_a.max())) + 1 if n_games else 0
    if n_players is None:
        n_players = seen
    elif n_players < seen:
        raise ValueError(f"n_players={n_players} but a game names player {seen - 1}")
    if np.any(first_a == second_a):
        game = int(np.flatnonzero(first_a == second_a)[0])
        raise ValueError(f"game {game} has player {first_a[game]} playing itself")
    if n_games and (outcome_a.min() < 0 or outcome_a.max() > 2):
        raise ValueError("outcome must be 0 (tie), 1 (first-shown won) or 2 (second-shown won)")

    weights_a = arrays.get("weights")
    if weights_a is not None and (not np.all(np.isfinite(weights_a)) or np.any(weights_a < 0)):
        raise ValueError("weights must be finite and >= 0")
    length_a = arrays.get("length_diff")
    if length_a is not None and not np.all(np.isfinite(length_a)):
        raise ValueError("length_diff must be finite")
    annotator_a = arrays.get("annotators")
    n_annotators = 1
    if annotator_a is not None and n_games:
        if annotator_a.min() < 0:
            raise ValueError("annotator codes must be >= 0")
        n_annotators = int(annotator_a.max()) + 1
    if n_annotators == 1:
        annotator_a = None  # one annotator: the plain model, whatever the codes say
    cluster_codes, n_clusters = None, 0
    if clusters is not None:
        cluster_codes, n_clusters = _codes(arrays["clusters"])
    return _Input(
        first=first_a,
        second=second_a,
        outcome=outcome_a,
        n_players=n_players,
        weights=weights_a,
        length=length_a,
        cluster=cluster_codes,
        n_clusters=n_clusters,
        annotator=annotator_a,
        n_annotators=n_annotators,
    )


def _aggregate(games: _Input) -> _Games:
    """Count the games per distinct (cluster, first, second, length, annotator) row and
    outcome: the fit's cost then grows with the rows, not with the games."""
    n_players = games.n_players
    columns = [(games.first, max(n_players, 1)), (games.second, max(n_players, 1))]
    if games.cluster is not None:
        columns.insert(0, (games.cluster, max(games.n_clusters, 1)))
    if games.length is not None:
        columns.append(_codes(games.length))
    if games.annotator is not None:
        columns.append((games.annotator, games.n_annotators))
    if len(games.first) == 0:
        rows = np.zeros(0, dtype=np.int64)
        return _Games(
            rows,
            rows,
            np.zeros((0, _OUTCOMES)),
            None if games.length is None else np.zeros(0),
            None if games.cluster is None else rows,
            n_players,
            games.n_clusters,
        )
    group, member = _group(columns)
    n_rows = len(member)
    counts = np.bincount(
        group * _OUTCOMES + games.outcome, weights=games.weights, minlength=n_rows * _OUTCOMES
    ).reshape(n_rows, _OUTCOMES)
    return _Games(
        first=games.first[member],
        second=games.second[member],
        counts=counts.astype(np.float64),
        length=None if games.length is None else games.length[member],
        cluster=None if games.cluster is None else games.cluster[member],
        n_players=n_players,
        n_clusters=games.n_clusters,
        annotator=None if games.annotator is None else games.annotator[member],
        n_annotators=games.n_annotators,
    )


def _merge_clusters(games: _Games) -> _Games:
    """The same games without the cluster key: fewer rows for the fit itself."""
    if games.cluster is None or len(games.first) == 0:
        return games
    n = max(games.n_players, 1)
    columns = [(games.first, n), (games.second, n)]
    if games.length is not None:
        columns.append(_codes(games.length))
    if games.annotator is not None:
        columns.append((games.annotator, games.n_annotators))
    group, member = _group(columns)
    counts = np.zeros((len(member), _OUTCOMES))
    np.add.at(counts, group, games.counts)
    return dataclasses.replace(
        games,
        first=games.first[member],
        second=games.second[member],
        counts=counts,
        length=None if games.length is None else games.length[member],
        cluster=None,
        annotator=None if games.annotator is None else games.annotator[member],
    )


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


class _Hessian:
    """The Hessian of the negative log posterior at one point, with the solves it needs."""

    def __init__(
        self,
        problem: _Problem,
        row_weights: _Float,
        diagonal: _Float,
        cross: _Float,
        extra: _Float,
    ) -> None:
        self.problem = problem
        self.row_weights = row_weights
        self.diagonal = diagonal
        self.cross = cross
        self.extra = extra
        self.incidence, self.incidence_t = problem.incidence, problem.incidence_t
        self._cholesky: Any = None
        self._sparse_lu: Any = None

    @property
    def dense_ok(self) -> bool:
        return self.problem.size <= _DENSE_LIMIT

    def dense(self) -> _Float:
        n = self.problem.n
        matrix = np.zeros((self.problem.size, self.problem.size))
        if self.problem.general:
            from scipy import sparse

            block = self.incidence @ sparse.diags(self.row_weights) @ self.incidence_t
            matrix[:n, :n] = block.toarray()
        elif len(self.problem.games.first):
            games = self.problem.games
            # Off-diagonal pair weights, both orders summed: -(W + W^T).
            pair_weights = np.bincount(
                games.first * n + games.second, self.row_weights, minlength=n * n
            ).reshape(n, n)
            matrix[:n, :n] = -(pair_weights + pair_weights.T)
        matrix[np.arange(n), np.arange(n)] = self.diagonal
        matrix[:n, n:] = self.cross
        matrix[n:, :n] = self.cross.T
        matrix[n:, n:] = self.extra
        return matrix

    def cholesky(self) -> Any:
        if self._cholesky is None:
            from scipy import linalg

            self._cholesky = linalg.cho_factor(self.dense(), lower=True, check_finite=False)
        return self._cholesky

    def sparse(self) -> Any:
        """The whole Hessian as a sparse CSC matrix (the strength block is a graph Laplacian
        plus the prior; the few effect parameters are dense rows and columns)."""
        from scipy import sparse

        problem = self.problem
        n = problem.n
        incidence = self.incidence
        laplacian = (incidence @ sparse.diags(self.row_weights) @ self.incidence_t).tocsr()
        laplacian = laplacian - sparse.diags(laplacian.diagonal()) + sparse.diags(self.diagonal)
        if n == 0:
            return sparse.csc_matrix(self.extra)
        cross = sparse.csr_matrix(self.cross)
        return sparse.bmat(
            [[laplacian, cross], [cross.T, sparse.csr_matrix(self.extra)]], format="csc"
        )

    def sparse_lu(self) -> Any:
        """Sparse LU factors of :meth:`sparse` (SuperLU, symmetric ordering): comparison
        graphs are sparse and nearly tree-like, so there is little fill and it is far
        cheaper than a dense inverse (figures: ``benchmarks/README.md``)."""
        if self._sparse_lu is None:
            from scipy.sparse import linalg as sparse_linalg

            self._sparse_lu = sparse_linalg.splu(
                self.sparse(),
                permc_spec="MMD_AT_PLUS_A",
                diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )
        return self._sparse_lu

    def solve(self, rhs: _Float, *, rtol: float = 1e-10) -> _Float:
        """Solve ``H x = rhs``: dense Cholesky for small problems; above ``_DENSE_LIMIT``
        conjugate gradients for one right-hand side (Newton steps, one variance) and the
        sparse LU for the columns of a matrix (many variances at once)."""
        if self.dense_ok:
            from scipy import linalg

            solved: _Float = linalg.cho_solve(self.cholesky(), rhs, check_finite=False)
            return solved
        if rhs.ndim == 2:
            solved = self.sparse_lu().solve(np.asfortranarray(rhs))
            return solved
        return self._cg(rhs, rtol)

    def _cg(self, rhs: _Float, rtol: float) -> _Float:
        from scipy.sparse import linalg as sparse_linalg

        n, players = self.problem.n, self.problem.n_players
        incidence, incidence_t = self.incidence, self.incidence_t
        prior = self.problem.prior_precision[:n]

        def strengths(v: _Float) -> _Float:
            # (B diag(a) B^T + prior) v, the Laplacian never formed.
            product: _Float = incidence @ (self.row_weights * (incidence_t @ v)) + prior * v
            return product

        # The strength block alone only pins the mean of s by the weak prior, a tiny
        # eigenvalue that would slow CG down. Adding a multiple of 11^T to the operator does
        # not change the solution when the right-hand side has zero mean in s (the Hessian
        # maps that subspace to itself), so solve for the mean separately. (A judge's
        # deviations have a prior of their own, strong enough for CG.)
        mean_rhs = rhs[:players].mean() if players else 0.0
        shift = float(self.diagonal[:players].mean()) if players else 0.0
        centred = rhs.copy()
        centred[:players] -= mean_rhs

        def matvec(v: _Float) -> _Float:
            out = np.empty_like(v)
            vs, ve = v[:n], v[n:]
            out[:n] = strengths(vs) + self.cross @ ve
            out[:players] += shift * vs[:players].sum() / max(players, 1)
            out[n:] = self.cross.T @ vs + self.extra @ ve
            return out

        size = self.problem.size
        operator = sparse_linalg.LinearOperator((size, size), matvec=matvec, dtype=np.float64)
        inverse_diagonal = 1.0 / np.concatenate([self.diagonal, np.diag(self.extra)])
        preconditioner = sparse_linalg.LinearOperator(
            (size, size), matvec=lambda v: inverse_diagonal * v, dtype=np.float64
        )
        solution: _Float
        info: int
        solution, info = sparse_linalg.cg(
            operator, centred, rtol=rtol, atol=0.0, maxiter=10 * size, M=preconditioner
        )
        if info != 0:
            _logger.warning("conjugate gradients stopped before rtol=%g (info=%d)", rtol, info)
        # The constant direction in s is an eigenvector with eigenvalue = prior precision.
        solution[:players] += mean_rhs / self.problem.prior_precision[0]
        return solution


@dataclasses.dataclass
class _Cache:
    """What a fit computes on first use."""

    hessian: _Hessian | None = None
    cluster_scores: Any = None  # scipy.sparse matrix (clusters x parameters)
    effect_stderr: dict[str, float] | None = None
    inverse_lower: _Float | None = None
    covariance: _Float | None = None
    stderr: _Float | None = None


@dataclasses.dataclass
class BradleyTerryResult:
    """A fitted Bradley–Terry–Davidson model.

    Attributes:
        scores: Strength of each player minus the anchor's, in log-odds. ``sigmoid(score)``
            is the chance to beat the anchor in a decisive game shown in a neutral order.
        strengths: The same strengths centred at zero (the posterior mode; the prior makes
            their mean exactly zero).
        anchor: The player whose score is 0.
        position_effect: Log-odds added to the first-shown response (``h``); 0 when not fitted.
        tie_strength: Davidson's ``nu`` (>= 0); the chance of a tie between equals shown in
            a neutral order is ``nu / (2 + nu)``.
        length_effect: Log-odds per unit of ``length_diff``; ``None`` when not fitted.
        log_likelihood: Data log-likelihood at the mode (the prior excluded).
        converged: Whether Newton's decrement fell below the tolerance.
        n_iter: Newton iterations used.
        n_games: Number of games (the sum of the weights).
        n_clusters: Number of distinct clusters (0 when none were given).
    """

    scores: _Float
    strengths: _Float
    anchor: int
    position_effect: float
    tie_strength: float
    length_effect: float | None
    log_likelihood: float
    converged: bool
    n_iter: int
    n_games: float
    n_clusters: int
    robust: bool
    _params: _Float = dataclasses.field(repr=False)
    _problem: _Problem = dataclasses.field(repr=False)
    _point: _Point = dataclasses.field(repr=False)
    _fine_games: _Games | None = dataclasses.field(repr=False)
    _cache: _Cache = dataclasses.field(default_factory=_Cache, repr=False)

    @property
    def n_players(self) -> int:
        return len(self.scores)

    @property
    def reliability(self) -> _Float:
        """Each annotator's reliability ``gamma_a`` (> 0), by annotator code: how strongly
        its verdicts follow a strength difference, relative to the reference annotator
        (code 0, whose reliability is 1). ``[1.0]`` with one annotator."""
        problem = self._problem
        if not problem.reliable:
            return np.ones(max(problem.games.n_annotators, 1))
        return problem.gamma(self._params)

    @property
    def _hessian(self) -> _Hessian:
        """The Hessian at the mode, computed on first use (a plain fit does not need it)."""
        if self._cache.hessian is None:
            self._cache.hessian = self._problem.gradient_and_hessian(self._point)[1]
        return self._cache.hessian

    def _contrast_vector(self, i: int, j: int) -> _Float:
        for player in (i, j):
            if not 0 <= player < self.n_players:
                raise IndexError(f"player {player} out of range 0..{self.n_players - 1}")
        vector = np.zeros(self._problem.size)
        vector[i] += 1.0
        vector[j] -= 1.0
        return vector

    def _cluster_scores(self) -> Any:
        """Sparse (clusters x parameters) matrix of per-cluster score vectors at the mode."""
        if self._cache.cluster_scores is None:
            from scipy import sparse

            games = self._fine_games
            assert games is not None and games.cluster is not None
            fine = _Problem(
                games,
                self._problem.prior,
                fit_position="position" in self._problem.names,
                human_annotators=self._problem.human_annotators,
            )
            g_delta, g_theta = fine.row_scores(self._params)
            rows = len(g_delta)
            # Sum each row's score vector (g_delta times its Jacobian row) per cluster.
            per_cluster = sparse.csr_matrix(
                (np.ones(rows), (games.cluster, np.arange(rows))),
                shape=(max(games.n_clusters, 1), rows),
            )
            incidence = fine.incidence_at(self._params)[0]
            design = fine.jacobian_design(self._params)
            matrix = sparse.hstack(
                [
                    per_cluster @ (incidence @ sparse.diags(g_delta)).T,
                    per_cluster @ (g_delta[:, None] * design),
                    (per_cluster @ g_theta)[:, None],
                ]
            ).tocsr()
            correction = games.n_clusters / (games.n_clusters - 1) if games.n_clusters > 1 else 1
            self._cache.cluster_scores = matrix * math.sqrt(correction)
        return self._cache.cluster_scores

    def _variance(self, vector: _Float) -> float:
        solved = self._hessian.solve(vector)
        if self.robust:
            return float(np.sum((self._cluster_scores() @ solved) ** 2))
        return float(vector @ solved)

    def contrast_variance(self, i: int, j: int) -> float:
        """Posterior variance of ``strength[i] - strength[j]`` (log-odds squared).

        One linear solve, no full inverse: cheap for an incumbent-vs-challenger test even
        with thousands of players. Cluster-robust when the fit was.
        """
        if i == j:
            return 0.0
        return self._variance(self._contrast_vector(i, j))

    @property
    def effect_stderr(self) -> dict[str, float]:
        """Standard errors of ``position_effect``, ``log_tie_strength`` (of ``log(nu)``) and,
        when fitted, ``length_effect``; with several annotators ``log_reliability:<code>``
        (of ``log(gamma)``) for each annotator but the reference."""
        if self._cache.effect_stderr is None:
            problem = self._problem
            labels = {
                "position": "position_effect",
                "length": "length_effect",
                "tie": "log_tie_strength",
            }
            errors = {}
            for offset, name in enumerate(problem.names):
                unit = np.zeros(problem.size)
                unit[problem.n + offset] = 1.0
                label = labels.get(name, f"log_{name}")  # log_reliability:<code>
                errors[label] = math.sqrt(max(self._variance(unit), 0.0))
            self._cache.effect_stderr = errors
        return self._cache.effect_stderr

    def _inverse_lower(self) -> _Float:
        """Lower triangle of the inverse Hessian's strength block (LAPACK's inverse from the
        Cholesky factor: faster than solving against the identity)."""
        if self._cache.inverse_lower is None:
            from scipy import linalg

            factor = self._hessian.cholesky()
            inverse, info = linalg.lapack.dpotri(factor[0], lower=1)
            if info != 0:
                raise np.linalg.LinAlgError(f"dpotri failed with info={info}")
            self._cache.inverse_lower = inverse[: self.n_players, : self.n_players]
        return self._cache.inverse_lower

    def covariance(self) -> _Float:
        """Posterior covariance of the centred strengths (n x n), dense.

        Costs ``O(n**3)``; refused above 20,000 players (use :meth:`contrast_variance`).
        """
        if self._cache.covariance is None:
            n = self.n_players
            if n > _DENSE_COVARIANCE_LIMIT:
                raise ValueError(
                    f"a dense covariance of {n} players is too large; use contrast_variance"
                )
            if self.robust:
                from scipy import linalg

                spread = self._cluster_scores().toarray()  # clusters x parameters
                factor = self._hessian.cholesky()
                half = linalg.cho_solve(factor, spread.T, check_finite=False)[:n]
                covariance = half @ half.T
            else:
                lower = np.tril(self._inverse_lower())
                covariance = lower + np.tril(lower, -1).T
            self._cache.covariance = covariance
        return self._cache.covariance

    @property
    def stderr(self) -> _Float:
        """Standard error of each score (of ``strength - strength[anchor]``); 0 for the anchor.

        Computed on first access (about ``n**3 / 3`` flops; timings in
        ``benchmarks/README.md``).
        """
        if self._cache.stderr is None:
            n, a = self.n_players, self.anchor
            if n == 0:
                self._cache.stderr = np.zeros(0)
                return self._cache.stderr
            if n > _DENSE_COVARIANCE_LIMIT:
                raise ValueError(f"stderr of {n} players is too large; use contrast_variance")
            if self.robust:
                cov = self.covariance()
                diagonal, column = np.diag(cov), cov[:, a]
            else:
                lower = self._inverse_lower()  # only the lower triangle is valid
                diagonal = np.diag(lower).copy()
                column = np.concatenate([lower[a, :a], lower[a:, a]])
            variance = diagonal - 2 * column + diagonal[a]
            self._cache.stderr = np.sqrt(np.maximum(variance, 0.0))
        return self._cache.stderr

    def stderr_of(self, players: Sequence[int] | NDArray[np.integer[Any]]) -> _Float:
        """:attr:`stderr` of some players only: one solve each (all at once on the sparse
        factorisation), no dense inverse. For a top-20 table out of thousands of players.

        Example:
            >>> result = fit_bradley_terry([0, 0, 1, 2, 1], [1, 2, 0, 1, 2], [1, 1, 2, 0, 1])
            >>> bool(np.allclose(result.stderr_of([2, 0]), result.stderr[[2, 0]]))
            True
        """
        chosen = np.asarray(players, dtype=np.int64).reshape(-1)
        if self._cache.stderr is not None:
            return self._cache.stderr[chosen]
        if len(chosen) and not (chosen.min() >= 0 and chosen.max() < self.n_players):
            raise IndexError(f"players out of range 0..{self.n_players - 1}: {chosen.tolist()}")
        vectors = np.zeros((self._problem.size, len(chosen)))
        columns = np.arange(len(chosen))
        vectors[chosen, columns] += 1.0
        vectors[self.anchor, columns] -= 1.0
        solved = self._hessian.solve(vectors)
        variance: _Float
        if self.robust:
            variance = np.asarray(np.sum(np.square(self._cluster_scores() @ solved), axis=0))
        else:
            variance = np.einsum("ij,ij->j", vectors, solved)
        return np.sqrt(np.maximum(variance.reshape(-1), 0.0))

    def interval(
        self,
        level: float = 0.95,
        *,
        players: Sequence[int] | NDArray[np.integer[Any]] | None = None,
    ) -> tuple[_Float, _Float]:
        """Symmetric Laplace interval ``score +- z * stderr`` at the given level (0..1), of
        every player or of ``players`` only (:meth:`stderr_of`: cheap for a few of many)."""
        z = _z(level)
        if players is None:
            return self.scores - z * self.stderr, self.scores + z * self.stderr
        scores = self.scores[np.asarray(players, dtype=np.int64)]
        stderr = self.stderr_of(players)
        return scores - z * stderr, scores + z * stderr

    def interval_of(self, i: int, level: float = 0.95) -> tuple[float, float]:
        """:meth:`interval` of player ``i`` alone: one solve, not the full inverse."""
        half = _z(level) * math.sqrt(self.contrast_variance(i, self.anchor))
        return float(self.scores[i]) - half, float(self.scores[i]) + half

    def p_best(
        self, n_samples: int = 10_000, seed: int | None = None, *, max_candidates: int = 256
    ) -> _Float:
        """Probability that each player has the highest strength, under the Laplace posterior.

        Monte Carlo with ``n_samples`` draws; deterministic for a ``seed``. Players whose
        score is more than 5 standard errors (theirs plus the leader's) below a rival's are
        not drawn and get 0: ``P(i beats j) < Phi(-5) = 3e-7`` whatever the correlation,
        since ``sd(s_i - s_j) <= se_i + se_j``. With more than 400 players the dense
        covariance (``O(n**3)``) is not formed: only the ``max_candidates`` players with the
        highest optimistic score (score plus 3 conditional standard deviations,
        ``1 / sqrt(H_ii)``, so a new checkpoint with few games is not passed over) are drawn,
        their joint covariance from the sparse factorisation; the others get 0.
        """
        n = self.n_players
        if n == 0:
            return np.zeros(0)
        if n == 1:
            return np.ones(1)
        if n_samples < 1:
            raise ValueError("n_samples must be >= 1")
        rng = np.random.default_rng(seed)
        if n <= _FULL_POSTERIOR_LIMIT:
            reach = self.scores + _P_BEST_SIGMAS * self.stderr
            floor = float(np.max(self.scores - _P_BEST_SIGMAS * self.stderr))
            candidates = np.flatnonzero(reach >= floor)
            covariance = self.covariance()
            if len(candidates) < n:
                covariance = covariance[np.ix_(candidates, candidates)]
        else:
            hessian = self._hessian
            optimism = self.scores + _OPTIMISM_SIGMAS / np.sqrt(hessian.diagonal[:n])
            candidates = np.sort(np.argsort(-optimism, kind="stable")[:max_candidates])
            unit = np.zeros((self._problem.size, len(candidates)))
            unit[candidates, np.arange(len(candidates))] = 1.0
            solved = hessian.solve(unit)
            if self.robust:
                half = (self._cluster_scores() @ solved).T
                covariance = half @ half.T
            else:
                covariance = solved[candidates]
        # Eigen-decomposition tolerates the semi-definite covariances of tiny problems.
        values, vectors = np.linalg.eigh(covariance)
        root = vectors * np.sqrt(np.maximum(values, 0.0))
        wins = np.zeros(len(candidates))
        mean = self.strengths[candidates]
        for start in range(0, n_samples, 2048):
            size = min(2048, n_samples - start)
            draws = mean + rng.standard_normal((size, len(candidates))) @ root.T
            wins += np.bincount(np.argmax(draws, axis=1), minlength=len(candidates))
        result = np.zeros(n)
        result[candidates] = wins / n_samples
        return result


def _z(level: float) -> float:
    """The normal quantile of a two-sided interval at ``level`` (0..1)."""
    from scipy import stats

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(stats.norm.ppf(0.5 + level / 2))


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
