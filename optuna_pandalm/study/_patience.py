"""The wrapper our Optuna storages put around each storage call, so that it waits out an
outage (of the database, or of Optuna's gRPC proxy) instead of failing the trial.

Each storage gives :func:`patient` its own ``ride`` (the retry loop and what to raise past
its bound, both from :func:`optuna_pandalm.store.wait_out`) and, where Optuna hides the
failure inside its own exception, a ``reveal``; what is shared is here: a call made of other
patient calls rides one outage once, and a finishing ``set_trial_state_values`` whose first
attempt landed before the connection was cut is recognised when it is repeated.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import optuna

__all__ = ["patient"]

_F = TypeVar("_F", bound=Callable[..., Any])
Ride = Callable[[Any, str, Callable[[], Any]], Any]

# Set while this thread is inside a patient call: a call made of others (Optuna's
# ``create_new_trial`` calls ``_create_new_trial``; the gRPC client's ``get_n_trials`` calls
# ``get_all_trials``) rides one outage once, not nested.
_riding = threading.local()


def patient(
    name: str,
    method: _F,
    ride: Ride,
    reveal: Callable[[Exception], Exception | None] | None = None,
) -> _F:
    """``method`` (a storage's, called ``name``), run through ``ride(storage, name, call)``.

    ``reveal(error)``: the failure ``ride`` should judge in place of ``error`` (say, the
    database's error inside Optuna's), or ``None`` to pass ``error`` on.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_riding, "active", False):
            return method(self, *args, **kwargs)
        attempts = 0

        def call() -> Any:
            nonlocal attempts
            attempts += 1
            try:
                return method(self, *args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                if name == "set_trial_state_values" and attempts > 1:
                    return True  # the first attempt landed before the connection was cut
                raise
            except Exception as error:
                cause = reveal(error) if reveal is not None else None
                if cause is not None:
                    raise cause from None
                raise

        _riding.active = True
        try:
            return ride(self, name, call)
        finally:
            _riding.active = False

    return wrapper  # type: ignore[return-value]
