"""The options of every command on a stored study: ``--storage`` and ``--study-name``.

How a study is scored (position, length control, robust errors) is stored with it, and
every command reads it from there. ``--length-control``, which readers once had to repeat,
is still accepted so that scripts that passed it rightly keep working; on a study that is
not length-controlled it is an error (exit 2), never another fit.

``--storage`` may be left out when ``$OPTUNA_PANDALM_STORAGE`` holds the URL: a URL in argv
is shown by ``ps`` to every user of the machine, with its password.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from optuna_pandalm.errors import CommandError

__all__ = [
    "STORAGE_ENV",
    "add_storage_argument",
    "add_study_arguments",
    "refuse_another_length_control",
    "resolve_storage",
]

STORAGE_ENV = "OPTUNA_PANDALM_STORAGE"
"""The environment variable a command reads its storage URL from when ``--storage`` is
absent."""


def add_storage_argument(command: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--storage``, optional on the command line: :func:`resolve_storage` falls back on
    ``$OPTUNA_PANDALM_STORAGE``, and refuses neither when ``required``."""
    command.add_argument(
        "--storage",
        default=None,
        help=f"SQLAlchemy URL; default: ${STORAGE_ENV} (which keeps a password out of `ps`)"
        + ("" if required else ", else OUT/demo.db"),
    )
    command.set_defaults(storage_required=required)


def resolve_storage(args: argparse.Namespace) -> None:
    """Set ``args.storage`` from ``$OPTUNA_PANDALM_STORAGE`` when ``--storage`` is absent.

    Raises:
        CommandError: neither is given to a command that needs a storage.
    """
    if not hasattr(args, "storage") or args.storage is not None:
        return
    args.storage = os.environ.get(STORAGE_ENV) or None
    if args.storage is None and getattr(args, "storage_required", False):
        raise CommandError(f"no storage: give --storage URL or set ${STORAGE_ENV}")


def add_study_arguments(command: argparse.ArgumentParser) -> None:
    """``--storage``, ``--study-name`` and the kept ``--length-control``."""
    add_storage_argument(command)
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
