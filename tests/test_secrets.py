"""Specification: no password reaches the screen or ``ps``.

Masking works on text (``optuna_pandalm.url_masking``), so it also covers URLs no parser
accepts and URLs quoted inside error messages; every command reads its storage URL from
``$OPTUNA_PANDALM_STORAGE`` when ``--storage`` is absent, so the URL need not be in argv.
"""

from __future__ import annotations

import pytest

from optuna_pandalm import Arena, Prompt, StoreError
from optuna_pandalm.commands.cli import build_parser, main
from optuna_pandalm.testing import SimulatedJudge
from optuna_pandalm.url_masking import mask_secrets, mask_url


def test_a_password_holding_an_at_sign_is_masked_whole():
    masked = mask_url("postgresql://alice:hunter2@secret@host/db")
    assert masked == "postgresql://alice:***@host/db"


@pytest.mark.parametrize("key", ["password", "sslpassword", "passwd", "PASS", "api_key", "tok"])
def test_query_values_named_as_secrets_are_masked(key):
    masked = mask_url(f"postgresql://db/hpo?sslmode=require&{key}=hunter2")
    if key == "tok":  # not a secret's name: left alone
        assert masked.endswith("tok=hunter2")
    else:
        assert "hunter2" not in masked and masked.endswith(f"{key}=***")


def test_a_url_quoted_in_an_error_message_is_masked():
    message = (
        "connection to 'postgresql://bob:hunter2@db:5432/hpo?sslpassword=x1' failed; "
        "dsn: host=db password=hunter2"
    )
    masked = mask_secrets(message)
    assert "hunter2" not in masked and "x1" not in masked
    assert masked.startswith("connection to 'postgresql://bob:***@db:5432/hpo?sslpassword=***'")


def test_a_storage_url_whose_password_holds_an_at_sign_is_refused_masked(capsys):
    url = "postgresql://alice:hunter2@secret@127.0.0.1:1/db"
    assert main(["leaderboard", "--storage", url, "--study-name", "s"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "write it as '%40'" in error
    assert "hunter2" not in error and "secret" not in error


def test_a_command_masks_a_url_inside_the_error_it_prints(monkeypatch, capsys):
    def unreachable(*args, **kwargs):
        raise StoreError("driver: could not connect to postgresql://bob:hunter2@db/hpo")

    monkeypatch.setattr(Arena, "load", unreachable)
    assert main(["leaderboard", "--storage", "sqlite://", "--study-name", "s"]) == 2
    error = capsys.readouterr().err
    assert "hunter2" not in error and "postgresql://bob:***@db/hpo" in error


@pytest.fixture
def study_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 's.db'}"
    Arena(url, "s", SimulatedJudge(), [Prompt("p")]).store.close()
    return url


@pytest.mark.parametrize(
    "argv",
    [
        ["leaderboard", "--study-name", "s"],
        ["check", "--study-name", "s"],
        ["upgrade"],
        ["report", "--study-name", "s", "--out", "REPORT"],
    ],
    ids=lambda argv: argv[0],
)
def test_every_command_reads_the_storage_url_from_the_environment(
    study_url, tmp_path, monkeypatch, capsys, argv
):
    import optuna

    optuna.create_study(study_name="s", storage=study_url)  # for report
    monkeypatch.setenv("OPTUNA_PANDALM_STORAGE", study_url)
    argv = [str(tmp_path / "r.html") if a == "REPORT" else a for a in argv]
    assert main(argv) == 0, capsys.readouterr().err


def test_without_storage_or_environment_a_command_says_how_to_give_one(monkeypatch, capsys):
    monkeypatch.delenv("OPTUNA_PANDALM_STORAGE", raising=False)
    assert main(["leaderboard", "--study-name", "s"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "give --storage URL or set $OPTUNA_PANDALM_STORAGE" in error


def test_every_help_with_storage_names_the_environment_variable():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    with_storage = {
        name: command
        for name, command in commands.items()
        if any(a.dest == "storage" for a in command._actions)
    }
    assert {"leaderboard", "check", "upgrade", "report", "review", "demo"} <= set(with_storage)
    for name, command in with_storage.items():
        assert "$OPTUNA_PANDALM_STORAGE" in command.format_help(), name
