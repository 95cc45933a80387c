"""Specification of people's votes: stored as games of annotator ``human:NAME``, fitted with
the judge's, never a judge's cache hit."""

from __future__ import annotations

import math

import pytest

from optuna_pandalm import Arena
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

N = 6


def _arena(url: str, study: str = "votes", **options) -> Arena:
    return Arena(url, study, SimulatedJudge(), simulated_prompts(N), seed=0, **options)


def _two_checkpoints(arena: Arena) -> None:
    arena.evaluate(0, 1, [simulated_response(0.0, text=f"zero {i}") for i in range(N)])
    arena.evaluate(1, 1, [simulated_response(1.0, text=f"one {i}") for i in range(N)])


def test_a_vote_is_a_game_and_a_verdict_of_annotator_human_name(storage_url):
    arena = _arena(storage_url)
    _two_checkpoints(arena)
    games_before = arena.verdict_counts()["games"]
    assert arena.record_vote(3, (0, 1), (1, 1), "first", "ada", comment="clearer") is True
    (vote,) = arena.human_votes()
    assert (vote.annotator, vote.prompt_position, vote.outcome) == ("human:ada", 3, 1)
    first, second = (arena.trial_players(trial)[0].id for trial in (0, 1))
    assert (vote.first_player_id, vote.second_player_id) == (first, second)
    assert arena.verdict_counts()["games"] == games_before + 1
    assert arena.reasons(arena.trial_players(0)[0], limit=100)[-1] == (3, "clearer")
    assert sum(row.human_votes for row in arena.leaderboard()) == 2  # one per side
    assert not any(arena.check().values())


def test_a_vote_on_a_pair_and_prompt_the_judge_played_is_kept_beside_its_game(tmp_path):
    arena = _arena(f"sqlite:///{tmp_path / 'db.sqlite'}", racing=False)
    _two_checkpoints(arena)
    judged = arena.store.played_positions(arena.arena_id, *(p.id for p in arena.players()))
    assert judged == set(range(N))
    for position in range(N):
        assert arena.record_vote(position, (0, 1), (1, 1), "first", "ada")
    votes = arena.human_votes()
    assert len(votes) == N and all(v.judge_outcome is not None for v in votes)
    agreement = arena.judge_agreement()
    disagree = sum(v.judge_outcome != 1 for v in votes)
    assert agreement.votes == N and agreement.agree == N - disagree
    assert agreement.by_annotator == {"human:ada": (N, N - disagree)}


def test_one_vote_per_person_pair_and_prompt(tmp_path):
    arena = _arena(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _two_checkpoints(arena)
    assert arena.record_vote(0, (0, 1), (1, 1), "first", "ada")
    assert not arena.record_vote(0, (1, 1), (0, 1), "second", "ada")  # either order
    assert arena.record_vote(0, (0, 1), (1, 1), "tie", "bob")
    assert [v.annotator for v in arena.human_votes()] == ["human:ada", "human:bob"]


def test_votes_enter_the_fit_as_games(tmp_path):
    arena = _arena(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _two_checkpoints(arena)
    (weak,), (strong,) = arena.trial_players(0), arena.trial_players(1)
    gap = arena.standings().score(strong) - arena.standings().score(weak)
    for position in range(N):
        for person in ("ada", "bob", "cy"):
            arena.record_vote(position, weak, strong, "first", person)
    after = arena.standings().score(strong) - arena.standings().score(weak)
    assert after < gap - 1.0


def test_a_vote_is_never_a_judges_cache_hit(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    voted = _arena(url, "voted")
    texts = {q: [simulated_response(q, text=f"q{q} {i}") for i in range(N)] for q in (0.0, 1.0)}
    # Players with these texts, and a vote on every prompt, before any judge saw them.
    voted.store.player(voted.arena_id, trial=0, step=1, generations=texts[0.0])
    voted.store.player(voted.arena_id, trial=1, step=1, generations=texts[1.0])
    for position in range(N):
        voted.record_vote(position, (0, 1), (1, 1), "first", "ada")
        voted.record_vote(position, (1, 1), (0, 1), "first", "ada")  # ignored: same pair
    judged = _arena(url, "judged", racing=False)
    judged.evaluate(0, 1, texts[0.0])
    judged.evaluate(1, 1, texts[1.0])
    assert judged.cache_hits == 0 and judged.judge_calls == N
    assert judged.human_votes() == []


def test_a_judge_may_not_be_named_like_a_person(tmp_path):
    judge = SimulatedJudge()
    judge.name = "human:ada"
    with pytest.raises(ValueError, match="is for people"):
        Arena(f"sqlite:///{tmp_path / 'db.sqlite'}", "s", judge, simulated_prompts(N))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"first": (7, 1)}, "no player"),
        ({"second": (0, 1)}, "two players"),
        ({"outcome": "left"}, "outcome"),
        ({"outcome": True}, "outcome"),
        ({"annotator": " "}, "annotator name"),
        ({"annotator": "a\nb"}, "annotator name"),
        ({"prompt": N}, "no prompt"),
    ],
)
def test_bad_votes_are_refused_with_what_is_wrong(tmp_path, change, message):
    arena = _arena(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _two_checkpoints(arena)
    vote = {"prompt": 0, "first": (0, 1), "second": (1, 1), "outcome": "tie", "annotator": "a"}
    with pytest.raises(ValueError, match=message):
        arena.record_vote(**{**vote, **change})
    assert arena.human_votes() == []


def test_agreement_without_votes_is_nan(tmp_path):
    arena = _arena(f"sqlite:///{tmp_path / 'db.sqlite'}")
    agreement = arena.judge_agreement()
    assert agreement.votes == 0 and math.isnan(agreement.rate)
    assert agreement.as_dict()["rate"] is None


def test_votes_do_not_keep_the_judge_from_playing_a_prompt(tmp_path):
    arena = _arena(f"sqlite:///{tmp_path / 'db.sqlite'}", racing=False)
    for trial, quality in ((0, 0.0), (1, 1.0)):
        texts = [simulated_response(quality, text=f"{trial} {i}") for i in range(N)]
        arena.store.player(arena.arena_id, trial=trial, step=1, generations=texts)
    (a,), (b,) = arena.trial_players(0), arena.trial_players(1)
    for position in range(N):
        arena.record_vote(position, a, b, "tie", "ada")
    outcome = arena.play(a, b)
    assert outcome.wins + outcome.ties + outcome.losses == N
