"""An arena's games and players counted where they are stored: what ``Store.version`` reads.

A worker caches its fit until anything is stored, by any worker. Counting every game of the
arena at each look cost O(games); here every transaction that stores games or players adds
how many it stored, and the largest new id, to the arena's row (schema 4), so one row says
it. The counts commit with the rows they count, so they also see a row with a smaller id
that another worker's transaction commits late (which the largest id alone would miss).
Concurrent writers queue on the arena's row only from that update to their commit: it is
the transaction's last statement.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from optuna_pandalm.store._schema import arenas, games, players

__all__ = ["count_rows", "count_stored", "read_counts"]

_COLUMNS = {"games": ("n_games", "max_game_id"), "players": ("n_players", "max_player_id")}


def _adding(count: sa.Column[int], top: sa.Column[int]) -> sa.Update:
    largest: sa.BindParameter[int] = sa.bindparam("largest")
    return (
        arenas.update()
        .where(arenas.c.id == sa.bindparam("arena"))
        .values(
            {
                count: count + sa.bindparam("added"),
                top: sa.case((top < largest, largest), else_=top),
            }
        )
    )


# Built once: the statement is compiled once per engine, not at every write.
_ADD = {kind: _adding(arenas.c[count], arenas.c[top]) for kind, (count, top) in _COLUMNS.items()}


def count_stored(connection: sa.Connection, arena_id: int, kind: str, ids: Sequence[int]) -> None:
    """Add the rows ``ids`` just stored (``kind``: ``"games"`` or ``"players"``) to the
    arena's counts, in the caller's transaction; nothing when none was stored."""
    if ids:
        connection.execute(_ADD[kind], {"arena": arena_id, "added": len(ids), "largest": max(ids)})


def read_counts(connection: sa.Connection, arena_id: int) -> tuple[int, int, int, int]:
    """(games, largest game id, players, largest player id) of the arena, from its row;
    zeros for an arena that does not exist."""
    row = connection.execute(
        sa.select(
            arenas.c.n_games, arenas.c.max_game_id, arenas.c.n_players, arenas.c.max_player_id
        ).where(arenas.c.id == arena_id)
    ).one_or_none()
    if row is None:
        return 0, 0, 0, 0
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def count_rows(connection: sa.Connection, arena_id: int) -> tuple[int, int, int, int]:
    """What :func:`read_counts` says, counted from the rows themselves: for a database of a
    schema before 4, and for ``check``, which compares the two."""
    row = connection.execute(
        sa.select(
            *(
                sa.select(aggregate).where(table.c.arena_id == arena_id).scalar_subquery()
                for table in (games, players)
                for aggregate in (sa.func.count(), sa.func.coalesce(sa.func.max(table.c.id), 0))
            )
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])
