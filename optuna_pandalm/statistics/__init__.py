"""The statistics: pure functions on arrays, knowing nothing of judges, SQL or Optuna.

* ``bradley_terry``: :func:`fit_bradley_terry` (Davidson ties, position effect, length
  term, Laplace uncertainty, P(best)), the model and the fit's steps in order; it
  re-exports :class:`BradleyTerryResult`. The steps, one private module each:

  * ``_games``: the per-game input checked and canonicalised once, counted per distinct
    (cluster, first, second, length, annotator) row.
  * ``_problem``: the priors and the negative log posterior with its gradient and Hessian.
  * ``_hessian``: the Hessian's linear solves (dense Cholesky, conjugate gradients,
    sparse LU).
  * ``_newton``: the starting point (warm or from win rates) and damped Newton to the mode.
  * ``_result``: :class:`BradleyTerryResult`, with standard errors, intervals, contrasts
    and effects from the Laplace approximation, computed on first use.
  * ``_p_best``: P(best) by sampling the Laplace posterior, and which players to draw.
  * ``_threads``: one BLAS thread for the bursts of dense work (P(best), the factorisations).

* ``sign_test``: the sign test that racing and pruning decide with (ties split).

Imports nothing of optuna_pandalm but the base modules (``outcomes``, ``errors``).
"""

from __future__ import annotations

from optuna_pandalm.statistics.bradley_terry import BradleyTerryResult, fit_bradley_terry
from optuna_pandalm.statistics.sign_test import sign_test

__all__ = ["BradleyTerryResult", "fit_bradley_terry", "sign_test"]
