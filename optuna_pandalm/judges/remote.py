"""A PandaLM-format judge served over HTTP by an OpenAI-compatible completions server.

For many workers sharing one judge: serve PandaLM-7B once (for example with vLLM) and point
every worker at it. Same prompt and parser as :class:`~optuna_pandalm.judges.PandaLMJudge`.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import os
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from optuna_pandalm.judges.base import JudgeRequest, JudgeUnavailableError, PairwiseJudge, Verdict
from optuna_pandalm.judges.pandalm import build_pandalm_prompt, parse_pandalm_output
from optuna_pandalm.url_masking import mask_url

__all__ = ["RemoteJudge", "RemoteJudgeError"]

_logger = logging.getLogger(__name__)
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class RemoteJudgeError(JudgeUnavailableError):
    """Requests that failed for good (after retries, or with a non-retryable status): the
    server did not answer, so nothing is cached and the arena retries later."""


def _label(token: str) -> int | None:
    """The PandaLM label a first token starts: '1', '2', or a prefix of 'Tie'."""
    word = token.strip().lower()
    if word in ("1", "2"):
        return int(word)
    if word and "tie".startswith(word):
        return 0
    return None


class RemoteJudge(PairwiseJudge):
    """PandaLM over an OpenAI-compatible ``/completions`` endpoint.

    Args:
        base_url: Server URL up to ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``).
        model: Model name the server knows.
        mode: ``"likelihood"``: one token with ``logprobs``; the probabilities of tokens
            starting ``1``, ``2`` and ``Tie`` are summed and normalised. ``"generate"``:
            greedy text, parsed as PandaLM output.
        api_key_env: Name of the environment variable holding the API key (read at each
            call; never logged or stored). Unset means no ``Authorization`` header.
        max_concurrency: Requests in flight at once.
        timeout: Seconds for each HTTP attempt (connect and read).
        max_retries: Retries on 429, 5xx, timeouts and connection errors, with exponential
            backoff and jitter (a ``Retry-After`` header is honoured up to 30 s).
        backoff: First backoff in seconds.
        max_tokens: Generate mode's token budget (PandaLM's 512).
        top_logprobs: How many alternatives likelihood mode asks for.
        tie_threshold: Likelihood mode: a tie when P(tie) is at least this.

    A request that fails for good (no answer, or a reply that is not a completion) raises
    :class:`RemoteJudgeError` with the verdicts of the batch's other requests in its
    ``completed``: a transport failure is never an invalid verdict, which would be cached.
    An answer without a label (the model's own output) is an invalid verdict. The call never
    hangs past ``timeout * (max_retries + 1)`` plus the backoffs.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        mode: str = "likelihood",
        api_key_env: str | None = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_tokens: int = 512,
        top_logprobs: int = 20,
        tie_threshold: float | None = None,
        name: str | None = None,
    ) -> None:
        if mode not in ("likelihood", "generate"):
            raise ValueError(f"mode must be 'likelihood' or 'generate', got {mode!r}")
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {mask_url(base_url)!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.mode = mode
        self.api_key_env = api_key_env
        self.max_concurrency = max(1, max_concurrency)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.top_logprobs = top_logprobs
        self.tie_threshold = tie_threshold
        settings = (
            f"mode=likelihood,tie={tie_threshold}"
            if mode == "likelihood"
            else f"mode=generate,max_tokens={max_tokens}"
        )
        self.name = name or f"remote:{mask_url(self.base_url)}:{model}:{settings}"

    def __repr__(self) -> str:
        return f"RemoteJudge(name={self.name!r})"

    # --- HTTP ---------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/completions"
        data = json.dumps(body).encode("utf-8")
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * (2**attempt) * (0.5 + random.random())
            try:
                request = urllib.request.Request(
                    url, data=data, headers=self._headers(), method="POST"
                )
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    reply: dict[str, Any] = json.loads(response.read().decode("utf-8"))
                    return reply
            except urllib.error.HTTPError as error:
                last = f"HTTP {error.code} from {mask_url(url)}"
                if error.code not in _RETRY_STATUS:
                    raise RemoteJudgeError(last) from None
                retry_after = error.headers.get("Retry-After") if error.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = min(float(retry_after), 30.0)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
                reason = getattr(error, "reason", error)
                last = f"{type(reason).__name__} from {mask_url(url)}: {reason}"
            except json.JSONDecodeError:
                last = f"malformed JSON from {mask_url(url)}"
            if attempt < self.max_retries:
                _logger.info(
                    "judge request failed (%s); retry %d in %.1f s", last, attempt + 1, wait
                )
                time.sleep(wait)
        raise RemoteJudgeError(f"{last} (after {self.max_retries + 1} attempts)")

    # --- judging ---------------------------------------------------------------------------------
    def _one(self, request: JudgeRequest) -> Verdict:
        prompt = build_pandalm_prompt(
            request.instruction, request.response_1, request.response_2, request.input
        )
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "temperature": 0.0}
        if self.mode == "likelihood":
            body.update(max_tokens=1, logprobs=self.top_logprobs)
        else:
            body.update(max_tokens=self.max_tokens)
        reply = self._post(body)
        try:
            choice = reply["choices"][0]
            if self.mode == "generate":
                return parse_pandalm_output(str(choice["text"]))
            alternatives = choice["logprobs"]["top_logprobs"][0]
        except (KeyError, IndexError, TypeError) as error:
            # Not the model's answer but a server that does not speak the protocol (or an
            # error page): a failure to answer, not a verdict.
            raise RemoteJudgeError(
                f"unexpected reply shape from {mask_url(self.base_url)}: "
                f"{type(error).__name__} {error}"
            ) from None
        mass = [0.0, 0.0, 0.0]
        for token, log_probability in alternatives.items():
            label = _label(token)
            if label is not None and math.isfinite(log_probability):
                mass[label] += math.exp(log_probability)
        total = sum(mass)
        if total <= 0:
            return Verdict(
                winner=None, raw=f"no label among the top tokens: {list(alternatives)[:10]}"
            )
        probabilities = (mass[0] / total, mass[1] / total, mass[2] / total)
        if self.tie_threshold is not None and probabilities[0] >= self.tie_threshold:
            winner = 0
        else:
            winner = max(range(3), key=lambda k: probabilities[k])
        return Verdict(winner=winner, probabilities=probabilities, raw=f"label mass {total:.4f}")

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        if not requests:
            return []
        workers = min(self.max_concurrency, len(requests))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(self._one, request) for request in requests]
        completed: dict[int, Verdict] = {}
        failures: list[tuple[int, JudgeUnavailableError]] = []
        for index, future in enumerate(futures):
            error = future.exception()
            if error is None:
                completed[index] = future.result()
            elif isinstance(error, JudgeUnavailableError):
                failures.append((index, error))
            else:
                raise error
        if failures:
            index, error = failures[0]
            raise RemoteJudgeError(
                f"{len(failures)} of {len(requests)} requests failed (request {index}: {error})",
                completed=completed,
            )
        return [completed[i] for i in range(len(requests))]
