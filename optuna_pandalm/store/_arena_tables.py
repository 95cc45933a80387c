"""The per-arena tables: prompt sets, arenas (one per study), players, generations, matches
and games, and the queries match play and the fits make of them (``_audit`` has those of the
reports and ``check``).

Every write is one transaction of idempotent inserts (unique keys with ``ON CONFLICT DO
NOTHING``), so a write retried after a lost connection stores nothing twice; every method
rides out a database outage (see ``_outage``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa

from optuna_pandalm.errors import PromptSetMismatchError
from optuna_pandalm.outcomes import Side, check_outcome, side
from optuna_pandalm.store._database import Database
from optuna_pandalm.store._outage import database_operation
from optuna_pandalm.store._schema import (
    JUDGE_ANNOTATOR,
    arenas,
    games,
    generations,
    matches,
    players,
    prompt_sets,
    prompts_table,
    verdicts,
)
from optuna_pandalm.store._texts import storable, text_hash

__all__ = [
    "SCORING_DEFAULTS",
    "ArenaTables",
    "GameCounts",
    "GameRecord",
    "PlayerRecord",
    "refuse_other_settings",
]

SCORING_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"position": "random", "length_control": False, "robust_errors": False}
)
"""The settings stored with a study's arena that change its scores, with a new study's
values: who is shown first (it decides whether the fit estimates an order effect), the
length term, and per-prompt clustered errors. Every worker and reader of a study uses the
stored ones."""

# Why a setting must be the study's, for the refusal.
_SAME = {
    "position": "every worker must show responses the same way",
    "length_control": "every worker and reader must fit the study's scores the same way",
    "robust_errors": "every worker and reader must fit the study's intervals the same way",
}


def refuse_other_settings(
    study_name: str, masked_url: str, stored: Mapping[str, Any], given: Mapping[str, Any]
) -> None:
    """Refuse a scoring setting given explicitly that differs from the study's stored one.

    ``None`` given means "the study's"; ``None`` stored means "not recorded" (an arena
    migrated from schema 2), which accepts any value.

    Raises:
        PromptSetMismatchError: naming the study, the storage and both values.

    Example:
        >>> refuse_other_settings("s", "sqlite://", {"position": "swap"}, {"position": None})
        >>> refuse_other_settings("s", "sqlite://", {"length_control": True},
        ...                       {"length_control": False})
        Traceback (most recent call last):
        ...
        optuna_pandalm.errors.PromptSetMismatchError: study 's' in 'sqlite://' uses \
length_control=True, not False; every worker and reader must fit the study's scores the same \
way (leave it unset to use the study's, or use another study name)
    """
    for name, value in given.items():
        if value is None or stored.get(name) is None or stored[name] == value:
            continue
        raise PromptSetMismatchError(
            f"study {study_name!r} in {masked_url!r} uses {name}={stored[name]!r}, "
            f"not {value!r}; {_SAME[name]} (leave it unset to use the study's, or use "
            "another study name)"
        )


class _PromptLike(Protocol):
    @property
    def instruction(self) -> str: ...
    @property
    def input(self) -> str: ...
    @property
    def reference(self) -> str | None: ...
    @property
    def id(self) -> str | None: ...
    @property
    def hash(self) -> str: ...


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
class PlayerRecord:
    id: int
    key: str
    trial_number: int | None
    step: int | None
    name: str | None


@dataclasses.dataclass(frozen=True)
class GameCounts:
    """Games grouped by (first, second, outcome[, prompt][, lengths][, annotator]) with
    their count.

    Player ids are the store's. Ready for ``fit_bradley_terry(first, second, outcome,
    weights=count, clusters=prompt_position)`` once ids are mapped to 0..n-1.
    ``first_length`` / ``second_length`` are the two responses' lengths in characters;
    ``annotator`` (strings) whose verdict it was: the judge's name, or ``human:NAME``.
    """

    first: np.ndarray
    second: np.ndarray
    outcome: np.ndarray
    count: np.ndarray
    prompt_position: np.ndarray | None = None
    first_length: np.ndarray | None = None
    second_length: np.ndarray | None = None
    annotator: np.ndarray | None = None


def _between(player_id: int, opponent_id: int) -> Any:
    """Games between two players, in either order."""
    return sa.or_(
        sa.and_(games.c.first_player_id == player_id, games.c.second_player_id == opponent_id),
        sa.and_(games.c.first_player_id == opponent_id, games.c.second_player_id == player_id),
    )


class ArenaTables(Database):
    """The store's per-arena tables."""

    # --- prompt sets and arenas -------------------------------------------------------------
    @database_operation(writes=True)
    def save_prompt_set(self, prompts: Sequence[_PromptLike]) -> int:
        """Store a prompt set (once per content hash) and return its id."""
        from optuna_pandalm.prompts import prompt_set_hash

        digest = prompt_set_hash(prompts)  # type: ignore[arg-type]
        now = time.time()
        with self._writer.begin() as connection:
            self._insert_ignore(
                connection,
                prompt_sets,
                [{"hash": digest, "n_prompts": len(prompts), "created_at": now}],
            )
            set_id = connection.execute(
                sa.select(prompt_sets.c.id).where(prompt_sets.c.hash == digest)
            ).scalar_one()
            self._insert_ignore(
                connection,
                prompts_table,
                [
                    {
                        "prompt_set_id": set_id,
                        "position": position,
                        "hash": prompt.hash,
                        "user_id": prompt.id,
                        "instruction": storable(prompt.instruction),
                        "input": storable(prompt.input),
                        "reference": None
                        if prompt.reference is None
                        else storable(prompt.reference),
                    }
                    for position, prompt in enumerate(prompts)
                ],
            )
        return int(set_id)

    @database_operation(writes=False)
    def prompt_set_hash(self, prompt_set_id: int) -> str:
        """The content hash of a stored prompt set."""
        with self.engine.connect() as connection:
            return str(
                connection.execute(
                    sa.select(prompt_sets.c.hash).where(prompt_sets.c.id == prompt_set_id)
                ).scalar_one()
            )

    @database_operation(writes=True)
    def bind_study(
        self,
        study_name: str,
        prompt_set_id: int,
        *,
        position: str | None = None,
        length_control: bool | None = None,
        robust_errors: bool | None = None,
    ) -> int:
        """Return the arena id of a study, binding it to the prompt set and the scoring
        settings on first use (``None``: the study's setting, or
        :data:`SCORING_DEFAULTS`' for a new study). A setting an arena migrated from schema
        2 has not recorded is recorded when given here.

        Raises:
            PromptSetMismatchError: the study already uses a different prompt set, or a
                setting given differs from the stored one.
        """
        given = {
            "position": position,
            "length_control": length_control,
            "robust_errors": robust_errors,
        }
        new = {k: SCORING_DEFAULTS[k] if v is None else v for k, v in given.items()}
        with self._writer.begin() as connection:
            self._insert_ignore(
                connection,
                arenas,
                [
                    {
                        "study_name": study_name,
                        "prompt_set_id": prompt_set_id,
                        **new,
                        "created_at": time.time(),
                    }
                ],
            )
            for name in ("length_control", "robust_errors"):
                if given[name] is not None:  # record it where schema 2 did not
                    connection.execute(
                        arenas.update()
                        .where(arenas.c.study_name == study_name, arenas.c[name].is_(None))
                        .values({name: given[name]})
                    )
            row = connection.execute(
                sa.select(
                    arenas.c.id,
                    arenas.c.prompt_set_id,
                    arenas.c.position,
                    arenas.c.length_control,
                    arenas.c.robust_errors,
                    prompt_sets.c.hash,
                    prompt_sets.c.n_prompts,
                )
                .join(prompt_sets, prompt_sets.c.id == arenas.c.prompt_set_id)
                .where(arenas.c.study_name == study_name)
            ).one()
        if row.prompt_set_id != prompt_set_id:
            raise PromptSetMismatchError(
                f"study {study_name!r} in {self.masked_url!r} already uses prompt set "
                f"{row.hash[:12]} ({row.n_prompts} prompts), "
                f"not {self.prompt_set_hash(prompt_set_id)[:12]}; "
                "use the same prompts or another study name"
            )
        refuse_other_settings(study_name, self.masked_url, dict(row._mapping), given)
        return int(row.id)

    @database_operation(writes=False)
    def arena_settings(self, study_name: str) -> dict[str, Any] | None:
        """``{"id", "prompt_set_id", "position", "length_control", "robust_errors"}`` of a
        study's arena, or ``None``. A scoring setting is ``None`` when not recorded (an
        arena migrated from schema 2): read it as :data:`SCORING_DEFAULTS`' value."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(
                    arenas.c.id, arenas.c.prompt_set_id, arenas.c.position, *self._arena_scoring()
                ).where(arenas.c.study_name == study_name)
            ).one_or_none()
        return None if row is None else dict(row._mapping)

    @database_operation(writes=False)
    def arena_id(self, study_name: str) -> int | None:
        """The arena id of a study, or ``None`` if it has none."""
        with self.engine.connect() as connection:
            value = connection.execute(
                sa.select(arenas.c.id).where(arenas.c.study_name == study_name)
            ).scalar_one_or_none()
        return None if value is None else int(value)

    # --- players and generations ------------------------------------------------------------
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
            key = f"trial/{int(trial)}/step/{int(step)}"  # type: ignore[arg-type]
        with self._writer.begin() as connection:
            self._insert_ignore(
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

    # --- matches and games --------------------------------------------------------------------
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
            return self._insert_ignore(connection, games, rows)

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
        lengths][, annotator]) in one query; ``max_game_id`` limits them to the games
        stored up to that one (to refit a past fit), ``min_game_id`` to those stored after
        that one (to add to earlier counts). Lengths are counted by the database (no text
        is fetched)."""
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
        if by_annotator:
            source = source.join(verdicts, verdicts.c.id == games.c.verdict_id)
            keys.append(verdicts.c.judge_name)
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
        extra = list(columns[3:-1])
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
        )

    @database_operation(writes=False)
    def version(self, arena_id: int) -> tuple[int, int, int, int]:
        """(games, largest game id, players, largest player id) in one query: changes whenever
        a game or a player is added, so fits can be cached on it and reproduced from it."""
        player_stats = (
            sa.select(
                sa.func.count().label("n"),
                sa.func.coalesce(sa.func.max(players.c.id), 0).label("top"),
            )
            .where(players.c.arena_id == arena_id)
            .subquery()
        )
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(
                    sa.select(sa.func.count())
                    .where(games.c.arena_id == arena_id)
                    .scalar_subquery(),
                    sa.select(sa.func.coalesce(sa.func.max(games.c.id), 0))
                    .where(games.c.arena_id == arena_id)
                    .scalar_subquery(),
                    player_stats.c.n,
                    player_stats.c.top,
                )
            ).one()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

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

    @database_operation(writes=False)
    def study_prompts(self, study_name: str) -> list[dict[str, Any]]:
        """The prompts a study is bound to, in order (empty when the study has no arena)."""
        query = (
            sa.select(prompts_table)
            .join(arenas, arenas.c.prompt_set_id == prompts_table.c.prompt_set_id)
            .where(arenas.c.study_name == study_name)
            .order_by(prompts_table.c.position)
        )
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
