"""The errors the store raises: every failure of the database reaches callers as one of these."""

from __future__ import annotations

__all__ = ["PromptSetMismatchError", "StoreError"]


class StoreError(RuntimeError):
    """The storage cannot be opened or used.

    The message names the (password-masked) URL, the operation and the cause in one line;
    the driver's exception is not chained, so logs show no deep traceback.
    """


class PromptSetMismatchError(StoreError):
    """A study already uses another prompt set, or another value of a setting that changes
    its scores (position, length control, robust errors), than the one given."""
