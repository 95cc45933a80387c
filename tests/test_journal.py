"""Specification of the verdict journal: what a worker judged outlives the worker.

A worker whose store cannot take its verdicts (an outage past ``outage_timeout``, a full
disk, a read-only file) dies with them unsaved; the next arena of the study on the machine,
``check --repair`` and ``upgrade`` store them from the journal, and nothing is judged twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from optuna_pandalm import Arena, StoreError
from optuna_pandalm.commands.cli import main
from optuna_pandalm.judges.base import JudgeRequest, Verdict
from optuna_pandalm.store import (
    JOURNAL_ENV,
    Store,
    VerdictKey,
    journal_folder,
    pending_entries,
    replay_journals,
    text_hash,
)
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = simulated_prompts(8, seed=5)
WEAK = [simulated_response(0.2, text=f"weak {i}") for i in range(8)]
STRONG = [simulated_response(0.9, text=f"strong {i}") for i in range(8)]
SETTINGS = {"seed": 0, "batch_size": 8, "min_games": 8, "baseline": ("base", WEAK)}


class LoggingJudge(SimulatedJudge):
    """A simulated judge that writes down the cache key of every request it answers."""

    def __init__(self, log: str) -> None:
        super().__init__(seed=0)
        self.log = log

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        verdicts = super().judge(requests)
        by_instruction = {p.instruction: p.hash for p in PROMPTS}
        with open(self.log, "a") as log:
            for r in requests:
                first, second = text_hash(r.response_1), text_hash(r.response_2)
                log.write(f"{by_instruction[r.instruction]} {first} {second}\n")
        return verdicts


def judged(log: Path) -> list[VerdictKey]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [VerdictKey(*line.split()) for line in lines]


# The worker: its store refuses one kind of write; it dies of the StoreError, or is killed
# (SIGKILL) while the store is being asked, as in an outage longer than it waits.
_WORKER = """
import os, signal, sys
sys.path.insert(0, {root!r})
from optuna_pandalm import Arena, StoreError
from optuna_pandalm.errors import StoreError
from optuna_pandalm.store import Store
from tests.test_journal import SETTINGS, STRONG, PROMPTS, LoggingJudge

class Refusing(Store):
    def {refused}(self, *args, **kwargs):
        if {killed!r}:
            os.kill(os.getpid(), signal.SIGKILL)
        raise StoreError("{refused} failed: database unreachable for 120.0 s")

arena = Arena(Refusing({url!r}), "j", LoggingJudge({log!r}), PROMPTS, **SETTINGS)
arena.evaluate(0, 1, STRONG)
"""


def _dead_worker(url: str, log: Path, *, refused: str, killed: bool) -> None:
    Arena(url, "j", SimulatedJudge(), PROMPTS, **SETTINGS)  # the study exists
    script = _WORKER.format(root=str(ROOT), url=url, log=str(log), refused=refused, killed=killed)
    worker = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert worker.returncode == (-9 if killed else 1), worker.stderr
    assert len(judged(log)) == 8  # it judged its batch before the store refused it


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'j.db'}"


@pytest.mark.parametrize("killed", [False, True], ids=["store-error", "sigkill"])
@pytest.mark.parametrize("refused", ["save_verdicts", "save_games"])
def test_the_next_arena_stores_what_a_dead_worker_judged_and_judges_nothing_twice(
    url, tmp_path, refused, killed
):
    log = tmp_path / "judged.log"
    _dead_worker(url, log, refused=refused, killed=killed)
    judge = LoggingJudge(str(log))
    arena = Arena(url, "j", judge, PROMPTS, **SETTINGS)  # replays the journal
    assert set(arena.store.find_verdicts(judge.name, judged(log))) == set(judged(log))
    stored_games = int(arena.standings().counts.count.sum())
    assert stored_games == (8 if refused == "save_games" else 0)
    result = arena.evaluate(0, 1, STRONG)  # the dead worker's checkpoint again
    assert arena.judge_calls == 0 and len(judged(log)) == 8  # nothing judged twice
    assert result.games + stored_games == 8 and not any(arena.check().values())
    assert pending_entries(arena.store.masked_url, "j") == {}  # replayed: deleted


def test_a_torn_last_line_is_skipped_with_a_warning(url, tmp_path, caplog):
    log = tmp_path / "judged.log"
    _dead_worker(url, log, refused="save_verdicts", killed=True)
    (segment,) = journal_folder(Store(url).masked_url, "j").glob("*.jsonl")
    with open(segment, "a") as torn:
        torn.write('{"kind": "verdict", "study": "j", "arena_id": 1, "jud')  # no newline
    with caplog.at_level(logging.WARNING):
        done = replay_journals(Store(url), "j")
    assert (done.verdicts, done.torn) == (8, 1)
    assert "torn" in caplog.text
    judge = LoggingJudge(str(log))
    assert len(Store(url).find_verdicts(judge.name, judged(log))) == 8


def test_check_reports_unsaved_verdicts_and_repair_stores_them(url, tmp_path, capsys):
    log = tmp_path / "judged.log"
    _dead_worker(url, log, refused="save_verdicts", killed=True)
    command = ["check", "--storage", url, "--study-name", "j"]
    assert main(command) == 1
    out = capsys.readouterr().out
    assert "FAIL  unsaved verdicts in this machine's journal: 1" in out
    assert "8 verdicts and 0 games in" in out and "check --repair" in out
    assert main([*command, "--repair"]) == 0
    assert "journal: stored 8 verdicts and 0 games" in capsys.readouterr().out
    assert main(command) == 0  # stored: nothing left to report


def test_upgrade_stores_what_the_journal_holds(url, tmp_path, capsys):
    log = tmp_path / "judged.log"
    _dead_worker(url, log, refused="save_games", killed=False)
    assert main(["upgrade", "--storage", url]) == 0
    assert "journal: stored 0 verdicts and 8 games" in capsys.readouterr().out
    assert int(Arena.load(url, "j").standings().counts.count.sum()) == 8


_REPLAYER = """
import sys
sys.path.insert(0, {root!r})
from optuna_pandalm.store import Store, replay_journals
print(replay_journals(Store({url!r}), "j").games)
"""


def test_replaying_twice_or_by_two_processes_at_once_stores_nothing_twice(url, tmp_path):
    log = tmp_path / "judged.log"
    _dead_worker(url, log, refused="save_games", killed=True)
    (segment,) = journal_folder(Store(url).masked_url, "j").glob("*.jsonl")
    kept = shutil.copy(segment, tmp_path / "kept.jsonl")
    script = _REPLAYER.format(root=str(ROOT), url=url)
    replayers = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=300)[0] for r in replayers]
    assert all(r.returncode == 0 for r in replayers)
    assert sorted(int(o) for o in outputs) in ([0, 8], [8, 8])  # 8 + 8: one after the other
    segment.parent.mkdir(parents=True)  # replayed: its folders are gone
    shutil.copy(kept, segment)  # and once more, the same segment
    assert replay_journals(Store(url), "j").games == 8
    arena = Arena.load(url, "j")
    assert int(arena.standings().counts.count.sum()) == 8 and not any(arena.check().values())


_CLEAN_WORKER = """
import sys
sys.path.insert(0, {root!r})
from optuna_pandalm import Arena
from optuna_pandalm.testing import SimulatedJudge
from tests.test_journal import SETTINGS, STRONG, PROMPTS
Arena({url!r}, "j", SimulatedJudge(), PROMPTS, **SETTINGS).evaluate(0, 1, STRONG)
"""


def test_a_worker_that_never_failed_leaves_no_journal(url):
    script = _CLEAN_WORKER.format(root=str(ROOT), url=url)
    worker = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert worker.returncode == 0, worker.stderr
    assert os.listdir(os.environ[JOURNAL_ENV]) == []


def test_a_batch_of_games_the_store_refused_is_stored_by_the_same_worker_later(url, monkeypatch):
    arena = Arena(url, "j", SimulatedJudge(), PROMPTS, **SETTINGS)
    save_games = arena.store.save_games
    refusals = iter([StoreError("save_games failed: disk full")])

    def refusing(*args, **kwargs):
        error = next(refusals, None)
        if error is not None:
            raise error
        return save_games(*args, **kwargs)

    monkeypatch.setattr(arena.store, "save_games", refusing)
    with pytest.raises(StoreError, match="disk full"):
        arena.evaluate(0, 1, STRONG)  # judged and its verdicts stored; its games refused
    assert int(arena.standings().counts.count.sum()) == 0
    arena.evaluate(1, 1, [simulated_response(0.5, text=f"mid {i}") for i in range(8)])
    # The next write went through, and the refused games came back from the journal.
    (player,) = arena.trial_players(0)
    assert sum(arena.match_record(player, arena.baseline)) == 8
    assert arena.matches.journal is not None and arena.matches.journal.path is not None
    assert arena.matches.journal.path.stat().st_size == 0  # stored: emptied


def test_a_journal_that_cannot_be_written_is_given_up_with_a_warning(url, tmp_path, caplog):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # a file where the journal's folder would be
    arena = Arena(url, "j", SimulatedJudge(), PROMPTS, journal=blocked, **SETTINGS)
    with caplog.at_level(logging.WARNING):
        assert arena.evaluate(0, 1, STRONG).games == 8  # the study goes on
    assert "cannot write the verdict journal" in caplog.text
