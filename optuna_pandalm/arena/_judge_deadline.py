"""A deadline on every judge call, so that a hung judge fails its trial instead of
stalling its worker silently.

Python cannot stop a thread, so each call runs in a thread of its own and the caller waits
for it up to the deadline; past it, the call is abandoned and :class:`JudgeTimeoutError`
is raised. The abandoned thread runs on until the judge returns (a local model's hung call
keeps its thread, and its memory, for as long as it hangs; it is a daemon, so it does not
keep the process alive). Whatever it returns is dropped: only answers returned in time
reach match play, which alone saves verdicts, so a late answer is never cached nor counted.

The deadline of one call (``judge_timeout`` of :class:`~optuna_pandalm.Arena`, in seconds):

* given: that many seconds per call, whatever its size (``math.inf``: no deadline, no
  thread);
* ``None`` (the default), derived from the judge: for a
  :class:`~optuna_pandalm.judges.RemoteJudge`, the longest its own HTTP settings let a call
  last: ``timeout * (max_retries + 1)`` plus its waits between attempts (each the larger of
  its jittered backoff and 30 s, the longest ``Retry-After`` it honours), per wave of
  ``max_concurrency`` requests, plus one wave for its label lookup; for an ensemble, the
  sum of its judges'; for any other judge (a local model), :data:`LOCAL_SECONDS_PER_REQUEST`
  seconds per request in the call (16 minutes for a batch of 16: far more than a 7B judge
  takes on one GPU, so only a hang reaches it).
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

from optuna_pandalm.errors import JudgeTimeoutError
from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict

__all__ = ["LOCAL_SECONDS_PER_REQUEST", "DeadlineJudge", "call_deadline", "checked_timeout"]

_logger = logging.getLogger(__name__)

LOCAL_SECONDS_PER_REQUEST = 60.0
"""The default deadline of a local judge's call, in seconds per request of the call."""

_RETRY_AFTER_CAP = 30.0  # RemoteJudge honours a Retry-After header up to this


def checked_timeout(value: Any) -> float | None:
    """``judge_timeout`` as given to the arena: ``None`` (derived per call) or a positive
    number of seconds (``math.inf``: none).

    Example:
        >>> checked_timeout(90), checked_timeout(None)
        (90.0, None)
        >>> checked_timeout(0)
        Traceback (most recent call last):
        ...
        ValueError: judge_timeout must be a positive number of seconds (or None), got 0
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"judge_timeout must be a number of seconds or None, got {type(value).__name__}"
        )
    seconds = float(value)
    if not seconds > 0:  # NaN too
        raise ValueError(
            f"judge_timeout must be a positive number of seconds (or None), got {value!r}"
        )
    return seconds


def call_deadline(judge: PairwiseJudge, n_requests: int) -> float:
    """The default deadline, in seconds, of one call of ``judge`` on ``n_requests``
    requests (see the module docstring).

    Example:
        >>> from optuna_pandalm.judges import RemoteJudge
        >>> remote = RemoteJudge("http://judge:8000/v1", "m", timeout=10, max_retries=1)
        >>> call_deadline(remote, 8)  # 2 waves of (10 * 2 + a backoff of at most 30 s)
        100.0
        >>> from optuna_pandalm.testing import SimulatedJudge
        >>> call_deadline(SimulatedJudge(), 16)
        960.0
    """
    from optuna_pandalm.judges.ensemble import EnsembleJudge
    from optuna_pandalm.judges.remote import RemoteJudge

    if isinstance(judge, RemoteJudge):
        retries = judge.max_retries
        # Each wait: the jittered backoff (at most 1.5 times its base) or a Retry-After.
        waits = sum(max(1.5 * judge.backoff * 2**k, _RETRY_AFTER_CAP) for k in range(retries))
        one = judge.timeout * (retries + 1) + waits
        waves = math.ceil(max(n_requests, 1) / judge.max_concurrency) + 1
        return float(one * waves)
    if isinstance(judge, EnsembleJudge):
        return float(sum(call_deadline(member, n_requests) for member in judge.judges))
    return LOCAL_SECONDS_PER_REQUEST * max(n_requests, 1)


class DeadlineJudge(PairwiseJudge):
    """``judge`` with a deadline on each call: the judge match play calls (same ``name``,
    so the same verdict cache). ``timeout``: seconds per call, or ``None`` for
    :func:`call_deadline`."""

    def __init__(self, judge: PairwiseJudge, timeout: float | None) -> None:
        self.inner = judge
        self.name = judge.name
        self.needs_reference = getattr(judge, "needs_reference", False)
        self.timeout = checked_timeout(timeout)
        self._abandoned: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"DeadlineJudge({self.inner!r}, timeout={self.timeout})"

    def __getstate__(self) -> dict[str, Any]:
        # Threads do not pickle; a copy has abandoned no call of its own.
        return {**self.__dict__, "_abandoned": []}

    def deadline(self, n_requests: int) -> float:
        """Seconds a call on ``n_requests`` requests may take."""
        return call_deadline(self.inner, n_requests) if self.timeout is None else self.timeout

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        seconds = self.deadline(len(requests))
        if math.isinf(seconds):
            return self.inner.judge(requests)
        self._abandoned = [t for t in self._abandoned if t.is_alive()]
        if self._abandoned:
            _logger.warning(
                "judge %s: %d earlier call(s) abandoned at their deadline still run; this "
                "call runs beside them",
                self.name,
                len(self._abandoned),
            )
        box: dict[str, Any] = {}
        done = threading.Event()

        def call() -> None:
            try:
                box["answers"] = self.inner.judge(requests)
            except BaseException as error:  # handed to the caller, never lost in the thread
                box["error"] = error
            finally:
                done.set()

        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run, args=(call,), name=f"judge call {self.name}", daemon=True
        )
        thread.start()
        if not done.wait(seconds):
            self._abandoned.append(thread)
            raise JudgeTimeoutError(
                f"judge {self.name!r} timed out: no answer to {len(requests)} requests "
                f"within judge_timeout = {seconds:g} s; the call was abandoned (raise "
                "Arena(judge_timeout=...) if the judge is only slow)"
            )
        if "error" in box:
            raise box["error"]
        answers: list[Verdict] = box["answers"]
        return answers
