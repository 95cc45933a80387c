"""Specification: a failure the user can fix is one clear line (exit 2 on the command
line), never a raw ``OSError``, a traceback or a bare ``'Record does not exist.'``."""

from __future__ import annotations

import os

import pytest

from optuna_pandalm import Arena, Prompt, StoreError
from optuna_pandalm.commands.cli import main
from optuna_pandalm.testing import SimulatedJudge


@pytest.fixture
def study_url(tmp_path) -> str:
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    Arena(url, "s", SimulatedJudge(), [Prompt("p")]).store.close()
    optuna.create_study(study_name="s", storage=url)
    return url


def _block_the_lock_file(tmp_path) -> None:
    """What a read-only folder does to the lock file beside the database (simulated with a
    folder in its place: a read-only folder does not stop root, who runs the CI)."""
    lock = tmp_path / "s.db.pandalm-lock"
    if lock.exists():
        os.remove(lock)
    lock.mkdir()


def test_an_arena_on_a_folder_it_cannot_write_raises_a_store_error(study_url, tmp_path):
    _block_the_lock_file(tmp_path)
    with pytest.raises(StoreError, match=r"cannot create the lock file .*s\.db\.pandalm-lock"):
        Arena(study_url, "s", SimulatedJudge(), [Prompt("p")])


def test_upgrade_on_a_folder_it_cannot_write_is_one_line(study_url, tmp_path, capsys):
    _block_the_lock_file(tmp_path)
    assert main(["upgrade", "--storage", study_url]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "its folder must be writable" in error


@pytest.mark.parametrize(
    ("out", "said"),
    [("FOLDER", "is a folder: give the HTML file"), ("/proc/report.html", "cannot write")],
    ids=["folder", "unwritable"],
)
def test_report_to_a_folder_or_an_unwritable_path_is_one_line(
    study_url, tmp_path, capsys, out, said
):
    out = str(tmp_path) if out == "FOLDER" else out
    assert main(["report", "--storage", study_url, "--study-name", "s", "--out", out]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and said in error


def test_importing_votes_from_a_missing_dashboard_study_names_it(study_url, capsys):
    argv = ["review", "--storage", study_url, "--study-name", "s"]
    assert main([*argv, "--import-dashboard", "nope"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Record does not exist" not in error
    assert "--import-dashboard nope: no study of that name in" in error
