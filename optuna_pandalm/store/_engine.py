"""The SQLAlchemy engine for a storage URL.

Everything that shows a URL to a person goes through
:func:`~optuna_pandalm.url_masking.mask_url`. The engine is made
here, once, with the choices every backend needs: psycopg 3 when psycopg2 is absent, foreign
keys and explicit ``BEGIN`` on SQLite, and a connection that cannot write for a read-only
store (``mode=ro`` on SQLite, ``default_transaction_read_only`` on PostgreSQL).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from optuna_pandalm.errors import StoreError
from optuna_pandalm.url_masking import mask_url

__all__ = ["WRITE", "create_engine", "driver_url", "mask_url", "sqlite_path"]

# Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE: a writer takes
# the write lock first (waiting for it under the busy timeout) instead of failing when it
# upgrades a read lock.
WRITE = "pandalm_write"

_SQLITE_BUSY_TIMEOUT_S = 60
_POSTGRES_CONNECT_TIMEOUT_S = 10


def sqlite_path(url: sa.URL) -> str | None:
    """The file of a SQLite URL, or ``None`` for a memory database or another backend."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):  # a URI filename: file:path?...
        return database[len("file:") :].split("?", 1)[0]
    return database


def _parse(url: str, masked: str) -> sa.URL:
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        raise StoreError(
            f"malformed storage URL {masked!r}: expected e.g. 'sqlite:///hpo.db' or "
            "'postgresql://user@host/db'"
        ) from None
    if "@" in (parsed.host or ""):  # the driver would look up a host named by the password
        raise StoreError(
            f"malformed storage URL {masked!r}: the password holds '@'; write it as '%40'"
        )
    if parsed.drivername == "postgresql":
        # SQLAlchemy's default driver is psycopg2; use psycopg 3 when that is what is there.
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def driver_url(url: str) -> str:
    """``url`` with the PostgreSQL driver that is installed (for Optuna's own storage).

    Example:
        >>> driver_url("sqlite:///hpo.db")
        'sqlite:///hpo.db'
    """
    return _parse(url, mask_url(url)).render_as_string(hide_password=False)


def create_engine(url: str, *, read_only: bool = False) -> sa.Engine:
    """The engine for ``url``; a read-only one cannot create a file, a table or a row.

    Raises:
        StoreError: for a malformed or unsupported URL, or (read-only) a SQLite file that
            does not exist.
    """
    masked = mask_url(url)
    parsed = _parse(url, masked)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    path = sqlite_path(parsed)
    if backend == "sqlite" and path is None:
        kwargs["poolclass"] = sa.pool.StaticPool
        kwargs["connect_args"] = {"check_same_thread": False}
    elif backend == "sqlite" and read_only:
        assert path is not None
        if not os.path.isfile(path):
            raise StoreError(f"no such database file: {path!r} (from {masked!r})")
        uri = f"{Path(path).absolute().as_uri()}?mode=ro"
        kwargs["creator"] = lambda: sqlite3.connect(
            uri, uri=True, timeout=_SQLITE_BUSY_TIMEOUT_S, check_same_thread=False
        )
        kwargs["poolclass"] = sa.pool.QueuePool
    elif backend == "sqlite":
        kwargs["connect_args"] = {"timeout": _SQLITE_BUSY_TIMEOUT_S}
    elif backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": _POSTGRES_CONNECT_TIMEOUT_S}
        if read_only:
            kwargs["connect_args"]["options"] = "-c default_transaction_read_only=on"
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as error:
        raise StoreError(f"unsupported storage URL {masked!r}: {error}") from None
    if engine.dialect.name == "sqlite":
        _take_over_sqlite_transactions(engine)
    return engine


def _take_over_sqlite_transactions(engine: sa.Engine) -> None:
    """Emit BEGIN ourselves (SQLAlchemy's recipe for pysqlite), so DDL is transactional and a
    writer can ask for BEGIN IMMEDIATE; turn foreign keys on."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
