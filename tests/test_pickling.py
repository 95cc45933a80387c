"""Specification: a study using our sampler and pruner pickles like one using plain TPE, and
the copy works in another process (the store drops its engine and reconnects, as Optuna's
RDBStorage does)."""

from __future__ import annotations

import copy
import multiprocessing
import pickle

import optuna

from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

PROMPTS = simulated_prompts(4, seed=1)


def _evaluate_in_another_process(pickled: bytes) -> int:
    pruner = pickle.loads(pickled)
    result = pruner.arena.evaluate(1, 1, [simulated_response(2.0, text=f"b{i}") for i in range(4)])
    return result.games


def test_a_judged_study_pickles_and_its_copy_works_in_another_process(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    arena = Arena(url, "s", SimulatedJudge(), PROMPTS, seed=0)
    arena.evaluate(0, 1, [simulated_response(0.0, text=f"a{i}") for i in range(4)])
    study = optuna.create_study(
        study_name="s",
        storage=url,
        direction="maximize",
        sampler=BradleyTerrySampler(arena, optuna.samplers.TPESampler(seed=0)),
        pruner=JudgePruner(arena),
    )
    copied = pickle.loads(pickle.dumps(study))
    assert [p.key for p in copied.sampler.arena.players()] == ["trial/0/step/1"]
    assert copy.deepcopy(study.pruner).arena.standings().players == arena.standings().players
    assert copy.deepcopy(study).sampler.arena.standings().players == arena.standings().players
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        games = pool.apply(_evaluate_in_another_process, (pickle.dumps(study.pruner),))
    assert games == 4
    assert {p.key for p in arena.players()} == {"trial/0/step/1", "trial/1/step/1"}
