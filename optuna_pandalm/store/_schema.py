"""The ``pandalm_`` tables, their schema version, and migrations between versions.

Like Optuna's RDB storage, the database records the version of its schema (table
``pandalm_version``, one row). A database written before versioning has no such table and is
schema 0. Versions:

* **0** (written before the schema was versioned): the tables below, plus a never-used
  ``pandalm_games.length_diff`` column; no version table.
* **1**: ``length_diff`` dropped; ``pandalm_version`` added; ``pandalm_verdicts.winner`` is
  checked to be 0, 1, 2 or NULL (new databases, and migrated PostgreSQL ones; SQLite cannot
  add a CHECK to an existing table without rebuilding it, so a migrated SQLite database
  relies on the store's own validation and on ``integrity``).
* **2**: ``pandalm_games.annotator`` (``"judge"`` for the judge's games, ``"human:NAME"``
  for a person's votes), part of the games' unique key, so a pair already judged on a
  prompt can also get one vote per person there.
* **3**: ``pandalm_arenas.length_control`` and ``pandalm_arenas.robust_errors``: how the
  study's scores are fitted, stored so that every worker and reader fits alike (as
  ``position`` already was). Arenas migrated from schema 2 get NULL, "not recorded": they
  are read as off (False), what every reader that passed no setting used, and the first
  worker that passes a setting explicitly records it.
* **4**: ``pandalm_arenas.n_games``, ``max_game_id``, ``n_players`` and ``max_player_id``:
  the arena's games and players as counted by the transactions that store them, so that a
  worker learns whether anything was stored since its last fit from one row, not by
  counting every game (``Store.version``). Migrated arenas get them counted from their rows.
  Like Optuna's ``optuna storage upgrade``, upgrade with the study's workers stopped: a
  worker of an older version does not count what it stores.

Creating and migrating happen under one lock, so processes that open an empty or old database
at the same instant do it once: :func:`schema_lock` (a PostgreSQL advisory lock, or on a SQLite
file an exclusive ``flock`` beside the database) around a write transaction (``BEGIN
IMMEDIATE`` on SQLite). Optuna's own schema is created under the same lock.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import sqlalchemy as sa

from optuna_pandalm.errors import StoreError
from optuna_pandalm.store._engine import WRITE, sqlite_path

__all__ = [
    "HUMAN_PREFIX",
    "JUDGE_ANNOTATOR",
    "SCHEMA_VERSION",
    "arenas",
    "check_lock_file",
    "games",
    "generations",
    "matches",
    "metadata",
    "players",
    "prompt_sets",
    "prompts_table",
    "read_schema_version",
    "schema_lock",
    "upgrade_schema",
    "verdicts",
    "version_table",
]

_logger = logging.getLogger("optuna_pandalm.store")

SCHEMA_VERSION = 4
"""The schema version this code writes and reads (see the module docstring)."""

# PostgreSQL advisory lock keys: the lock held by schema_lock, and the
# transaction-level one that optuna-pandalm before schema 1 took to create its tables (taken
# too, so an old worker and a new one never create or change tables at the same time).
SCHEMA_LOCK_KEY = 0x70616E64616C6E
LEGACY_LOCK_KEY = 0x70616E64616C6D  # "pandalm"
JUDGE_NAME_LENGTH = 512
JUDGE_ANNOTATOR = "judge"
"""The annotator of the games the study's judge played (people are ``human:NAME``)."""
HUMAN_PREFIX = "human:"
"""What a person's annotator name starts with (``human:NAME``); no judge may be named so.
People's votes define what better means: the fit measures the judges against them."""

metadata = sa.MetaData()

version_table = sa.Table(
    "pandalm_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("library_version", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.CheckConstraint("id = 1", name="ck_pandalm_version_one_row"),
)

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
    # How the fit scores (schema 3), for the same reason; NULL: not recorded (an arena
    # migrated from schema 2), read as off.
    sa.Column("length_control", sa.Boolean),
    sa.Column("robust_errors", sa.Boolean),
    # The arena's games and players, counted in the transactions that store them (schema 4;
    # see store/_counters.py).
    *(
        sa.Column(name, sa.Integer, nullable=False, server_default="0")
        for name in ("n_games", "max_game_id", "n_players", "max_player_id")
    ),
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

_WINNER_CHECK = "winner IN (0, 1, 2) OR winner IS NULL"

verdicts = sa.Table(
    "pandalm_verdicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("judge_name", sa.String(JUDGE_NAME_LENGTH), nullable=False),
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
    sa.CheckConstraint(_WINNER_CHECK, name="ck_pandalm_verdicts_winner"),
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
    sa.Column("created_at", sa.Float, nullable=False),
    # Whose verdict: JUDGE_ANNOTATOR, or "human:NAME" for a person's vote (schema 2).
    sa.Column(
        "annotator",
        sa.String(JUDGE_NAME_LENGTH),
        nullable=False,
        server_default=JUDGE_ANNOTATOR,
    ),
    sa.UniqueConstraint(
        "arena_id",
        "low_player_id",
        "high_player_id",
        "prompt_position",
        "annotator",
        name="uq_pandalm_games_key",
    ),
    sa.CheckConstraint("outcome IN (0, 1, 2)", name="ck_pandalm_games_outcome"),
    sa.CheckConstraint("first_player_id <> second_player_id", name="ck_pandalm_games_self"),
)
sa.Index("ix_pandalm_games_arena", games.c.arena_id)

_DATA_TABLES = {t.name for t in metadata.sorted_tables} - {version_table.name}


def read_schema_version(connection: sa.Connection) -> int | None:
    """The schema version of the database: ``None`` when it has no ``pandalm_`` table at all,
    0 when it has tables but no version table (written before versioning)."""
    names = set(sa.inspect(connection).get_table_names())
    if version_table.name in names:
        value = connection.execute(sa.select(version_table.c.schema_version)).scalar()
        if value is not None:
            return int(value)
    return 0 if names & _DATA_TABLES else None


@contextlib.contextmanager
def schema_lock(engine: sa.Engine) -> Iterator[sa.Connection | None]:
    """Hold the lock that serialises schema changes between processes.

    PostgreSQL: a transaction-level advisory lock, held by a transaction that stays open
    until the block ends; the block gets its connection, to do its work in that very
    transaction (committed at the end, rolled back on an exception), so a worker changing
    the schema needs one connection, not two (the lock also covers work done on other
    connections, e.g. Optuna's). A SQLite file (the block gets ``None``): an exclusive ``flock`` on
    ``<database>.pandalm-lock``; the lock file is left in place, because removing it while
    another process waits on it would let a third lock a new file at the same time. A
    SQLite memory database belongs to one process and needs no lock.
    """
    if engine.dialect.name == "postgresql":
        # A transaction-level lock, held by a transaction kept open around the work: a
        # pooler in transaction mode (PgBouncer) keeps one server connection for a
        # transaction, but may run a session lock's unlock on another server connection,
        # leaving the lock held for ever. It conflicts with the session lock that workers
        # before this change take on the same key, so old and new workers still exclude
        # each other.
        #
        # Waiting is polling with pg_try_advisory_xact_lock, each try its own short
        # transaction: a waiter blocked inside a transaction would hold one of PgBouncer's
        # few server connections, and with more waiters than the pool the holder could not
        # get the second one its work needs (Optuna's schema, on Optuna's engine) until
        # PgBouncer's query_wait_timeout failed everyone (32 workers, pool 20).
        with _xact_lock(engine, SCHEMA_LOCK_KEY) as connection:
            yield connection
        return
    path = sqlite_path(engine.url) if engine.dialect.name == "sqlite" else None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: BEGIN IMMEDIATE alone guards our tables
        fcntl = None  # type: ignore[assignment]
    if path is None or fcntl is None:
        yield None
        return
    with _open_lock_file(path) as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield None
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _open_lock_file(path: str) -> IO[str]:
    """``<database>.pandalm-lock`` opened for appending (created when missing)."""
    try:
        return open(f"{path}.pandalm-lock", "a")
    except OSError as error:  # a read-only folder: one clear error, not a raw OSError
        raise StoreError(
            f"cannot create the lock file {error.filename!r} beside the SQLite database "
            f"({error.strerror}): its folder must be writable"
        ) from None


def check_lock_file(engine: sa.Engine) -> None:
    """Fail now, with :func:`schema_lock`'s clear error, where a writing store on a SQLite
    file could not take the lock later (its folder is not writable), even when the schema
    is current and no lock is needed to open it; nothing for other databases."""
    path = sqlite_path(engine.url) if engine.dialect.name == "sqlite" else None
    if path is not None:
        _open_lock_file(path).close()


_LOCK_POLL_S = (0.02, 0.5)  # first and longest pause between tries of a held lock


@contextlib.contextmanager
def _xact_lock(engine: sa.Engine, key: int) -> Iterator[sa.Connection]:
    """Hold the transaction-level advisory lock ``key`` in a transaction kept open around
    the work, and yield its connection; while another process holds it, try again after a
    growing pause, outside any transaction (see :func:`schema_lock`)."""
    pause = _LOCK_POLL_S[0]
    while True:
        with engine.begin() as connection:
            if _try_xact_lock(connection, key):
                yield connection
                return
        time.sleep(pause)
        pause = min(2 * pause, _LOCK_POLL_S[1])


def _try_xact_lock(connection: sa.Connection, key: int) -> bool:
    """``pg_try_advisory_xact_lock(key)``, never as a prepared statement with psycopg 3: it
    prepares a query run 5 times on one connection, and PgBouncer in transaction mode
    cannot carry a prepared statement to the next server connection (the lock engine may
    not have ``?prepare_threshold=none``)."""
    query = "SELECT pg_try_advisory_xact_lock(%s)"
    if connection.dialect.driver == "psycopg":
        cursor: Any = connection.connection.cursor()
        try:
            cursor.execute(query, (key,), prepare=False)
            return bool(cursor.fetchone()[0])
        finally:
            cursor.close()
    return bool(connection.exec_driver_sql(query, (key,)).scalar())


def _library_version() -> str:
    try:
        from importlib.metadata import version

        return version("optuna-pandalm")
    except Exception:
        return "unknown"


def _set_version(connection: sa.Connection, version: int) -> None:
    row = {
        "schema_version": version,
        "library_version": _library_version(),
        "updated_at": time.time(),
    }
    updated = connection.execute(version_table.update().where(version_table.c.id == 1), row)
    if updated.rowcount == 0:
        connection.execute(version_table.insert(), {"id": 1, **row})


def _migrate_0_to_1(connection: sa.Connection) -> None:
    # Nothing ever wrote length_diff; SQLite >= 3.35 and PostgreSQL drop it in place.
    columns = {c["name"] for c in sa.inspect(connection).get_columns(games.name)}
    if "length_diff" in columns:
        connection.execute(sa.text("ALTER TABLE pandalm_games DROP COLUMN length_diff"))
    if connection.dialect.name == "postgresql":
        # NOT VALID: new rows are checked; rows already there (which integrity() reports)
        # cannot make the migration fail.
        connection.execute(
            sa.text(
                "ALTER TABLE pandalm_verdicts ADD CONSTRAINT ck_pandalm_verdicts_winner "
                f"CHECK ({_WINNER_CHECK}) NOT VALID"
            )
        )
    version_table.create(connection, checkfirst=True)


def _migrate_1_to_2(connection: sa.Connection) -> None:
    # The annotator joins the games' unique key. PostgreSQL changes the constraint in
    # place; SQLite cannot drop a table's UNIQUE constraint, so the table is rebuilt.
    if connection.dialect.name == "postgresql":
        for statement in (
            "ALTER TABLE pandalm_games ADD COLUMN annotator VARCHAR(512) NOT NULL "
            f"DEFAULT '{JUDGE_ANNOTATOR}'",
            "ALTER TABLE pandalm_games DROP CONSTRAINT uq_pandalm_games_key",
            "ALTER TABLE pandalm_games ADD CONSTRAINT uq_pandalm_games_key UNIQUE "
            "(arena_id, low_player_id, high_player_id, prompt_position, annotator)",
        ):
            connection.execute(sa.text(statement))
        return
    old = [c["name"] for c in sa.inspect(connection).get_columns(games.name)]
    connection.execute(sa.text("ALTER TABLE pandalm_games RENAME TO pandalm_games_v1"))
    connection.execute(sa.text("DROP INDEX IF EXISTS ix_pandalm_games_arena"))
    games.create(connection)
    columns = ", ".join(c for c in old if c in games.c)
    connection.execute(
        sa.text(f"INSERT INTO pandalm_games ({columns}) SELECT {columns} FROM pandalm_games_v1")
    )
    connection.execute(sa.text("DROP TABLE pandalm_games_v1"))


def _migrate_2_to_3(connection: sa.Connection) -> None:
    # NULL, not False: schema 2 did not record how a study was scored, so the first worker
    # that says so explicitly records it (see Arenas.bind_study).
    for column in ("length_control", "robust_errors"):
        connection.execute(sa.text(f"ALTER TABLE pandalm_arenas ADD COLUMN {column} BOOLEAN"))


def _migrate_3_to_4(connection: sa.Connection) -> None:
    # The counters start from what is stored (one pass over the games, once).
    for column in ("n_games", "max_game_id", "n_players", "max_player_id"):
        connection.execute(
            sa.text(f"ALTER TABLE pandalm_arenas ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
        )
    for table, count, top in (
        ("pandalm_games", "n_games", "max_game_id"),
        ("pandalm_players", "n_players", "max_player_id"),
    ):
        rows = f"FROM {table} WHERE {table}.arena_id = pandalm_arenas.id"
        connection.execute(
            sa.text(
                f"UPDATE pandalm_arenas SET {count} = (SELECT count(*) {rows}), "
                f"{top} = (SELECT coalesce(max(id), 0) {rows})"
            )
        )


_MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {
    0: _migrate_0_to_1,
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
}


def newer_schema_error(found: int, masked_url: str) -> StoreError:
    return StoreError(
        f"{masked_url!r} was written by a newer optuna-pandalm (schema {found}, this one knows "
        f"{SCHEMA_VERSION}); upgrade optuna-pandalm"
    )


def upgrade_schema(engine: sa.Engine, masked_url: str) -> tuple[int | None, int]:
    """Create the tables of an empty database, or migrate an old one, keeping every row.

    Runs under :func:`schema_lock` in one write transaction, so concurrent callers do it
    once and a failure leaves the database as it was. Returns (version found, ``None`` for
    an empty database; version now).

    Raises:
        StoreError: the database was written by a newer optuna-pandalm.
    """
    with (
        schema_lock(engine) as locked,
        # PostgreSQL: the lock's own transaction; SQLite: a write transaction under the flock.
        contextlib.nullcontext(locked)
        if locked is not None
        else engine.execution_options(**{WRITE: True}).begin() as connection,
    ):
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEGACY_LOCK_KEY}
            )
        found = read_schema_version(connection)
        if found is not None and found > SCHEMA_VERSION:
            raise newer_schema_error(found, masked_url)
        version = SCHEMA_VERSION if found is None else found
        while version < SCHEMA_VERSION:
            _MIGRATIONS[version](connection)
            version += 1
        metadata.create_all(connection, checkfirst=True)
        if found != SCHEMA_VERSION:
            _set_version(connection, SCHEMA_VERSION)
    if found is not None and found < SCHEMA_VERSION:
        _logger.info(
            "migrated the optuna-pandalm schema of %s from version %d to %d",
            masked_url,
            found,
            SCHEMA_VERSION,
        )
    return found, SCHEMA_VERSION
