"""Creating Optuna's RDB schema when several processes start at once on an empty database.

Optuna's ``RDBStorage(url)`` creates its tables, enum types, version row and alembic stamp
without a lock, so two processes doing it at the same instant collide (PostgreSQL
``UniqueViolation ... pg_type_typname_nsp_index`` or ``alembic_version_pkc``; SQLite ``table
... already exists``). Every creation of ours runs under :func:`schema_lock`, the lock that
guards the ``pandalm_`` tables; and because a process outside our code (a plain
``optuna.create_study(storage=url)``) can still create them at the same moment, a collision
is retried: the second attempt finds what the other process made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from optuna_pandalm.store._engine import create_engine
from optuna_pandalm.store._schema import schema_lock

__all__ = ["create_optuna_schema", "create_optuna_schema_locked"]

_T = TypeVar("_T")

ATTEMPTS = 5
# SQLSTATEs of "someone else created it first": unique_violation, duplicate_table,
# duplicate_object (an enum type).
_DUPLICATE_SQLSTATES = ("23505", "42P07", "42710")


def _created_by_another(error: sa_exc.DBAPIError) -> bool:
    state = str(getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None))
    return state in _DUPLICATE_SQLSTATES or "already exists" in str(error.orig).lower()


def create_optuna_schema_locked(engine: sa.Engine, create: Callable[[], _T]) -> _T:
    """``create()`` (which makes Optuna's schema, e.g. ``RDBStorage(url)``) under the schema
    lock of ``engine``'s database, retried while it collides with a creator outside the
    lock (at most :data:`ATTEMPTS` times)."""
    with schema_lock(engine):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return create()
            except (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.OperationalError) as e:
                if attempt == ATTEMPTS or not _created_by_another(e):
                    raise
                time.sleep(0.1 * attempt)  # let the other creator commit
    raise AssertionError("unreachable")  # pragma: no cover


def create_optuna_schema(url: str, create: Callable[[], _T]) -> _T:
    """:func:`create_optuna_schema_locked` on the database at ``url`` (the lock is taken on a
    connection of its own, closed afterwards).

    Example:
        >>> import optuna
        >>> storage = create_optuna_schema("sqlite://", lambda: optuna.storages.RDBStorage("sqlite://"))
        >>> type(storage).__name__
        'RDBStorage'
    """
    engine = create_engine(url)
    try:
        return create_optuna_schema_locked(engine, create)
    finally:
        engine.dispose()
