"""The SQLAlchemy engine for a storage URL.

Everything that shows a URL to a person goes through
:func:`~optuna_pandalm.url_masking.mask_url`. The engine is made
here, once, with the choices every backend needs: psycopg 3 when psycopg2 is absent, foreign
keys and explicit ``BEGIN`` on SQLite, and a connection that cannot write for a read-only
store (``mode=ro`` on SQLite, every transaction ``READ ONLY`` on PostgreSQL).
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

__all__ = [
    "APPLICATION_NAME",
    "OPTUNA_APPLICATION_NAME",
    "WRITE",
    "create_engine",
    "driver_url",
    "mask_url",
    "optuna_storage_arguments",
    "postgres_engine_options",
    "sqlite_path",
]

# Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE: a writer takes
# the write lock first (waiting for it under the busy timeout) instead of failing when it
# upgrades a read lock.
WRITE = "pandalm_write"

_SQLITE_BUSY_TIMEOUT_S = 60
_POSTGRES_CONNECT_TIMEOUT_S = 10

APPLICATION_NAME = "optuna-pandalm"
"""The ``application_name`` of our store's PostgreSQL connections (``pg_stat_activity``)."""
OPTUNA_APPLICATION_NAME = "optuna-pandalm:optuna"
"""The ``application_name`` of the connections of Optuna's storage that we open."""

# A worker is one thread that works in short transactions (none is held while a judge
# runs), so one pooled connection serves it; a second thread of ours (n_jobs>1) borrows an
# overflow connection, closed when returned rather than kept open idle.
POOL_SIZE = 1
MAX_OVERFLOW = 8
# Optuna's storage has no overflow: its heartbeat thread waits the few milliseconds the main
# thread's call holds the one connection (and vice versa) instead of opening a third
# connection beside ours, so a worker holds at most two at any moment. No Optuna call asks
# for a second connection while it holds one (the schema check that does is ours:
# OutageTolerantStorage), so none can wait on itself; the wait is bounded as long as our
# store rides out an outage (a call that holds the connection may be connecting).
OPTUNA_MAX_OVERFLOW = 0
OPTUNA_POOL_TIMEOUT_S = 120.0


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


def create_engine(
    url: str, *, read_only: bool = False, application_name: str = APPLICATION_NAME
) -> sa.Engine:
    """The engine for ``url``; a read-only one cannot create a file, a table or a row.

    On PostgreSQL its connections carry ``application_name`` (unless the URL names one), so
    ``pg_stat_activity`` tells them from Optuna's, and its pool keeps one connection per
    process (:func:`postgres_engine_options`, which also reads ``?prepare_threshold=none``).

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
        rendered, options = postgres_engine_options(url, application_name=application_name)
        parsed = sa.make_url(rendered)
        kwargs.update(options)
        if read_only:
            # Each transaction starts READ ONLY (psycopg's BEGIN READ ONLY): unlike the
            # ``options`` startup parameter, which PgBouncer refuses, it passes a pooler.
            kwargs["execution_options"] = {"postgresql_readonly": True}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as error:
        raise StoreError(f"unsupported storage URL {masked!r}: {error}") from None
    if engine.dialect.name == "sqlite":
        _take_over_sqlite_transactions(engine)
    return engine


def _prepare_threshold(url: sa.URL, masked: str) -> tuple[sa.URL, dict[str, Any]]:
    """``url`` without our ``prepare_threshold`` query option, and the connect argument it
    asks for (psycopg 3 only; psycopg2 prepares nothing server-side)."""
    value = url.query.get("prepare_threshold")
    if value is None:
        return url, {}
    if not isinstance(value, str):
        raise StoreError(f"malformed storage URL {masked!r}: prepare_threshold given twice")
    url = url.difference_update_query(["prepare_threshold"])
    if url.drivername != "postgresql+psycopg":
        return url, {}
    if value.lower() in ("none", ""):
        return url, {"prepare_threshold": None}
    if not value.isdigit():
        raise StoreError(
            f"malformed storage URL {masked!r}: prepare_threshold must be 'none' or a "
            f"whole number, got {value!r}"
        )
    return url, {"prepare_threshold": int(value)}


def postgres_engine_options(url: str, *, application_name: str) -> tuple[str, dict[str, Any]]:
    """The URL and ``sqlalchemy.create_engine`` options for a worker's PostgreSQL engine.

    The pool keeps one connection (:data:`POOL_SIZE`); connections carry a connect timeout
    and ``application_name`` (unless the URL names one). ``?prepare_threshold=none`` in the
    URL turns off psycopg 3's server-side prepared statements, which a pooler in transaction
    mode (PgBouncer before 1.21) cannot follow from one server connection to the next. Also
    given to Optuna's ``RDBStorage`` (as its URL and ``engine_kwargs``) by
    :class:`~optuna_pandalm.study.optuna_storage.OutageTolerantStorage`.

    Example:
        >>> url, options = postgres_engine_options(
        ...     "postgresql+psycopg://u@db/hpo?prepare_threshold=none", application_name="mine"
        ... )
        >>> url
        'postgresql+psycopg://u@db/hpo'
        >>> options["pool_size"], options["connect_args"]["application_name"]
        (1, 'mine')
        >>> options["connect_args"]["prepare_threshold"] is None
        True
    """
    masked = mask_url(url)
    parsed, prepare = _prepare_threshold(_parse(url, masked), masked)
    connect_args: dict[str, Any] = {"connect_timeout": _POSTGRES_CONNECT_TIMEOUT_S, **prepare}
    if "application_name" not in parsed.query:
        connect_args["application_name"] = application_name
    options = {"pool_size": POOL_SIZE, "max_overflow": MAX_OVERFLOW, "connect_args": connect_args}
    return parsed.render_as_string(hide_password=False), options


def optuna_storage_arguments(
    url: str, engine_kwargs: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """The URL and ``engine_kwargs`` to give Optuna's ``RDBStorage`` for ``url``: on
    PostgreSQL those of :func:`postgres_engine_options` (one kept connection, named
    :data:`OPTUNA_APPLICATION_NAME`, ``?prepare_threshold`` honoured) without overflow (a
    second thread waits for the connection: :data:`OPTUNA_MAX_OVERFLOW`), under the
    caller's ``engine_kwargs`` (theirs win, ``connect_args`` merged key by key).

    Example:
        >>> optuna_storage_arguments("sqlite:///hpo.db", {"pool_size": 3})
        ('sqlite:///hpo.db', {'pool_size': 3})
    """
    given = dict(engine_kwargs or {})
    if sa.make_url(url).get_backend_name() != "postgresql":
        return driver_url(url), given
    url, options = postgres_engine_options(url, application_name=OPTUNA_APPLICATION_NAME)
    options.update(max_overflow=OPTUNA_MAX_OVERFLOW, pool_timeout=OPTUNA_POOL_TIMEOUT_S)
    connect_args = {**options["connect_args"], **given.pop("connect_args", {})}
    return url, {**options, **given, "connect_args": connect_args}


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
