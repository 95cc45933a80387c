"""Optuna's gRPC storage proxy client that rides out a restart of the proxy.

Optuna's ``GrpcStorageProxy`` fails a call at once when its proxy is down or restarting
(``grpc.RpcError``, status ``UNAVAILABLE``): the trial fails and the worker usually dies.
:class:`OutageTolerantGrpcStorageProxy` retries such calls with the store's backoff for up to
``outage_timeout`` seconds, so a worker waits for a proxy that its supervisor restarts, and
otherwise gives up with one line naming the proxy's address.

The database behind the proxy is another matter: put
:class:`~optuna_pandalm.study.optuna_storage.OutageTolerantStorage` in the proxy process, so
the proxy rides out a database outage for every worker (``docs/distributed.md``).
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import optuna
from optuna.storages import GrpcStorageProxy

from optuna_pandalm.store import DEFAULT_OUTAGE_TIMEOUT_S

__all__ = ["OutageTolerantGrpcStorageProxy"]

_logger = logging.getLogger(__name__)
_F = TypeVar("_F", bound=Callable[..., Any])

FIRST_WAIT_S = 0.05
MAX_WAIT_S = 2.0  # a restarted proxy is noticed within 2 s

# Set while this thread is inside a patient call: a call made of others (get_n_trials calls
# get_all_trials) rides one outage once, not nested.
_riding = threading.local()


def _unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the proxy cannot be reached now (down, restarting, or its
    connection cut mid-call): waiting may cure it. Any other status is the storage's answer."""
    import grpc  # type: ignore[import-untyped, unused-ignore]

    return isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.UNAVAILABLE


def _patient(name: str, method: _F) -> _F:
    @functools.wraps(method)
    def wrapper(self: OutageTolerantGrpcStorageProxy, *args: Any, **kwargs: Any) -> Any:
        if getattr(_riding, "active", False):
            return method(self, *args, **kwargs)
        _riding.active = True
        try:
            return self._ride_out(name, lambda: method(self, *args, **kwargs))
        finally:
            _riding.active = False

    return wrapper  # type: ignore[return-value]


class OutageTolerantGrpcStorageProxy(GrpcStorageProxy):
    """``optuna.storages.GrpcStorageProxy`` whose calls wait out an outage of the proxy.

    A call that finds the proxy unreachable (gRPC status ``UNAVAILABLE``: not listening,
    restarting, or the connection cut mid-call) is retried, with waits growing from 0.05 s
    to 2 s, for up to ``outage_timeout`` seconds (the store's default, 120 s); past that it
    raises ``optuna.exceptions.StorageInternalError`` whose message names the proxy's
    address. Every other answer (a study that does not exist, a finished trial) is passed
    on as Optuna's client passes it.

    Retrying is safe for every call but one: a ``create_new_trial`` whose answer was lost
    after the proxy stored the trial is repeated, leaving one extra trial RUNNING (the proxy
    has no heartbeat to fail it; ``optuna-pandalm check`` lists it). A state change that
    landed before the cut is recognised (the repeat finds the trial finished).

    Args:
        host: The proxy's host name.
        port: The proxy's port.
        outage_timeout: Seconds one call keeps retrying an unreachable proxy (>= 0).

    Example:
        >>> import optuna
        >>> storage = OutageTolerantGrpcStorageProxy(host="127.0.0.1", port=1, outage_timeout=0)
        >>> try:  # nothing listens on port 1
        ...     storage.get_all_studies()
        ... except optuna.exceptions.StorageInternalError as error:
        ...     print(str(error).split(" for ")[0])
        Optuna's gRPC storage proxy at 127.0.0.1:1 unreachable
    """

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 13000,
        outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT_S,
    ) -> None:
        if not outage_timeout >= 0:
            raise ValueError(f"outage_timeout must be >= 0 seconds, got {outage_timeout!r}")
        self.outage_timeout = float(outage_timeout)
        self.address = f"{host}:{port}"
        super().__init__(host=host, port=port)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"

    def _ride_out(self, name: str, call: Callable[[], Any]) -> Any:
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                result = call()
            except optuna.exceptions.UpdateFinishedTrialError:
                if name == "set_trial_state_values" and attempt > 0:
                    return True  # the first attempt landed before the connection was cut
                raise
            except Exception as error:
                if not _unavailable(error):
                    raise
                elapsed = time.monotonic() - start
                cause = error.details() if hasattr(error, "details") else str(error)
                if elapsed >= self.outage_timeout:
                    raise optuna.exceptions.StorageInternalError(
                        f"Optuna's gRPC storage proxy at {self.address} unreachable for "
                        f"{elapsed:.1f} s (outage_timeout={self.outage_timeout:g} s) in "
                        f"{name}: {cause}"
                    ) from None
                if attempt == 0:
                    _logger.warning(
                        "Optuna's gRPC storage proxy at %s unreachable in %s (%s); retrying "
                        "for up to %g s",
                        self.address,
                        name,
                        cause,
                        self.outage_timeout,
                    )
                wait = min(FIRST_WAIT_S * 2**attempt, MAX_WAIT_S) * random.uniform(0.8, 1.0)
                time.sleep(min(wait, self.outage_timeout - elapsed))
                attempt += 1
                continue
            if attempt:
                _logger.info(
                    "Optuna's gRPC storage proxy at %s is back after %.1f s; %s went through",
                    self.address,
                    time.monotonic() - start,
                    name,
                )
            return result


# Every storage call Optuna's client makes over gRPC; the others (get_n_trials,
# get_best_trial, ...) are made of these.
_CALLS = sorted(
    name
    for name, value in vars(GrpcStorageProxy).items()
    if callable(value) and not name.startswith("_") and name not in ("wait_server_ready", "close")
)
for _name in _CALLS:
    setattr(
        OutageTolerantGrpcStorageProxy,
        _name,
        _patient(_name, getattr(GrpcStorageProxy, _name)),
    )
del _name
