"""Specification: bad input to the arena and the CLI is one clear error, nothing stored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optuna_pandalm import Arena
from optuna_pandalm.commands.cli import main
from optuna_pandalm.prompts import Prompt, PromptFormatError
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts

PROMPTS = simulated_prompts(3)


@pytest.fixture
def arena() -> Arena:
    return Arena("sqlite://", "s", SimulatedJudge(), PROMPTS, seed=0)


@pytest.mark.parametrize(
    ("generations", "message"),
    [
        ("abc", "must be a list of strings, one per prompt, got str"),
        (None, "got NoneType"),
        ((t for t in ["a", "b", "c"]), "got generator"),
    ],
)
def test_generations_that_are_not_a_list_of_strings_are_refused(arena, generations, message):
    with pytest.raises(TypeError, match=message):
        arena.evaluate(0, 1, generations)
    assert arena.players() == []


def test_a_fractional_step_is_refused_not_rounded(arena):
    with pytest.raises(ValueError, match=r"step must be an integer, got 1\.7"):
        arena.evaluate(0, 1.7, ["a", "b", "c"])
    assert arena.players() == []
    assert arena.evaluate(0, np.int64(2), ["a", "b", "c"]).player.step == 2
    assert arena.evaluate(0, 3.0, ["a", "b", "c"]).player.step == 3


def test_re_evaluating_a_checkpoint_with_other_texts_is_refused(arena):
    arena.evaluate(0, 1, ["a", "b", "c"])
    arena.evaluate(0, 1, ["a", "b", "c"])  # the same texts again: fine
    with pytest.raises(ValueError, match=r"trial 0 step 1 was already evaluated.*prompt 1"):
        arena.evaluate(0, 1, ["a", "B", "c"])


def test_a_lone_surrogate_in_a_prompt_names_the_prompt():
    prompts = [Prompt("fine"), Prompt("broken \ud800 text")]
    with pytest.raises(PromptFormatError, match=r"record 1: field 'instruction' is not valid"):
        Arena("sqlite://", "s", SimulatedJudge(), prompts)


def test_the_prompts_command_reports_a_lone_surrogate_with_exit_2(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"instruction": "ok"}, {"instruction": "bad \ud800"}]))
    assert main(["prompts", str(path)]) == 2
    error = capsys.readouterr().err
    assert "line" in error and "'instruction' is not valid Unicode" in error


def test_a_password_in_the_url_query_is_masked_in_errors(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'none.db'}?password=hunter2&token=abc"
    assert main(["leaderboard", "--storage", url, "--study-name", "s"]) == 2
    error = capsys.readouterr().err
    assert "none.db" in error
    assert "hunter2" not in error and "token=abc" not in error
