"""A judge served over HTTP by an OpenAI-compatible server, in any judge format.

For many workers sharing one judge: serve the judge model once (for example PandaLM-7B or
Prometheus 2 with vLLM) and point every worker at it. The prompt and the parser are the
format's (:data:`~optuna_pandalm.judges.FORMATS`; PandaLM's by default, as
:class:`~optuna_pandalm.judges.PandaLMJudge`). Generate mode sends a base-model format's text
to ``/completions`` and a chat format's messages to ``/chat/completions`` (the server applies
the model's chat template).

Likelihood mode scores each of the format's labels (PandaLM's ``1``, ``2``, ``Tie``) as the
sum of its tokens' log-probabilities after the prompt and the format's ``answer_prefix``,
then renormalises over them. The label tokens come from the server's ``/tokenize`` (vLLM)
or a local tokenizer. A chat format's prompt is the chat template laid out by the local
tokenizer when one is given, else the token ids the server's ``/tokenize`` gives for the
messages; it is sent to ``/completions`` as token ids, so the labels are scored right where
the judge's answer starts. vLLM servers that know
``logprob_token_ids`` return exactly the requested tokens' log-probabilities; older ones
reject it (HTTP 400) or ignore it, and the judge falls back to ``top_logprobs``, where a
label outside the top k has no probability. A multi-token label's later tokens are scored
with the earlier ones appended to the prompt (as token ids). Without any tokenizer, the
first token's alternatives that start a label are summed (an approximation). Constrained
decoding (``guided_choice``, silently ignored by vLLM 0.12 and later) is never used.

transformers is imported only to load a local tokenizer when one is asked for.
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

from optuna_pandalm.errors import (
    JudgeRefusedError,
    JudgeUnavailableError,
    NoTokenizeEndpointError,
    RemoteJudgeError,
)
from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict
from optuna_pandalm.judges.formats import JudgeFormat, Message
from optuna_pandalm.judges.local import (
    DEFAULT_MAX_NEW_TOKENS,
    format_key,
    prompt_tail,
    resolve_format,
)
from optuna_pandalm.url_masking import mask_url

__all__ = ["RemoteJudge", "RemoteJudgeError"]

_logger = logging.getLogger(__name__)
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_PROBE = JudgeRequest("Q", "a", "b")  # a request whose prompt shows how a format's prompt ends
_TOKEN_ID = "token_id:"  # vLLM's key for a token with return_tokens_as_token_ids


def _token_id(key: str) -> int | None:
    """123 from vLLM's ``"token_id:123"``; ``None`` for a token given as text."""
    if key.startswith(_TOKEN_ID) and key[len(_TOKEN_ID) :].isdigit():
        return int(key[len(_TOKEN_ID) :])
    return None


def _continuation(before: Sequence[int], after: Sequence[int]) -> tuple[int, ...]:
    """The tokens ``after`` adds to ``before`` (what a label adds to the prompt's tail)."""
    common = 0
    while common < min(len(before), len(after)) and before[common] == after[common]:
        common += 1
    return tuple(after[common:])


class RemoteJudge(PairwiseJudge):
    """A judge format over an OpenAI-compatible server (``/completions``, and
    ``/chat/completions`` for a chat format's generate mode).

    Args:
        base_url: Server URL up to ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``).
        model: Model name the server knows.
        format: A name in :data:`~optuna_pandalm.judges.FORMATS` or a
            :class:`~optuna_pandalm.judges.JudgeFormat` (default ``"pandalm"``).
        mode: ``"likelihood"``: each label's log-probability (the sum over its tokens),
            normalised over the format's labels (see the module docstring for how the server
            is asked; refused for a format without labels, JudgeLM). ``"generate"``: greedy
            text, parsed by the format.
        api_key_env: Name of the environment variable holding the API key (read at each
            call; never logged or stored). Unset means no ``Authorization`` header.
        max_concurrency: Requests in flight at once.
        timeout: Seconds for each HTTP attempt (connect and read).
        max_retries: Retries on 429, 5xx, timeouts and connection errors, with exponential
            backoff and jitter (a ``Retry-After`` header is honoured up to 30 s).
        backoff: First backoff in seconds.
        max_tokens: Generate mode's token budget; default the format's, as
            :class:`~optuna_pandalm.judges.LocalJudge`'s ``max_new_tokens`` (PandaLM's 512).
        top_logprobs: How many alternatives likelihood mode asks for when the server does
            not take ``logprob_token_ids``.
        tie_threshold: Likelihood mode: a tie when P(tie) is at least this.
        tokenizer: Likelihood mode: the served model's tokenizer (a local folder, loaded
            without downloads, or a loaded tokenizer), to find the labels' tokens (and to lay
            out a chat format's prompt with its chat template). ``None`` (default) asks the
            server's ``/tokenize``; a server without it gets the first-token approximation
            for a base-model format, and cannot score a chat format (an error says so).

    The name is ``remote:{url}:{model}:{settings}`` for PandaLM's format, as it always was
    (verdict cache keys), and ``remote:{url}:{model}:format={name}:{settings}`` for others.

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
        format: str | JudgeFormat = "pandalm",
        mode: str = "likelihood",
        api_key_env: str | None = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_tokens: int | None = None,
        top_logprobs: int = 20,
        tie_threshold: float | None = None,
        tokenizer: Any = None,
        name: str | None = None,
    ) -> None:
        self.format = resolve_format(format, mode)
        self._winners = tuple(sorted(self.format.labels))  # in (tie, 1, 2) order
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
        self.max_tokens = (
            DEFAULT_MAX_NEW_TOKENS.get(self.format.name, 1024)
            if max_tokens is None
            else max_tokens
        )
        self.top_logprobs = top_logprobs
        self.tie_threshold = tie_threshold
        self.tokenizer = tokenizer
        self._label_tokens: tuple[tuple[int, ...], ...] | None = None
        self._tokens_known = False  # _label_tokens looked up (None then means: no tokenizer)
        self._prefix_tokens: list[int] | None = None  # answer_prefix's tokens (chat formats)
        self.exact_label_logprobs: bool | None = None
        """Whether the server honours ``logprob_token_ids`` (``None`` until first asked)."""
        settings = (
            f"mode=likelihood,tie={tie_threshold}"
            if mode == "likelihood"
            else f"mode=generate,max_tokens={self.max_tokens}"
        )
        key = format_key(self.format)
        spoken = "" if key == "pandalm" else f"format={key}:"  # PandaLM's names stay as they were
        self.name = name or f"remote:{mask_url(self.base_url)}:{model}:{spoken}{settings}"

    def __repr__(self) -> str:
        return f"RemoteJudge(name={self.name!r})"

    # --- HTTP ---------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, body: dict[str, Any], path: str = "/completions") -> dict[str, Any]:
        # vLLM serves /tokenize next to /v1, not under it.
        root = self.base_url.removesuffix("/v1") if path == "/tokenize" else self.base_url
        url = f"{root}{path}"
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
                    raise JudgeRefusedError(last, error.code) from None
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

    # --- label tokens -------------------------------------------------------------------------
    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        if self.tokenizer is not None:
            return list(self._local_tokenizer()(text, add_special_tokens=special)["input_ids"])
        return self._server_tokens(
            {"model": self.model, "prompt": text, "add_special_tokens": special}
        )

    def _server_tokens(self, body: dict[str, Any]) -> list[int]:
        """Token ids from vLLM's ``/tokenize``, for a ``prompt`` or for chat ``messages``."""
        try:
            reply = self._post(body, "/tokenize")
        except JudgeRefusedError as error:
            if error.status in (404, 405):
                raise NoTokenizeEndpointError(str(error)) from None
            raise
        tokens = reply.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise NoTokenizeEndpointError(
                f"unexpected /tokenize reply from {mask_url(self.base_url)}"
            )
        return tokens

    def _local_tokenizer(self) -> Any:
        if isinstance(self.tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.tokenizer, local_files_only=True)
        return self.tokenizer

    def _chat_text(self, messages: list[Message]) -> str:
        """A chat format's prompt laid out by the local tokenizer's chat template."""
        text: str = self._local_tokenizer().apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return text

    def _tail(self) -> str:
        """The end of the prompt the labels follow (its last line), to tokenise the labels
        in context: PandaLM's ``### Evaluation:\n``; a chat format's ``answer_prefix`` when
        the server lays out the chat template (its tokens are then sent on their own)."""
        if not self.format.chat:
            return prompt_tail(self.format.text(_PROBE) + self.format.answer_prefix)
        if self.tokenizer is not None:
            text = self._chat_text(self.format.messages(_PROBE))
            return prompt_tail(text + self.format.answer_prefix)
        return self.format.answer_prefix

    def label_tokens(self) -> tuple[tuple[int, ...], ...] | None:
        """The token ids each label adds after the prompt, in (tie, 1, 2) order (a format
        without ties has two), or ``None`` when neither a local tokenizer nor the server's
        ``/tokenize`` is available."""
        if not self._tokens_known:
            labels = [self.format.labels[winner] for winner in self._winners]
            try:
                tail_text = self._tail()
                tail = self._tokenize(tail_text, special=False)
                tokens: tuple[tuple[int, ...], ...] | None = tuple(
                    _continuation(tail, self._tokenize(tail_text + label, special=False))
                    for label in labels
                )
            except NoTokenizeEndpointError as error:
                if self.format.chat:
                    raise ValueError(
                        f"likelihood mode with chat format {self.format.name!r} needs the "
                        "served model's tokenizer: pass tokenizer= (a local folder) or serve "
                        f"it with vLLM's /tokenize ({error})"
                    ) from None
                _logger.warning(
                    "no tokenizer given and no /tokenize (%s): likelihood mode sums the "
                    "first token's alternatives that start a label",
                    error,
                )
                tokens = None
            if tokens is not None and (not all(tokens) or len(set(tokens)) < len(tokens)):
                raise ValueError(f"labels {labels} do not tokenize to distinct tokens: {tokens}")
            self._label_tokens, self._tokens_known = tokens, True
        return self._label_tokens

    def _likelihood_prompt(self, request: JudgeRequest) -> str | list[int]:
        """What likelihood mode completes: a base-model format's text with its
        ``answer_prefix``; a chat format's chat prompt as token ids, then the
        ``answer_prefix``'s tokens."""
        if not self.format.chat:
            return self.format.text(request) + self.format.answer_prefix
        messages = self.format.messages(request)
        if self.tokenizer is not None:
            text = self._chat_text(messages) + self.format.answer_prefix
            bos = getattr(self._local_tokenizer(), "bos_token", None)
            # The template holds the BOS token when it writes one: do not add it twice.
            return self._tokenize(text, special=not (bos and text.startswith(bos)))
        # vLLM's TokenizeChatRequest (vllm-project/vllm@343bacaf,
        # vllm/entrypoints/serve/tokenize/protocol.py) takes "messages" and
        # "add_generation_prompt" (default true) and lays them out with the served model's
        # chat template; its add_special_tokens defaults to false, as the template adds them.
        chat = self._server_tokens(
            {"model": self.model, "messages": messages, "add_generation_prompt": True}
        )
        if self._prefix_tokens is None:
            prefix = self.format.answer_prefix
            self._prefix_tokens = self._tokenize(prefix, special=False) if prefix else []
        return chat + self._prefix_tokens

    # --- judging ---------------------------------------------------------------------------------
    def _completion(self, body: dict[str, Any], path: str = "/completions") -> dict[str, Any]:
        """The first choice of a completion; a reply of another shape is a failure to answer."""
        reply = self._post({"model": self.model, "temperature": 0.0, **body}, path)
        try:
            choice = reply["choices"][0]
            if not isinstance(choice, dict):
                raise TypeError("choice is not an object")
            return choice
        except (KeyError, IndexError, TypeError) as error:
            # Not the model's answer but a server that does not speak the protocol (or an
            # error page): a failure to answer, not a verdict.
            raise RemoteJudgeError(
                f"unexpected reply shape from {mask_url(self.base_url)}: "
                f"{type(error).__name__} {error}"
            ) from None

    def _alternatives(self, choice: dict[str, Any]) -> dict[str, float]:
        try:
            alternatives = choice["logprobs"]["top_logprobs"][0]
            if not isinstance(alternatives, dict):
                raise TypeError("top_logprobs[0] is not an object")
            return {str(k): float(v) for k, v in alternatives.items()}
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise RemoteJudgeError(
                f"unexpected reply shape from {mask_url(self.base_url)}: "
                f"{type(error).__name__} {error}"
            ) from None

    def _next_token_logprobs(self, prompt: str | list[int], wanted: list[int]) -> dict[int, float]:
        """Log-probabilities of the ``wanted`` tokens as the next token: exact with
        ``logprob_token_ids``, else those of them in the top ``top_logprobs``."""
        body: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": 1,
            "return_tokens_as_token_ids": True,
        }
        if self.exact_label_logprobs is not False:
            try:
                # The completions API's logprobs is a count (chat's is a boolean); with
                # logprob_token_ids it only has to be set.
                choice = self._completion({**body, "logprobs": 1, "logprob_token_ids": wanted})
            except JudgeRefusedError as error:
                if error.status not in (400, 422):
                    raise
                choice = None
            found = {} if choice is None else self._by_id(self._alternatives(choice))
            honoured = all(token in found for token in wanted)
            if self.exact_label_logprobs is None:
                self.exact_label_logprobs = honoured
                if not honoured:
                    _logger.warning(
                        "%s does not honour logprob_token_ids (vLLM before mid-2026): label "
                        "probabilities come from the top %d alternatives",
                        mask_url(self.base_url),
                        self.top_logprobs,
                    )
            if honoured:
                return {token: found[token] for token in wanted}
        choice = self._completion({**body, "logprobs": self.top_logprobs})
        found = self._by_id(self._alternatives(choice))
        return {token: found[token] for token in wanted if token in found}

    @staticmethod
    def _by_id(alternatives: dict[str, float]) -> dict[int, float]:
        return {
            token: value
            for key, value in alternatives.items()
            if (token := _token_id(key)) is not None and math.isfinite(value)
        }

    def _label_logprobs(
        self, prompt: str | list[int], labels: tuple[tuple[int, ...], ...]
    ) -> list[float | None]:
        """Each label's log-probability after the prompt (the sum over its tokens), ``None``
        when one of its tokens is outside the top k."""
        multi_token = any(len(tokens) > 1 for tokens in labels)
        context = (
            self._tokenize(prompt, special=True)
            if multi_token and isinstance(prompt, str)
            else prompt
        )
        first = self._next_token_logprobs(context, sorted({tokens[0] for tokens in labels}))
        scores: list[float | None] = []
        for tokens in labels:
            total = first.get(tokens[0])
            for k in range(1, len(tokens)):
                if total is None:
                    break
                assert isinstance(context, list)
                step = self._next_token_logprobs(context + list(tokens[:k]), [tokens[k]])
                total = total + step[tokens[k]] if tokens[k] in step else None
            scores.append(total)
        return scores

    def _first_token_mass(self, prompt: str) -> tuple[list[float], list[str]]:
        """Without a tokenizer: the first token's alternatives that start a label, summed."""
        choice = self._completion(
            {"prompt": prompt, "max_tokens": 1, "logprobs": self.top_logprobs}
        )
        alternatives = self._alternatives(choice)
        mass = [0.0, 0.0, 0.0]
        for token, log_probability in alternatives.items():
            label = self._label_started_by(token)
            if label is not None and math.isfinite(log_probability):
                mass[label] += math.exp(log_probability)
        return mass, list(alternatives)[:10]

    def _label_started_by(self, token: str) -> int | None:
        """The one label a first token starts (PandaLM: '1', '2', or a prefix of 'Tie')."""
        word = token.strip().lower()
        if not word:
            return None
        started = [
            w for w in self._winners if self.format.labels[w].strip().lower().startswith(word)
        ]
        return started[0] if len(started) == 1 else None

    def _generate(self, request: JudgeRequest) -> Verdict:
        if not self.format.chat:
            prompt = self.format.text(request)
            choice = self._completion({"prompt": prompt, "max_tokens": self.max_tokens})
            return self.format.parse(str(choice.get("text", "")))
        messages = self.format.messages(request)
        choice = self._completion(
            {"messages": messages, "max_tokens": self.max_tokens}, "/chat/completions"
        )
        message = choice.get("message")
        if not isinstance(message, dict):
            raise RemoteJudgeError(
                f"unexpected reply shape from {mask_url(self.base_url)}: a chat completion "
                "without choices[0].message"
            )
        return self.format.parse(str(message.get("content") or ""))

    def _one(self, request: JudgeRequest) -> Verdict:
        if self.mode == "generate":
            return self._generate(request)
        labels = self.label_tokens()
        prompt = self._likelihood_prompt(request)
        if labels is None:
            assert isinstance(prompt, str)  # only base-model formats go without a tokenizer
            mass, seen = self._first_token_mass(prompt)
            if sum(mass) <= 0:
                return Verdict(winner=None, raw=f"no label among the top tokens: {seen}")
            how = f"first-token label mass {sum(mass):.4f}"
        else:
            scores = self._label_logprobs(prompt, labels)
            known = [s for s in scores if s is not None]
            if not known:
                return Verdict(
                    winner=None, raw=f"no label among the top {self.top_logprobs} tokens"
                )
            top = max(known)
            mass = [0.0, 0.0, 0.0]  # (tie, 1, 2); a format without ties leaves P(tie) at 0
            for winner, s in zip(self._winners, scores, strict=True):
                mass[winner] = 0.0 if s is None else math.exp(s - top)
            names = [self.format.labels[winner] for winner in self._winners]
            missing = [label for label, s in zip(names, scores, strict=True) if s is None]
            how = "label log-probabilities " + ", ".join(
                f"{label} {'outside the top k' if s is None else f'{s:.4f}'}"
                for label, s in zip(names, scores, strict=True)
            )
            if missing:
                _logger.debug("labels %s outside the top %d", missing, self.top_logprobs)
        total = sum(mass)
        probabilities = (mass[0] / total, mass[1] / total, mass[2] / total)
        if (
            self.tie_threshold is not None
            and 0 in self._winners
            and probabilities[0] >= self.tie_threshold
        ):
            winner = 0
        else:
            winner = max(self._winners, key=lambda k: probabilities[k])
        return Verdict(winner=winner, probabilities=probabilities, raw=how)

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        if not requests:
            return []
        if self.mode == "likelihood":
            self.label_tokens()  # once, before the threads that read it
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
        refused = [(i, e) for i, e in failures if isinstance(e, JudgeRefusedError)]
        if refused:  # asking again cannot change these: say so, with what was answered
            index, error = refused[0]
            raise JudgeRefusedError(
                f"{len(refused)} of {len(requests)} requests refused (request {index}: {error})",
                refused[0][1].status,
                completed=completed,
            )
        if failures:
            index, error = failures[0]
            raise RemoteJudgeError(
                f"{len(failures)} of {len(requests)} requests failed (request {index}: {error})",
                completed=completed,
            )
        return [completed[i] for i in range(len(requests))]
