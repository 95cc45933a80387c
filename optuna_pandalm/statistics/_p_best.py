"""P(best): the chance that each player has the highest strength, by sampling the Laplace
posterior. Which players are worth drawing, and the share of draws each one wins.

Pure functions on arrays: :meth:`BradleyTerryResult.p_best` chooses between
:func:`_plausible` (every player with a chance, from the dense covariance) and
:func:`_optimistic` (the top candidates of many players, from the sparse factorisation)
and passes their covariance to :func:`_share_best`.
"""

from __future__ import annotations

import numpy as np

from optuna_pandalm.statistics._games import _Float, _Int

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
    optimism = scores + _OPTIMISM_SIGMAS / np.sqrt(precision)
    return np.sort(np.argsort(-optimism, kind="stable")[:max_candidates])


def _share_best(
    mean: _Float, covariance: _Float, n_samples: int, rng: np.random.Generator
) -> _Float:
    """The share of ``n_samples`` draws from ``N(mean, covariance)`` in which each entry is
    the largest (0..1), drawn 2048 at a time."""
    root = _square_root(covariance)
    wins = np.zeros(len(mean))
    for start in range(0, n_samples, 2048):
        size = min(2048, n_samples - start)
        draws = mean + rng.standard_normal((size, len(mean))) @ root.T
        wins += np.bincount(np.argmax(draws, axis=1), minlength=len(mean))
    share: _Float = wins / n_samples
    return share


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
