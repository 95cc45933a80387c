"""SQL storage of prompt sets, players, generations, verdicts and games.

This is the only module that writes SQL. Tables are prefixed ``pandalm_`` and can live in the
same database as the Optuna study (pass the same URL) or in a separate one. Works on SQLite
(file and in-memory) and PostgreSQL.

Guarantees:

* Tables are created idempotently, also when several processes start at once (an advisory
  lock on PostgreSQL; a retry when SQLite reports a table created meanwhile).
* Inserts are idempotent under concurrent writers: unique keys with ``ON CONFLICT DO
  NOTHING``, so no verdict or game is ever stored twice, and retrying a write is safe.
* Each call commits on its own, so a crash loses at most the batch in flight.
* The counts a Bradley–Terry fit needs come from one aggregate query.

Texts are stored as given, except that NUL characters (which PostgreSQL refuses) become
U+FFFD and unencodable surrogates become ``?``; hashes are always of the original text.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any, Protocol, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

__all__ = [
    "GameCounts",
    "GameRecord",
    "PlayerRecord",
    "PromptSetMismatchError",
    "Store",
    "StoreError",
    "StoredVerdict",
    "VerdictKey",
    "text_hash",
]

_logger = logging.getLogger(__name__)
_T = TypeVar("_T")

_BATCH = 500  # rows per INSERT / IN (...) list; well under SQLite's variable limit
_ADVISORY_LOCK_KEY = 0x70616E64616C6D  # "pandalm": serialises CREATE TABLE on PostgreSQL
_JUDGE_NAME_LENGTH = 512

metadata = sa.MetaData()

prompt_sets = sa.Table(
    "pandalm_prompt_sets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("n_prompts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

prompts_table = sa.Table(
    "pandalm_prompts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("prompt_set_id", sa.ForeignKey("pandalm_prompt_sets.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("user_id", sa.Text),
    sa.Column("instruction", sa.Text, nullable=False),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("reference", sa.Text),
    sa.UniqueConstraint("prompt_set_id", "position", name="uq_pandalm_prompts_position"),
)

arenas = sa.Table(
    "pandalm_arenas",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_name", sa.String(512), nullable=False, unique=True),
    sa.Column("prompt_set_id", sa.ForeignKey("pandalm_prompt_sets.id"), nullable=False),
    # Who is shown first ("random", "swap", "fixed"): it decides how the fit treats order,
    # so every worker (and every reader) must use the same.
    sa.Column("position", sa.String(16), nullable=False, server_default="random"),
    sa.Column("created_at", sa.Float, nullable=False),
)

players = sa.Table(
    "pandalm_players",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("arena_id", sa.ForeignKey("pandalm_arenas.id"), nullable=False),
    # "trial/<number>/step/<step>" or "baseline/<name>": one unique key for both kinds,
    # since a UNIQUE constraint does not deduplicate rows whose trial number is NULL.
    sa.Column("key", sa.String(600), nullable=False),
    sa.Column("trial_number", sa.Integer),
    sa.Column("step", sa.Integer),
    sa.Column("name", sa.String(512)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("arena_id", "key", name="uq_pandalm_players_key"),
)

generations = sa.Table(
    "pandalm_generations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("player_id", sa.ForeignKey("pandalm_players.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.UniqueConstraint("player_id", "position", name="uq_pandalm_generations_position"),
)

verdicts = sa.Table(
    "pandalm_verdicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("judge_name", sa.String(_JUDGE_NAME_LENGTH), nullable=False),
    sa.Column("prompt_hash", sa.String(64), nullable=False),
    sa.Column("response_1_hash", sa.String(64), nullable=False),
    sa.Column("response_2_hash", sa.String(64), nullable=False),
    sa.Column("winner", sa.SmallInteger),  # NULL = invalid
    sa.Column("p_tie", sa.Float),
    sa.Column("p_1", sa.Float),
    sa.Column("p_2", sa.Float),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),
    sa.Column("latency_s", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint(
        "judge_name",
        "prompt_hash",
        "response_1_hash",
        "response_2_hash",
        name="uq_pandalm_verdicts_key",
    ),
)

matches = sa.Table(
    "pandalm_matches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("arena_id", sa.ForeignKey("pandalm_arenas.id"), nullable=False),
    sa.Column("player_a_id", sa.ForeignKey("pandalm_players.id"), nullable=False),
    sa.Column("player_b_id", sa.ForeignKey("pandalm_players.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

games = sa.Table(
    "pandalm_games",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("arena_id", sa.ForeignKey("pandalm_arenas.id"), nullable=False),
    sa.Column("match_id", sa.ForeignKey("pandalm_matches.id"), nullable=False),
    sa.Column("prompt_position", sa.Integer, nullable=False),
    sa.Column("first_player_id", sa.ForeignKey("pandalm_players.id"), nullable=False),
    sa.Column("second_player_id", sa.ForeignKey("pandalm_players.id"), nullable=False),
    # The pair without its order: one game per pair and prompt, whoever challenged whom, even
    # when two workers play the same pair in opposite orders at the same moment.
    sa.Column("low_player_id", sa.Integer, nullable=False),
    sa.Column("high_player_id", sa.Integer, nullable=False),
    sa.Column("verdict_id", sa.ForeignKey("pandalm_verdicts.id"), nullable=False),
    sa.Column("outcome", sa.SmallInteger, nullable=False),  # 0 tie, 1 first won, 2 second won
    sa.Column("length_diff", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint(
        "arena_id",
        "low_player_id",
        "high_player_id",
        "prompt_position",
        name="uq_pandalm_games_key",
    ),
    sa.CheckConstraint("outcome IN (0, 1, 2)", name="ck_pandalm_games_outcome"),
    sa.CheckConstraint("first_player_id <> second_player_id", name="ck_pandalm_games_self"),
)
sa.Index("ix_pandalm_games_arena", games.c.arena_id)


class StoreError(RuntimeError):
    """The storage cannot be opened or used; the message names the (password-masked) URL."""


class PromptSetMismatchError(StoreError):
    """A study already uses another prompt set than the one given."""


class _PromptLike(Protocol):
    instruction: str
    input: str
    reference: str | None
    id: str | None

    @property
    def hash(self) -> str: ...


def text_hash(text: str) -> str:
    """SHA-256 (hex) of a text, also defined for lone surrogates."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _storable(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


@dataclasses.dataclass(frozen=True)
class VerdictKey:
    """What a cached verdict is keyed by (besides the judge's name): the prompt and the two
    responses, by hash, in shown order."""

    prompt_hash: str
    response_1_hash: str
    response_2_hash: str


@dataclasses.dataclass(frozen=True)
class StoredVerdict:
    """A verdict as stored: ``winner`` 0 tie, 1, 2, or ``None`` for invalid."""

    winner: int | None
    p_tie: float | None = None
    p_1: float | None = None
    p_2: float | None = None
    reason: str = ""
    reference: str = ""
    raw: str = ""
    latency_s: float | None = None
    id: int | None = None


_TEXT_FIELDS = ("reason", "reference", "raw")


@dataclasses.dataclass(frozen=True)
class GameRecord:
    """One game: who was shown first and second on which prompt, and who won."""

    prompt_position: int
    first_player_id: int
    second_player_id: int
    verdict_id: int
    outcome: int  # 0 tie, 1 first-shown won, 2 second-shown won
    length_diff: float | None = None


@dataclasses.dataclass(frozen=True)
class PlayerRecord:
    id: int
    key: str
    trial_number: int | None
    step: int | None
    name: str | None


@dataclasses.dataclass(frozen=True)
class GameCounts:
    """Games grouped by (first, second, outcome[, prompt][, length]) with their count.

    Player ids are the store's. Ready for ``fit_bradley_terry(first, second, outcome,
    weights=count, clusters=prompt_position)`` once ids are mapped to 0..n-1.
    """

    first: np.ndarray
    second: np.ndarray
    outcome: np.ndarray
    count: np.ndarray
    prompt_position: np.ndarray | None = None
    length_diff: np.ndarray | None = None


def _mask(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        head, _, tail = url.rpartition("@")
        return f"***@{tail}" if head else url


def _engine(url: str) -> sa.Engine:
    masked = _mask(url)
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        raise StoreError(
            f"malformed storage URL {masked!r}: expected e.g. 'sqlite:///hpo.db' or "
            "'postgresql://user@host/db'"
        ) from None
    if parsed.drivername == "postgresql":
        # SQLAlchemy's default driver is psycopg2; use psycopg 3 when that is what is there.
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in str(parsed):
            kwargs["poolclass"] = sa.pool.StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs["connect_args"] = {"timeout": 60}
    elif parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ImportError) as error:
        raise StoreError(f"unsupported storage URL {masked!r}: {error}") from None
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def _between(player_id: int, opponent_id: int) -> Any:
    """Games between two players, in either order."""
    return sa.or_(
        sa.and_(games.c.first_player_id == player_id, games.c.second_player_id == opponent_id),
        sa.and_(games.c.first_player_id == opponent_id, games.c.second_player_id == player_id),
    )


_RETRIES = 3  # attempts after the first when the connection drops


def _retry_on_disconnect(method: Callable[..., _T]) -> Callable[..., _T]:
    """Run ``method`` again when the database connection drops under it.

    Safe because every write is one transaction of idempotent inserts (``ON CONFLICT DO
    NOTHING``): a transaction cut off before its commit left nothing, one whose commit landed
    before the drop is a no-op the second time (``start_match`` may then log a match twice;
    nothing counts matches). The pool replaces the dead connection.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        for attempt in range(_RETRIES + 1):
            try:
                return method(*args, **kwargs)
            except sa_exc.DBAPIError as error:
                if not error.connection_invalidated or attempt == _RETRIES:
                    raise
                _logger.warning(
                    "database connection lost in %s (%s); retry %d",
                    method.__name__,
                    type(error.orig).__name__,
                    attempt + 1,
                )
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    return wrapper


def _chunks(items: Sequence[Any], size: int = _BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Store:
    """Typed access to the ``pandalm_`` tables.

    Args:
        url: An SQLAlchemy URL, e.g. ``sqlite:///hpo.db`` (the Optuna study's URL works),
            ``sqlite://`` for memory, or ``postgresql://user@host/db`` (psycopg 3 is used
            when psycopg2 is absent). Passwords are never shown in messages.

    Raises:
        StoreError: for a malformed or unsupported URL or an unreachable database.

    Example:
        >>> store = Store("sqlite://")
        >>> from optuna_pandalm import Prompt
        >>> prompt_set = store.save_prompt_set([Prompt("Say hi.")])
        >>> arena = store.bind_study("demo", prompt_set)
        >>> store.player(arena, trial=0, step=10) == store.player(arena, trial=0, step=10)
        True
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.masked_url = _mask(url)
        self.engine = _engine(url)
        self._create_tables()

    def __repr__(self) -> str:
        return f"Store({self.masked_url!r})"

    def close(self) -> None:
        self.engine.dispose()

    # --- schema --------------------------------------------------------------------------
    def _create_tables(self) -> None:
        for attempt in range(5):
            try:
                with self.engine.begin() as connection:
                    if self.engine.dialect.name == "postgresql":
                        connection.execute(
                            sa.text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": _ADVISORY_LOCK_KEY},
                        )
                    metadata.create_all(connection, checkfirst=True)
                return
            except sa_exc.OperationalError as error:
                if "already exists" in str(error) and attempt < 4:
                    time.sleep(0.05 * (attempt + 1))  # another process created it meanwhile
                    continue
                raise StoreError(
                    f"cannot open storage {self.masked_url!r}: {error.orig}"
                ) from None
            except sa_exc.DBAPIError as error:
                raise StoreError(
                    f"cannot open storage {self.masked_url!r}: {error.orig}"
                ) from None

    # --- idempotent inserts ----------------------------------------------------------------
    def _insert_ignore(self, connection: sa.Connection, table: sa.Table, rows: list[dict]) -> int:
        """Insert rows, skipping those whose unique key exists. Returns how many were new."""
        return len(self._insert_ignore_returning(connection, table, rows, [table.c.id]))

    def _insert_ignore_returning(
        self,
        connection: sa.Connection,
        table: sa.Table,
        rows: list[dict],
        columns: Sequence[sa.Column],
    ) -> list[Any]:
        """Insert rows, skipping those whose unique key exists; returns ``columns`` of the
        new rows (as attributes)."""
        if not rows:
            return []
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - other databases: one row at a time
            inserted = []
            for row in rows:
                try:
                    with connection.begin_nested():
                        result = connection.execute(table.insert(), row)
                    inserted.append(SimpleNamespace(**row, id=result.inserted_primary_key[0]))
                except sa_exc.IntegrityError:
                    pass
            return inserted
        new: list[Any] = []
        statement = insert(table).on_conflict_do_nothing().returning(*columns)
        for chunk in _chunks(rows):
            # RETURNING yields exactly the new rows; executemany's rowcount is unreliable.
            new += connection.execute(statement, list(chunk)).all()
        return new

    # --- prompt sets and arenas -------------------------------------------------------------
    @_retry_on_disconnect
    def save_prompt_set(self, prompts: Sequence[_PromptLike]) -> int:
        """Store a prompt set (once per content hash) and return its id."""
        from optuna_pandalm.prompts import prompt_set_hash

        digest = prompt_set_hash(prompts)  # type: ignore[arg-type]
        now = time.time()
        with self.engine.begin() as connection:
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
                        "instruction": _storable(prompt.instruction),
                        "input": _storable(prompt.input),
                        "reference": None
                        if prompt.reference is None
                        else _storable(prompt.reference),
                    }
                    for position, prompt in enumerate(prompts)
                ],
            )
        return int(set_id)

    def prompt_set_hash(self, prompt_set_id: int) -> str:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(prompt_sets.c.hash).where(prompt_sets.c.id == prompt_set_id)
            ).scalar_one()

    @_retry_on_disconnect
    def bind_study(self, study_name: str, prompt_set_id: int, *, position: str = "random") -> int:
        """Return the arena id of a study, binding it to the prompt set on first use.

        Raises:
            PromptSetMismatchError: the study already uses a different prompt set, or a
                different position mode.
        """
        with self.engine.begin() as connection:
            self._insert_ignore(
                connection,
                arenas,
                [
                    {
                        "study_name": study_name,
                        "prompt_set_id": prompt_set_id,
                        "position": position,
                        "created_at": time.time(),
                    }
                ],
            )
            row = connection.execute(
                sa.select(
                    arenas.c.id,
                    arenas.c.prompt_set_id,
                    arenas.c.position,
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
        if row.position != position:
            raise PromptSetMismatchError(
                f"study {study_name!r} in {self.masked_url!r} uses position={row.position!r}, "
                f"not {position!r}; every worker must show responses the same way"
            )
        return int(row.id)

    def arena_settings(self, study_name: str) -> dict[str, Any] | None:
        """``{"id", "prompt_set_id", "position"}`` of a study's arena, or ``None``."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(arenas.c.id, arenas.c.prompt_set_id, arenas.c.position).where(
                    arenas.c.study_name == study_name
                )
            ).one_or_none()
        return None if row is None else dict(row._mapping)

    def arena_id(self, study_name: str) -> int | None:
        """The arena id of a study, or ``None`` if it has none."""
        with self.engine.connect() as connection:
            value = connection.execute(
                sa.select(arenas.c.id).where(arenas.c.study_name == study_name)
            ).scalar_one_or_none()
        return None if value is None else int(value)

    # --- players and generations ------------------------------------------------------------
    @_retry_on_disconnect
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
        with self.engine.begin() as connection:
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
                {"player_id": player_id, "position": i, "hash": h, "text": _storable(t)}
                for i, (t, h) in enumerate(zip(texts, hashes, strict=True))
            ],
        )
        return hashes

    @_retry_on_disconnect
    def save_generations(self, player_id: int, texts: Sequence[str]) -> list[str]:
        """Store a player's responses, one per prompt position; returns their hashes.

        Idempotent: positions already stored are kept as they were.
        """
        with self.engine.begin() as connection:
            return self._insert_generations(connection, player_id, texts)

    def generations(self, player_id: int) -> list[str]:
        """A player's stored responses in prompt order."""
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    sa.select(generations.c.text)
                    .where(generations.c.player_id == player_id)
                    .order_by(generations.c.position)
                ).scalars()
            )

    # --- verdict cache ----------------------------------------------------------------------
    @_retry_on_disconnect
    def find_verdicts(
        self, judge_name: str, keys: Iterable[VerdictKey]
    ) -> dict[VerdictKey, StoredVerdict]:
        """Cached verdicts of a judge for the given keys (missing keys are absent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[VerdictKey, StoredVerdict] = {}
        with self.engine.connect() as connection:
            for chunk in _chunks(wanted):
                # One IN list per column walks the unique index (a row-value IN list is a
                # full scan on SQLite); the few extra rows are dropped below.
                rows = connection.execute(
                    sa.select(verdicts).where(
                        verdicts.c.judge_name == judge_name,
                        verdicts.c.prompt_hash.in_({k.prompt_hash for k in chunk}),
                        verdicts.c.response_1_hash.in_({k.response_1_hash for k in chunk}),
                        verdicts.c.response_2_hash.in_({k.response_2_hash for k in chunk}),
                    )
                ).all()
                asked = set(chunk)
                for row in rows:
                    key = VerdictKey(row.prompt_hash, row.response_1_hash, row.response_2_hash)
                    if key not in asked:
                        continue
                    found[key] = StoredVerdict(
                        winner=row.winner,
                        p_tie=row.p_tie,
                        p_1=row.p_1,
                        p_2=row.p_2,
                        reason=row.reason,
                        reference=row.reference,
                        raw=row.raw,
                        latency_s=row.latency_s,
                        id=row.id,
                    )
        return found

    @_retry_on_disconnect
    def save_verdicts(
        self, judge_name: str, items: Sequence[tuple[VerdictKey, StoredVerdict]]
    ) -> dict[VerdictKey, StoredVerdict]:
        """Store verdicts (the first one stored for a key wins) and return, for each key, the
        stored verdict with its id."""
        if len(judge_name) > _JUDGE_NAME_LENGTH:
            raise ValueError(f"judge name longer than {_JUDGE_NAME_LENGTH} characters")
        now = time.time()
        rows = [
            {
                "judge_name": judge_name,
                "prompt_hash": key.prompt_hash,
                "response_1_hash": key.response_1_hash,
                "response_2_hash": key.response_2_hash,
                "winner": verdict.winner,
                "p_tie": verdict.p_tie,
                "p_1": verdict.p_1,
                "p_2": verdict.p_2,
                "reason": _storable(verdict.reason),
                "reference": _storable(verdict.reference),
                "raw": _storable(verdict.raw),
                "latency_s": verdict.latency_s,
                "created_at": now,
            }
            for key, verdict in items
        ]
        key_columns = [
            verdicts.c.prompt_hash,
            verdicts.c.response_1_hash,
            verdicts.c.response_2_hash,
        ]
        with self.engine.begin() as connection:
            new = self._insert_ignore_returning(
                connection, verdicts, rows, [verdicts.c.id, *key_columns]
            )
        ids = {VerdictKey(r.prompt_hash, r.response_1_hash, r.response_2_hash): r.id for r in new}
        stored: dict[VerdictKey, StoredVerdict] = {}
        for (key, verdict), row in zip(items, rows, strict=True):
            if key in ids and key not in stored:  # the first of repeated keys is the stored one
                texts = {field: row[field] for field in _TEXT_FIELDS}
                stored[key] = dataclasses.replace(verdict, **texts, id=ids[key])
        # Keys another worker stored first: theirs is the verdict.
        others = [key for key, _ in items if key not in stored]
        if others:
            stored.update(self.find_verdicts(judge_name, others))
        return stored

    # --- matches and games --------------------------------------------------------------------
    @_retry_on_disconnect
    def start_match(self, arena_id: int, player_a_id: int, player_b_id: int, *, kind: str) -> int:
        """Record a match between two players (``kind`` says why it was played)."""
        if player_a_id == player_b_id:
            raise ValueError("a player cannot play itself")
        with self.engine.begin() as connection:
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

    @_retry_on_disconnect
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
                "length_diff": g.length_diff,
                "created_at": now,
            }
            for g in records
        ]
        for g in records:
            if g.outcome not in (0, 1, 2):
                raise ValueError(f"game outcome must be 0, 1 or 2, got {g.outcome!r}")
        with self.engine.begin() as connection:
            return self._insert_ignore(connection, games, rows)

    @_retry_on_disconnect
    def game_counts(
        self,
        arena_id: int,
        *,
        by_prompt: bool = False,
        with_length: bool = False,
        max_game_id: int | None = None,
        min_game_id: int | None = None,
    ) -> GameCounts:
        """Counts of games per (first, second, outcome[, prompt][, length]) in one query;
        ``max_game_id`` limits them to the games stored up to that one (to refit a past fit),
        ``min_game_id`` to those stored after that one (to add to earlier counts)."""
        keys = [games.c.first_player_id, games.c.second_player_id, games.c.outcome]
        if by_prompt:
            keys.append(games.c.prompt_position)
        if with_length:
            keys.append(games.c.length_diff)
        condition = games.c.arena_id == arena_id
        if max_game_id is not None:
            condition = sa.and_(condition, games.c.id <= max_game_id)
        if min_game_id is not None:
            condition = sa.and_(condition, games.c.id > min_game_id)
        query = (
            sa.select(*keys, sa.func.count().label("n"))
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
        length = (
            np.asarray([np.nan if v is None else v for v in extra.pop(0)], dtype=np.float64)
            if with_length
            else None
        )
        return GameCounts(
            first=as_int[0],
            second=as_int[1],
            outcome=as_int[2],
            count=np.asarray(columns[-1], dtype=np.float64),
            prompt_position=prompt,
            length_diff=length,
        )

    @_retry_on_disconnect
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

    @_retry_on_disconnect
    def games_version(self, arena_id: int) -> tuple[int, int]:
        """(number of games, largest game id) of an arena (:meth:`version` adds players)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(games.c.id), 0)).where(
                    games.c.arena_id == arena_id
                )
            ).one()
        return int(row[0]), int(row[1])

    def pair_record(self, arena_id: int, player_id: int, opponent_id: int) -> tuple[int, int, int]:
        """(wins, ties, losses) of ``player_id`` against ``opponent_id``, both orders."""
        pair = _between(player_id, opponent_id)
        query = (
            sa.select(games.c.first_player_id, games.c.outcome, sa.func.count())
            .where(games.c.arena_id == arena_id, pair)
            .group_by(games.c.first_player_id, games.c.outcome)
        )
        wins = ties = losses = 0
        with self.engine.connect() as connection:
            for first, outcome, count in connection.execute(query):
                if outcome == 0:
                    ties += count
                elif (outcome == 1) == (first == player_id):
                    wins += count
                else:
                    losses += count
        return wins, ties, losses

    @_retry_on_disconnect
    def played_positions(self, arena_id: int, player_id: int, opponent_id: int) -> set[int]:
        """Prompt positions on which the two players already have a game (either order)."""
        pair = _between(player_id, opponent_id)
        with self.engine.connect() as connection:
            return set(
                connection.execute(
                    sa.select(games.c.prompt_position).where(games.c.arena_id == arena_id, pair)
                ).scalars()
            )

    def opponents(self, arena_id: int, player_id: int, *, kind: str | None = None) -> list[int]:
        """Players that ``player_id`` was matched against as challenger, oldest first."""
        query = sa.select(matches.c.player_b_id).where(
            matches.c.arena_id == arena_id, matches.c.player_a_id == player_id
        )
        if kind is not None:
            query = query.where(matches.c.kind == kind)
        with self.engine.connect() as connection:
            return list(dict.fromkeys(connection.execute(query.order_by(matches.c.id)).scalars()))

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

    def integrity(self, arena_id: int, n_prompts: int) -> dict[str, list[str]]:
        """Problems in the stored data of one arena, by kind (empty lists when sound)."""
        problems: dict[str, list[str]] = {}
        game_key = [games.c.low_player_id, games.c.high_player_id, games.c.prompt_position]
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
                f"players {a} vs {b} on prompt {p}: {n} copies" for a, b, p, n in duplicates
            ]
            repeated = connection.execute(
                sa.select(*verdict_key, sa.func.count())
                .group_by(*verdict_key)
                .having(sa.func.count() > 1)
            ).all()
            problems["duplicate verdicts"] = [
                f"{r[0]} {r[1][:12]}: {r[-1]} copies" for r in repeated
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
        return problems
