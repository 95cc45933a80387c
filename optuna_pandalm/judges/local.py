"""LocalJudge: any local causal language model as a pairwise judge, in any judge format.

The judge asks the model in one of :data:`~optuna_pandalm.judges.FORMATS` (PandaLM,
Prometheus 2, MT-Bench, Arena-Hard, JudgeLM, or a :class:`JudgeFormat` of your own) and reads
its answer the way that format says. Two modes:

* ``"likelihood"``: one forward pass per request scores, right after the prompt and the
  format's ``answer_prefix``, the token where each of the format's ``labels`` starts, and
  returns their normalised probabilities ``(tie, 1, 2)`` (``0`` for a format without ties).
* ``"generate"``: the model writes its judgment (batched, left padding; beam search on a
  preallocated cache on CPU, :mod:`optuna_pandalm.judges.beam_cache`), read with the format's
  ``parse``; an invalid output is retried once with sampling.

torch, transformers and tqdm are imported inside the methods that run the model, so this
module imports without them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

# The module, not its function: tests and benchmarks replace beam_search_cache on it.
from optuna_pandalm.judges import beam_cache as _beam_cache
from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict
from optuna_pandalm.judges.formats import FORMATS, JudgeFormat
from optuna_pandalm.judges.loading import free_accelerator_memory, load_model

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "LocalJudge", "prompt_tail", "resolve_format"]

_logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = {
    "pandalm": 512,
    "prometheus2": 1024,
    "mtbench": 2048,
    "arena_hard": 4096,
    "judgelm": 512,
}
"""Generate mode's token budget per format (see :class:`LocalJudge`); 1024 for others."""

_PROBE = JudgeRequest("Q", "a", "b")  # a request whose prompt shows how a format's prompt ends


def resolve_format(format: str | JudgeFormat, mode: str) -> JudgeFormat:
    """The format a judge speaks, checked against its mode: a name of
    :data:`~optuna_pandalm.judges.FORMATS` or a :class:`JudgeFormat` instance.

    Raises:
        ValueError: an unknown name (with the closest one), or likelihood mode with a format
            that has no likelihood labels.

    Example:
        >>> resolve_format("mtbench", "likelihood").answer_prefix
        '[['
        >>> resolve_format("judgelm", "likelihood")
        Traceback (most recent call last):
        ...
        ValueError: format 'judgelm' has no likelihood labels (its verdict is not one label \
after the prompt): use mode='generate'
    """
    if mode not in ("likelihood", "generate"):
        raise ValueError(f"mode must be 'likelihood' or 'generate', got {mode!r}")
    if isinstance(format, str):
        if format not in FORMATS:
            import difflib

            close = difflib.get_close_matches(format, FORMATS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"unknown judge format {format!r} ({hint}formats: {', '.join(sorted(FORMATS))})"
            )
        format = FORMATS[format]
    if not isinstance(format, JudgeFormat):
        raise ValueError(
            f"format must be a name in FORMATS or a JudgeFormat, got {type(format).__name__}"
        )
    if mode == "likelihood" and not format.labels:
        raise ValueError(
            f"format {format.name!r} has no likelihood labels (its verdict is not one label "
            "after the prompt): use mode='generate'"
        )
    return format


def format_key(format: JudgeFormat) -> str:
    """The format's name, with a fingerprint of its prompts when they differ from the
    registered format of that name (another rubric, ``merge_system``, a subclass): two
    judges that ask differently must not share verdict cache keys.

    Example:
        >>> from optuna_pandalm.judges.formats import Prometheus2Format
        >>> format_key(FORMATS["prometheus2"])
        'prometheus2'
        >>> format_key(Prometheus2Format(rubric="[Is it short?]")).startswith("prometheus2~")
        True
    """
    fingerprint = _fingerprint(format)
    registered = FORMATS.get(format.name)
    if registered is not None and _fingerprint(registered) == fingerprint:
        return format.name
    return f"{format.name}~{fingerprint[:8]}"


def _fingerprint(format: JudgeFormat) -> str:
    probes = (_PROBE, dataclasses.replace(_PROBE, input="I", reference="R"))
    shown = repr(
        [
            (format.chat, format.answer_prefix, sorted(format.labels.items())),
            *(format.messages(probe) for probe in probes),
            *(format.text(probe) for probe in probes if not format.chat),
        ]
    )
    return hashlib.sha256(shown.encode("utf-8")).hexdigest()


def prompt_tail(prompt: str) -> str:
    """The prompt's last line, with its final newline: enough context to see which tokens a
    label adds after the prompt (the tokenizer's merges across the boundary included).

    Example:
        >>> prompt_tail("Below are...\\n\\n### Evaluation:\\n")
        '### Evaluation:\\n'
        >>> prompt_tail("<|im_start|>assistant\\n[RESULT]")
        '[RESULT]'
    """
    return prompt[prompt.rstrip("\n").rfind("\n") + 1 :]


def _strip_special(text: str, special: Sequence[str]) -> str:
    for token in special:
        if token:
            text = text.replace(token, "")
    return text


class LocalJudge(PairwiseJudge):
    """Any local causal LM as a pairwise judge, speaking a judge format.

    Args:
        model: A local folder (loaded with ``from_pretrained``; nothing is downloaded) or
            an already loaded causal LM.
        tokenizer: Its tokenizer; loaded from ``model`` when that is a folder.
        format: A name in :data:`~optuna_pandalm.judges.FORMATS` (``"pandalm"``,
            ``"prometheus2"``, ``"mtbench"``, ``"arena_hard"``, ``"judgelm"``) or a
            :class:`~optuna_pandalm.judges.JudgeFormat` instance (e.g.
            ``Prometheus2Format(rubric=...)``).
        mode: ``"likelihood"`` (one forward pass, probabilities) or ``"generate"``.
        batch_size: Requests per forward pass or ``generate`` call.
        dtype: Torch dtype name for loading (``"bfloat16"``, ``"float16"``, ``"float32"``,
            or ``"auto"``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available.
        device_map: Passed to ``from_pretrained`` (e.g. ``"auto"`` to spread a large judge
            over several GPUs); then ``device`` is ignored.
        trust_remote_code: Off unless you trust the model folder's code.
        tie_threshold: Likelihood mode, formats with ties: call a tie whenever P(tie) is at
            least this (default ``None``: the arg max decides).
        num_beams, repetition_penalty, max_new_tokens, early_stopping: Generate mode's
            decoding; ``None`` takes the format's default (below).
        generation_kwargs: More keyword arguments for ``generate``.
        retry_kwargs: Decoding for the one retry of an invalid output (default: sampling at
            temperature 0.7 with a fixed seed).
        max_length: Context length in tokens; default from the model config.
        beam_cache: Generate mode with beams: decode on the preallocated beam search cache
            (:mod:`~optuna_pandalm.judges.beam_cache`; identical outputs). Default ``None``:
            on CPU only, where it is faster; on a GPU it decoded slower than transformers'
            default cache, with more memory (figures: ``benchmarks/README.md``).
        chat_template: A Jinja chat template for a chat format when the tokenizer has none
            (or to replace its own); it becomes part of the judge's name.
        name: Override the cache key (default:
            ``local:{format}:{source}:{settings}:max_length=N``).
        progress: Show a tqdm progress bar.

    The prompt: a base-model format (``format.chat`` false) is ``format.text(request)``; a
    chat format is ``format.messages(request)`` laid out by the tokenizer's chat template
    with the generation prompt (``apply_chat_template(..., add_generation_prompt=True)``).
    A tokenizer without a chat template is refused at construction for a chat format. The
    rendered chat text is tokenised without adding special tokens again when it already
    starts with the BOS token (the template holds it), so BOS is never doubled.
    Likelihood mode appends the format's ``answer_prefix`` (``[RESULT]`` for Prometheus 2,
    ``[[`` for MT-Bench and Arena-Hard) and scores the labels' first tokens there; labels
    that share their first tokens are scored at the first token where they differ, after
    the shared ones (one forward pass). Labels that still start alike (Arena-Hard's ``A>B``
    and ``A=B`` under most tokenizers) are scored whole: each label's log-probability is
    the sum over its tokens, in one forward pass over the prompt followed by each label
    (as many rows as labels). A label that is a prefix of another is refused: its
    probability would include the longer one's. Generate mode does not
    append it: the judge writes its feedback or explanation first, as the format asks, and
    the format's parser reads the verdict (with its strength, for Arena-Hard).

    The request's ``reference`` reaches the formats that take one (Prometheus 2, MT-Bench,
    JudgeLM) through their prompts.

    Decoding defaults: PandaLM keeps its released settings (4 beams, repetition penalty
    1.2, 512 new tokens, early stopping), so ``LocalJudge(format="pandalm")`` is
    :class:`~optuna_pandalm.PandaLMJudge`. Every other format decodes greedily (1 beam, no
    repetition penalty), as the projects ran their judges (temperature 0), with the token
    budget its verdict needs, since a judgment cut before its label is invalid: Prometheus 2
    1024 (a feedback paragraph comes before ``[RESULT]``), MT-Bench 2048 (FastChat's
    ``run_judge_pair``; the explanation comes first), Arena-Hard 4096 (its
    ``judge_config.yaml``; the judge writes its own answer before judging), JudgeLM 512
    (the two scores are on the first line, the explanation after them).

    Inputs longer than the context are cut from the end of the responses (never the
    instruction, input or reference); the number cut is logged once per batch and kept in
    ``n_truncated``. Special tokens inside the request's texts are removed first, as PandaLM
    does. Empty responses are judged as they are.

    Example:
        >>> judge = LocalJudge("/models/prometheus-7b-v2.0", format="prometheus2",
        ...                    dtype="bfloat16")  # doctest: +SKIP
        >>> judge.judge([JudgeRequest("Add 2 and 3.", "5", "6", reference="5")])  # doctest: +SKIP
        [Verdict(winner=1, probabilities=(0.0, 0.93, 0.07), ...)]
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        format: str | JudgeFormat = "pandalm",
        mode: str = "likelihood",
        batch_size: int = 8,
        dtype: str | None = None,
        device: str | None = None,
        device_map: Any = None,
        trust_remote_code: bool = False,
        tie_threshold: float | None = None,
        num_beams: int | None = None,
        repetition_penalty: float | None = None,
        max_new_tokens: int | None = None,
        early_stopping: bool | None = None,
        generation_kwargs: dict[str, Any] | None = None,
        retry_kwargs: dict[str, Any] | None = None,
        max_length: int | None = None,
        beam_cache: bool | None = None,
        chat_template: str | None = None,
        name: str | None = None,
        progress: bool = False,
    ) -> None:
        self.format = resolve_format(format, mode)
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
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        if self.format.chat and not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"judge model {source!r} has no chat template and format "
                f"{self.format.name!r} is a chat format: pass chat_template= (a Jinja "
                "template) or use a base-model format ('pandalm', 'judgelm')"
            )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.mode = mode
        self.batch_size = batch_size
        self.tie_threshold = tie_threshold
        self.generation = self._decoding(
            num_beams, repetition_penalty, max_new_tokens, early_stopping, generation_kwargs
        )
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
        # The winners the format can name, in (tie, 1, 2) order, and what likelihood scores.
        self._winners = tuple(sorted(self.format.labels))
        self._add_special_tokens = self._adds_special_tokens()
        self._label_stem: list[int] = []
        self._label_ids: list[int] | None = None
        self._label_sequences: list[list[int]] | None = None
        if mode == "likelihood":
            self._label_stem, self._label_ids, self._label_sequences = self._label_tokens()
        settings = (
            f"mode=likelihood,tie={tie_threshold}"
            if mode == "likelihood"
            else ",".join(f"{k}={v}" for k, v in sorted(self.generation.items()))
        )
        if chat_template is not None:
            digest = hashlib.sha256(chat_template.encode("utf-8")).hexdigest()[:8]
            settings += f",chat_template={digest}"
        self.name = name or self._default_name(source, settings)

    def _default_name(self, source: str, settings: str) -> str:
        return f"local:{format_key(self.format)}:{source}:{settings}:max_length={self.max_length}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def _decoding(
        self,
        num_beams: int | None,
        repetition_penalty: float | None,
        max_new_tokens: int | None,
        early_stopping: bool | None,
        generation_kwargs: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Generate mode's settings: the format's defaults where an option is ``None``."""
        if self.format.name == "pandalm":  # PandaLM's released decoding
            defaults: dict[str, Any] = {
                "num_beams": 4,
                "repetition_penalty": 1.2,
                "max_new_tokens": 512,
                "early_stopping": True,
            }
        else:  # greedy, as the projects ran their judges
            defaults = {
                "num_beams": 1,
                "repetition_penalty": 1.0,
                "max_new_tokens": DEFAULT_MAX_NEW_TOKENS.get(self.format.name, 1024),
                "early_stopping": None,  # a beam-search flag
            }
        given = {
            "num_beams": num_beams,
            "repetition_penalty": repetition_penalty,
            "max_new_tokens": max_new_tokens,
            "early_stopping": early_stopping,
        }
        chosen = {k: defaults[k] if v is None else v for k, v in given.items()}
        settings = {k: v for k, v in chosen.items() if v is not None}
        return {**settings, "do_sample": False, **(generation_kwargs or {})}

    # --- prompt building ------------------------------------------------------------------
    def render(self, request: JudgeRequest) -> str:
        """The request's prompt as text, before tokenising (chat formats: laid out by the
        chat template, with the generation prompt); likelihood mode adds
        ``format.answer_prefix`` after it."""
        if self.format.chat:
            text: str = self.tokenizer.apply_chat_template(
                self.format.messages(request), add_generation_prompt=True, tokenize=False
            )
        else:
            text = self.format.text(request)
        return text + self.format.answer_prefix if self.mode == "likelihood" else text

    def _adds_special_tokens(self) -> bool:
        """Whether tokenising a prompt adds the special tokens: not when a chat template
        already wrote the BOS token (it would be doubled)."""
        bos = getattr(self.tokenizer, "bos_token", None)
        return not (self.format.chat and bos and self.render(_PROBE).startswith(bos))

    def _tokens(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(
            text, add_special_tokens=self._add_special_tokens, verbose=False
        )["input_ids"]
        return ids

    def _label_tokens(self) -> tuple[list[int], list[int] | None, list[list[int]] | None]:
        """What likelihood mode scores after the prompt, in (tie, 1, 2) order: the tokens
        the labels share (usually none) and the token where each label then starts; or,
        when labels still start alike, each label's whole token sequence after the shared
        ones (``(stem, None, sequences)``)."""
        probe = prompt_tail(self.render(_PROBE))
        base = self.tokenizer(probe, add_special_tokens=False)["input_ids"]
        continuations = []
        for winner in self._winners:
            label = self.format.labels[winner]
            extended = self.tokenizer(probe + label, add_special_tokens=False)["input_ids"]
            if extended[: len(base)] != base or len(extended) == len(base):
                raise ValueError(
                    f"cannot find the token of label {label!r} after format "
                    f"{self.format.name!r}'s prompt under this tokenizer: use mode='generate'"
                )
            continuations.append(list(extended[len(base) :]))
        stem = continuations[0]
        for continuation in continuations[1:]:
            common = 0
            while common < min(len(stem), len(continuation)):
                if stem[common] != continuation[common]:
                    break
                common += 1
            stem = stem[:common]
        rests = [c[len(stem) :] for c in continuations]
        labels = [self.format.labels[w] for w in self._winners]
        if any(a is not b and b[: len(a)] == a for a in rests for b in rests):
            raise ValueError(
                f"format {self.format.name!r}'s labels {labels} are prefixes of one another "
                "under this tokenizer; likelihood mode cannot tell them apart (use "
                "mode='generate')"
            )
        firsts = [rest[0] for rest in rests]
        if len(set(firsts)) == len(firsts):
            return stem, firsts, None
        return stem, None, rests

    def _length(self, text: str) -> int:
        return len(self._tokens(text))

    def _prompt(self, request: JudgeRequest, budget: int) -> tuple[str, bool]:
        """The prompt for one request, its responses cut from the end to fit ``budget``."""
        clean = dataclasses.replace(
            request,
            instruction=_strip_special(request.instruction, self._special),
            input=_strip_special(request.input, self._special),
            response_1=_strip_special(request.response_1, self._special),
            response_2=_strip_special(request.response_2, self._special),
            reference=None
            if request.reference is None
            else _strip_special(request.reference, self._special),
        )
        # A token covers at most a few dozen characters: cut huge texts before tokenising.
        character_cap = 32 * budget
        capped = dataclasses.replace(
            clean,
            response_1=clean.response_1[:character_cap],
            response_2=clean.response_2[:character_cap],
        )
        text = self.render(capped)
        if (
            self._length(text) <= budget
            and len(request.response_1) <= character_cap
            and len(request.response_2) <= character_cap
        ):
            return text, False
        tokens = [
            self.tokenizer(r, add_special_tokens=False)["input_ids"]
            for r in (capped.response_1, capped.response_2)
        ]
        empty = dataclasses.replace(capped, response_1="", response_2="")
        fixed = self._length(self.render(empty))
        room = max(budget - fixed, 0)
        for _ in range(8):  # re-tokenising at the cut can add a token or two: shrink and retry
            short = min(len(tokens[0]), len(tokens[1]))
            first = min(len(tokens[0]), max(room // 2, room - len(tokens[1])))
            second = min(len(tokens[1]), room - first) if short else min(len(tokens[1]), room)
            cut = [
                self.tokenizer.decode(t[:k]) for t, k in zip(tokens, (first, second), strict=True)
            ]
            text = self.render(dataclasses.replace(capped, response_1=cut[0], response_2=cut[1]))
            if self._length(text) <= budget or room == 0:
                return text, True
            room = int(room * 0.9)
        return text, True

    def prompts(self, requests: Sequence[JudgeRequest]) -> tuple[list[str], int]:
        """Prompts for a batch and how many had to be cut."""
        label_length = max(map(len, self._label_sequences or [[0]]))
        reserve = (
            label_length + len(self._label_stem)
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

    def _encode(self, texts: list[str], stem: Sequence[int] = ()) -> dict[str, Any]:
        """Token ids and attention mask, left padded, with ``stem`` appended to every row."""
        import torch

        encoded = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=self._add_special_tokens
        )
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        if stem:
            tail = torch.tensor(list(stem), dtype=ids.dtype).expand(ids.shape[0], -1)
            ids = torch.cat([ids, tail], dim=1)
            mask = torch.cat([mask, torch.ones_like(tail, dtype=mask.dtype)], dim=1)
        device = next(self.model.parameters()).device
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}

    def _likelihood(self, texts: list[str]) -> list[Verdict]:
        import torch

        if self._label_sequences is not None:
            return self._verdicts(self._whole_label_log_probs(texts))
        encoded = self._encode(texts, self._label_stem)
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
        return self._verdicts(chosen)

    def _whole_label_log_probs(self, texts: list[str]) -> Any:
        """Each label's log-probability after each prompt (the sum over its tokens), as a
        ``(texts, labels)`` tensor: one forward pass over one row per text and label, left
        padded so that every row ends with its label."""
        import torch

        sequences = self._label_sequences
        assert sequences is not None
        prompts = self.tokenizer(texts, add_special_tokens=self._add_special_tokens)["input_ids"]
        rows = [list(p) + self._label_stem + seq for p in prompts for seq in sequences]
        width = max(len(row) for row in rows)
        pad = int(self.tokenizer.pad_token_id)
        ids = torch.tensor([[pad] * (width - len(row)) + row for row in rows])
        mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
        device = next(self.model.parameters()).device
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.long().cumsum(-1) - 1).clamp_(min=0)
        keep = max(len(seq) for seq in sequences) + 1
        with torch.inference_mode():
            try:
                output = self.model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=False,
                    logits_to_keep=keep,
                )
            except TypeError:  # architectures without logits_to_keep
                output = self.model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
                )
            log_probs = torch.log_softmax(output.logits[:, -keep:, :].float(), dim=-1)
        totals = []
        for r in range(len(rows)):
            seq = sequences[r % len(sequences)]
            # The logits at kept index keep - len(seq) - 1 + i predict the label's token i.
            start = keep - len(seq) - 1
            totals.append(
                sum(float(log_probs[r, start + i, token]) for i, token in enumerate(seq))
            )
        return torch.tensor(totals).reshape(len(texts), len(sequences))

    def _verdicts(self, chosen: Any) -> list[Verdict]:
        """Verdicts from the labels' log-probabilities, a ``(texts, labels)`` tensor."""
        import torch

        probabilities = torch.softmax(chosen, dim=-1).cpu().tolist()
        mass = chosen.exp().sum(dim=-1).cpu().tolist()
        verdicts = []
        for row, label_mass in zip(probabilities, mass, strict=True):
            full = [0.0, 0.0, 0.0]  # (tie, 1, 2); a format without ties leaves P(tie) at 0
            for winner, probability in zip(self._winners, row, strict=True):
                full[winner] = probability
            if (
                self.tie_threshold is not None
                and 0 in self._winners
                and (full[0] >= self.tie_threshold)
            ):
                winner = 0
            else:
                winner = max(self._winners, key=lambda k: full[k])
            verdicts.append(
                Verdict(
                    winner=winner,
                    probabilities=(full[0], full[1], full[2]),
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
        verdicts = [self.format.parse(text) for text in outputs]
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
                verdicts[i] = self.format.parse(text)
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
