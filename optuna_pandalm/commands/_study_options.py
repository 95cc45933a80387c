"""The options of every command on a stored study: ``--storage`` and ``--study-name``.

How a study is scored (position, length control, robust errors) is stored with it, and
every command reads it from there. ``--length-control``, which readers once had to repeat,
is still accepted so that scripts that passed it rightly keep working; on a study that is
not length-controlled it is an error (exit 2), never another fit.
"""

from __future__ import annotations

import argparse
from typing import Any

from optuna_pandalm.errors import CommandError

__all__ = ["add_study_arguments", "refuse_another_length_control"]


def add_study_arguments(command: argparse.ArgumentParser) -> None:
    """``--storage``, ``--study-name`` and the kept ``--length-control``."""
    command.add_argument("--storage", required=True, help="SQLAlchemy URL")
    command.add_argument("--study-name", required=True)
    command.add_argument(
        "--length-control",
        action="store_true",
        help="not needed: scores use the study's stored setting; refused (exit 2) on a "
        "study without length control",
    )


def refuse_another_length_control(args: argparse.Namespace, arena: Any) -> None:
    """Stop when ``--length-control`` was given for a study stored without it.

    Raises:
        CommandError: naming the study and what to do.
    """
    if getattr(args, "length_control", False) and not arena.length_control:
        raise CommandError(
            f"study {args.study_name!r} is not length-controlled (the setting is stored with "
            "the study, and every command uses it): drop --length-control"
        )
