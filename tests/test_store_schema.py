"""Specification of the store's schema version, migrations, read-only mode and URL masking."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from optuna_pandalm import Arena, Prompt, Store, StoreError
from optuna_pandalm.commands.cli import main
from optuna_pandalm.store import (
    SCHEMA_VERSION,
    GameRecord,
    PromptSetMismatchError,
    StoredVerdict,
    VerdictKey,
    mask_url,
)
from optuna_pandalm.testing import SimulatedJudge
from tests.conftest import _postgres_database

DATA = Path(__file__).parent / "data"
V0_SQLITE = DATA / "schema_v0.sqlite"  # written by Store at d149ad1 (before versioning)
V0_POSTGRESQL_DDL = DATA / "schema_v0_postgresql.sql"
# Written by Arena and Store at 925ebde (schema 2): study "v2-study", 4 checkpoints whose
# lengths differ, judged by SimulatedJudge(length_bias=1.5) on 12 prompts, 48 games.
V2_SQLITE = DATA / "schema_v2.sqlite"
V2_POSTGRESQL_DDL = DATA / "schema_v2_postgresql.sql"
# Its scores as 925ebde computed them: Arena.load(url, "v2-study"), and the same with
# length_control=True (which that version did not store).
V2_SCORES = {
    "trial/0/step/1": 0.0,
    "trial/1/step/1": 0.168726,
    "trial/2/step/1": 0.919074,
    "trial/3/step/1": -1.092762,
}
V2_LENGTH_CONTROLLED_SCORES = {
    "trial/0/step/1": 0.0,
    "trial/1/step/1": 0.053062,
    "trial/2/step/1": -0.279058,
    "trial/3/step/1": -1.692855,
}
# The tables of schema 0 in an order that respects their foreign keys.
TABLES = [
    "pandalm_prompt_sets",
    "pandalm_prompts",
    "pandalm_arenas",
    "pandalm_players",
    "pandalm_generations",
    "pandalm_verdicts",
    "pandalm_matches",
    "pandalm_games",
]


def _fixture_rows(path: Path, tables: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of a SQLite fixture's tables, by table, without the column schema 1
    dropped."""
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return {
            table: [
                {k: row[k] for k in row.keys() if k != "length_diff"}  # noqa: SIM118
                for row in connection.execute(f"SELECT * FROM {table} ORDER BY id")
            ]
            for table in tables
        }


def _v0_rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of the version-0 fixture, by table, without the dropped column."""
    return _fixture_rows(V0_SQLITE, TABLES)


# Columns later schemas added: not in the fixtures' rows.
_ADDED = (
    "length_diff",
    "annotator",
    "length_control",
    "robust_errors",
    "n_games",
    "max_game_id",
    "n_players",
    "max_player_id",
)


def _rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the ``pandalm_`` data tables, by table (without the columns schema 1
    dropped and later schemas added)."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = {
            table: [
                {k: v for k, v in row._mapping.items() if k not in _ADDED}
                for row in connection.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))
            ]
            for table in TABLES
        }
    engine.dispose()
    return rows


def _table(url: str, table: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(f"SELECT * FROM {table}")))
    finally:
        engine.dispose()


def _vote_once_on_a_played_game(store: Store, arena: int, url: str) -> None:
    """A person's vote on the first game's pair and prompt (schema 2's point: the judge
    played it already) is stored once, however often it is saved."""
    game = _table(url, "pandalm_games")[0]
    vote = GameRecord(
        game.prompt_position,
        game.first_player_id,
        game.second_player_id,
        game.verdict_id,
        game.outcome,
        annotator="human:ann",
    )
    assert store.save_games(arena, game.match_id, [vote]) == 1
    assert store.save_games(arena, game.match_id, [vote]) == 0


def _columns(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


@pytest.fixture
def v0_sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "v0.db"
    shutil.copy(V0_SQLITE, path)
    return f"sqlite:///{path}"


def _postgresql_copy(ddl: Path, fixture: dict[str, list[dict[str, Any]]]) -> Any:
    """A PostgreSQL database with an old schema (its DDL) and a SQLite fixture's rows."""
    for url in _postgres_database():
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql(ddl.read_text())
            for table, rows in fixture.items():
                if rows:
                    columns = ", ".join(rows[0])
                    values = ", ".join(f":{c}" for c in rows[0])
                    connection.execute(
                        sa.text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), rows
                    )
                connection.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
        engine.dispose()
        yield url


@pytest.fixture
def v0_postgresql_url() -> Any:
    """A PostgreSQL database with schema 0 and the fixture's rows, as main wrote them."""
    yield from _postgresql_copy(V0_POSTGRESQL_DDL, _v0_rows())


@pytest.fixture
def v2_sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "v2.db"
    shutil.copy(V2_SQLITE, path)
    return f"sqlite:///{path}"


@pytest.fixture
def v2_postgresql_url() -> Any:
    """A PostgreSQL database with schema 2 and the v2 fixture's rows."""
    yield from _postgresql_copy(
        V2_POSTGRESQL_DDL, _fixture_rows(V2_SQLITE, [*TABLES, "pandalm_version"])
    )


def _scores(url: str) -> dict[str, float]:
    """The v2 fixture's scores as every reader sees them (``Arena.load``), rounded."""
    arena = Arena.load(url, "v2-study")
    scores = {p.key: round(s, 6) for p, s in arena.scores().items()}
    arena.store.close()
    return scores


def _assert_the_fixture_reads_back(store: Store) -> None:
    """What the arena reads of the fixture's study is intact through the Store API."""
    arena = store.arena_id("v0-study")
    assert arena is not None
    assert [p.key for p in store.players(arena)] == [
        "trial/0/step/10",
        "trial/1/step/20",
        "baseline/alpaca-default",
    ]
    b = store.players(arena)[1].id
    assert store.generations(b) == ["five", "blue é", "hello \U0001f600"]
    counts = store.game_counts(arena)
    assert int(counts.count.sum()) == 6
    assert store.version(arena)[0] == 6
    assert not any(store.integrity(arena, 3).values())
    rows = _v0_rows()["pandalm_verdicts"]
    keys = [VerdictKey(r["prompt_hash"], r["response_1_hash"], r["response_2_hash"]) for r in rows]
    found = store.find_verdicts("pandalm-7b", keys)
    assert [found[k].winner for k in keys] == [r["winner"] for r in rows]
    assert sum(r["winner"] is None for r in rows) == 1  # the invalid verdict is there too


def test_the_fixture_is_a_version_0_database():
    rows = _v0_rows()
    with sqlite3.connect(V0_SQLITE) as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        games_columns = {r[1] for r in connection.execute("PRAGMA table_info(pandalm_games)")}
    assert "pandalm_version" not in tables and "length_diff" in games_columns
    assert {t: len(r) for t, r in rows.items()} == {
        "pandalm_prompt_sets": 1,
        "pandalm_prompts": 3,
        "pandalm_arenas": 1,
        "pandalm_players": 3,
        "pandalm_generations": 9,
        "pandalm_verdicts": 7,
        "pandalm_matches": 2,
        "pandalm_games": 6,
    }


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_opening_a_version_0_database_migrates_it_keeping_every_row(backend, request):
    url = request.getfixturevalue(f"v0_{backend}_url")
    before = _v0_rows()
    store = Store(url)
    assert store.schema_version() == SCHEMA_VERSION == 4
    assert _rows(url) == before  # every prompt, player, generation, verdict and game
    assert "length_diff" not in _columns(url, "pandalm_games")
    assert {r.annotator for r in _table(url, "pandalm_games")} == {"judge"}
    _assert_the_fixture_reads_back(store)
    # Still writable after the migration (sequences, constraints).
    arena = store.arena_id("v0-study")
    assert arena is not None
    assert store.player(arena, trial=5, step=1, generations=["a", "b", "c"]) > 3
    # Schema 2's point: a person's vote on a pair and prompt the judge already played.
    _vote_once_on_a_played_game(store, arena, url)
    assert [v.annotator for v in store.votes(arena)] == ["human:ann"]
    store.close()


def test_upgrade_reports_the_versions_and_is_idempotent(v0_sqlite_url):
    store = Store(v0_sqlite_url)
    assert store.upgrade() == (0, 4)
    assert store.upgrade() == (4, 4)
    assert Store(v0_sqlite_url).upgrade() == (4, 4)


def test_a_database_of_a_newer_schema_is_refused_with_what_to_do(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Store(url).close()
    with sqlite3.connect(tmp_path / "new.db") as connection:
        connection.execute("UPDATE pandalm_version SET schema_version = 99")
    message = r"newer optuna-pandalm \(schema 99, this one knows 4\); upgrade optuna-pandalm"
    with pytest.raises(StoreError, match=message):
        Store(url)
    with pytest.raises(StoreError, match=message):
        Store(url, read_only=True)


def test_the_v2_fixture_is_a_version_2_database_of_a_study_a_length_term_changes():
    with sqlite3.connect(V2_SQLITE) as connection:
        version = connection.execute("SELECT schema_version FROM pandalm_version").fetchall()
        columns = {r[1] for r in connection.execute("PRAGMA table_info(pandalm_arenas)")}
    assert version == [(2,)] and "length_control" not in columns
    assert max(V2_SCORES, key=V2_SCORES.__getitem__) == "trial/2/step/1"  # the verbose one
    assert max(V2_LENGTH_CONTROLLED_SCORES, key=V2_LENGTH_CONTROLLED_SCORES.__getitem__) == (
        "trial/1/step/1"
    )


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_upgrade_migrates_a_version_2_database_whose_arena_scores_as_before(
    backend, request, capsys
):
    url = request.getfixturevalue(f"v2_{backend}_url")
    before = _rows(url)
    assert main(["upgrade", "--storage", url]) == 0
    assert "schema 2 -> 4, every row kept" in capsys.readouterr().out
    assert _rows(url) == before
    # Schema 2 did not record how the study was scored: "not recorded", read as off.
    store = Store(url, read_only=True)
    settings = store.arena_settings("v2-study")
    assert settings is not None
    assert (settings["length_control"], settings["robust_errors"]) == (None, None)
    store.close()
    arena = Arena.load(url, "v2-study")
    assert (arena.position, arena.length_control, arena.robust_errors) == ("random", False, False)
    arena.store.close()
    assert _scores(url) == V2_SCORES


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_upgrade_counts_each_arenas_stored_games_and_players(backend, request):
    # Schema 4 keeps the counts Store.version reads; a migrated arena starts from its rows,
    # and what is stored after the upgrade adds to them.
    url = request.getfixturevalue(f"v2_{backend}_url")
    store = Store(url)
    arena = store.arena_id("v2-study")
    assert arena is not None

    def counted() -> tuple[int, int, int, int]:
        rows = {t: _table(url, t) for t in ("pandalm_games", "pandalm_players")}
        ours = {t: [r for r in rows[t] if r.arena_id == arena] for t in rows}
        games, players = ours["pandalm_games"], ours["pandalm_players"]
        return len(games), max(r.id for r in games), len(players), max(r.id for r in players)

    assert store.version(arena) == counted() and counted()[0] > 0
    store.player(arena, trial=99, step=1, generations=[""] * len(_table(url, "pandalm_prompts")))
    _vote_once_on_a_played_game(store, arena, url)  # stored once, counted once
    assert store.version(arena) == counted()
    store.close()


def test_a_migrated_arena_records_the_first_scoring_setting_a_worker_gives(v2_sqlite_url):
    prompts = Arena.load(v2_sqlite_url, "v2-study").prompts
    Arena(v2_sqlite_url, "v2-study", SimulatedJudge(), prompts, length_control=True)
    store = Store(v2_sqlite_url, read_only=True)
    settings = store.arena_settings("v2-study")
    assert settings is not None and settings["length_control"] is True
    assert settings["robust_errors"] is None  # not given: still not recorded
    store.close()
    assert _scores(v2_sqlite_url) == V2_LENGTH_CONTROLLED_SCORES
    with pytest.raises(PromptSetMismatchError, match="uses length_control=True, not False"):
        Arena(v2_sqlite_url, "v2-study", SimulatedJudge(), prompts, length_control=False)


def test_read_only_reads_a_version_2_database_without_migrating_it(v2_sqlite_url):
    assert _scores(v2_sqlite_url) == V2_SCORES
    store = Store(v2_sqlite_url, read_only=True)
    settings = store.arena_settings("v2-study")
    assert settings is not None and settings["length_control"] is None
    assert store.schema_version() == 2
    assert "length_control" not in _columns(v2_sqlite_url, "pandalm_arenas")
    store.close()


def test_read_only_on_a_missing_sqlite_file_creates_nothing(tmp_path):
    path = tmp_path / "typo" / "hpo.db"
    with pytest.raises(StoreError, match=r"no such database file: .*typo/hpo\.db"):
        Store(f"sqlite:///{path}", read_only=True)
    assert not path.parent.exists()
    with pytest.raises(StoreError, match="no such database file"):
        Store(f"sqlite:///{tmp_path / 'hpo.db'}", read_only=True)
    assert list(tmp_path.iterdir()) == []


def test_read_only_on_a_database_without_our_tables_creates_nothing(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE studies (id INTEGER)")
    size = path.stat().st_size
    with pytest.raises(StoreError, match=r"no optuna-pandalm tables in 'sqlite:///.*other\.db'"):
        Store(f"sqlite:///{path}", read_only=True)
    with sqlite3.connect(path) as connection:
        assert [r[0] for r in connection.execute("SELECT name FROM sqlite_master")] == ["studies"]
    assert path.stat().st_size == size and sorted(tmp_path.iterdir()) == [path]


@pytest.mark.postgres
def test_read_only_on_an_empty_postgresql_database_creates_nothing():
    for url in _postgres_database():
        with pytest.raises(StoreError, match="no optuna-pandalm tables in"):
            Store(url, read_only=True)
        engine = sa.create_engine(url)
        assert sa.inspect(engine).get_table_names() == []
        engine.dispose()


def test_read_only_reads_a_version_0_database_without_migrating_it(v0_sqlite_url):
    store = Store(v0_sqlite_url, read_only=True)
    _assert_the_fixture_reads_back(store)
    assert store.schema_version() == 0
    assert "length_diff" in _columns(v0_sqlite_url, "pandalm_games")


def _writes(store: Store, arena: int) -> list[tuple[str, Any]]:
    key = VerdictKey("p", "a", "b")
    return [
        ("save_prompt_set", lambda: store.save_prompt_set([Prompt("New prompt.")])),
        ("bind_study", lambda: store.bind_study("new", 1)),
        ("player", lambda: store.player(arena, trial=9, step=9)),
        ("save_generations", lambda: store.save_generations(1, ["x"])),
        ("save_verdicts", lambda: store.save_verdicts("j", [(key, StoredVerdict(1))])),
        ("start_match", lambda: store.start_match(arena, 1, 2, kind="x")),
        ("save_games", lambda: store.save_games(arena, 1, [GameRecord(0, 1, 2, 1, 1)])),
        ("upgrade", store.upgrade),
        ("prepare_optuna_schema", store.prepare_optuna_schema),
    ]


def test_every_write_on_a_read_only_store_is_refused_and_changes_nothing(v0_sqlite_url):
    store = Store(v0_sqlite_url, read_only=True)
    arena = store.arena_id("v0-study")
    assert arena is not None
    for name, write in _writes(store, arena):
        with pytest.raises(StoreError, match=rf"{name} refused: .* is read-only"):
            write()
    assert _rows(v0_sqlite_url) == _v0_rows()
    assert store.schema_version() == 0


@pytest.mark.parametrize(
    ("url", "secret_free"),
    [
        ("postgresql://alice:s3cret@db/hpo", "postgresql://alice:***@db/hpo"),
        ("postgresql://alice@db/hpo?password=s3cret", "postgresql://alice@db/hpo?password=***"),
        ("postgresql://db/hpo?sslpassword=s3cret", "postgresql://db/hpo?sslpassword=***"),
        ("postgresql://db/hpo?API_KEY=s3cret&x=1", "postgresql://db/hpo?API_KEY=***&x=1"),
        ("postgresql://db/hpo?auth_token=s3cret", "postgresql://db/hpo?auth_token=***"),
        ("postgresql://db/hpo?client_secret=s3cret", "postgresql://db/hpo?client_secret=***"),
        ("sqlite:///hpo.db", "sqlite:///hpo.db"),
        ("no url //bob:s3cret@h?token=s3cret", "no url //bob:***@h?token=***"),
    ],
)
def test_mask_url_hides_passwords_in_user_info_and_query(url, secret_free):
    assert mask_url(url) == secret_free


def test_store_errors_never_show_a_password_given_in_the_query():
    url = "postgresql+psycopg://alice@127.0.0.1:1/db?password=s3cret&connect_timeout=2"
    with pytest.raises(StoreError, match="cannot open storage") as error:
        Store(url)
    assert "s3cret" not in str(error.value) and "password=***" in str(error.value)


def test_save_verdicts_stores_numpy_winners_as_plain_integers_and_refuses_others(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    store = Store(url)
    key = VerdictKey("p", "a", "b")
    saved = store.save_verdicts("j", [(key, StoredVerdict(winner=np.int64(1)))])  # type: ignore[arg-type]
    assert type(saved[key].winner) is int
    with sqlite3.connect(tmp_path / "w.db") as connection:
        assert connection.execute("SELECT typeof(winner) FROM pandalm_verdicts").fetchall() == [
            ("integer",)
        ]
    for bad in (7, True, "1", -1):
        with pytest.raises(ValueError, match="winner must be 0, 1, 2 or None"):
            store.save_verdicts("j", [(VerdictKey("p", "c", "d"), StoredVerdict(winner=bad))])
    assert store.find_verdicts("j", [VerdictKey("p", "c", "d")]) == {}


def test_new_databases_refuse_a_winner_outside_0_1_2_null(storage_url):
    store = Store(storage_url)
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO pandalm_verdicts (judge_name, prompt_hash, response_1_hash, "
                "response_2_hash, winner, reason, reference, raw, created_at) "
                "VALUES ('j', 'p', 'a', 'b', 7, '', '', '', 0)"
            )
        )


def test_integrity_reports_stored_winners_outside_0_1_2_null(v0_sqlite_url, tmp_path):
    store = Store(v0_sqlite_url)  # migrated SQLite tables keep no CHECK on the winner
    arena = store.arena_id("v0-study")
    assert arena is not None
    assert not any(store.integrity(arena, 3).values())
    path = sa.make_url(v0_sqlite_url).database
    assert path is not None
    with sqlite3.connect(path) as connection:
        used = connection.execute("SELECT verdict_id FROM pandalm_games LIMIT 1").fetchone()[0]
        connection.execute("UPDATE pandalm_verdicts SET winner = 7 WHERE id = ?", (used,))
        # A cached verdict about the arena's texts, as SQLite stored numpy.int64(1).
        text = connection.execute("SELECT hash FROM pandalm_generations LIMIT 1").fetchone()[0]
        connection.execute(
            "INSERT INTO pandalm_verdicts (judge_name, prompt_hash, response_1_hash, "
            "response_2_hash, winner, reason, reference, raw, created_at) "
            "VALUES ('numpy-judge', 'p', ?, 'other', ?, '', '', '', 0)",
            (text, np.int64(1).tobytes()),
        )
    problems = store.integrity(arena, 3)["verdicts with a winner outside 0, 1, 2, NULL"]
    assert len(problems) == 2
    assert f"verdict {used} of pandalm-7b: winner 7" in problems
    assert any("numpy-judge: winner b'\\x01\\x00" in p for p in problems)


def test_integrity_reports_a_game_stored_without_being_counted(v0_sqlite_url):
    """A game written by a worker that does not count (an older one left running through the
    upgrade to schema 4) leaves Store.version unchanged, so other workers keep a stale fit:
    ``check`` names the counters that disagree with the rows."""
    store = Store(v0_sqlite_url)  # migrated to schema 4: counters filled from the rows
    arena = store.arena_id("v0-study")
    assert arena is not None
    assert not store.integrity(arena, 3)["game and player counters that disagree with the rows"]
    before = store.version(arena)
    path = sa.make_url(v0_sqlite_url).database
    assert path is not None
    with sqlite3.connect(path) as connection:  # what a schema-3 worker's save_games did
        connection.execute(
            "INSERT INTO pandalm_games (arena_id, match_id, first_player_id, second_player_id, "
            "low_player_id, high_player_id, prompt_position, verdict_id, outcome, annotator, "
            "created_at) SELECT arena_id, match_id, second_player_id, first_player_id, "
            "low_player_id, high_player_id, prompt_position, verdict_id, outcome, 'human:x', "
            "created_at FROM pandalm_games WHERE arena_id = ? LIMIT 1",
            (arena,),
        )
    assert store.version(arena) == before  # not seen: what the check is for
    problems = store.integrity(arena, 3)["game and player counters that disagree with the rows"]
    assert problems[0] == f"games: {before[0]} counted, {before[0] + 1} in the rows"
    assert problems[1].startswith(f"largest game id: {before[1]} counted, ")
    assert len(problems) == 2
