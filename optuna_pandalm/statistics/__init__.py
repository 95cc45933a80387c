"""The statistics: pure functions on arrays, knowing nothing of judges, SQL or Optuna.

* ``bradley_terry``: :func:`fit_bradley_terry` (Davidson ties, position effect, length
  term, Laplace uncertainty, P(best)) and :class:`BradleyTerryResult`.
* ``sign_test``: the sign test that racing and pruning decide with (ties split).

Imports nothing of optuna_pandalm but the base modules (``outcomes``, ``errors``).
"""

from __future__ import annotations

from optuna_pandalm.statistics.bradley_terry import BradleyTerryResult, fit_bradley_terry
from optuna_pandalm.statistics.sign_test import sign_test

__all__ = ["BradleyTerryResult", "fit_bradley_terry", "sign_test"]
