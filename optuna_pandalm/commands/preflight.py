"""What ``optuna-pandalm tune`` checks before it trains, all of which ``--dry-run`` does.

A config can be well formed and still be unable to run: prompts that do not parse, a
judge spec that names no judge, a reference judge on prompts without references, a model
folder whose ``config.json`` cannot be read, a storage that cannot be reached or already
holds the study with other prompts, or prompts that do not fit the model's context (a tiny
model's 128 tokens against Alpaca's 227-token template: every answer is noise, every game a
tie). :func:`preflight` finds each before any training, with one message naming the key
and the numbers.

transformers is imported inside the check that reads the model's config and tokenizer.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna_pandalm.arena import refuse_another_prompt_set
from optuna_pandalm.judges.spec import check_spec, needs_reference
from optuna_pandalm.prompts import Prompt, PromptFormatError, load_prompts
from optuna_pandalm.store import Store, StoreError
from optuna_pandalm.training.generation import format_prompt
from optuna_pandalm.training.tuning import ConfigError, load_train_data

if TYPE_CHECKING:
    from optuna_pandalm.training.generation import PromptTemplate
    from optuna_pandalm.training.tuning import TuneConfig

__all__ = ["Preflight", "check_context", "model_context", "preflight"]

_logger = logging.getLogger(__name__)

# Where model configs keep their context length, most common first.
_CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "n_ctx",
    "seq_length",
    "max_sequence_length",
)


@dataclasses.dataclass(frozen=True)
class Preflight:
    """What the checks found: sizes for the dry run's summary, and warnings to print.

    Attributes:
        eval_prompts: The prompt set, parsed.
        n_train_records: Training records.
        context: The model's context in tokens (``None`` when its config does not say).
        longest_prompt: Tokens of the longest eval prompt in the template.
        storage: ``"new"`` or ``"resumes"`` (the study exists, with these prompts).
        warnings: Lines for the user (e.g. training records whose answer is cut off).
    """

    eval_prompts: list[Prompt]
    n_train_records: int
    context: int | None
    longest_prompt: int
    storage: str
    warnings: tuple[str, ...] = ()


def model_context(model_config: Any) -> tuple[int, str] | None:
    """``(tokens, key)``: the context length a transformers config declares, or ``None``.

    Example:
        >>> from transformers import LlamaConfig
        >>> model_context(LlamaConfig(max_position_embeddings=128))
        (128, 'max_position_embeddings')
    """
    text_config = getattr(model_config, "get_text_config", None)
    config = text_config() if callable(text_config) else model_config
    for key in _CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, key
    return None


def _template_name(template: PromptTemplate) -> str:
    return repr(template) if isinstance(template, str) else "the given template"


def _prompt_lengths(
    prompts: Sequence[Prompt], tokenizer: Any, template: PromptTemplate
) -> list[int]:
    """Tokens of each prompt as the trainee sees it (in the template)."""
    try:
        texts = [format_prompt(p, template, tokenizer) for p in prompts]
    except ValueError as error:
        raise ConfigError(f"config.template: {error}") from None
    return [len(ids) for ids in tokenizer(texts, verbose=False)["input_ids"]]


def check_context(
    prompts: Sequence[Prompt],
    tokenizer: Any,
    template: PromptTemplate,
    *,
    context: tuple[int, str],
    max_new_tokens: int,
    max_length: int,
    origin: str = "eval_prompts",
) -> int:
    """Refuse prompts that, in ``template``, leave fewer than ``max_new_tokens`` of the
    model's context for the answer, and a training ``max_length`` beyond the context.
    Returns the tokens of the longest prompt.

    Raises:
        ConfigError: naming the prompt, its length, ``max_new_tokens`` and the context.
    """
    tokens, key = context
    if max_length > tokens:
        raise ConfigError(
            f"config.max_length: {max_length} is more than the model's context of {tokens} "
            f"tokens ({key} in its config.json); set max_length: {tokens} or less"
        )
    lengths = _prompt_lengths(prompts, tokenizer, template)
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    if lengths[longest] + max_new_tokens > tokens:
        raise ConfigError(
            f"config.max_new_tokens: the longest eval prompt (prompt {longest + 1} of "
            f"{origin}) is {lengths[longest]} tokens in template "
            f"{_template_name(template)}; with max_new_tokens {max_new_tokens} that is "
            f"{lengths[longest] + max_new_tokens}, more than the model's context of "
            f"{tokens} tokens ({key} in its config.json): use a shorter "
            'template (e.g. template: "{instruction}\\n{input}\\n"), shorter prompts, '
            "fewer max_new_tokens or a model with a longer context"
        )
    return lengths[longest]


def _answers_cut_off(
    records: Sequence[dict[str, str]], tokenizer: Any, template: PromptTemplate, limit: int
) -> int:
    """How many training records' prompts alone fill ``limit`` tokens (nothing to learn)."""
    prompts = [Prompt(r["instruction"], r["input"]) for r in records]
    return sum(n >= limit for n in _prompt_lengths(prompts, tokenizer, template))


def _load(config: TuneConfig) -> tuple[list[Prompt], list[dict[str, str]]]:
    try:
        prompts = load_prompts(config.eval_prompts)
    except PromptFormatError as error:
        raise ConfigError(f"config.eval_prompts: {error}") from None
    try:
        records = load_train_data(config.train_data)
    except PromptFormatError as error:
        raise ConfigError(f"config.train_data: {error}") from None
    return prompts, records


def _check_references(config: TuneConfig, prompts: Sequence[Prompt]) -> None:
    """Refuse a judge that compares answers with a reference on prompts without one: its
    first call would fail, after a whole trial's training (as ``judge-eval`` refuses it on
    PandaLM's test set)."""
    if not needs_reference(config.judge):
        return
    missing = [i for i, prompt in enumerate(prompts) if prompt.reference is None]
    if missing:
        raise ConfigError(
            f"config.judge: judge {config.judge!r} compares answers with each prompt's "
            f"reference answer, and {len(missing)} of the {len(prompts)} prompts in "
            f"{config.eval_prompts} have none (prompt {missing[0] + 1} first): give every "
            "prompt a 'reference' (or 'output'), or use a local:, pandalm:, reward: or "
            "remote: judge"
        )


def _model_and_tokenizer(config: TuneConfig) -> tuple[Any, Any]:
    """The base model's config (not its weights) and the tokenizer."""
    from optuna_pandalm.judges.loading import is_gguf, load_model_config, load_tokenizer

    trusted = config.trust_remote_code
    try:
        model_config = load_model_config(config.base_model, trust_remote_code=trusted)
    except Exception as error:  # transformers raises OSError, ValueError, KeyError, ...
        model = Path(config.base_model)
        read = model if is_gguf(model) else model / "config.json"
        raise ConfigError(
            f"config.base_model: cannot read {str(read)!r}"
            f" ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        ) from None
    source = config.tokenizer or config.base_model
    try:
        tokenizer = load_tokenizer(source, trust_remote_code=trusted)
    except Exception as error:
        key = "tokenizer" if config.tokenizer else "base_model"
        raise ConfigError(
            f"config.{key}: cannot load a tokenizer from {source!r} "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        ) from None
    return model_config, tokenizer


def _storage(config: TuneConfig, prompts: Sequence[Prompt]) -> str:
    try:
        store = Store.probe(config.storage)
        if store is None:
            return "new"
        try:
            refuse_another_prompt_set(
                store, config.study_name, prompts, length_control=config.length_control
            )
            exists = store.arena_settings(config.study_name) is not None
        finally:
            store.close()
    except StoreError as error:
        raise ConfigError(f"config.storage: {error}") from None
    return "resumes" if exists else "new"


def preflight(config: TuneConfig) -> Preflight:
    """Run every check ``tune`` makes before training, creating and loading nothing heavy
    (the model's config and tokenizer only, never its weights or the judge's).

    Raises:
        ConfigError: the first problem found, naming the key and, where it can, the file,
            line and numbers.
    """
    config.check_files()
    prompts, records = _load(config)
    try:
        check_spec(config.judge)
    except ValueError as error:
        raise ConfigError(f"config.judge: {error}") from None
    _check_references(config, prompts)
    model_config, tokenizer = _model_and_tokenizer(config)
    context = model_context(model_config)
    warnings = config.search_space.check_baseline(config.baseline or {})
    longest = 0
    if context is None:
        warnings.append(
            "the model's config.json gives no context length: prompt lengths not checked"
        )
    else:
        longest = check_context(
            prompts,
            tokenizer,
            config.template,
            context=context,
            max_new_tokens=config.max_new_tokens,
            max_length=config.max_length,
            origin=config.eval_prompts,
        )
    limit = min(config.max_length, context[0] if context else config.max_length)
    cut = _answers_cut_off(records, tokenizer, config.template, limit)
    if cut == len(records):
        raise ConfigError(
            f"config.max_length: every training record's prompt fills {limit} tokens in "
            f"template {_template_name(config.template)}: no answer is left to learn"
        )
    if cut:
        warnings.append(
            f"{cut} of {len(records)} training records leave no room for the answer within "
            f"{limit} tokens (config.max_length): they teach nothing"
        )
    return Preflight(
        eval_prompts=prompts,
        n_train_records=len(records),
        context=context[0] if context else None,
        longest_prompt=longest,
        storage=_storage(config, prompts),
        warnings=tuple(warnings),
    )
