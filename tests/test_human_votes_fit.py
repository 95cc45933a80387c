"""Specification of the fit of people's votes with the judge's verdicts: each annotator has
its own reliability, and a few votes overrule a judge that is wrong on a family of
configurations.

Votes are stored with ``Arena.record_vote``, as the review page stores them: verdicts and
games of annotator ``human:NAME``."""

from __future__ import annotations

import numpy as np
import pytest

from optuna_pandalm import Arena, JudgeRequest, fit_bradley_terry
from optuna_pandalm.arena import Player
from optuna_pandalm.testing import (
    SimulatedJudge,
    ladder_games,
    simulated_prompts,
    simulated_response,
)

PROMPTS = simulated_prompts(48, seed=11)
# True quality by trial; the judge adds 1.5 log-odds to the "sgd" family.
TRIALS = [("sgd", 0.6), ("sgd", 0.3), ("sgd", 0.0), ("adamw", 1.5), ("adamw", 0.2)]
TRULY_BEST = 3


def _texts(trial: int, family: str, quality: float) -> list[str]:
    return [
        simulated_response(quality, text=f"optimizer={family} trial {trial} prompt {i}")
        for i in range(len(PROMPTS))
    ]


def _study(url: str) -> Arena:
    judge = SimulatedJudge(seed=2, noise=0.3, favour={"optimizer=sgd": 1.5})
    # Matches stop after 16 games whoever leads (racing_alpha=0.5), leaving prompts free for
    # votes: here a vote cannot share a prompt with the judge's game on the same pair.
    arena = Arena(url, "s", judge, PROMPTS, seed=0, racing_alpha=0.5)
    for trial, (family, quality) in enumerate(TRIALS):
        arena.evaluate(trial, 1, _texts(trial, family, quality))
    return arena


def _vote(arena: Arena, a: Player, b: Player, position: int, person: SimulatedJudge) -> None:
    """One vote of an accurate person on prompt ``position``, stored by ``record_vote`` as a
    game of annotator ``human:alice``."""
    store, prompt = arena.store, PROMPTS[position]
    texts = [store.generations(p.id)[position] for p in (a, b)]
    winner = person.judge([JudgeRequest(prompt.instruction, *texts)])[0].winner
    assert winner is not None
    assert arena.record_vote(position, a, b, winner, "alice")


def _review(arena: Arena, n_votes: int) -> None:
    """Votes on the contenders, five at a time: the leader against the one of the next three
    players (by the current scores) it has the fewest votes against, on prompts the judge
    has not played and the person has not voted on for that pair."""
    person = SimulatedJudge(seed=9, noise=0.0, position_bias=0.0, tie_strength=0.1)
    voted: dict[tuple[int, int], set[int]] = {}
    while sum(map(len, voted.values())) < n_votes:
        leader, *rivals = [
            Player(r.player_id, r.trial, r.step, r.name) for r in arena.leaderboard(top=4)
        ]
        free = {
            rival.id: sorted(
                set(range(len(PROMPTS)))
                - arena.store.played_positions(arena.arena_id, leader.id, rival.id)
                - voted.get((leader.id, rival.id), set())
                - voted.get((rival.id, leader.id), set())
            )
            for rival in rivals
        }
        rival = min(
            (r for r in rivals if free[r.id]),
            key=lambda r: len(voted.get((leader.id, r.id), set())),
        )
        positions = free[rival.id][:5]
        for position in positions:
            _vote(arena, leader, rival, position, person)
        voted.setdefault((leader.id, rival.id), set()).update(positions)


def test_thirty_votes_on_the_contenders_move_the_leader_to_the_truly_best(tmp_path):
    arena = _study(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert arena.incumbent().trial != TRULY_BEST  # the judge's favourite family leads
    _review(arena, 30)
    standings = arena.standings()
    assert standings.incumbent().trial == TRULY_BEST
    assert int(standings.human_votes.sum()) == 2 * 30
    rows = {r.trial: r for r in arena.leaderboard()}
    assert rows[TRULY_BEST].human_votes > 0
    reliability = standings.reliability()
    assert list(reliability) == [arena.judge.name, "human:alice"]
    assert reliability[arena.judge.name].estimate == 1.0  # the reference
    human = reliability["human:alice"]
    assert 0 < human.low < human.estimate < human.high
    assert standings.model_effects()["reliability"]["human:alice"] == human.as_dict()


def test_without_the_votes_the_biased_judge_keeps_its_favourite(tmp_path):
    arena = _study(f"sqlite:///{tmp_path / 'db.sqlite'}")
    standings = arena.standings()
    assert TRIALS[standings.incumbent().trial][0] == "sgd"
    assert standings.human_votes is not None and standings.human_votes.sum() == 0
    assert list(standings.reliability()) == [arena.judge.name]


def test_one_annotator_fits_exactly_as_without_annotators():
    first, second, outcome = ladder_games(30, seed=4)
    plain = fit_bradley_terry(first, second, outcome)
    one = fit_bradley_terry(first, second, outcome, annotators=np.zeros(len(first), dtype=int))
    assert np.array_equal(one.scores, plain.scores)
    assert np.array_equal(one.stderr, plain.stderr)
    assert one.reliability.tolist() == [1.0]


def test_votes_outweigh_many_judge_verdicts_only_where_people_voted():
    # Judge: 200 verdicts that 0 beats 1 (about 73%); people: 20 votes that 1 beats 0.
    rng = np.random.default_rng(0)
    judge_first = np.zeros(200, dtype=int)
    judge_outcome = np.where(rng.random(200) < 0.73, 1, 2)
    people_outcome = np.where(rng.random(20) < 0.8, 2, 1)
    first = np.concatenate([judge_first, np.zeros(20, dtype=int), [2] * 50])
    second = np.concatenate([1 - judge_first, np.ones(20, dtype=int), [0] * 50])
    outcome = np.concatenate([judge_outcome, people_outcome, np.where(rng.random(50) < 0.5, 1, 2)])
    annotators = np.concatenate([np.zeros(200), np.ones(20), np.zeros(50)]).astype(int)
    pooled = fit_bradley_terry(first, second, outcome, fit_position=False)
    mixed = fit_bradley_terry(
        first, second, outcome, annotators=annotators, human_annotators=[1], fit_position=False
    )
    assert pooled.scores[0] > pooled.scores[1]
    assert mixed.scores[1] > mixed.scores[0]
    assert mixed.converged


def test_reliability_prior_and_bias_prior_must_be_positive():
    with pytest.raises(ValueError, match="bias_scale must be a positive number"):
        fit_bradley_terry([0], [1], [1], bias_scale=0.0)
