"""``Store``: opening a database (writing or read-only), its schema version, Optuna's schema."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from optuna_pandalm.errors import StoreError
from optuna_pandalm.store._activity import Activity
from optuna_pandalm.store._arenas import Arenas
from optuna_pandalm.store._audit import Audit
from optuna_pandalm.store._engine import (
    create_engine,
    mask_url,
    optuna_storage_arguments,
    sqlite_path,
)
from optuna_pandalm.store._games import Games
from optuna_pandalm.store._optuna_heartbeats import OptunaHeartbeats
from optuna_pandalm.store._optuna_schema import create_optuna_schema_locked, make_optuna_schema
from optuna_pandalm.store._outage import database_operation, ride_out
from optuna_pandalm.store._players import Players
from optuna_pandalm.store._schema import (
    SCHEMA_VERSION,
    check_lock_file,
    newer_schema_error,
    read_schema_version,
    upgrade_schema,
)
from optuna_pandalm.store._verdict_cache import VerdictCache

if TYPE_CHECKING:
    from optuna_pandalm.store._interface import ArenaStore

__all__ = ["DEFAULT_OUTAGE_TIMEOUT_S", "Store"]

DEFAULT_OUTAGE_TIMEOUT_S = 120.0
"""Seconds a store call waits for an unreachable database; Optuna's storage through
:class:`~optuna_pandalm.study.optuna_storage.OutageTolerantStorage` waits as long by default,
so neither gives up on an outage the other rides out. Past it the worker's verdicts are in
its journal, not lost."""


class Store(VerdictCache, Arenas, Players, Games, Audit, OptunaHeartbeats, Activity):
    """Typed access to the ``pandalm_`` tables: the verdict cache and the per-arena tables.

    Tables are prefixed ``pandalm_`` and can live in the same database as the Optuna study
    (pass the same URL) or in a separate one. Works on SQLite (file and in-memory) and
    PostgreSQL.

    Guarantees:

    * Opening for writing creates the tables, or migrates a database written by an older
      optuna-pandalm to schema :data:`SCHEMA_VERSION` keeping every row, once, also when
      several processes open it at the same instant (one lock serialises them).
    * Inserts are idempotent under concurrent writers: unique keys with ``ON CONFLICT DO
      NOTHING``, so no verdict or game is ever stored twice, and retrying a write is safe.
    * Each call commits on its own, so a crash loses at most the batch in flight.
    * Every method rides out a database outage of up to ``outage_timeout`` seconds
      (connection refused or lost, server restarting, SQLite file locked), then raises one
      :class:`StoreError` naming the masked URL, the operation and the cause. Every other
      database failure is a :class:`StoreError` naming the operation too.
    * A read-only store creates no file, table or row, and refuses every write.

    Texts are stored as given, except that NUL characters (which PostgreSQL refuses) become
    U+FFFD and unencodable surrogates become ``?``; hashes are always of the original text.

    Args:
        url: An SQLAlchemy URL, e.g. ``sqlite:///hpo.db`` (the Optuna study's URL works),
            ``sqlite://`` for memory, or ``postgresql://user@host/db`` (psycopg 3 is used
            when psycopg2 is absent). Passwords and secret query values are never shown.
        read_only: Open without creating or changing anything: a missing SQLite file, or a
            database without ``pandalm_`` tables, is a :class:`StoreError`. A database of an
            older schema is read as it is, without migrating (reads work; writes are refused
            anyway).
        outage_timeout: How long, in seconds, each call waits for an unreachable database
            before giving up. Opening does not wait: a wrong host or port fails at once.
        prepare_optuna: Also create Optuna's RDB schema under the same lock (see
            :meth:`prepare_optuna_schema`), so workers started at once on an empty database
            can all create or load the study.

    Raises:
        StoreError: for a malformed or unsupported URL, an unreachable database, a database
            written by a newer optuna-pandalm, or (read-only) nothing to read.

    Example:
        >>> store = Store("sqlite://")
        >>> from optuna_pandalm import Prompt
        >>> prompt_set = store.save_prompt_set([Prompt("Say hi.")])
        >>> arena = store.bind_study("demo", prompt_set)
        >>> store.player(arena, trial=0, step=10) == store.player(arena, trial=0, step=10)
        True
        >>> store.schema_version()
        4
    """

    def __init__(
        self,
        url: str,
        *,
        read_only: bool = False,
        outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT_S,
        prepare_optuna: bool = False,
    ) -> None:
        if not outage_timeout >= 0:
            raise ValueError(f"outage_timeout must be >= 0 seconds, got {outage_timeout!r}")
        self.url = url
        self.masked_url = mask_url(url)
        self.read_only = read_only
        self.outage_timeout = float(outage_timeout)
        self._bind(create_engine(url, read_only=read_only))
        # The version found when opening, before any automatic migration.
        self._found_version = ride_out(
            "open",
            self._open,
            masked_url=self.masked_url,
            outage_timeout=0.0,  # a wrong host or port fails at once
            failure=f"cannot open storage {self.masked_url!r}",
        )
        if prepare_optuna:
            self.prepare_optuna_schema()

    @classmethod
    def probe(cls, url: str) -> Store | None:
        """Check that ``url`` can be used, creating nothing: the store opened read-only when
        the database holds optuna-pandalm tables, ``None`` when it is reachable but new (a
        SQLite file not yet made in an existing folder, or a database without our tables).

        Raises:
            StoreError: a malformed or unsupported URL, a SQLite file whose folder does not
                exist, an unreachable server, or a database of a newer optuna-pandalm.

        Example:
            >>> Store.probe("sqlite:////no/such/dir/x.db")
            Traceback (most recent call last):
            ...
            optuna_pandalm.errors.StoreError: no folder '/no/such/dir' for the SQLite \
file of 'sqlite:////no/such/dir/x.db'
            >>> Store.probe("sqlite://") is None  # reachable, and new
            True
        """
        masked = mask_url(url)
        engine = create_engine(url)  # not connected yet: this creates nothing
        path = sqlite_path(engine.url)
        if path is not None and not os.path.isfile(path):
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise StoreError(f"no folder {folder!r} for the SQLite file of {masked!r}")
            if not os.access(folder, os.W_OK):
                raise StoreError(f"cannot write to {folder!r} (the SQLite file of {masked!r})")
            return None
        if path is None and engine.url.get_backend_name() == "sqlite":
            return None  # a memory database is always new

        def version() -> int | None:
            with engine.connect() as connection:
                return read_schema_version(connection)

        try:
            found = ride_out(
                "open",
                version,
                masked_url=masked,
                outage_timeout=0.0,
                failure=f"cannot open storage {masked!r}",
            )
        finally:
            engine.dispose()
        if found is None:
            return None
        if found > SCHEMA_VERSION:
            raise newer_schema_error(found, masked)
        return cls(url, read_only=True)

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"Store({self.masked_url!r}{mode})"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its engine, as Optuna's ``RDBStorage`` is: the copy (in another
        process, say) connects afresh. An in-memory SQLite database is not copied: the copy
        of ``Store("sqlite://")`` opens a new, empty one."""
        state = self.__dict__.copy()
        del state["engine"], state["_writer"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind(create_engine(self.url, read_only=self.read_only))

    def close(self) -> None:
        """Close the store's connections (the store can still be used; it reconnects)."""
        self.engine.dispose()

    # --- schema --------------------------------------------------------------------------
    def _open(self) -> int | None:
        with self.engine.connect() as connection:
            found = read_schema_version(connection)
        if found is not None and found > SCHEMA_VERSION:
            raise newer_schema_error(found, self.masked_url)
        if self.read_only:
            if found is None:
                raise StoreError(f"no optuna-pandalm tables in {self.masked_url!r}")
            return found
        if found != SCHEMA_VERSION:
            found, _ = upgrade_schema(self.engine, self.masked_url)
        else:  # no lock needed now: an unwritable SQLite folder is named here, not later
            check_lock_file(self.engine)
        return found

    @database_operation(writes=False)
    def schema_version(self) -> int:
        """The schema version of the database (0: written before versioning).

        Example:
            >>> Store("sqlite://").schema_version()
            4
        """
        with self.engine.connect() as connection:
            return read_schema_version(connection) or 0

    @database_operation(writes=True)
    def upgrade(self) -> tuple[int, int]:
        """Migrate the database to this code's schema, keeping every row; returns (schema
        version found when the store was opened, schema version now).

        Opening a store for writing already migrates; this is what ``optuna-pandalm upgrade
        --storage URL`` calls, to say what was done. Idempotent.

        Example:
            >>> Store("sqlite://").upgrade()
            (4, 4)
        """
        found, now = upgrade_schema(self.engine, self.masked_url)
        old = self._found_version if self._found_version is not None else found
        self._found_version = now
        return (now if old is None else old), now

    @database_operation(writes=True)
    def prepare_optuna_schema(self) -> None:
        """Create Optuna's RDB schema (``optuna.storages.RDBStorage(url)``) under the lock
        that guards the ``pandalm_`` tables.

        Optuna creates its tables, its version row and its alembic stamp without a lock, so
        processes doing it at the same instant on an empty database fail (PostgreSQL
        ``duplicate key ... studydirection``; SQLite ``table ... already exists``). Here one
        process creates them and the others find them; a collision with a creator outside
        the lock (plain Optuna in another process) is retried. The lock is a PostgreSQL
        transaction-level advisory lock held by a transaction of its own, or on a SQLite file an
        exclusive ``flock`` on ``<database>.pandalm-lock`` (kept, not removed: see
        ``schema_lock``); processes cannot race on a memory database.

        Raises:
            StoreError: Optuna refuses to create its schema there. (A schema that is there
                already is not checked here: ``RDBStorage`` checks its version when opened.)
        """
        try:
            url, engine_kwargs = optuna_storage_arguments(self.url)
            create_optuna_schema_locked(
                self.engine, lambda: make_optuna_schema(url, engine_kwargs)
            )
        except sa.exc.DBAPIError:
            raise  # ride_out decides whether to wait
        except Exception as error:
            raise StoreError(
                f"prepare_optuna_schema failed on {self.masked_url!r}: "
                f"{type(error).__name__}: {error}"
            ) from None


if TYPE_CHECKING:

    def _offers_arena_store(store: Store) -> ArenaStore:
        return store  # mypy: Store has every method of ArenaStore, with compatible types
