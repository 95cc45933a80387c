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

import logging
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import GrpcStorageProxy

from optuna_pandalm.store import DEFAULT_OUTAGE_TIMEOUT_S, wait_out
from optuna_pandalm.study._patience import patient

__all__ = ["OutageTolerantGrpcStorageProxy"]

_logger = logging.getLogger(__name__)
MAX_WAIT_S = 2.0  # a restarted proxy is noticed within 2 s


def _unavailable(error: Exception) -> str | None:
    """The cause when ``error`` says the proxy cannot be reached now (gRPC status
    ``UNAVAILABLE``: down, restarting, or its connection cut mid-call), so that waiting may
    cure it; ``None`` for any other answer, which is the storage's."""
    import grpc  # type: ignore[import-untyped, unused-ignore]

    if isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.UNAVAILABLE:
        return str(error.details()) if hasattr(error, "details") else str(error)
    return None


def _ride(proxy: OutageTolerantGrpcStorageProxy, name: str, call: Callable[[], Any]) -> Any:
    def unreachable(cause: str, elapsed: float) -> Exception:
        return optuna.exceptions.StorageInternalError(
            f"Optuna's gRPC storage proxy at {proxy.address} unreachable for {elapsed:.1f} s "
            f"(outage_timeout={proxy.outage_timeout:g} s) in {name}: {cause}"
        )

    return wait_out(
        name,
        call,
        outage_timeout=proxy.outage_timeout,
        waitable=_unavailable,
        give_up=unreachable,
        lost=f"Optuna's gRPC storage proxy at {proxy.address} unreachable",
        back=f"Optuna's gRPC storage proxy at {proxy.address} is back",
        max_wait=MAX_WAIT_S,
        logger=_logger,
    )


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
        patient(_name, getattr(GrpcStorageProxy, _name), _ride),
    )
del _name
