"""Every exception optuna-pandalm raises on purpose, under one root.

Catch :class:`PandaLMError` to catch any of them. Where a built-in says what kind of
mistake it is (a bad value, a failure at run time), the class derives from it too, as
Optuna's ``DuplicatedStudyError`` does, so ``except ValueError`` keeps working. The modules
that raise them re-export them (``from optuna_pandalm.store import StoreError`` works).

The classes, by where they come from:

* input: :class:`PromptFormatError`, :class:`ConfigError`, :class:`EvaluationInputError`,
  :class:`CommandError`;
* the judge: :class:`JudgeUnavailableError` (and the remote judge's
  :class:`RemoteJudgeError`, :class:`JudgeRefusedError`, :class:`NoTokenizeEndpointError`),
  :class:`JudgeInputError`, :class:`InvalidVerdictError`, :class:`JudgeFailedError` (and
  :class:`JudgeTimeoutError`);
* the database: :class:`StoreError`, :class:`PromptSetMismatchError`;
* training: :class:`TrainingDivergedError`.

Example:
    >>> from optuna_pandalm.errors import PandaLMError, PromptFormatError
    >>> issubclass(PromptFormatError, PandaLMError), issubclass(PromptFormatError, ValueError)
    (True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "CommandError",
    "ConfigError",
    "EvaluationInputError",
    "InvalidVerdictError",
    "JudgeFailedError",
    "JudgeInputError",
    "JudgeRefusedError",
    "JudgeTimeoutError",
    "JudgeUnavailableError",
    "NoTokenizeEndpointError",
    "PandaLMError",
    "PromptFormatError",
    "PromptSetMismatchError",
    "RemoteJudgeError",
    "StoreError",
    "TrainingDivergedError",
]


class PandaLMError(Exception):
    """The root of every optuna-pandalm exception."""


# --- input ------------------------------------------------------------------------------------
class PromptFormatError(PandaLMError, ValueError):
    """Raised by :func:`~optuna_pandalm.prompts.load_prompts` for a prompt source that
    cannot be read (a missing or non-UTF-8 file, invalid JSON, an empty or missing field);
    the message names the file, line and field."""


class ConfigError(PandaLMError, ValueError):
    """Raised by ``tune`` and ``preflight`` for a configuration that cannot run; the message
    names the key and, where it can, a fix."""


class EvaluationInputError(PandaLMError, ValueError):
    """Raised by ``judge-eval``'s readers and checks for a test set or prediction file that
    cannot be used; the message names the file and row."""


class CommandError(PandaLMError):
    """Raised by a command for a user error on the command line: printed to stderr as one
    line, exit code 2."""


# --- the judge --------------------------------------------------------------------------------
class JudgeUnavailableError(PandaLMError, RuntimeError):
    """Raised by a judge that could not answer (a refused connection, a timeout, HTTP 503,
    CUDA out of memory): a transient failure, retried and never cached.

    ``completed`` holds the verdicts (:class:`~optuna_pandalm.judges.base.Verdict`) of the
    requests that did get an answer, by request index, so that a batch cut short by an outage
    keeps what it already paid for.
    """

    def __init__(self, message: str, *, completed: Mapping[int, Any] | None = None):
        super().__init__(message)
        # Verdicts; typed loosely because this module sits below the judges.
        self.completed: dict[int, Any] = dict(completed or {})


class RemoteJudgeError(JudgeUnavailableError):
    """Raised by :class:`~optuna_pandalm.judges.remote.RemoteJudge` for requests that failed
    for good (after retries, or with a non-retryable status): the server did not answer, so
    nothing is cached and the arena retries later."""


class JudgeRefusedError(RemoteJudgeError):
    """Raised by the remote judge when the server refuses a request with a status that
    retrying cannot change (400, 401, 404, 422...); ``status`` is that HTTP status. The arena
    saves the batch's ``completed`` verdicts and fails the trial at once with
    :class:`JudgeFailedError`, without asking again."""

    def __init__(
        self, message: str, status: int, *, completed: Mapping[int, Any] | None = None
    ) -> None:
        super().__init__(message, completed=completed)
        self.status = status


class NoTokenizeEndpointError(RemoteJudgeError):
    """Raised inside the remote judge when the server has no vLLM-style ``/tokenize`` (404,
    or a reply of another shape); the judge catches it and reads label probabilities from
    the first token's alternatives instead."""


class JudgeInputError(PandaLMError, ValueError):
    """Raised by a judge for requests it can never answer, however often it is asked (a
    reference judge on a prompt without a reference answer): a permanent failure, unlike
    :class:`JudgeUnavailableError`, so the arena does not retry it and fails the trial at
    once with :class:`JudgeFailedError` naming the cause. A bad input, hence ``ValueError``
    (what such judges raised before)."""


class InvalidVerdictError(PandaLMError, ValueError, TypeError):
    """Raised where a judge's answer enters the arena when it is not a verdict (a winner of
    7, ``True`` or ``"1"``, NaN probabilities, the wrong number of verdicts), or when a cached
    verdict holds such a winner: a bug in the judge, not a transient failure, so it is never
    retried.

    A bad value, hence ``ValueError``; it was a ``TypeError`` before, kept as a base so that
    callers' ``except TypeError`` still catch it (as NumPy's ``AxisError`` keeps
    ``IndexError``)."""


class JudgeFailedError(PandaLMError, RuntimeError):
    """Raised by the arena when the judge failed to answer on every attempt (CUDA out of
    memory, HTTP 500, a timeout...).

    Games committed before the failure stay valid and nothing was cached for the failed
    requests; the trial fails with this cause in its user attribute ``pandalm_error``.
    """


class JudgeTimeoutError(JudgeFailedError):
    """Raised by the arena when one judge call took longer than the arena's
    ``judge_timeout``: the judge hangs (a deadlocked GPU, a server that accepts and never
    answers). Not retried, so a hung judge costs one deadline, not one per retry; handled
    like :class:`JudgeFailedError` (the trial fails with this message, naming the timeout, in
    ``pandalm_error``). The call is abandoned in its thread and its answers, should they
    come, are never used or cached."""


# --- the database -----------------------------------------------------------------------------
class StoreError(PandaLMError, RuntimeError):
    """Raised by the store when the storage cannot be opened or used (a malformed URL, an
    unreachable database, an outage past its bound, a newer schema).

    The message names the (password-masked) URL, the operation and the cause in one line;
    the driver's exception is not chained, so logs show no deep traceback.
    """


class PromptSetMismatchError(StoreError):
    """Raised when a study already uses another prompt set, or another value of a setting
    that changes its scores (position, length control, robust errors), than the one given;
    nothing is stored."""


# --- training ---------------------------------------------------------------------------------
class TrainingDivergedError(PandaLMError, RuntimeError):
    """Raised by :class:`~optuna_pandalm.training.callback.JudgeCallback` when the loss or
    the weights became NaN or infinite: the trial fails with this reason (in its user
    attribute ``pandalm_error``) and nothing is sent to the arena."""
