"""The fitted model, :class:`BradleyTerryResult`: scores, the Laplace uncertainty (standard
errors, intervals, contrasts, effects; cluster-robust when the fit was) and P(best), each
computed on first use from the Hessian at the mode and kept in a :class:`_Cache`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from optuna_pandalm.statistics._games import _Float, _Games
from optuna_pandalm.statistics._hessian import _Hessian
from optuna_pandalm.statistics._p_best import (
    _optimistic,
    _plausible,
    _share_best,
    surely_below,
)
from optuna_pandalm.statistics._problem import _Point, _Problem
from optuna_pandalm.statistics._threads import one_blas_thread

# Up to this many players P(best) samples every plausible player from the dense covariance
# (O(n**3)); above it, the ``max_candidates`` players with the highest optimistic score, their
# joint covariance from a sparse factorisation.
_FULL_POSTERIOR_LIMIT = 400
# Dense covariance (for all standard errors at once) is refused above this many players:
# it needs n**2 floats of memory and n**3 / 3 flops.
_DENSE_COVARIANCE_LIMIT = 20_000


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
            with one_blas_thread():
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
                with one_blas_thread():
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
            >>> from optuna_pandalm import fit_bradley_terry
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
            candidates = _plausible(self.scores, self.stderr)
            covariance = self.covariance()
            if len(candidates) < n:
                covariance = covariance[np.ix_(candidates, candidates)]
        else:
            hessian = self._hessian
            candidates = _optimistic(self.scores, hessian.diagonal[:n], max_candidates)
            unit = np.zeros((self._problem.size, len(candidates)))
            unit[candidates, np.arange(len(candidates))] = 1.0
            solved = hessian.solve(unit)
            if self.robust:
                half = (self._cluster_scores() @ solved).T
                covariance = half @ half.T
            else:
                covariance = solved[candidates]
        result = np.zeros(n)
        result[candidates] = _share_best(self.strengths[candidates], covariance, n_samples, rng)
        return result

    def p_best_surely_below(
        self, i: int, threshold: float, n_samples: int = 10_000, *, max_candidates: int = 256
    ) -> bool:
        """Whether :meth:`p_best` (same ``n_samples`` and ``max_candidates``, any seed) gives
        player ``i`` less than ``threshold``, decided without drawing: ``False`` when not
        sure. A draw counts for ``i`` only when ``i`` beats the best-scored player drawn
        with it, whose chance is ``Phi(difference / its standard error)`` (one linear
        solve); a share of draws exceeds it by the margin :func:`surely_below` asks with a
        chance under ``exp(-40)``. A player not drawn at all gets 0 for certain.
        """
        n = self.n_players
        if n < 2:
            return threshold > 1.0
        leader = int(np.argmax(self.strengths))
        if n > _FULL_POSTERIOR_LIMIT:
            drawn = _optimistic(self.scores, self._hessian.diagonal[:n], max_candidates)
            if i not in drawn:
                return threshold > 0.0
            if leader not in drawn:
                return False
        # With the dense posterior the leader is always drawn (see ``_plausible``).
        if i == leader:
            return False
        variance = self.contrast_variance(i, leader)
        if not variance > 0.0:
            return False
        gap = float(self.strengths[i] - self.strengths[leader])
        chance = 0.5 * math.erfc(-gap / math.sqrt(2.0 * variance))
        return surely_below(chance, threshold, n_samples)


def _z(level: float) -> float:
    """The normal quantile of a two-sided interval at ``level`` (0..1)."""
    from scipy import stats

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(stats.norm.ppf(0.5 + level / 2))
