"""What a database failure means, and riding out outages: the one place that decides.

A failure is *transient* when waiting may cure it: the server refused, closed or lost the
connection, is shutting down or starting up, ended the session, or (SQLite) the file is
locked by another writer. Transient failures are retried with bounded exponential backoff
for up to ``outage_timeout`` seconds; anything else, and an outage longer than that, becomes
one :class:`StoreError` naming the masked URL, the operation and the cause.

Retrying is safe because every write of the store is one transaction of idempotent inserts
(``ON CONFLICT DO NOTHING`` on a unique key): a transaction cut off before its commit left
nothing, and one whose commit landed before the connection dropped is a no-op the second time.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import exc as sa_exc

from optuna_pandalm.errors import StoreError

__all__ = ["database_operation", "describe", "is_transient", "ride_out"]

_logger = logging.getLogger("optuna_pandalm.store")
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])

FIRST_WAIT_S = 0.05
MAX_WAIT_S = 5.0  # the longest single wait: a recovered server is noticed within 5 s

# SQLSTATE classes and codes that mean "try again later": 08 connection exception,
# 57P01-57P03 admin/crash shutdown and "cannot connect now", 40001/40P01 serialization
# failure and deadlock (the transaction was rolled back; redoing it is safe).
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "40001", "40P01")
# SQLSTATE classes that waiting never cures: 28 authentication, 3D000 no such database.
_PERMANENT_SQLSTATES = ("28", "3D000", "42")
_TRANSIENT_MESSAGES = (
    "connection refused",
    "could not connect",
    "server closed the connection",
    "terminating connection",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "connection timed out",
    "timeout expired",
    "connection reset",
    "connection is closed",
    "connection is lost",
    "connection already closed",
    "no connection to the server",
    "ssl connection has been closed",
    "consuming input failed",
    "could not receive data",
    "could not send data",
    "database is locked",
    "database table is locked",
)
_PERMANENT_MESSAGES = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "permission denied",
    "unable to open database file",
)


class _Operated(Protocol):
    masked_url: str
    outage_timeout: float
    read_only: bool


def _sqlstate(error: sa_exc.DBAPIError) -> str:
    orig = error.orig
    return str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")


def is_transient(error: sa_exc.DBAPIError) -> bool:
    """Whether waiting and retrying may cure ``error`` (see the module docstring)."""
    if error.connection_invalidated:
        return True
    state = _sqlstate(error)
    text = str(error.orig).lower()
    if state.startswith(_PERMANENT_SQLSTATES) or any(m in text for m in _PERMANENT_MESSAGES):
        return False
    if state.startswith(_TRANSIENT_SQLSTATES) or any(m in text for m in _TRANSIENT_MESSAGES):
        return True
    # The driver's OperationalError while connecting (no statement yet): the server is away.
    return isinstance(error, sa_exc.OperationalError) and error.statement is None


def describe(error: BaseException) -> str:
    """``Type: first lines of the message``, short enough for one log line."""
    orig = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    text = "; ".join(lines)
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(orig).__name__}: {text}" if text else type(orig).__name__


def ride_out(
    operation: str,
    call: Callable[[], _T],
    *,
    masked_url: str,
    outage_timeout: float,
    failure: str | None = None,
) -> _T:
    """``call()``, retried through transient failures for up to ``outage_timeout`` seconds.

    Waits grow from 0.05 s by doubling up to 5 s each (with a little jitter, so workers do
    not reconnect in lockstep). One warning is logged when an outage starts and one info
    line when the database is back.

    Raises:
        StoreError: past the bound, or at once for a failure that is not transient; the
            message starts with ``failure`` (default: "<operation> failed on <url>").
    """
    failure = failure or f"{operation} failed on {masked_url!r}"
    start = time.monotonic()
    attempt = 0
    lost: str | None = None
    while True:
        try:
            result = call()
        except sa_exc.DBAPIError as error:
            cause = describe(error)
            if not is_transient(error):
                raise StoreError(f"{failure}: {cause}") from None
            elapsed = time.monotonic() - start
            if elapsed >= outage_timeout:
                raise StoreError(
                    f"{failure}: database unreachable for {elapsed:.1f} s "
                    f"(outage_timeout={outage_timeout:g} s): {cause}"
                ) from None
            if lost is None:
                lost = cause
                _logger.warning(
                    "database connection lost in %s (%s); retrying for up to %g s",
                    operation,
                    cause,
                    outage_timeout,
                )
            wait = min(FIRST_WAIT_S * 2**attempt, MAX_WAIT_S) * random.uniform(0.8, 1.0)
            time.sleep(min(wait, outage_timeout - elapsed))
            attempt += 1
            continue
        if lost is not None:
            _logger.info(
                "database is back after %.1f s; %s went through",
                time.monotonic() - start,
                operation,
            )
        return result


def database_operation(*, writes: bool) -> Callable[[_F], _F]:
    """Decorate a store method: refused on a read-only store when it ``writes``, and run
    through :func:`ride_out` under its own name."""

    def decorate(method: _F) -> _F:
        operation = method.__name__

        @functools.wraps(method)
        def wrapper(self: _Operated, *args: Any, **kwargs: Any) -> Any:
            if writes and self.read_only:
                raise StoreError(
                    f"{operation} refused: the store on {self.masked_url!r} is read-only"
                )
            return ride_out(
                operation,
                lambda: method(self, *args, **kwargs),
                masked_url=self.masked_url,
                outage_timeout=self.outage_timeout,
            )

        return wrapper  # type: ignore[return-value]

    return decorate
