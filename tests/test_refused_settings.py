"""Specification: a setting that cannot work is refused where it is given, naming itself,
before anything is stored (not an AssertionError, AttributeError or driver error later)."""

from __future__ import annotations

import math

import pytest

from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner, Prompt
from optuna_pandalm.commands.cli import main
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts

PROMPTS = simulated_prompts(3)


def _arena(**settings) -> Arena:
    return Arena("sqlite://", "s", SimulatedJudge(), PROMPTS, **settings)


@pytest.mark.parametrize(
    ("settings", "error", "named"),
    [
        ({"judge_retries": -1}, ValueError, "judge_retries"),
        ({"racing_alpha": 5}, ValueError, "racing_alpha"),
        ({"racing_alpha": math.nan}, ValueError, "racing_alpha"),
        ({"min_games": -5}, ValueError, "min_games"),
        ({"p_best_threshold": math.nan}, ValueError, "p_best_threshold"),
        ({"p_best_threshold": 1.5}, ValueError, "p_best_threshold"),
        ({"max_extra_matches": -1}, ValueError, "max_extra_matches"),
    ],
)
def test_an_arena_setting_out_of_range_is_refused_by_name(settings, error, named):
    with pytest.raises(error, match=named):
        _arena(**settings)


@pytest.mark.parametrize(
    ("arguments", "error", "named"),
    [
        (("sqlite://", "", SimulatedJudge(), PROMPTS), ValueError, "study_name"),
        (("sqlite://", None, SimulatedJudge(), PROMPTS), TypeError, "study_name"),
        (("sqlite://", "s", None, PROMPTS), TypeError, "judge"),
        ((123, "s", SimulatedJudge(), PROMPTS), TypeError, "storage"),
    ],
)
def test_an_arena_argument_of_the_wrong_kind_is_refused_by_name(arguments, error, named):
    with pytest.raises(error, match=named):
        Arena(*arguments)


def test_a_refused_setting_stores_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(ValueError, match="p_best_threshold"):
        Arena(url, "s", SimulatedJudge(), PROMPTS, p_best_threshold=math.nan)
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize(
    ("make", "error", "named"),
    [
        (lambda arena: BradleyTerrySampler(None), TypeError, "arena"),
        (lambda arena: BradleyTerrySampler(arena, "tpe"), TypeError, "base_sampler"),
        (lambda arena: JudgePruner("arena"), TypeError, "arena"),
        (lambda arena: JudgePruner(arena, n_warmup_steps=-1), ValueError, "n_warmup_steps"),
    ],
)
def test_optuna_adapters_refuse_what_is_not_an_arena_or_a_sampler(make, error, named):
    with pytest.raises(error, match=named):
        make(_arena())


def test_a_step_the_database_cannot_hold_is_refused_before_it(storage_url):
    # players.step is a 32-bit integer on PostgreSQL, a 64-bit one on SQLite.
    largest = 2**31 - 1 if storage_url.startswith("postgresql") else 2**63 - 1
    arena = Arena(storage_url, "s", SimulatedJudge(), PROMPTS)
    with pytest.raises(ValueError, match=rf"step {largest + 1} is out of range"):
        arena.evaluate(0, largest + 1, ["a", "b", "c"])
    assert arena.players() == []
    assert arena.evaluate(0, largest, ["a", "b", "c"]).player.step == largest


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["leaderboard", "--top", "-1"], "--top must be >= 0"),
        (["check", "--grace-period", "-5"], "--grace-period must be >= 0"),
        (["check", "--grace-period", "nan"], "--grace-period must be >= 0"),
    ],
)
def test_a_command_option_out_of_range_is_one_line_and_exit_2(tmp_path, capsys, argv, named):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Arena(url, "s", SimulatedJudge(), [Prompt("p")])
    assert main([argv[0], "--storage", url, "--study-name", "s", *argv[1:]]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and named in error
