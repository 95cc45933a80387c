"""Specification of the SQL store on SQLite (file, memory) and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
import sqlalchemy as sa

from optuna_pandalm import Prompt, Store, StoreError, fit_bradley_terry
from optuna_pandalm.store import (
    ArenaStore,
    GameRecord,
    PromptSetMismatchError,
    StoredVerdict,
    VerdictKey,
    text_hash,
)

PROMPTS = [
    Prompt("Add 2 and 3.", reference="5"),
    Prompt("Name a colour.", id="c"),
    Prompt("Say hi."),
]


def _arena(store: Store, name: str = "study") -> int:
    return store.bind_study(name, store.save_prompt_set(PROMPTS))


def _verdict_key(prompt: Prompt, first: str, second: str) -> VerdictKey:
    return VerdictKey(prompt.hash, text_hash(first), text_hash(second))


def _games(store: Store, arena: int, a: int, b: int) -> list[GameRecord]:
    key = _verdict_key(PROMPTS[0], "x", "y")
    verdict = store.save_verdicts("judge", [(key, StoredVerdict(winner=1))])[key]
    return [
        GameRecord(0, a, b, verdict.id, 1),
        GameRecord(1, a, b, verdict.id, 0),
        GameRecord(2, b, a, verdict.id, 2),
    ]


def test_store_offers_every_method_of_the_arena_store_interface(storage_url):
    assert isinstance(Store(storage_url), ArenaStore)


class _ReadThrough:
    """An ArenaStore that is not a Store: it reads every member of the interface through
    from a Store, and counts the reads."""

    def __init__(self, store: Store) -> None:
        self._store, self.reads = store, 0


def _read_through(name: str) -> property:
    def read(self: _ReadThrough):
        self.reads += 1
        return getattr(self._store, name)

    return property(read)


for _name in [n for n in vars(ArenaStore) if not n.startswith("_")]:
    setattr(_ReadThrough, _name, _read_through(_name))


def test_an_arena_takes_any_arena_store_but_refuses_other_storage():
    from optuna_pandalm import Arena
    from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

    store = _ReadThrough(Store("sqlite://"))
    arena = Arena(store, "s", SimulatedJudge(), simulated_prompts(4), seed=0)
    arena.evaluate(0, 1, [simulated_response(0.0)] * 4)
    arena.evaluate(1, 1, [simulated_response(2.0)] * 4)
    assert arena.store is store and store.reads > 0
    assert arena.verdict_counts()["games"] == 4
    with pytest.raises(TypeError, match="storage must be a URL or a Store"):
        Arena(object(), "s", SimulatedJudge(), simulated_prompts(4))


def test_tables_are_prefixed_and_creation_is_idempotent(storage_url):
    store = Store(storage_url)
    if storage_url != "sqlite://":  # a second Store on one in-memory URL is another database
        Store(storage_url).close()
    names = set(sa.inspect(store.engine).get_table_names())
    assert {
        "pandalm_prompt_sets",
        "pandalm_prompts",
        "pandalm_arenas",
        "pandalm_players",
        "pandalm_generations",
        "pandalm_verdicts",
        "pandalm_matches",
        "pandalm_games",
    } <= names


def test_prompt_set_is_stored_once_per_content(storage_url):
    store = Store(storage_url)
    first = store.save_prompt_set(PROMPTS)
    assert store.save_prompt_set(list(PROMPTS)) == first
    assert store.save_prompt_set(PROMPTS[:1]) != first


def test_study_refuses_a_different_prompt_set(storage_url):
    store = Store(storage_url)
    arena = _arena(store)
    assert store.bind_study("study", store.save_prompt_set(PROMPTS)) == arena
    with pytest.raises(PromptSetMismatchError, match=r"study 'study'.*already uses prompt set"):
        store.bind_study("study", store.save_prompt_set(PROMPTS[:1]))
    assert store.arena_id("study") == arena  # nothing was changed by the refusal


def test_players_are_created_once(storage_url):
    store = Store(storage_url)
    arena = _arena(store)
    checkpoint = store.player(arena, trial=0, step=10)
    baseline = store.player(arena, name="alpaca-default")
    assert store.player(arena, trial=0, step=10) == checkpoint
    assert store.player(arena, name="alpaca-default") == baseline
    assert [p.key for p in store.players(arena)] == ["trial/0/step/10", "baseline/alpaca-default"]
    with pytest.raises(ValueError, match="either a checkpoint"):
        store.player(arena, trial=1, step=1, name="x")


def test_generations_round_trip_with_awkward_text(storage_url):
    store = Store(storage_url)
    player = store.player(_arena(store), trial=0, step=1)
    texts = ["", "<script>alert(1)</script> é 你好 \U0001f600", "a\x00b", "x" * 1_000_000]
    hashes = store.save_generations(player, texts)
    stored = store.generations(player)
    assert stored[0] == "" and stored[1] == texts[1] and stored[3] == texts[3]
    assert stored[2] == "a\ufffdb"  # NUL cannot be stored in PostgreSQL text
    assert hashes[2] == text_hash("a\x00b")  # the hash is of what the judge saw
    store.save_generations(player, ["changed", "changed"])  # idempotent: kept as they were
    assert store.generations(player)[0] == ""


def test_verdict_cache_keeps_one_verdict_per_key(storage_url):
    store = Store(storage_url)
    key = _verdict_key(PROMPTS[0], "a", "b")
    swapped = _verdict_key(PROMPTS[0], "b", "a")
    first = StoredVerdict(
        winner=1, p_tie=0.1, p_1=0.7, p_2=0.2, reason="r", raw="1", latency_s=0.5
    )
    saved = store.save_verdicts("pandalm-7b", [(key, first)])
    again = store.save_verdicts("pandalm-7b", [(key, StoredVerdict(winner=2))])
    assert saved[key].id == again[key].id
    assert again[key].winner == 1 and again[key].p_1 == pytest.approx(0.7)
    assert store.find_verdicts("pandalm-7b", [swapped]) == {}  # shown order is part of the key
    assert store.find_verdicts("other-judge", [key]) == {}
    invalid = store.save_verdicts("pandalm-7b", [(swapped, StoredVerdict(None, raw="???"))])
    assert invalid[swapped].winner is None and invalid[swapped].raw == "???"


def test_verdict_lookup_handles_more_keys_than_one_batch(storage_url):
    store = Store(storage_url)
    items = [
        (_verdict_key(PROMPTS[0], str(i), "b"), StoredVerdict(winner=i % 3)) for i in range(1_200)
    ]
    saved = store.save_verdicts("judge", items)
    assert len(saved) == 1_200
    assert [saved[key].winner for key, _ in items] == [i % 3 for i in range(1_200)]


def test_verdict_lookup_finds_exactly_the_asked_keys_that_are_stored(storage_url):
    """Over more keys than one batch, with keys whose every column belongs to some stored
    key (an IN list per column matches them) and repeated keys."""
    store = Store(storage_url)
    stored = [
        (_verdict_key(PROMPTS[i % 3], f"a{i}", f"b{i}"), StoredVerdict(winner=i % 3))
        for i in range(700)
    ]
    store.save_verdicts("judge", stored)
    store.save_verdicts("other-judge", [(key, StoredVerdict(winner=0)) for key, _ in stored])
    crossed = [_verdict_key(PROMPTS[(i + 1) % 3], f"a{i}", f"b{i}") for i in range(0, 700, 7)] + [
        _verdict_key(PROMPTS[i % 3], f"a{i}", f"b{i + 1}") for i in range(0, 700, 5)
    ]
    asked = [key for key, _ in stored[::2]] + crossed + [key for key, _ in stored[:10]]
    found = store.find_verdicts("judge", asked)
    expected = {key: v.winner for key, v in stored[::2] + stored[:10]}
    assert {key: v.winner for key, v in found.items()} == expected
    assert all(v.id is not None for v in found.values())


def test_games_are_idempotent_and_counted_by_one_aggregate_query(storage_url):
    store = Store(storage_url)
    arena = _arena(store)
    a, b = store.player(arena, trial=0, step=1), store.player(arena, trial=1, step=1)
    match = store.start_match(arena, a, b, kind="incumbent")
    records = _games(store, arena, a, b)
    assert store.save_games(arena, match, records) == 3
    assert store.save_games(arena, match, records) == 0  # a retried write counts nothing twice
    counts = store.game_counts(arena)
    rows = sorted(
        zip(
            counts.first.tolist(),
            counts.second.tolist(),
            counts.outcome.tolist(),
            counts.count.tolist(),
            strict=True,
        )
    )
    assert rows == sorted([(a, b, 1, 1.0), (a, b, 0, 1.0), (b, a, 2, 1.0)])
    by_prompt = store.game_counts(arena, by_prompt=True)
    assert sorted(by_prompt.prompt_position.tolist()) == [0, 1, 2]
    assert store.version(arena)[0] == 3


def test_a_pair_meets_once_per_prompt_whoever_is_shown_first(storage_url):
    store = Store(storage_url)
    arena = _arena(store)
    a, b = store.player(arena, trial=0, step=1), store.player(arena, trial=1, step=1)
    games = _games(store, arena, a, b)
    assert store.save_games(arena, store.start_match(arena, a, b, kind="x"), games[:1]) == 1
    reversed_game = GameRecord(0, b, a, games[0].verdict_id, 1)  # same prompt, other order
    assert store.save_games(arena, store.start_match(arena, b, a, kind="y"), [reversed_game]) == 0
    assert store.pair_record(arena, a, b) == (1, 0, 0)


def test_counts_feed_the_bradley_terry_fit(storage_url):
    store = Store(storage_url)
    arena = _arena(store)
    a, b = store.player(arena, trial=0, step=1), store.player(arena, trial=1, step=1)
    store.save_games(
        arena, store.start_match(arena, a, b, kind="test"), _games(store, arena, a, b)
    )
    counts = store.game_counts(arena)
    index = {a: 0, b: 1}
    result = fit_bradley_terry(
        [index[p] for p in counts.first],
        [index[p] for p in counts.second],
        counts.outcome,
        weights=counts.count,
    )
    assert result.n_games == 3
    assert result.scores[0] == 0.0 and result.scores[1] < 0  # a won one game and tied one


def test_game_outcome_is_checked_before_writing(storage_url):
    store = Store(storage_url)
    arena = _arena(store)
    a, b = store.player(arena, trial=0, step=1), store.player(arena, trial=1, step=1)
    match = store.start_match(arena, a, b, kind="test")
    good = _games(store, arena, a, b)
    bad = [*good, GameRecord(1, b, a, good[0].verdict_id, 7)]
    with pytest.raises(ValueError, match="outcome"):
        store.save_games(arena, match, bad)
    assert store.version(arena)[0] == 0  # nothing half-written


def test_games_of_two_arenas_are_separate(storage_url):
    store = Store(storage_url)
    one, two = _arena(store, "one"), _arena(store, "two")
    a, b = store.player(one, trial=0, step=1), store.player(one, trial=1, step=1)
    store.save_games(one, store.start_match(one, a, b, kind="t"), _games(store, one, a, b))
    assert store.version(two)[:2] == (0, 0)
    assert len(store.game_counts(two).first) == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "malformed storage URL"),
        ("nosuchdb://x/y", "unsupported storage URL"),
        ("postgresql+psycopg://alice:s3cret@127.0.0.1:1/db", "cannot open storage"),
        ("sqlite:////nonexistent-dir/sub/x.db", "cannot open storage"),
    ],
)
def test_bad_storage_urls_fail_clearly_without_revealing_passwords(url, message):
    with pytest.raises(StoreError, match=message) as error:
        Store(url)
    assert "s3cret" not in str(error.value)


def test_store_shares_an_optuna_sqlite_database(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    store = Store(url)
    arena = _arena(store, "s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert store.player(arena, trial=1, step=0) > 0
    tables = {
        r[0]
        for r in sqlite3.connect(tmp_path / "hpo.db").execute("select name from sqlite_master")
    }
    assert {"trials", "studies", "pandalm_games"} <= tables


def _open_and_write(url: str, worker: int, barrier) -> None:
    barrier.wait()  # every process creates the tables at the same moment
    store = Store(url)
    arena = store.bind_study("race", store.save_prompt_set(PROMPTS))
    a, b = store.player(arena, trial=0, step=1), store.player(arena, trial=1, step=1)
    key = _verdict_key(PROMPTS[0], "same", "pair")
    verdict = store.save_verdicts("judge", [(key, StoredVerdict(winner=worker % 3))])[key]
    match = store.start_match(arena, a, b, kind=f"worker-{worker}")
    store.save_games(arena, match, [GameRecord(p, a, b, verdict.id, 1) for p in range(2)])
    store.close()


def test_concurrent_processes_create_tables_and_never_duplicate_rows(shared_storage_url):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(6)
    workers = [
        context.Process(target=_open_and_write, args=(shared_storage_url, w, barrier))
        for w in range(6)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0] * 6
    store = Store(shared_storage_url)
    arena = store.arena_id("race")
    assert len(store.players(arena)) == 2
    assert store.version(arena)[0] == 2
    with store.engine.connect() as connection:
        n_verdicts = connection.execute(sa.text("select count(*) from pandalm_verdicts")).scalar()
        n_matches = connection.execute(sa.text("select count(*) from pandalm_matches")).scalar()
    assert n_verdicts == 1 and n_matches == 6


def test_game_counts_carry_both_responses_lengths_and_the_annotator(storage_url):
    store = Store(storage_url)
    arena = _arena(store)
    a = store.player(arena, trial=0, step=1, generations=["é" * 5, "bb", ""])
    b = store.player(arena, trial=1, step=1, generations=["c", "dddd", "\x00x"])
    match = store.start_match(arena, a, b, kind="x")
    store.save_games(arena, match, _games(store, arena, a, b))
    counts = store.game_counts(arena, by_length=True, by_annotator=True)
    rows = sorted(
        zip(
            counts.first.tolist(),
            counts.first_length.tolist(),
            counts.second_length.tolist(),
            counts.annotator.tolist(),
            strict=True,
        )
    )
    # Characters, not bytes (é is two bytes in UTF-8); prompt 2 is shown b first.
    assert rows == sorted([(a, 5, 1, "judge"), (a, 2, 4, "judge"), (b, 2, 0, "judge")])
    assert store.game_counts(arena).first_length is None
