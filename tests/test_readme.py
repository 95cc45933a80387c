"""The README as a newcomer uses it: its training script runs as written, and its command
table lists every command ``optuna-pandalm --help`` has."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    """The README's text under the heading ``## title``, up to the next ``## ``."""
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_training_script_runs_as_written(tmp_path):
    script = re.findall(r"```python\n(.*?)```", _section("In your training script"), re.S)[0]
    (tmp_path / "train.py").write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "train.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "OPTUNA_PANDALM_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    top3 = done.stdout.strip().splitlines()[-3:]  # after the Trainer's own summary lines
    assert all(re.match(r"trial \d+ step \d+ [-+]\d+\.\d+ P\(best\)", line) for line in top3)


def test_the_command_table_lists_every_command_of_the_cli():
    from optuna_pandalm.commands.cli import build_parser

    # what `optuna-pandalm --help` lists under COMMAND: one name per line, indented by 4
    shown = build_parser().format_help().split("  COMMAND\n", 1)[1].split("\noptions:")[0]
    commands = set(re.findall(r"^    ([a-z][a-z-]*)", shown, re.M))
    table = _section("Commands")
    listed = set(re.findall(r"^\| `optuna-pandalm ([a-z-]+)", table, re.M))
    assert len(commands) >= 9 and listed == commands, commands ^ listed
