"""Matches and games, and the reads match play and the fits make of them: game counts,
the version fits are cached on, pair records, played positions, opponents (``_audit`` has
the reads of the reports and ``check``).

Every write is one transaction of idempotent inserts (unique keys with ``ON CONFLICT DO
NOTHING``), so a write retried after a lost connection stores nothing twice; every method
rides out a database outage (see ``_outage``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from optuna_pandalm.outcomes import Side, check_outcome, side
from optuna_pandalm.store._counters import count_rows, count_stored, read_counts
from optuna_pandalm.store._database import Database
from optuna_pandalm.store._outage import database_operation
from optuna_pandalm.store._schema import (
    JUDGE_ANNOTATOR,
    games,
    generations,
    matches,
    verdicts,
)

__all__ = ["GameCounts", "GameRecord", "Games"]


@dataclasses.dataclass(frozen=True)
class GameRecord:
    """One game: who was shown first and second on which prompt, who won, and whose
    verdict it was (the study's judge, or ``human:NAME``)."""

    prompt_position: int
    first_player_id: int
    second_player_id: int
    verdict_id: int
    outcome: int  # 0 tie, 1 first-shown won, 2 second-shown won
    annotator: str = JUDGE_ANNOTATOR


@dataclasses.dataclass(frozen=True)
class GameCounts:
    """Games grouped by (first, second, outcome[, prompt][, lengths][, annotator]) with
    their count.

    Player ids are the store's. Ready for ``fit_bradley_terry(first, second, outcome,
    weights=count, clusters=prompt_position)`` once ids are mapped to 0..n-1.
    ``first_length`` / ``second_length`` are the two responses' lengths in characters;
    ``annotator`` (strings) whose verdict it was: the judge's name, or ``human:NAME``.
    ``identical`` (bool): whether the two responses were the same text (equal hashes on
    the game's verdict), a certain tie that says nothing about quality.
    """

    first: np.ndarray
    second: np.ndarray
    outcome: np.ndarray
    count: np.ndarray
    prompt_position: np.ndarray | None = None
    first_length: np.ndarray | None = None
    second_length: np.ndarray | None = None
    annotator: np.ndarray | None = None
    identical: np.ndarray | None = None


def _between(player_id: int, opponent_id: int) -> Any:
    """Games between two players, in either order: by the unordered pair (``low``,
    ``high``), which the unique key's index leads with after the arena, so a lookup reads
    the pair's rows only (an either-order filter on first and second player scanned every
    game of the arena)."""
    return sa.and_(
        games.c.low_player_id == min(player_id, opponent_id),
        games.c.high_player_id == max(player_id, opponent_id),
    )


class Games(Database):
    """The store's matches and games."""

    @database_operation(writes=True)
    def start_match(self, arena_id: int, player_a_id: int, player_b_id: int, *, kind: str) -> int:
        """Record a match between two players (``kind`` says why it was played)."""
        if player_a_id == player_b_id:
            raise ValueError("a player cannot play itself")
        with self._writer.begin() as connection:
            return int(
                connection.execute(
                    matches.insert().returning(matches.c.id),
                    {
                        "arena_id": arena_id,
                        "player_a_id": player_a_id,
                        "player_b_id": player_b_id,
                        "kind": kind,
                        "created_at": time.time(),
                    },
                ).scalar_one()
            )

    @database_operation(writes=True)
    def save_games(self, arena_id: int, match_id: int, records: Sequence[GameRecord]) -> int:
        """Store games in one transaction; a game already stored for the same two players
        (in either order) and prompt is skipped. Returns the number of new games."""
        now = time.time()
        rows = [
            {
                "arena_id": arena_id,
                "match_id": match_id,
                "prompt_position": g.prompt_position,
                "first_player_id": g.first_player_id,
                "second_player_id": g.second_player_id,
                "low_player_id": min(g.first_player_id, g.second_player_id),
                "high_player_id": max(g.first_player_id, g.second_player_id),
                "verdict_id": g.verdict_id,
                "outcome": g.outcome,
                "annotator": g.annotator,
                "created_at": now,
            }
            for g in records
        ]
        for row in rows:
            row["outcome"] = check_outcome(row["outcome"], what="game outcome")
        with self._writer.begin() as connection:
            new = self._insert_ignore_returning(connection, games, rows, [games.c.id])
            count_stored(connection, arena_id, "games", [int(r.id) for r in new])
            return len(new)

    @database_operation(writes=False)
    def game_counts(
        self,
        arena_id: int,
        *,
        by_prompt: bool = False,
        by_length: bool = False,
        by_annotator: bool = False,
        max_game_id: int | None = None,
        min_game_id: int | None = None,
    ) -> GameCounts:
        """Counts of games per (first, second, outcome[, prompt][, the two responses'
        lengths][, annotator], identical responses) in one query; ``max_game_id`` limits
        them to the games stored up to that one (to refit a past fit), ``min_game_id`` to
        those stored after that one (to add to earlier counts). Lengths are counted by the
        database (no text is fetched)."""
        keys: list[Any] = [games.c.first_player_id, games.c.second_player_id, games.c.outcome]
        source: Any = games
        if by_prompt:
            keys.append(games.c.prompt_position)
        if by_length:
            for column in ("first_player_id", "second_player_id"):
                shown = generations.alias(f"{column}_text")
                source = source.join(
                    shown,
                    sa.and_(
                        shown.c.player_id == games.c[column],
                        shown.c.position == games.c.prompt_position,
                    ),
                )
                keys.append(sa.func.length(shown.c.text))
        source = source.join(verdicts, verdicts.c.id == games.c.verdict_id)
        if by_annotator:
            keys.append(verdicts.c.judge_name)
        # Identical responses (the verdict's two hashes equal): kept out of the fit.
        same = verdicts.c.response_1_hash == verdicts.c.response_2_hash
        keys.append(sa.cast(same, sa.Integer))  # no bound parameters: PostgreSQL groups by it
        condition = games.c.arena_id == arena_id
        if max_game_id is not None:
            condition = sa.and_(condition, games.c.id <= max_game_id)
        if min_game_id is not None:
            condition = sa.and_(condition, games.c.id > min_game_id)
        query = (
            sa.select(*keys, sa.func.count().label("n"))
            .select_from(source)
            .where(condition)
            .group_by(*keys)
            .order_by(*keys)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        columns = list(zip(*rows, strict=True)) if rows else [()] * (len(keys) + 1)
        as_int = [np.asarray(c, dtype=np.int64) for c in columns[:3]]
        extra = list(columns[3:-2])
        prompt = np.asarray(extra.pop(0), dtype=np.int64) if by_prompt else None
        lengths = [np.asarray(extra.pop(0), dtype=np.int64) for _ in range(2 * by_length)]
        return GameCounts(
            first=as_int[0],
            second=as_int[1],
            outcome=as_int[2],
            count=np.asarray(columns[-1], dtype=np.float64),
            prompt_position=prompt,
            first_length=lengths[0] if lengths else None,
            second_length=lengths[1] if lengths else None,
            annotator=np.asarray(extra.pop(0), dtype=object) if by_annotator else None,
            identical=np.asarray(columns[-2], dtype=np.int64).astype(bool),
        )

    @database_operation(writes=False)
    def version(self, arena_id: int) -> tuple[int, int, int, int]:
        """(games, largest game id, players, largest player id), from the arena's row: changes
        whenever a game or a player is added (by any worker; see ``_counters``), so fits can
        be cached on it and reproduced from it."""
        with self.engine.connect() as connection:
            if not self._has_counters():
                return count_rows(connection, arena_id)  # an older schema, read as it is
            return read_counts(connection, arena_id)

    @database_operation(writes=False)
    def pair_record(self, arena_id: int, player_id: int, opponent_id: int) -> tuple[int, int, int]:
        """(wins, ties, losses) of ``player_id`` against ``opponent_id``, both orders."""
        pair = _between(player_id, opponent_id)
        query = (
            sa.select(games.c.first_player_id, games.c.outcome, sa.func.count())
            .where(games.c.arena_id == arena_id, pair)
            .group_by(games.c.first_player_id, games.c.outcome)
        )
        record = dict.fromkeys(Side, 0)
        with self.engine.connect() as connection:
            for first, outcome, count in connection.execute(query):
                record[side(outcome, shown_first=first == player_id)] += count
        return record[Side.WIN], record[Side.TIE], record[Side.LOSS]

    @database_operation(writes=False)
    def played_positions(self, arena_id: int, player_id: int, opponent_id: int) -> set[int]:
        """Prompt positions on which the judge already played the two players (either
        order); people's votes do not count."""
        pair = _between(player_id, opponent_id)
        judged = self._annotator() == JUDGE_ANNOTATOR
        with self.engine.connect() as connection:
            return set(
                connection.execute(
                    sa.select(games.c.prompt_position).where(
                        games.c.arena_id == arena_id, pair, judged
                    )
                ).scalars()
            )

    @database_operation(writes=False)
    def opponents(self, arena_id: int, player_id: int, *, kind: str | None = None) -> list[int]:
        """Players that ``player_id`` was matched against as challenger, oldest first."""
        query = sa.select(matches.c.player_b_id).where(
            matches.c.arena_id == arena_id, matches.c.player_a_id == player_id
        )
        if kind is not None:
            query = query.where(matches.c.kind == kind)
        with self.engine.connect() as connection:
            return list(dict.fromkeys(connection.execute(query.order_by(matches.c.id)).scalars()))
