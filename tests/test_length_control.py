"""Specification of length control: scores at equal length, so verbosity alone cannot win."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from optuna_pandalm import Arena
from optuna_pandalm.arena import length_feature
from optuna_pandalm.testing import (
    Landscape,
    SimulatedJudge,
    simulated_prompts,
    simulated_response,
)

PROMPTS = simulated_prompts(40, seed=3)
# (true quality, typical length in characters): trial 3 is truly worse than trial 2 but
# writes three times as much.
PLAYERS = [(0.0, 200), (0.3, 200), (0.8, 200), (0.2, 600), (-0.2, 300)]


def _texts(trial: int, quality: float, length: int) -> list[str]:
    rng = np.random.default_rng(trial)
    # Lengths scatter around the player's typical length (log-sd 0.5), so the fit can tell
    # the length effect from the players' strengths.
    return [
        simulated_response(quality, length=int(length * math.exp(0.5 * z)), text=f"t{trial}")
        for z in rng.standard_normal(len(PROMPTS))
    ]


def _leader(url: str, *, length_control: bool) -> tuple[int | None, Arena]:
    judge = SimulatedJudge(seed=1, length_bias=1.5, noise=0.3)  # prefers the longer answer
    arena = Arena(url, "s", judge, PROMPTS, seed=0, racing=False, length_control=length_control)
    for trial, (quality, length) in enumerate(PLAYERS):
        arena.evaluate(trial, 1, _texts(trial, quality, length))
    for trial in (1, 4):  # a few more matches so every player meets the verbose one
        arena.play(arena.trial_players(trial)[0], arena.trial_players(3)[0])
    leader = arena.incumbent()
    return (None if leader is None else leader.trial), arena


def test_a_longer_worse_checkpoint_leads_without_length_control_and_not_with_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    plain, _ = _leader(url, length_control=False)
    # The same games (the verdict cache answers), fitted with the length term.
    controlled, arena = _leader(url, length_control=True)
    assert plain == 3
    assert controlled == 2
    effect = arena.standings().length_effect()
    assert effect is not None and 0 < effect.low < effect.estimate < effect.high


def test_without_length_control_no_length_effect_is_reported(tmp_path):
    _, arena = _leader(f"sqlite:///{tmp_path / 'db.sqlite'}", length_control=False)
    assert arena.standings().length_effect() is None


def test_the_length_feature_is_bounded_and_antisymmetric():
    a, b = np.array([10, 0, 500, 7]), np.array([30, 9, 500, 0])
    assert np.array_equal(length_feature(a, b), -length_feature(b, a))
    assert length_feature(a, b).tolist() == pytest.approx([-0.5, -1.0, 0.0, 1.0])


def _landscape_leader(url: str, *, length_control: bool) -> float:
    """The learning rate of the leader among checkpoints of the ``verbose`` landscape."""
    landscape = Landscape("verbose", length_spread=0.4)
    prompts = simulated_prompts(32, seed=8)
    judge = SimulatedJudge(seed=3, length_bias=1.5, noise=0.3)
    arena = Arena(url, "v", judge, prompts, seed=0, racing=False, length_control=length_control)
    rates = [2e-5, 6e-6, 4e-5, 8e-5, 2e-4]
    for trial, rate in enumerate(rates):
        texts = landscape.generations({"learning_rate": rate}, 4, prompts, key=trial)
        arena.evaluate(trial, 4, texts)
    leader = arena.incumbent()
    assert leader is not None and leader.trial is not None
    return rates[leader.trial]


def test_on_the_verbose_landscape_length_control_finds_the_optimum(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    landscape = Landscape("verbose")
    hot, best = {"learning_rate": 2e-4}, {"learning_rate": 2e-5}
    assert landscape.quality(hot, 4) < landscape.quality(best, 4)
    assert landscape.verbosity(hot, 4) > landscape.verbosity(best, 4) == 0
    assert _landscape_leader(url, length_control=False) > 3e-5  # a verbose one leads
    assert _landscape_leader(url, length_control=True) == 2e-5


def test_the_leaderboard_command_reports_the_length_effect_with_its_interval(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _leader(url, length_control=True)
    command = [
        sys.executable,
        "-m",
        "optuna_pandalm.commands.cli",
        "leaderboard",
        "--storage",
        url,
    ]
    command += ["--study-name", "s", "--json"]
    plain = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
    controlled = json.loads(
        subprocess.run([*command, "--length-control"], capture_output=True, check=True).stdout
    )
    assert plain["length_effect"] is None
    effect = controlled["length_effect"]
    assert effect["low"] < effect["estimate"] < effect["high"]
    assert controlled["rows"][0]["trial"] == 2 and plain["rows"][0]["trial"] == 3
