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

__all__ = ["database_operation", "describe", "is_transient", "ride_out", "wait_out"]

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


def wait_out(
    operation: str,
    call: Callable[[], _T],
    *,
    outage_timeout: float,
    waitable: Callable[[Exception], str | None],
    give_up: Callable[[str, float], Exception],
    lost: str = "database connection lost",
    back: str = "database is back",
    max_wait: float = MAX_WAIT_S,
    logger: logging.Logger = _logger,
) -> _T:
    """``call()``, retried for up to ``outage_timeout`` seconds while it fails in a way that
    waiting may cure: the one retry loop of the store and of our Optuna storages.

    ``waitable(error)`` gives the cause of such a failure, or ``None`` for any other (raised
    as it is). Waits grow from 0.05 s by doubling up to ``max_wait`` each, with a little
    jitter, so that workers do not reconnect in lockstep. One warning is logged when an
    outage starts (``"<lost> in <operation> (<cause>); retrying for up to ..."``) and one
    info line when it is over (``"<back> after ... s; <operation> went through"``), both on
    ``logger`` (by default ``optuna_pandalm.store``'s).

    Raises:
        Exception: ``give_up(cause, elapsed)``, past the bound.

    Example:
        >>> tries = []
        >>> def flaky() -> str:
        ...     tries.append(1)
        ...     if len(tries) < 3:
        ...         raise ConnectionRefusedError("refused")
        ...     return "done"
        >>> wait_out(
        ...     "ping",
        ...     flaky,
        ...     outage_timeout=5,
        ...     waitable=lambda e: str(e) if isinstance(e, ConnectionError) else None,
        ...     give_up=lambda cause, elapsed: TimeoutError(cause),
        ... ), len(tries)
        ('done', 3)
    """
    start = time.monotonic()
    attempt = 0
    while True:
        try:
            result = call()
        except Exception as error:
            cause = waitable(error)
            if cause is None:
                raise
            elapsed = time.monotonic() - start
            if elapsed >= outage_timeout:
                raise give_up(cause, elapsed) from None
            if attempt == 0:
                logger.warning(
                    "%s in %s (%s); retrying for up to %g s",
                    lost,
                    operation,
                    cause,
                    outage_timeout,
                )
            wait = min(FIRST_WAIT_S * 2**attempt, max_wait) * random.uniform(0.8, 1.0)
            time.sleep(min(wait, outage_timeout - elapsed))
            attempt += 1
            continue
        if attempt:
            logger.info(
                "%s after %.1f s; %s went through", back, time.monotonic() - start, operation
            )
        return result


def ride_out(
    operation: str,
    call: Callable[[], _T],
    *,
    masked_url: str,
    outage_timeout: float,
    failure: str | None = None,
) -> _T:
    """``call()``, retried through transient database failures (:func:`is_transient`) for
    up to ``outage_timeout`` seconds, as :func:`wait_out` retries.

    Raises:
        StoreError: past the bound, or at once for a failure that is not transient; the
            message starts with ``failure`` (default: "<operation> failed on <url>").
    """
    failure = failure or f"{operation} failed on {masked_url!r}"

    def checked() -> _T:
        try:
            return call()
        except sa_exc.DBAPIError as error:
            if not is_transient(error):
                raise StoreError(f"{failure}: {describe(error)}") from None
            raise

    def unreachable(cause: str, elapsed: float) -> StoreError:
        return StoreError(
            f"{failure}: database unreachable for {elapsed:.1f} s "
            f"(outage_timeout={outage_timeout:g} s): {cause}"
        )

    return wait_out(
        operation,
        checked,
        outage_timeout=outage_timeout,
        waitable=lambda error: describe(error) if isinstance(error, sa_exc.DBAPIError) else None,
        give_up=unreachable,
    )


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
