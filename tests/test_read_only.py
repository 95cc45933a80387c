"""Specification: commands that report create no file, table or row, even on a wrong path."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from optuna_pandalm import Arena
from optuna_pandalm.commands.cli import main
from optuna_pandalm.store import PromptSetMismatchError
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts


@pytest.mark.parametrize("command", [["leaderboard"], ["check"], ["report", "--out", "r.html"]])
def test_reading_commands_on_a_mistyped_sqlite_path_create_nothing(tmp_path, capsys, command):
    missing = tmp_path / "typo.db"
    argv = [*command, "--storage", f"sqlite:///{missing}", "--study-name", "s"]
    argv = [a if a != "r.html" else str(tmp_path / "r.html") for a in argv]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "typo.db" in error and "Traceback" not in error
    assert not missing.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_report_into_a_missing_folder_creates_no_folder(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    Arena(url, "s", SimulatedJudge(), simulated_prompts(4))
    out = tmp_path / "no" / "such" / "dir" / "r.html"
    assert main(["report", "--storage", url, "--study-name", "s", "--out", str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_a_refused_prompt_set_writes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    Arena(url, "s", SimulatedJudge(), simulated_prompts(4, seed=0))
    engine = sa.create_engine(url)

    def rows() -> tuple[int, int]:
        with engine.connect() as connection:
            return (
                connection.execute(sa.text("SELECT count(*) FROM pandalm_prompt_sets")).scalar(),
                connection.execute(sa.text("SELECT count(*) FROM pandalm_prompts")).scalar(),
            )

    before = rows()
    with pytest.raises(PromptSetMismatchError, match="already uses prompt set"):
        Arena(url, "s", SimulatedJudge(), simulated_prompts(5, seed=1))
    with pytest.raises(PromptSetMismatchError, match="position"):
        Arena(url, "s", SimulatedJudge(), simulated_prompts(4, seed=0), position="swap")
    assert rows() == before
    engine.dispose()


def _every_row(url: str) -> dict[str, list[tuple]]:
    """Every row of every table of the database."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = {
            name: sorted(map(tuple, connection.execute(sa.text(f"SELECT * FROM {name}"))))
            for name in sa.inspect(connection).get_table_names()
        }
    engine.dispose()
    return rows


@pytest.mark.parametrize("setting", ["length_control", "robust_errors"])
def test_a_worker_with_another_scoring_setting_is_refused_and_writes_nothing(tmp_path, setting):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    prompts = simulated_prompts(4, seed=0)
    Arena(url, "s", SimulatedJudge(), prompts, **{setting: True}).store.close()
    before = _every_row(url)
    message = rf"study 's' in 'sqlite:///.*' uses {setting}=True, not False"
    with pytest.raises(PromptSetMismatchError, match=message):
        Arena(url, "s", SimulatedJudge(), prompts, **{setting: False})
    assert _every_row(url) == before
    assert getattr(Arena.load(url, "s"), setting) is True


def test_upgrade_migrates_a_version_0_database_and_says_what_it_did(tmp_path, capsys):
    import shutil
    from pathlib import Path

    path = tmp_path / "old.sqlite"
    shutil.copy(Path(__file__).parent / "data" / "schema_v0.sqlite", path)
    url = f"sqlite:///{path}"
    assert main(["upgrade", "--storage", url]) == 0
    assert "schema 0 -> 4, every row kept" in capsys.readouterr().out
    assert main(["upgrade", "--storage", url]) == 0
    assert "schema 4, up to date" in capsys.readouterr().out


def test_upgrade_on_a_mistyped_path_creates_nothing(tmp_path, capsys):
    assert main(["upgrade", "--storage", f"sqlite:///{tmp_path / 'typo.db'}"]) == 2
    assert "typo.db" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
