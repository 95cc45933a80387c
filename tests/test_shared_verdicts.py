"""Specification: one verdict never decides two games of one pair of players.

Duplicate prompts once made it happen: with equal answers to both copies, the verdict cache
(keyed by content) gave the second copy the first one's verdict, and ``check`` was clean.
Prompt sets with duplicates are refused now (``tests/test_prompts.py``); ``check`` reports
a study stored before that.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from optuna_pandalm import Arena, Prompt, PromptFormatError, Store
from optuna_pandalm.commands.cli import main
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
from optuna_pandalm.testing import simulated_response as answer

SHARED = "verdicts shared by games"


def test_an_arena_refuses_a_prompt_set_with_duplicates():
    prompts = [Prompt("Add 2 and 3."), Prompt("Name a colour."), Prompt("Add 2 and 3.")]
    with pytest.raises(PromptFormatError, match=r"record 2: duplicate prompt.*record 0"):
        Arena("sqlite://", "s", SimulatedJudge(), prompts)


def test_check_reports_a_verdict_deciding_two_games_of_one_pair(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    arena = Arena(url, "s", SimulatedJudge(), simulated_prompts(2), seed=0)
    arena.evaluate(0, 1, [answer(0.0)] * 2)
    arena.evaluate(1, 1, [answer(1.0)] * 2)
    assert arena.check()[SHARED] == []
    # What a duplicate prompt did: prompt 1's game stored with prompt 0's verdict.
    with sa.create_engine(url).begin() as connection:
        verdict = connection.execute(
            sa.text("SELECT verdict_id FROM pandalm_games WHERE prompt_position = 0")
        ).scalar_one()
        connection.execute(
            sa.text("UPDATE pandalm_games SET verdict_id = :v WHERE prompt_position = 1"),
            {"v": verdict},
        )
    found = Arena.load(url, "s").check()[SHARED]
    assert len(found) == 1 and "on prompts 0 and 1" in found[0]
    assert main(["check", "--storage", url, "--study-name", "s"]) == 1
    assert f"FAIL  {SHARED}: 1" in capsys.readouterr().out


def test_players_with_equal_texts_may_share_a_cached_verdict():
    # Both orders judged: trial 2, answering as trial 0 did, meets verdicts already cached.
    arena = Arena("sqlite://", "s", SimulatedJudge(), simulated_prompts(2), position="swap")
    arena.evaluate(0, 1, [answer(0.0)] * 2)
    arena.evaluate(1, 1, [answer(3.0)] * 2)  # the incumbent: trial 2's opponent
    arena.evaluate(2, 1, [answer(0.0)] * 2)
    assert arena.cache_hits > 0
    assert arena.check()[SHARED] == []


def test_a_study_stored_with_duplicate_prompts_still_opens_read_only(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    store.bind_study("old", store.save_prompt_set([Prompt("same"), Prompt("same")]))
    store.close()
    assert len(Arena.load(url, "old").prompts) == 2
    with pytest.raises(PromptFormatError, match="duplicate prompt"):
        Arena(url, "old", SimulatedJudge(), [Prompt("same"), Prompt("same")])
