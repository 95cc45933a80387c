"""Every exception optuna-pandalm raises on purpose, under one root.

Catch :class:`PandaLMError` to catch any of them. Where a built-in says what kind of
mistake it is (a bad value, a missing file), the class derives from it too, as Optuna's
``DuplicatedStudyError`` does, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = ["CommandError", "PandaLMError"]


class PandaLMError(Exception):
    """The root of every optuna-pandalm exception."""


class CommandError(PandaLMError):
    """A user error on the command line: printed to stderr as one line, exit code 2."""
