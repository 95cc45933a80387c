"""Specification of the standings: one immutable value, a pure function of stored games."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from optuna_pandalm import Arena
from optuna_pandalm.arena import Standings
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

PROMPTS = simulated_prompts(16, seed=5)


def _played(url: str, *, seed: int) -> Arena:
    arena = Arena(url, "s", SimulatedJudge(seed=seed), PROMPTS, seed=seed, racing=False)
    for trial, quality in enumerate([0.3, 0.6, 0.6, 0.61, 0.2]):
        texts = [simulated_response(quality, text=f"t{trial} p{i}") for i in range(16)]
        arena.evaluate(trial, 1, texts)
    return arena


def test_p_best_is_the_same_in_every_process_and_command(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    writer = _played(url, seed=7)  # the writer's seed is not the readers'
    mine = {r.player_id: r.p_best for r in writer.leaderboard()}
    reader = {r.player_id: r.p_best for r in Arena.load(url, "s").leaderboard()}
    command = subprocess.run(
        [
            sys.executable,
            "-m",
            "optuna_pandalm.commands.cli",
            "leaderboard",
            "--storage",
            url,
            "--study-name",
            "s",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = {r["player_id"]: r["p_best"] for r in json.loads(command.stdout)["rows"]}
    assert len(mine) == 5 and 0 < max(mine.values()) < 1
    for player_id, p in mine.items():
        assert reader[player_id] == pytest.approx(p, abs=1e-9)
        assert printed[player_id] == pytest.approx(p, abs=1e-9)


def test_standings_are_immutable_and_rows_carry_player_ids(tmp_path):
    arena = _played(f"sqlite:///{tmp_path / 'db.sqlite'}", seed=1)
    standings = arena.standings()
    assert isinstance(standings, Standings)
    with pytest.raises(AttributeError):
        standings.players = ()  # type: ignore[misc]
    by_id = {p.id: p for p in standings.players}
    for row in standings.leaderboard():
        player = by_id[row.player_id]
        assert (player.trial, player.step, player.name) == (row.trial, row.step, row.name)
        assert row.score == pytest.approx(standings.score(player))
    assert arena.standings() is standings  # nothing stored since: the same value


def test_pair_records_agree_with_the_stored_match_records(tmp_path):
    arena = _played(f"sqlite:///{tmp_path / 'db.sqlite'}", seed=2)
    standings = arena.standings()
    players = list(standings.players)
    records = standings.pair_records(players)
    for i, a in enumerate(players):
        for j, b in enumerate(players):
            if i != j:
                assert tuple(records[i, j].astype(int)) == arena.match_record(a, b)
    np.testing.assert_array_equal(records.sum(axis=1), standings.records)
