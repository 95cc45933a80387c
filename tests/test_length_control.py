"""Specification of length control: scores at equal length, so verbosity alone cannot win."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from optuna_pandalm import Arena
from optuna_pandalm.arena import length_feature
from optuna_pandalm.commands.cli import main
from optuna_pandalm.review import open_arena
from optuna_pandalm.store import PromptSetMismatchError
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


def _study(length_control: bool) -> str:
    """The study of each setting (a study is scored one way: the setting is stored)."""
    return "controlled" if length_control else "plain"


def _leader(url: str, *, length_control: bool) -> tuple[int | None, Arena]:
    judge = SimulatedJudge(seed=1, length_bias=1.5, noise=0.3)  # prefers the longer answer
    study = _study(length_control)
    arena = Arena(url, study, judge, PROMPTS, seed=0, racing=False, length_control=length_control)
    for trial, (quality, length) in enumerate(PLAYERS):
        arena.evaluate(trial, 1, _texts(trial, quality, length))
    for trial in (1, 4):  # a few more matches so every player meets the verbose one
        arena.play(arena.trial_players(trial)[0], arena.trial_players(3)[0])
    leader = arena.incumbent()
    return (None if leader is None else leader.trial), arena


def test_a_longer_worse_checkpoint_leads_without_length_control_and_not_with_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    plain, _ = _leader(url, length_control=False)
    # The same verdicts (the cache answers), in a study fitted with the length term.
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
    study = f"v-{_study(length_control)}"
    arena = Arena(url, study, judge, prompts, seed=0, racing=False, length_control=length_control)
    rates = [2e-5, 6e-6, 4e-5, 8e-5, 2e-4]
    # Two rounds: in the second each checkpoint meets the incumbent of then, so the top is
    # linked by direct games (after one, 2e-5 and 4e-5 are level within 0.02 log-odds).
    for _ in range(2):
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


def _leaderboard(url: str, study: str, capsys, *flags: str) -> dict:
    assert main(["leaderboard", "--storage", url, "--study-name", study, "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_leaderboard_command_reports_the_length_effect_with_its_interval(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _leader(url, length_control=False)
    _leader(url, length_control=True)
    plain = _leaderboard(url, "plain", capsys)
    controlled = _leaderboard(url, "controlled", capsys)  # no option: the study's setting
    assert plain["length_effect"] is None
    effect = controlled["length_effect"]
    assert effect["low"] < effect["estimate"] < effect["high"]
    assert controlled["rows"][0]["trial"] == 2 and plain["rows"][0]["trial"] == 3


def test_every_reader_scores_a_length_controlled_study_as_its_workers(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _, worker = _leader(url, length_control=True)
    scores = {p.id: s for p, s in worker.scores().items()}
    loaded = Arena.load(url, "controlled")
    assert {p.id: s for p, s in loaded.scores().items()} == pytest.approx(scores, abs=1e-6)
    rows = _leaderboard(url, "controlled", capsys)["rows"]
    assert {r["player_id"]: r["score"] for r in rows} == pytest.approx(scores, abs=1e-6)
    review = open_arena(url, "controlled")  # what the review page fits its contenders with
    assert {p.id: s for p, s in review.scores().items()} == pytest.approx(scores, abs=1e-6)
    assert worker.length_control and loaded.length_control and review.length_control


def test_a_worker_that_leaves_length_control_unset_fits_the_studys_setting(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    Arena(url, "s", SimulatedJudge(), PROMPTS, length_control=True)
    assert Arena(url, "s", SimulatedJudge(), PROMPTS).length_control is True
    assert Arena(url, "new", SimulatedJudge(), PROMPTS).length_control is False


def test_a_worker_with_another_length_control_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    Arena(url, "s", SimulatedJudge(), PROMPTS, length_control=True)
    message = r"study 's' in 'sqlite:///.*db\.sqlite' uses length_control=True, not False"
    with pytest.raises(PromptSetMismatchError, match=message):
        Arena(url, "s", SimulatedJudge(), PROMPTS, length_control=False)


def test_the_old_length_control_flag_is_refused_on_a_study_without_it(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _leader(url, length_control=False)
    _leader(url, length_control=True)
    argv = ["leaderboard", "--storage", url, "--json", "--length-control"]
    assert main([*argv, "--study-name", "plain"]) == 2
    error = capsys.readouterr().err
    assert "study 'plain' is not length-controlled" in error and "Traceback" not in error
    assert _leaderboard(url, "controlled", capsys, "--length-control") == _leaderboard(
        url, "controlled", capsys
    )
