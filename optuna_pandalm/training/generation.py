"""Answering the prompt set with the model being trained.

Batched greedy generation with left padding, in eval mode under ``torch.inference_mode``
with the KV cache, optional autocast, and the model's training mode restored afterwards.
Prompts are formatted with a template: Alpaca's (the default, as PandaLM's models were
tuned), the tokenizer's chat template, a format string with ``{instruction}`` and
optionally ``{input}`` (as a config file can give it), or any callable
``(instruction, input) -> str``.

:func:`answer_prompts` is the step :class:`~optuna_pandalm.JudgeCallback` takes at a judged
checkpoint: every rank answers its shard of the prompt set with the
:class:`GenerationSettings`, and the main process gets all the answers in prompt order.

torch and tqdm are imported inside functions, so this module imports without them.
"""

from __future__ import annotations

import contextlib
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from optuna_pandalm.prompts import Prompt
from optuna_pandalm.training.ranks import gather_on_main, rank_and_world, shard

if TYPE_CHECKING:
    import torch

__all__ = [
    "ALPACA",
    "ALPACA_WITH_INPUT",
    "GenerationSettings",
    "answer_prompts",
    "autocast_dtype_of",
    "check_template",
    "format_prompt",
    "generate_responses",
    "user_message",
]

ALPACA = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)

# "alpaca", "chat", a format string with {instruction} (and {input}), or a callable
# ``(instruction, input) -> prompt text``.
PromptTemplate: TypeAlias = str | Callable[[str, str], str]
_FIELDS = ("instruction", "input")


def check_template(template: PromptTemplate) -> PromptTemplate:
    """Return ``template`` if :func:`format_prompt` accepts it, else raise ``ValueError``
    saying why: a format string needs ``{instruction}`` and may use ``{input}``; other
    braces are written ``{{`` and ``}}``.

    Example:
        >>> check_template("Q: {instruction} {input}\\nA:")
        'Q: {instruction} {input}\\nA:'
        >>> check_template("Q: {question}")
        Traceback (most recent call last):
        ...
        ValueError: template 'Q: {question}': unknown field {question} (use {instruction}, {input})
    """
    if callable(template) or template in ("alpaca", "chat"):
        return template
    if not isinstance(template, str):
        raise ValueError(f"template must be a string or a callable, got {template!r}")
    try:
        fields = [part[1:] for part in string.Formatter().parse(template) if part[1] is not None]
    except ValueError as error:
        raise ValueError(
            f"template {template!r}: {error} (write a literal brace as {{{{ or }}}})"
        ) from None
    for name, spec, conversion in fields:
        if name not in _FIELDS or spec or conversion:
            raise ValueError(
                f"template {template!r}: unknown field {{{name}}} (use {{instruction}}, {{input}})"
            )
    if "instruction" not in [name for name, _, _ in fields]:
        raise ValueError(f"template {template!r}: needs {{instruction}} (or 'alpaca' or 'chat')")
    return template


def user_message(prompt: Prompt) -> str:
    """The user turn of ``template="chat"``: the instruction, then the input if any.

    Example:
        >>> user_message(Prompt("Translate.", "Bonjour"))
        'Translate.\\n\\nBonjour'
    """
    return f"{prompt.instruction}\n\n{prompt.input}" if prompt.input else prompt.instruction


def format_prompt(
    prompt: Prompt, template: PromptTemplate = "alpaca", tokenizer: Any = None
) -> str:
    """The text the trainee sees for one prompt.

    Example:
        >>> format_prompt(Prompt("Add 2 and 3.")).endswith("### Response:\\n")
        True
    """
    if callable(template):
        return template(prompt.instruction, prompt.input)
    if template == "alpaca":
        if prompt.input:
            return ALPACA_WITH_INPUT.format(instruction=prompt.instruction, input=prompt.input)
        return ALPACA.format(instruction=prompt.instruction)
    if template == "chat":
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("template='chat' needs a tokenizer with a chat template")
        text: str = tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message(prompt)}],
            tokenize=False,
            add_generation_prompt=True,
        )
        return text
    check_template(template)
    return template.format(instruction=prompt.instruction, input=prompt.input)


def _autocast(model: Any, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    device = next(model.parameters()).device
    return torch.autocast(device_type=device.type, dtype=dtype)


def generate_responses(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    *,
    template: PromptTemplate = "alpaca",
    max_new_tokens: int = 256,
    batch_size: int = 16,
    generation_kwargs: dict[str, Any] | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
) -> list[str]:
    """Greedy (by default) responses of ``model`` to each prompt, in prompt order.

    The model is put in eval mode and restored to its previous mode afterwards; the
    tokenizer's padding side is restored too. Prompts are sorted by length so that batches
    waste little on padding.
    """
    import torch
    from tqdm.auto import tqdm

    texts = [format_prompt(p, template, tokenizer) for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    was_training = model.training
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad_token_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    settings = {
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "use_cache": True,
        "pad_token_id": pad_token_id,
        **(generation_kwargs or {}),
    }
    device = next(model.parameters()).device
    answers: list[str] = [""] * len(texts)
    model.eval()
    try:
        batches = range(0, len(order), batch_size)
        for start in tqdm(batches, desc="generating", unit="batch", disable=not progress):
            chosen = order[start : start + batch_size]
            encoded = tokenizer([texts[i] for i in chosen], return_tensors="pt", padding=True).to(
                device
            )
            with torch.inference_mode(), _autocast(model, autocast_dtype):
                output = model.generate(
                    input_ids=encoded["input_ids"],
                    attention_mask=encoded["attention_mask"],
                    **settings,
                )
            new = output[:, encoded["input_ids"].shape[1] :]
            for i, text in zip(
                chosen, tokenizer.batch_decode(new, skip_special_tokens=True), strict=True
            ):
                answers[i] = text
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return answers


@dataclass(frozen=True)
class GenerationSettings:
    """How the trainee answers the prompt set at a judged checkpoint.

    Args:
        template: ``"alpaca"`` (default), ``"chat"``, a format string or a callable
            ``(instruction, input)`` (see :func:`format_prompt`).
        max_new_tokens: The longest answer, in tokens.
        batch_size: Prompts per ``generate`` call.
        generation_kwargs: More arguments for ``model.generate`` (greedy decoding unless
            they say otherwise).
        progress: Show a tqdm bar (on the main process only).

    Example:
        >>> GenerationSettings(max_new_tokens=8).batch_size
        16
    """

    template: PromptTemplate = "alpaca"
    max_new_tokens: int = 256
    batch_size: int = 16
    generation_kwargs: dict[str, Any] | None = None
    progress: bool = False


def autocast_dtype_of(args: Any) -> torch.dtype | None:
    """The autocast dtype the Trainer trains in (``bf16`` or ``fp16`` in its
    ``TrainingArguments``), so that answers are generated as the model trains; else ``None``."""
    import torch

    if getattr(args, "bf16", False):
        return torch.bfloat16
    if getattr(args, "fp16", False):
        return torch.float16
    return None


def answer_prompts(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    settings: GenerationSettings,
    *,
    autocast_dtype: torch.dtype | None = None,
) -> list[str] | None:
    """All answers of ``model`` to ``prompts``, in prompt order, on the main process
    (``None`` on the other ranks): under ``torch.distributed`` every rank generates its
    shard (:func:`~optuna_pandalm.training.ranks.shard`) and the main process gathers them.
    A model wrapped for distributed training (``model.module``) is unwrapped."""
    rank, world = rank_and_world()
    positions = shard(len(prompts), rank, world)
    texts = generate_responses(
        getattr(model, "module", model),
        tokenizer,
        [prompts[i] for i in positions],
        template=settings.template,
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        generation_kwargs=settings.generation_kwargs,
        autocast_dtype=autocast_dtype,
        progress=settings.progress and rank == 0,
    )
    return gather_on_main(positions, texts, len(prompts))
