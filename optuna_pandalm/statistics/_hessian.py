"""The Hessian of the negative log posterior at one point, and the linear solves it needs:
a dense Cholesky factorisation for small problems, conjugate gradients (the graph Laplacian
never formed) for a Newton step of a large one, a sparse LU for many variances at once."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np

from optuna_pandalm.statistics._games import _Float, _Games
from optuna_pandalm.statistics._threads import one_blas_thread

_logger = logging.getLogger(__name__)

# Above this many parameters the Newton system is solved by preconditioned conjugate
# gradients on the sparse Hessian instead of a dense Cholesky factorisation.
_DENSE_LIMIT = 100


class _Design(Protocol):
    """What a Hessian reads of its problem (``_problem._Problem``; a protocol, so that the
    problem, which builds Hessians, and the Hessian do not import each other)."""

    games: _Games
    n_players: int
    n: int  # strengths and deviations: the nodes
    size: int  # all parameters
    general: bool  # several annotators: the incidence matrix carries reliabilities
    prior_precision: _Float

    @property
    def incidence(self) -> Any: ...

    @property
    def incidence_t(self) -> Any: ...


class _Hessian:
    """The Hessian of the negative log posterior at one point, with the solves it needs."""

    def __init__(
        self,
        problem: _Design,
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

            with one_blas_thread():
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

            with one_blas_thread():
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

            factor = self.cholesky()
            with one_blas_thread():
                solved: _Float = linalg.cho_solve(factor, rhs, check_finite=False)
            return solved
        if rhs.ndim == 2:
            factors = self.sparse_lu()
            with one_blas_thread():  # SuperLU's dense blocks: see statistics/_threads.py
                solved = factors.solve(np.asfortranarray(rhs))
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
