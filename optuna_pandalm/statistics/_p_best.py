"""P(best): the chance that each player has the highest strength, by sampling the Laplace
posterior. Which players are worth drawing, and the share of draws each one wins.

Pure functions on arrays: :meth:`BradleyTerryResult.p_best` chooses between
:func:`_plausible` (every player with a chance, from the dense covariance) and
:func:`_optimistic` (the top candidates of many players, from the sparse factorisation)
and passes their covariance to :func:`_share_best`.
"""

from __future__ import annotations

import math

import numpy as np

from optuna_pandalm.statistics._games import _Float, _Int
from optuna_pandalm.statistics._threads import one_blas_thread

_OPTIMISM_SIGMAS = 3.0  # optimistic score: score + this many conditional standard deviations
_P_BEST_SIGMAS = 5.0  # players this far below a rival are not drawn in p_best


def _plausible(scores: _Float, stderr: _Float) -> _Int:
    """The players not more than ``_P_BEST_SIGMAS`` standard errors (theirs plus the
    leader's) below a rival: the others beat it with a chance below ``Phi(-5)``."""
    reach = scores + _P_BEST_SIGMAS * stderr
    floor = float(np.max(scores - _P_BEST_SIGMAS * stderr))
    return np.flatnonzero(reach >= floor)


def _optimistic(scores: _Float, precision: _Float, max_candidates: int) -> _Int:
    """The ``max_candidates`` players with the highest optimistic score (score plus
    ``_OPTIMISM_SIGMAS`` conditional standard deviations ``1 / sqrt(precision)``, so a new
    player with few games is not passed over), in increasing order."""
    optimism = -(scores + _OPTIMISM_SIGMAS / np.sqrt(precision))  # ascending: the best first
    if len(optimism) <= max_candidates:
        return np.arange(len(optimism))
    # The first ``max_candidates`` of a stable argsort, in O(players): every player strictly
    # better than the last one taken, then the equal ones by index (finalize asks this of
    # every trial; a full sort of thousands of players cost more than the rest of it).
    last = np.partition(optimism, max_candidates - 1)[max_candidates - 1]
    better = np.flatnonzero(optimism < last)
    equal = np.flatnonzero(optimism == last)[: max_candidates - len(better)]
    return np.sort(np.concatenate([better, equal]))


def _share_best(
    mean: _Float, covariance: _Float, n_samples: int, rng: np.random.Generator
) -> _Float:
    """The share of ``n_samples`` draws from ``N(mean, covariance)`` in which each entry is
    the largest (0..1), drawn 2048 at a time.

    On one BLAS thread (:func:`one_blas_thread`): the factorisation and the products are
    small, and in a worker the BLAS's own threads only fight the judge, the database and
    the other workers for the cores (532 ms instead of 75 ms measured on 2 busy cores).
    The result is the same bit for bit: each entry of a product is summed by one thread
    in the same order whatever the number of threads.
    """
    wins = np.zeros(len(mean))
    with one_blas_thread():
        root = _square_root(covariance)
        for start in range(0, n_samples, 2048):
            size = min(2048, n_samples - start)
            draws = mean + rng.standard_normal((size, len(mean))) @ root.T
            wins += np.bincount(np.argmax(draws, axis=1), minlength=len(mean))
    share: _Float = wins / n_samples
    return share


def surely_below(bound: float, threshold: float, n_samples: int) -> bool:
    """Whether a Monte Carlo share of ``n_samples`` draws whose expectation is at most
    ``bound`` stays below ``threshold`` but with a chance under ``exp(-40)`` (Chernoff:
    ``P(share >= t) <= exp(-n KL(t || bound))`` for ``bound < t``), so that the draws
    need not be made to decide ``share < threshold``.

    Example:
        >>> surely_below(0.01, 0.2, 4000), surely_below(0.15, 0.2, 4000)
        (True, False)
    """
    if not 0.0 <= bound < threshold <= 1.0:
        return False
    if bound == 0.0:
        return True
    t, b = threshold, bound
    divergence = t * math.log(t / b)
    if t < 1.0:
        divergence += (1 - t) * math.log((1 - t) / (1 - b))
    return n_samples * divergence > 40.0


def _square_root(covariance: _Float) -> _Float:
    """A factor ``L`` with ``L L' = covariance`` that moves continuously with it: Cholesky
    (with a little jitter on the diagonal when the matrix is only semi-definite, as a
    cluster-robust covariance with few clusters can be).

    Continuity is what makes P(best) the same whoever asks: a warm-started fit and a fresh
    one differ in the last digits, and so do the covariances. An eigen-decomposition is not
    continuous where eigenvalues repeat (players with the same record against the same
    opponents, such as checkpoints with identical answers): there a change in the 15th
    digit rotated the eigenvectors, the same seed's draws went to other players and tied
    players swapped P(best) (0.337 and 0.325) between a reader and the writer.
    """
    scale = float(np.max(np.diag(covariance), initial=0.0))
    jitter = 0.0
    for _ in range(8):
        try:
            root = np.linalg.cholesky(covariance + jitter * np.eye(len(covariance)))
            return np.asarray(root, dtype=np.float64)
        except np.linalg.LinAlgError:
            jitter = max(jitter * 100, scale * 1e-12, 1e-300)
    # Not even near positive semi-definite: an eigen-decomposition, clipped at 0.
    values, vectors = np.linalg.eigh(covariance)
    clipped: _Float = vectors * np.sqrt(np.maximum(values, 0.0))
    return clipped
