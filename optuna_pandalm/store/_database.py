"""What the store's parts share: the engine, the options, and idempotent inserts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from optuna_pandalm.store._engine import WRITE

__all__ = ["Database", "chunks"]

BATCH = 500  # rows per INSERT / IN (...) list; well under SQLite's variable limit


def chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Database:
    """The state every part of the store uses (set by ``Store.__init__``)."""

    url: str
    masked_url: str
    engine: sa.Engine
    read_only: bool
    outage_timeout: float
    _writer: sa.Engine  # the engine for write transactions (BEGIN IMMEDIATE on SQLite)
    _found_version: int | None  # the schema version found when opening

    def _annotator(self) -> Any:
        """The games' annotator column; the judge for every game of a database read
        read-only at a schema before 2 (which has no such column)."""
        from optuna_pandalm.store._schema import JUDGE_ANNOTATOR, games

        if self._found_version is not None and self._found_version < 2 and self.read_only:
            return sa.literal_column(f"'{JUDGE_ANNOTATOR}'", sa.String)
        return games.c.annotator

    def _arena_scoring(self) -> list[Any]:
        """The arenas' scoring columns (schema 3); "not recorded" (NULL) for every arena of
        a database read read-only at an older schema (which has no such columns)."""
        from optuna_pandalm.store._schema import arenas

        names = ("length_control", "robust_errors")
        if self._found_version is not None and self._found_version < 3 and self.read_only:
            return [sa.null().label(name) for name in names]
        return [arenas.c[name] for name in names]

    def _has_counters(self) -> bool:
        """Whether the arenas' game and player counters exist (schema 4; a database read
        read-only at an older schema has none)."""
        return not (self._found_version is not None and self._found_version < 4 and self.read_only)

    def _bind(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{WRITE: True})

    def _insert_ignore(
        self, connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]
    ) -> int:
        """Insert rows, skipping those whose unique key exists. Returns how many were new."""
        return len(self._insert_ignore_returning(connection, table, rows, [table.c.id]))

    def _insert_ignore_returning(
        self,
        connection: sa.Connection,
        table: sa.Table,
        rows: Sequence[Mapping[str, Any]],
        columns: Sequence[sa.Column[Any]],
    ) -> list[Any]:
        """Insert rows, skipping those whose unique key exists (``ON CONFLICT DO NOTHING``,
        so a retried transaction inserts nothing twice); returns ``columns`` of the new rows
        (as attributes)."""
        if not rows:
            return []
        dialect = connection.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        else:  # pragma: no cover - other databases: one row at a time
            inserted = []
            for row in rows:
                try:
                    with connection.begin_nested():
                        result = connection.execute(table.insert(), row)
                    key = result.inserted_primary_key
                    inserted.append(SimpleNamespace(**row, id=None if key is None else key[0]))
                except sa_exc.IntegrityError:
                    pass
            return inserted
        new: list[Any] = []
        statement = insert(table).on_conflict_do_nothing().returning(*columns)
        for chunk in chunks(rows):
            # RETURNING yields exactly the new rows; executemany's rowcount is unreliable.
            new += connection.execute(statement, list(chunk)).all()
        return new
