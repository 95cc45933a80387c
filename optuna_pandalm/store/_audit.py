"""What people read about an arena's stored games: the judge's reasons, example games,
verdict counts, and the integrity problems ``check`` reports. Read-only queries."""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from optuna_pandalm.outcomes import mirrored
from optuna_pandalm.store._counters import count_rows, read_counts
from optuna_pandalm.store._database import Database
from optuna_pandalm.store._outage import database_operation
from optuna_pandalm.store._schema import (
    JUDGE_ANNOTATOR,
    games,
    generations,
    players,
    verdicts,
)

__all__ = ["Audit", "VoteRecord"]


@dataclasses.dataclass(frozen=True)
class VoteRecord:
    """A person's vote (a game of annotator ``human:NAME``) with the judge's game on the
    same pair and prompt, when there is one, from the same side: ``outcome`` and
    ``judge_outcome`` are 0 tie, 1 ``first_player_id`` won, 2 ``second_player_id`` won."""

    game_id: int
    prompt_position: int
    first_player_id: int
    second_player_id: int
    outcome: int
    annotator: str
    judge_outcome: int | None


class Audit(Database):
    """Read-only queries for reports and ``check`` (mixed into :class:`Store`)."""

    @database_operation(writes=False)
    def reasons(self, arena_id: int, player_id: int, *, limit: int = 3) -> list[tuple[int, str]]:
        """(prompt position, judge's reason) of a few of a player's games with a reason."""
        involved = sa.or_(
            games.c.first_player_id == player_id, games.c.second_player_id == player_id
        )
        query = (
            sa.select(games.c.prompt_position, verdicts.c.reason)
            .join(verdicts, verdicts.c.id == games.c.verdict_id)
            .where(games.c.arena_id == arena_id, involved, verdicts.c.reason != "")
            .order_by(games.c.id)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [(int(p), str(r)) for p, r in connection.execute(query)]

    @database_operation(writes=False)
    def votes(self, arena_id: int) -> list[VoteRecord]:
        """Every person's vote in the arena, oldest first, with the judge's game on the same
        pair and prompt (see :class:`VoteRecord`)."""
        if self._annotator() is not games.c.annotator:
            return []  # a database before schema 2 has no votes
        judged = games.alias("judged")
        same = sa.and_(
            judged.c.arena_id == games.c.arena_id,
            judged.c.low_player_id == games.c.low_player_id,
            judged.c.high_player_id == games.c.high_player_id,
            judged.c.prompt_position == games.c.prompt_position,
            judged.c.annotator == JUDGE_ANNOTATOR,
        )
        query = (
            sa.select(
                games.c.id,
                games.c.prompt_position,
                games.c.first_player_id,
                games.c.second_player_id,
                games.c.outcome,
                games.c.annotator,
                judged.c.first_player_id.label("judge_first"),
                judged.c.outcome.label("judge_outcome"),
            )
            .outerjoin(judged, same)
            .where(games.c.arena_id == arena_id, games.c.annotator != JUDGE_ANNOTATOR)
            .order_by(games.c.id)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            VoteRecord(
                r.id,
                r.prompt_position,
                r.first_player_id,
                r.second_player_id,
                r.outcome,
                r.annotator,
                _seen_from(r.judge_outcome, r.judge_first == r.first_player_id),
            )
            for r in rows
        ]

    @database_operation(writes=False)
    def verdict_counts(self, arena_id: int) -> dict[str, int]:
        """Verdicts behind the arena's games and judged texts: valid, invalid, games."""
        generation_hashes = (
            sa.select(generations.c.hash)
            .join(players, players.c.id == generations.c.player_id)
            .where(players.c.arena_id == arena_id)
        )
        with self.engine.connect() as connection:
            n_games = connection.execute(
                sa.select(sa.func.count()).where(games.c.arena_id == arena_id)
            ).scalar_one()
            invalid = connection.execute(
                sa.select(sa.func.count()).where(
                    verdicts.c.winner.is_(None),
                    verdicts.c.response_1_hash.in_(generation_hashes),
                )
            ).scalar_one()
            used = connection.execute(
                sa.select(sa.func.count(sa.distinct(games.c.verdict_id))).where(
                    games.c.arena_id == arena_id
                )
            ).scalar_one()
        return {
            "games": int(n_games),
            "verdicts_in_games": int(used),
            "invalid_verdicts": int(invalid),
        }

    @database_operation(writes=False)
    def judge_names(self, arena_id: int) -> list[str]:
        """The names of the judges whose verdicts are behind the arena's judge games
        (people's votes not included), sorted: what a report opened read-only names."""
        query = (
            sa.select(verdicts.c.judge_name)
            .distinct()
            .join(games, games.c.verdict_id == verdicts.c.id)
            .where(games.c.arena_id == arena_id, self._annotator() == JUDGE_ANNOTATOR)
            .order_by(verdicts.c.judge_name)
        )
        with self.engine.connect() as connection:
            return [str(name) for (name,) in connection.execute(query)]

    @database_operation(writes=False)
    def game_details(
        self, arena_id: int, player_id: int, *, limit: int = 3
    ) -> list[dict[str, Any]]:
        """A few of a player's games with both responses and the judge's reason and reference."""
        first_text = generations.alias("first_text")
        second_text = generations.alias("second_text")
        query = (
            sa.select(
                games.c.prompt_position,
                games.c.first_player_id,
                games.c.second_player_id,
                games.c.outcome,
                verdicts.c.reason,
                verdicts.c.reference,
                first_text.c.text.label("first_text"),
                second_text.c.text.label("second_text"),
            )
            .join(verdicts, verdicts.c.id == games.c.verdict_id)
            .join(
                first_text,
                sa.and_(
                    first_text.c.player_id == games.c.first_player_id,
                    first_text.c.position == games.c.prompt_position,
                ),
            )
            .join(
                second_text,
                sa.and_(
                    second_text.c.player_id == games.c.second_player_id,
                    second_text.c.position == games.c.prompt_position,
                ),
            )
            .where(
                games.c.arena_id == arena_id,
                sa.or_(
                    games.c.first_player_id == player_id, games.c.second_player_id == player_id
                ),
            )
            .order_by(games.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    @database_operation(writes=False)
    def integrity(self, arena_id: int, n_prompts: int) -> dict[str, list[str]]:
        """Problems in the stored data of one arena, by kind (empty lists when sound)."""
        problems: dict[str, list[str]] = {}
        game_key = [
            games.c.low_player_id,
            games.c.high_player_id,
            games.c.prompt_position,
            self._annotator(),
        ]
        verdict_key = [
            verdicts.c.judge_name,
            verdicts.c.prompt_hash,
            verdicts.c.response_1_hash,
            verdicts.c.response_2_hash,
        ]
        arena_players = sa.select(players.c.id).where(players.c.arena_id == arena_id)
        with self.engine.connect() as connection:
            duplicates = connection.execute(
                sa.select(*game_key, sa.func.count())
                .where(games.c.arena_id == arena_id)
                .group_by(*game_key)
                .having(sa.func.count() > 1)
            ).all()
            problems["duplicate games"] = [
                f"players {r[0]} vs {r[1]} on prompt {r[2]} by {r[3]}: {r[4]} copies"
                for r in duplicates
            ]
            repeated = connection.execute(
                sa.select(*verdict_key, sa.func.count())
                .group_by(*verdict_key)
                .having(sa.func.count() > 1)
            ).all()
            problems["duplicate verdicts"] = [
                f"{r[0]} {r[1][:12]}: {r[-1]} copies" for r in repeated
            ]
            # One verdict may back games of other players whose texts are the same (a cache
            # hit), never two games of one pair on two prompts: equal prompts counted twice.
            shared = connection.execute(
                sa.select(
                    games.c.verdict_id,
                    games.c.low_player_id,
                    games.c.high_player_id,
                    sa.func.min(games.c.prompt_position),
                    sa.func.max(games.c.prompt_position),
                )
                .where(games.c.arena_id == arena_id)
                .group_by(games.c.verdict_id, games.c.low_player_id, games.c.high_player_id)
                .having(sa.func.count(sa.distinct(games.c.prompt_position)) > 1)
            ).all()
            problems["verdicts shared by games"] = [
                f"verdict {r[0]} decides players {r[1]} vs {r[2]} on prompts {r[3]} and {r[4]} "
                "(duplicate prompts in the set)"
                for r in shared
            ]
            # Verdicts the arena's games use, and cached ones about its texts: a winner other
            # than 0, 1, 2 or NULL (e.g. numpy's int64 stored by SQLite as an 8-byte blob)
            # would be read back as something else.
            arena_texts = (
                sa.select(generations.c.hash)
                .join(players, players.c.id == generations.c.player_id)
                .where(players.c.arena_id == arena_id)
            )
            used = sa.select(games.c.verdict_id).where(games.c.arena_id == arena_id)
            raw_winner = sa.type_coerce(verdicts.c.winner, sa.types.NullType())
            bad = connection.execute(
                sa.select(verdicts.c.id, verdicts.c.judge_name, raw_winner)
                .where(
                    verdicts.c.winner.is_not(None),
                    verdicts.c.winner.not_in([0, 1, 2]),
                    sa.or_(
                        verdicts.c.id.in_(used),
                        verdicts.c.response_1_hash.in_(arena_texts),
                        verdicts.c.response_2_hash.in_(arena_texts),
                    ),
                )
                .order_by(verdicts.c.id)
            ).all()
            problems["verdicts with a winner outside 0, 1, 2, NULL"] = [
                f"verdict {i} of {judge}: winner {winner!r}" for i, judge, winner in bad
            ]

            def game_ids(query: Any) -> list[str]:
                return [f"game {g}" for g in connection.execute(query).scalars()]

            in_arena = games.c.arena_id == arena_id
            problems["games whose verdict is missing"] = game_ids(
                sa.select(games.c.id)
                .outerjoin(verdicts, verdicts.c.id == games.c.verdict_id)
                .where(in_arena, verdicts.c.id.is_(None))
            )
            problems["games counting an invalid verdict"] = game_ids(
                sa.select(games.c.id)
                .join(verdicts, verdicts.c.id == games.c.verdict_id)
                .where(in_arena, verdicts.c.winner.is_(None))
            )
            problems["games of players from elsewhere"] = game_ids(
                sa.select(games.c.id).where(
                    in_arena,
                    sa.or_(
                        games.c.first_player_id.not_in(arena_players),
                        games.c.second_player_id.not_in(arena_players),
                    ),
                )
            )
            incomplete = connection.execute(
                sa.select(players.c.key, sa.func.count(generations.c.id))
                .outerjoin(generations, generations.c.player_id == players.c.id)
                .where(players.c.arena_id == arena_id)
                .group_by(players.c.id, players.c.key)
                .having(sa.func.count(generations.c.id) != n_prompts)
            ).all()
            problems["players without a full set of generations"] = [
                f"{key}: {n} of {n_prompts}" for key, n in incomplete
            ]
            # What Store.version reads (a worker's cached fit waits for it to change): counts
            # off from the rows mean a writer that did not count, e.g. an older worker left
            # running through the upgrade to schema 4.
            problems["game and player counters that disagree with the rows"] = (
                _counter_problems(connection, arena_id) if self._has_counters() else []
            )
        return problems


def _counter_problems(connection: sa.Connection, arena_id: int) -> list[str]:
    names = ("games", "largest game id", "players", "largest player id")
    stored, rows = read_counts(connection, arena_id), count_rows(connection, arena_id)
    return [
        f"{name}: {kept} counted, {real} in the rows"
        for name, kept, real in zip(names, stored, rows, strict=True)
        if kept != real
    ]


def _seen_from(outcome: int | None, same_order: bool) -> int | None:
    """A game's outcome (0 tie, 1 first won, 2 second won) with the order swapped or not."""
    if outcome is None or same_order:
        return outcome
    return mirrored(outcome)
