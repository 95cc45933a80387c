"""Specification: Ctrl-C ends a command with exit status 130 and one line, wherever it lands
(also in code run from source text, where CPython would otherwise end the process by SIGINT
after ``main`` handled the interrupt)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.signals import default_sigint

ROOT = Path(__file__).resolve().parents[1]


def _interrupted(command: list[str], tmp_path: Path, *, after: float) -> tuple[int, str]:
    """Run ``command``, send SIGINT ``after`` seconds past its "preparing" line; return its
    exit status and its stderr."""
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "OPTUNA_PANDALM_CACHE": str(tmp_path / "cache")}
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stderr=stderr, text=True, preexec_fn=default_sigint
        )
        deadline = time.monotonic() + 300
        while "preparing" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.05)
        time.sleep(after)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    return process.returncode, log.read_text()


def _assert_ends_in_one_line(status: int, err: str) -> None:
    assert status == 130, f"exit status {status}: {err[-3000:]}"
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("optuna-pandalm demo: interrupted (Ctrl-C)")


@pytest.mark.parametrize("run", range(3))
def test_ctrl_c_landing_in_code_run_from_source_text_exits_130(run, tmp_path):
    # Before the fix: -2 (killed by SIGINT at exit) every time, after the one line.
    command = [sys.executable, "-m", "tests.interrupted_demo", str(tmp_path)]
    _assert_ends_in_one_line(*_interrupted(command, tmp_path, after=0.2 * run))


@pytest.mark.parametrize("after", [0.0, 0.5, 1.5, 4.0])
def test_ctrl_c_in_demo_at_any_moment_exits_130_in_one_line(after, tmp_path):
    command = [sys.executable, "-m", "optuna_pandalm.commands.cli", "demo", "--out", str(tmp_path)]
    _assert_ends_in_one_line(*_interrupted(command, tmp_path, after=after))
