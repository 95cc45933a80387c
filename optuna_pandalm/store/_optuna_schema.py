"""Creating Optuna's RDB schema when several processes start at once on an empty database.

Optuna's ``RDBStorage(url)`` creates its tables, enum types, version row and alembic stamp
without a lock, so two processes doing it at the same instant collide (PostgreSQL
``UniqueViolation ... pg_type_typname_nsp_index`` or ``alembic_version_pkc``; SQLite ``table
... already exists``). Every creation of ours runs under :func:`schema_lock`, the lock that
guards the ``pandalm_`` tables; and because a process outside our code (a plain
``optuna.create_study(storage=url)``) can still create them at the same moment, a collision
is retried: the second attempt finds what the other process made.

A worker may hold at most two connections at once (our store's and Optuna's storage's), at
start-up too. So a schema already made is recognised by one read, without the lock; and
:func:`make_optuna_schema` lets Optuna create it over a single connection, whereas
``RDBStorage.__init__`` asks its pool for a second connection while it holds one (its schema
check), which beside the lock's connection made three.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from optuna_pandalm.store._engine import create_engine
from optuna_pandalm.store._schema import schema_lock

__all__ = [
    "create_optuna_schema",
    "create_optuna_schema_locked",
    "make_optuna_schema",
    "optuna_schema_made",
]

ATTEMPTS = 5
# SQLSTATEs of "someone else created it first": unique_violation, duplicate_table,
# duplicate_object (an enum type).
_DUPLICATE_SQLSTATES = ("23505", "42P07", "42710")
# Optuna's version row and alembic stamp: RDBStorage writes the stamp last when it creates
# the schema, so both there means the schema is complete.
_VERSION_TABLES = ("version_info", "alembic_version")
# Pool options that a single-connection pool (StaticPool) refuses.
_POOL_SIZING = ("pool_size", "max_overflow", "pool_timeout", "pool_use_lifo")


def _created_by_another(error: sa_exc.DBAPIError) -> bool:
    state = str(getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None))
    return state in _DUPLICATE_SQLSTATES or "already exists" in str(error.orig).lower()


def optuna_schema_made(connection: sa.Connection) -> bool:
    """Whether the database holds Optuna's whole schema (its version row and its alembic
    stamp); whether that schema fits the installed Optuna is ``RDBStorage``'s to say."""
    if not set(_VERSION_TABLES) <= set(sa.inspect(connection).get_table_names()):
        return False
    return all(
        connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
        for table in _VERSION_TABLES
    )


def make_optuna_schema(url: str, engine_kwargs: dict[str, Any] | None = None) -> None:
    """Let Optuna create (or check) its schema at ``url``: ``RDBStorage(url, engine_kwargs)``
    over one connection, closed afterwards.

    ``RDBStorage.__init__`` reads its schema version on a second connection while its
    session holds the first; a ``StaticPool`` hands both requests the same connection (one
    thread, and only reads are nested), so the creator holds one connection beside the lock's.

    Example:
        >>> import optuna
        >>> make_optuna_schema("sqlite:///:memory:")  # a memory database: made, then gone
    """
    from optuna.storages import RDBStorage

    kwargs = dict(engine_kwargs or {})
    if sa.make_url(url).get_backend_name() != "sqlite":
        kwargs = {k: v for k, v in kwargs.items() if k not in _POOL_SIZING}
        kwargs["poolclass"] = sa.pool.StaticPool
    RDBStorage(url, engine_kwargs=kwargs).engine.dispose()


def create_optuna_schema_locked(engine: sa.Engine, create: Callable[[], object]) -> None:
    """``create()`` (which makes Optuna's schema, e.g. :func:`make_optuna_schema`) unless the
    database at ``engine`` holds it already, under the schema lock, retried while it collides
    with a creator outside the lock (at most :data:`ATTEMPTS` times).

    The schema's presence is read first without the lock (one connection, put back), then
    again under it, on the lock's own connection on PostgreSQL."""
    with engine.connect() as connection:
        if optuna_schema_made(connection):
            return
    with schema_lock(engine) as locked:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if locked is not None:
                    made = optuna_schema_made(locked)
                else:
                    with engine.connect() as connection:
                        made = optuna_schema_made(connection)
                if not made:
                    create()
                return
            except (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.OperationalError) as e:
                if attempt == ATTEMPTS or not _created_by_another(e):
                    raise
                time.sleep(0.1 * attempt)  # let the other creator commit


def create_optuna_schema(url: str, create: Callable[[], object]) -> None:
    """:func:`create_optuna_schema_locked` on the database at ``url`` (read and locked on a
    connection of its own, closed afterwards).

    Example:
        >>> create_optuna_schema("sqlite://", lambda: make_optuna_schema("sqlite://"))
    """
    engine = create_engine(url)
    try:
        create_optuna_schema_locked(engine, create)
    finally:
        engine.dispose()
