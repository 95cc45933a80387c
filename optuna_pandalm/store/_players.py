"""Players (a checkpoint of a trial, or a named baseline) and their generations: one
response per prompt position of the arena's prompt set.

Every write is one transaction of idempotent inserts (unique keys with ``ON CONFLICT DO
NOTHING``), so a write retried after a lost connection stores nothing twice; every method
rides out a database outage (see ``_outage``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from optuna_pandalm.store._counters import count_stored
from optuna_pandalm.store._database import Database
from optuna_pandalm.store._outage import database_operation
from optuna_pandalm.store._schema import generations, players
from optuna_pandalm.store._texts import storable, text_hash

__all__ = ["PlayerRecord", "Players"]


@dataclasses.dataclass(frozen=True)
class PlayerRecord:
    id: int
    key: str
    trial_number: int | None
    step: int | None
    name: str | None


# The players.step column is sa.Integer: 32 bits on PostgreSQL, 64 on SQLite.
_STEP_BITS = {"postgresql": 32}


def _check_step(step: int, dialect: str) -> None:
    """Refuse a step the column cannot hold, before the database sees it (PostgreSQL
    would fail the transaction, SQLite raise ``OverflowError``)."""
    limit = 2 ** (_STEP_BITS.get(dialect, 64) - 1)
    if not -limit <= step < limit:
        raise ValueError(
            f"step {step} is out of range: a step on {dialect} must be in [{-limit}, {limit - 1}]"
        )


class Players(Database):
    """The store's players and their generations."""

    @database_operation(writes=True)
    def player(
        self,
        arena_id: int,
        *,
        trial: int | None = None,
        step: int | None = None,
        name: str | None = None,
        generations: Sequence[str] | None = None,
    ) -> int:
        """Id of a player, created on first use: a checkpoint ``(trial, step)`` or a named
        baseline (``name``). ``generations`` are stored in the same transaction, so no other
        process ever sees the player without its responses."""
        if (name is None) == (trial is None):
            raise ValueError("a player is either a checkpoint (trial, step) or a baseline (name)")
        if name is not None:
            key = f"baseline/{name}"
        else:
            if step is None:
                raise ValueError("a checkpoint player needs a step")
            _check_step(step, self._writer.dialect.name)
            key = f"trial/{int(trial)}/step/{int(step)}"  # type: ignore[arg-type]
        with self._writer.begin() as connection:
            new = self._insert_ignore_returning(
                connection,
                players,
                [
                    {
                        "arena_id": arena_id,
                        "key": key,
                        "trial_number": trial,
                        "step": step,
                        "name": name,
                        "created_at": time.time(),
                    }
                ],
                [players.c.id],
            )
            player_id = int(
                connection.execute(
                    sa.select(players.c.id).where(
                        players.c.arena_id == arena_id, players.c.key == key
                    )
                ).scalar_one()
            )
            if generations is not None:
                self._insert_generations(connection, player_id, generations)
            count_stored(connection, arena_id, "players", [int(r.id) for r in new])
        return player_id

    @database_operation(writes=False)
    def players(
        self,
        arena_id: int,
        *,
        trial_number: int | None = None,
        ids: Iterable[int] | None = None,
        min_id: int | None = None,
        max_id: int | None = None,
    ) -> list[PlayerRecord]:
        """Players of an arena in creation order: all, one trial's, those with ``ids``, or
        those with ``min_id < id <= max_id``."""
        query = (
            sa.select(
                players.c.id,
                players.c.key,
                players.c.trial_number,
                players.c.step,
                players.c.name,
            )
            .where(players.c.arena_id == arena_id)
            .order_by(players.c.id)
        )
        if trial_number is not None:
            query = query.where(players.c.trial_number == trial_number)
        if ids is not None:
            query = query.where(players.c.id.in_(list(ids)))
        if min_id is not None:
            query = query.where(players.c.id > min_id)
        if max_id is not None:
            query = query.where(players.c.id <= max_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [PlayerRecord(r.id, r.key, r.trial_number, r.step, r.name) for r in rows]

    def _insert_generations(
        self, connection: sa.Connection, player_id: int, texts: Sequence[str]
    ) -> list[str]:
        hashes = [text_hash(text) for text in texts]
        self._insert_ignore(
            connection,
            generations,
            [
                {"player_id": player_id, "position": i, "hash": h, "text": storable(t)}
                for i, (t, h) in enumerate(zip(texts, hashes, strict=True))
            ],
        )
        return hashes

    @database_operation(writes=True)
    def save_generations(self, player_id: int, texts: Sequence[str]) -> list[str]:
        """Store a player's responses, one per prompt position; returns their hashes.

        Idempotent: positions already stored are kept as they were.
        """
        with self._writer.begin() as connection:
            return self._insert_generations(connection, player_id, texts)

    def _by_position(self, player_id: int, column: sa.Column[str]) -> list[str]:
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    sa.select(column)
                    .where(generations.c.player_id == player_id)
                    .order_by(generations.c.position)
                ).scalars()
            )

    @database_operation(writes=False)
    def generation_hashes(self, player_id: int) -> list[str]:
        """Hashes of a player's stored responses in prompt order (of the texts as given, so
        they can be compared with :func:`text_hash` of new texts)."""
        return self._by_position(player_id, generations.c.hash)

    @database_operation(writes=False)
    def generations(self, player_id: int) -> list[str]:
        """A player's stored responses in prompt order."""
        return self._by_position(player_id, generations.c.text)
