"""PandaLM: a local LLM shown an instruction and two responses says which is better.

The prompt and output format are PandaLM's (Wang et al., 2023, Figure 5): the judge writes
``1``, ``2`` or ``Tie`` on the first line, then ``### Reason:`` and ``### Reference:``.
Two modes:

* ``"likelihood"`` (default): one forward pass per request scores the continuations ``1``,
  ``2`` and ``Tie`` after the prompt and returns their normalised probabilities. PandaLM's
  Table 10 shows this is as good as generating or better, and it is many times faster.
* ``"generate"``: beam search with PandaLM's released decoding settings (4 beams,
  repetition penalty 1.2, 512 new tokens), batched with left padding, on a preallocated
  beam search cache on CPU (:mod:`optuna_pandalm.judges.beam_cache`); the output is parsed with
  :func:`parse_pandalm_output`, and an invalid output is retried once with sampling.

torch, transformers and tqdm are imported inside the methods that run the model, so the
judge's prompt and parser import without them.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from typing import Any

# The module, not its function: tests and benchmarks replace beam_search_cache on it.
from optuna_pandalm.judges import beam_cache as _beam_cache
from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict
from optuna_pandalm.judges.loading import free_accelerator_memory, load_model

__all__ = ["PandaLMJudge", "build_pandalm_prompt", "parse_pandalm_output"]

_logger = logging.getLogger(__name__)

LABELS = ("Tie", "1", "2")  # in the order of Verdict.probabilities: (tie, 1, 2)
LABEL_OF = {label.lower(): winner for winner, label in enumerate(LABELS)}
_EVALUATION = "### Evaluation:"
_REASON = re.compile(r"###\s*Reason\s*:", re.IGNORECASE)
_REFERENCE = re.compile(r"###\s*Reference\s*:", re.IGNORECASE)


def build_pandalm_prompt(
    instruction: str, response_1: str, response_2: str, input: str = ""
) -> str:
    """PandaLM's evaluation prompt, exactly as the released model was trained on.

    The responses are stripped of surrounding white space first, as PandaLM's own prompt
    builder does (the instruction and input are not).

    Example:
        >>> prompt = build_pandalm_prompt("Add 2 and 3.", "5", "6")
        >>> prompt.startswith("Below are two responses"), prompt.endswith("### Evaluation:\\n")
        (True, True)
        >>> build_pandalm_prompt("Add 2 and 3.", "5\\n", " 6") == prompt
        True
    """
    response_1, response_2 = response_1.strip(), response_2.strip()
    context = " with an Input that provides further context" if input else ""
    parts = [
        "Below are two responses for a given task. The task is defined by the Instruction"
        f"{context}. Evaluate the responses and generate a reference answer for the task.\n\n",
        f"### Instruction:\n{instruction}\n\n",
    ]
    if input:
        parts.append(f"### Input:\n{input}\n\n")
    parts.append(f"### Response 1:\n{response_1}\n\n### Response 2:\n{response_2}\n\n")
    parts.append(f"{_EVALUATION}\n")
    return "".join(parts)


def parse_pandalm_output(text: str) -> Verdict:
    """Parse PandaLM's output: ``1``, ``2`` or ``Tie`` on the first line, then the reason and
    the reference answer.

    Tolerates surrounding whitespace, any case and a leading echo of the prompt (the text is
    split on the last ``### Evaluation:``). Anything else is an invalid verdict
    (``winner=None``), never a tie: PandaLM's released code silently calls garbage a tie.

    Example:
        >>> v = parse_pandalm_output("2\\n\\n### Reason: shorter.\\n\\n### Reference: 5\\n")
        >>> v.winner, v.reason, v.reference
        (2, 'shorter.', '5')
        >>> parse_pandalm_output("I think both are fine").winner is None
        True
    """
    raw = text
    if _EVALUATION in text:
        text = text.rsplit(_EVALUATION, 1)[1]
    body = text.strip()
    first_line = body.split("\n", 1)[0].strip()
    # The label may share its line with "### Reason:" when the model skips the blank line.
    label = _REASON.split(first_line, 1)[0].strip().lower()
    winner = LABEL_OF.get(label)
    reason = reference = ""
    reason_match = _REASON.search(body)
    reference_match = _REFERENCE.search(body)
    if reason_match:
        end = (
            reference_match.start()
            if reference_match and reference_match.start() > reason_match.end()
            else len(body)
        )
        reason = body[reason_match.end() : end].strip()
    if reference_match:
        reference = body[reference_match.end() :].strip()
    return Verdict(winner=winner, reason=reason, reference=reference, raw=raw)


def _strip_special(text: str, special: Sequence[str]) -> str:
    for token in special:
        if token:
            text = text.replace(token, "")
    return text


class PandaLMJudge(PairwiseJudge):
    """The PandaLM judge on a local causal language model.

    Args:
        model: A local folder (loaded with ``from_pretrained``; nothing is downloaded) or
            an already loaded causal LM.
        tokenizer: Its tokenizer; loaded from ``model`` when that is a folder.
        mode: ``"likelihood"`` (one forward pass, probabilities) or ``"generate"``.
        batch_size: Requests per forward pass or ``generate`` call.
        dtype: Torch dtype name for loading (``"bfloat16"``, ``"float16"``, ``"float32"``,
            or ``"auto"``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available.
        device_map: Passed to ``from_pretrained`` (e.g. ``"auto"`` to spread a large judge
            over several GPUs); then ``device`` is ignored.
        trust_remote_code: Off unless you trust the model folder's code.
        tie_threshold: Likelihood mode: call a tie whenever P(tie) is at least this
            (default ``None``: the arg max decides).
        num_beams, repetition_penalty, max_new_tokens, early_stopping: Generate mode's
            decoding; defaults are PandaLM's released settings.
        generation_kwargs: More keyword arguments for ``generate``.
        retry_kwargs: Decoding for the one retry of an invalid output (default: sampling at
            temperature 0.7 with a fixed seed).
        max_length: Context length in tokens; default from the model config.
        beam_cache: Generate mode with beams: decode on the preallocated beam search cache
            (:mod:`~optuna_pandalm.judges.beam_cache`; identical outputs). Default ``None``:
            on CPU only, where it is faster; on a GPU it decoded slower than transformers'
            default cache, with more memory (figures: ``benchmarks/README.md``).
        name: Override the cache key (default: model path or id, mode and settings).
        progress: Show a tqdm progress bar.

    Inputs longer than the context are cut from the end of the responses (never the
    instruction or input); the number cut is logged once per batch and kept in
    ``n_truncated``. Special tokens inside texts are removed first, as PandaLM does. Empty
    responses are judged as they are.

    Example:
        >>> judge = PandaLMJudge("/models/pandalm-7b", dtype="bfloat16")  # doctest: +SKIP
        >>> judge.judge([JudgeRequest("Add 2 and 3.", "5", "6")])  # doctest: +SKIP
        [Verdict(winner=1, probabilities=(0.02, 0.95, 0.03), ...)]
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        mode: str = "likelihood",
        batch_size: int = 8,
        dtype: str | None = None,
        device: str | None = None,
        device_map: Any = None,
        trust_remote_code: bool = False,
        tie_threshold: float | None = None,
        num_beams: int = 4,
        repetition_penalty: float = 1.2,
        max_new_tokens: int = 512,
        early_stopping: bool = True,
        generation_kwargs: dict[str, Any] | None = None,
        retry_kwargs: dict[str, Any] | None = None,
        max_length: int | None = None,
        beam_cache: bool | None = None,
        name: str | None = None,
        progress: bool = False,
    ) -> None:
        if mode not in ("likelihood", "generate"):
            raise ValueError(f"mode must be 'likelihood' or 'generate', got {mode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer, source = load_model(
            model,
            tokenizer,
            kind="causal",
            dtype=dtype,
            device=device,
            device_map=device_map,
            trust_remote_code=trust_remote_code,
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.mode = mode
        self.batch_size = batch_size
        self.tie_threshold = tie_threshold
        self.generation = {
            "num_beams": num_beams,
            "repetition_penalty": repetition_penalty,
            "max_new_tokens": max_new_tokens,
            "early_stopping": early_stopping,
            "do_sample": False,
            **(generation_kwargs or {}),
        }
        self.retry = retry_kwargs or {
            "do_sample": True,
            "temperature": 0.7,
            "top_p": 0.9,
            "num_beams": 1,
        }
        config_length = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = int(max_length or config_length or 2048)
        self.progress = progress
        self.beam_cache = beam_cache
        self.n_truncated = 0
        self._special = sorted(
            set(getattr(self.tokenizer, "all_special_tokens", [])), key=len, reverse=True
        )
        self._label_ids = self._first_label_tokens() if mode == "likelihood" else None
        settings = (
            f"mode=likelihood,tie={tie_threshold}"
            if mode == "likelihood"
            else ",".join(f"{k}={v}" for k, v in sorted(self.generation.items()))
        )
        self.name = name or f"pandalm:{source}:{settings}:max_length={self.max_length}"

    def __repr__(self) -> str:
        return f"PandaLMJudge(name={self.name!r})"

    # --- prompt building ------------------------------------------------------------------
    def _first_label_tokens(self) -> list[int]:
        """The token that starts each label right after the prompt's final newline."""
        probe = f"{_EVALUATION}\n"
        base = self.tokenizer(probe, add_special_tokens=False)["input_ids"]
        ids = []
        for label in LABELS:
            extended = self.tokenizer(probe + label, add_special_tokens=False)["input_ids"]
            if extended[: len(base)] != base or len(extended) == len(base):
                raise ValueError(f"cannot find the token of label {label!r} after the prompt")
            ids.append(extended[len(base)])
        if len(set(ids)) != len(ids):
            raise ValueError(
                "the labels '1', '2' and 'Tie' start with the same token under this tokenizer; "
                "likelihood mode cannot tell them apart (use mode='generate')"
            )
        return ids

    def _length(self, text: str) -> int:
        return len(self.tokenizer(text, verbose=False)["input_ids"])

    def _prompt(self, request: JudgeRequest, budget: int) -> tuple[str, bool]:
        """The prompt for one request, its responses cut from the end to fit ``budget``."""
        clean = [
            _strip_special(t, self._special)
            for t in (request.instruction, request.input, request.response_1, request.response_2)
        ]
        instruction, input_, response_1, response_2 = clean
        # A token covers at most a few dozen characters: cut huge texts before tokenising.
        character_cap = 32 * budget
        response_1, response_2 = response_1[:character_cap], response_2[:character_cap]
        text = build_pandalm_prompt(instruction, response_1, response_2, input_)
        length = self._length(text)
        if (
            length <= budget
            and len(request.response_1) <= character_cap
            and len(request.response_2) <= character_cap
        ):
            return text, False
        tokens = [
            self.tokenizer(r, add_special_tokens=False)["input_ids"]
            for r in (response_1, response_2)
        ]
        fixed = self._length(build_pandalm_prompt(instruction, "", "", input_))
        room = max(budget - fixed, 0)
        for _ in range(8):  # re-tokenising at the cut can add a token or two: shrink and retry
            short = min(len(tokens[0]), len(tokens[1]))
            first = min(len(tokens[0]), max(room // 2, room - len(tokens[1])))
            second = min(len(tokens[1]), room - first) if short else min(len(tokens[1]), room)
            cut = [
                self.tokenizer.decode(t[:k]) for t, k in zip(tokens, (first, second), strict=True)
            ]
            text = build_pandalm_prompt(instruction, cut[0], cut[1], input_)
            if self._length(text) <= budget or room == 0:
                return text, True
            room = int(room * 0.9)
        return text, True

    def prompts(self, requests: Sequence[JudgeRequest]) -> tuple[list[str], int]:
        """Prompts for a batch and how many had to be cut."""
        reserve = (
            1
            if self.mode == "likelihood"
            else min(int(self.generation["max_new_tokens"]), self.max_length // 4)
        )
        budget = self.max_length - reserve
        built = [self._prompt(r, budget) for r in requests]
        return [text for text, _ in built], sum(cut for _, cut in built)

    # --- judging ----------------------------------------------------------------------------
    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        from tqdm.auto import tqdm

        # Batches of similar length waste little on padding: sort, judge, restore the order.
        sizes = [
            len(r.instruction) + len(r.input) + len(r.response_1) + len(r.response_2)
            for r in requests
        ]
        order = sorted(range(len(requests)), key=lambda i: sizes[i])
        verdicts: list[Verdict | None] = [None] * len(requests)
        batches = range(0, len(requests), self.batch_size)
        for start in tqdm(batches, desc="judging", unit="batch", disable=not self.progress):
            chosen = order[start : start + self.batch_size]
            texts, n_cut = self.prompts([requests[i] for i in chosen])
            if n_cut:
                self.n_truncated += n_cut
                _logger.warning(
                    "%d of %d judge inputs exceeded %d tokens: responses cut from their end",
                    n_cut,
                    len(chosen),
                    self.max_length,
                )
            judged = (
                self._likelihood(texts) if self.mode == "likelihood" else self._generate(texts)
            )
            for i, verdict in zip(chosen, judged, strict=True):
                verdicts[i] = verdict
            free_accelerator_memory(self.model)
        return verdicts  # type: ignore[return-value]

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True)
        device = next(self.model.parameters()).device
        return {
            k: v.to(device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")
        }

    def _likelihood(self, texts: list[str]) -> list[Verdict]:
        import torch

        encoded = self._encode(texts)
        mask = encoded["attention_mask"]
        # Left padding: positions must count real tokens only.
        positions = (mask.long().cumsum(-1) - 1).clamp_(min=0)
        with torch.inference_mode():
            try:
                output = self.model(
                    **encoded, position_ids=positions, use_cache=False, logits_to_keep=1
                )
            except TypeError:  # architectures without logits_to_keep
                output = self.model(**encoded, position_ids=positions, use_cache=False)
            log_probs = torch.log_softmax(output.logits[:, -1, :].float(), dim=-1)
            chosen = log_probs[:, self._label_ids]
            probabilities = torch.softmax(chosen, dim=-1).cpu().tolist()
            mass = chosen.exp().sum(dim=-1).cpu().tolist()
        verdicts = []
        for row, label_mass in zip(probabilities, mass, strict=True):
            tie, one, two = row
            if self.tie_threshold is not None and tie >= self.tie_threshold:
                winner = 0
            else:
                winner = max(range(3), key=lambda k: row[k])
            verdicts.append(
                Verdict(
                    winner=winner,
                    probabilities=(tie, one, two),
                    raw=f"label mass {label_mass:.4f}",
                )
            )
        return verdicts

    def _decode_new(self, encoded: dict[str, Any], output: Any) -> list[str]:
        new = output[:, encoded["input_ids"].shape[1] :]
        texts: list[str] = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return texts

    def uses_beam_cache(self) -> bool:
        """Whether generate mode decodes on the preallocated beam search cache (see
        ``beam_cache``: by default on CPU only)."""
        if self.beam_cache is not None:
            return self.beam_cache
        device = getattr(self.model, "device", None)
        return getattr(device, "type", "cpu") == "cpu"

    def _cache(self, encoded: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        """The KV cache for beam search: a preallocated cache that copies the KV cache
        once per step instead of twice (identical outputs) where ``beam_cache`` says so;
        nothing otherwise."""
        if settings.get("num_beams", 1) <= 1 or not self.uses_beam_cache():
            return {}
        capacity = encoded["input_ids"].shape[1] + int(settings["max_new_tokens"])
        cache = _beam_cache.beam_search_cache(self.model, capacity)
        return {} if cache is None else {_cache_keyword(): cache}

    def _generate(self, texts: list[str]) -> list[Verdict]:
        import torch

        encoded = self._encode(texts)
        room = self.max_length - encoded["input_ids"].shape[1]
        settings = {
            **self.generation,
            "max_new_tokens": max(1, min(int(self.generation["max_new_tokens"]), room)),
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        with torch.inference_mode():
            output = self.model.generate(**encoded, **settings, **self._cache(encoded, settings))
            outputs = self._decode_new(encoded, output)
        verdicts = [parse_pandalm_output(text) for text in outputs]
        invalid = [i for i, v in enumerate(verdicts) if not v.is_valid]
        if invalid:
            retry = self._encode([texts[i] for i in invalid])
            generator_state = torch.random.get_rng_state()
            torch.manual_seed(0)
            with torch.inference_mode():
                retry_settings = {**settings, **self.retry}
                if retry_settings.get("num_beams", 1) == 1:
                    retry_settings.pop("early_stopping", None)  # a beam-search-only flag
                cache = self._cache(retry, retry_settings)
                again = self._decode_new(
                    retry, self.model.generate(**retry, **retry_settings, **cache)
                )
            torch.random.set_rng_state(generator_state)
            for i, text in zip(invalid, again, strict=True):
                verdicts[i] = parse_pandalm_output(text)
        return verdicts


def _cache_keyword() -> str:
    """The ``generate`` keyword for a KV cache in this transformers: ``cache`` since it
    renamed ``past_key_values`` (the old name warns), the name its model outputs carry.

    Example:
        >>> _cache_keyword() in ("cache", "past_key_values")
        True
    """
    from transformers.modeling_outputs import CausalLMOutputWithPast

    fields = {field.name for field in dataclasses.fields(CausalLMOutputWithPast)}
    return "cache" if "cache" in fields else "past_key_values"
