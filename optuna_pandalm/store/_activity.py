"""When each player last had something stored: its creation, the matches it started as
challenger and their games. ``check`` reads it to find a worker whose judging stalled."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from optuna_pandalm.store._database import Database, chunks
from optuna_pandalm.store._outage import database_operation
from optuna_pandalm.store._schema import games, matches, players

__all__ = ["Activity"]


class Activity(Database):
    """The store's view of recent writes, per player."""

    @database_operation(writes=False)
    def last_stored(self, arena_id: int, player_ids: Iterable[int]) -> dict[int, float]:
        """Per player id, the latest ``created_at`` (seconds since the epoch, the writing
        worker's clock) of the player itself, the matches it started as challenger and
        their games; players absent from the arena are absent.

        Example:
            >>> from optuna_pandalm.store import Store
            >>> from optuna_pandalm import Prompt
            >>> store = Store("sqlite://")
            >>> arena = store.bind_study("s", store.save_prompt_set([Prompt("Say hi.")]))
            >>> a = store.player(arena, trial=0, step=1, generations=["hi"])
            >>> b = store.player(arena, trial=1, step=1, generations=["hello"])
            >>> match = store.start_match(arena, b, a, kind="incumbent")
            >>> last = store.last_stored(arena, [a, b])
            >>> last[b] >= last[a]
            True
        """
        ids = sorted(set(player_ids))
        latest: dict[int, float] = {}
        with self.engine.connect() as connection:
            for part in chunks(ids):
                queries = (
                    sa.select(players.c.id, players.c.created_at).where(
                        players.c.arena_id == arena_id, players.c.id.in_(part)
                    ),
                    sa.select(matches.c.player_a_id, sa.func.max(matches.c.created_at))
                    .where(matches.c.arena_id == arena_id, matches.c.player_a_id.in_(part))
                    .group_by(matches.c.player_a_id),
                    sa.select(matches.c.player_a_id, sa.func.max(games.c.created_at))
                    .join(matches, matches.c.id == games.c.match_id)
                    .where(matches.c.arena_id == arena_id, matches.c.player_a_id.in_(part))
                    .group_by(matches.c.player_a_id),
                )
                for query in queries:
                    for player_id, when in connection.execute(query):
                        if when is not None:
                            latest[int(player_id)] = max(
                                float(when), latest.get(int(player_id), 0.0)
                            )
        return latest
