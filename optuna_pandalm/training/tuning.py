"""Instruction tuning under judge-driven search: the config, its validation, the objective.

Used by ``optuna-pandalm tune CONFIG.yaml`` and by the CPU demo. A trial loads the base
model from a local folder or a ``.gguf`` file (:mod:`~optuna_pandalm.training.trainee`),
optionally wraps it with a LoRA adapter (peft), trains it with the Hugging Face ``Trainer``
on Alpaca-format data, and lets :class:`JudgeCallback` score each epoch's checkpoint.
Nothing is downloaded.

torch, transformers, peft, PyYAML, SQLAlchemy and the callback (a transformers class) are
imported inside the functions that need them, so a config can be read and checked without
them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib.util
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import ERROR_ATTR
from optuna_pandalm.errors import ConfigError, PromptFormatError
from optuna_pandalm.judges.loading import gguf_problem, is_gguf
from optuna_pandalm.prompts import Prompt, load_prompts
from optuna_pandalm.study.judged_study import INTERRUPTED
from optuna_pandalm.training.generation import (
    PromptTemplate,
    check_template,
    format_prompt,
    user_message,
)
from optuna_pandalm.training.progress import TrialProgress, announce_scores, quiet_third_party
from optuna_pandalm.training.sft import TRL_MISSING, sft_trainer
from optuna_pandalm.training.trainee import load_trainee

if TYPE_CHECKING:
    import torch

    from optuna_pandalm.arena import Arena

__all__ = [
    "ConfigError",
    "InstructionDataset",
    "SearchSpace",
    "TuneConfig",
    "answer_ids",
    "load_train_data",
    "make_collator",
    "make_objective",
    "sqlite_relative_to",
]

_logger = logging.getLogger(__name__)

OPTIMIZERS = {"adamw": "adamw_torch", "sgd": "sgd", "adafactor": "adafactor"}
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup", "polynomial")
METHODS = ("lora", "full")
TRAINERS = ("trainer", "sft")  # transformers.Trainer, trl.SFTTrainer


def _unknown(keys: Sequence[str], allowed: Sequence[str], where: str) -> None:
    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
            )
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def _range(
    value: Any, where: str, *, low: float, high: float, log: bool = False
) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value, value]
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ConfigError(f"{where}: expected [low, high] or a number, got {value!r}")
    a, b = (float(v) for v in value)
    if (
        not (math.isfinite(a) and math.isfinite(b))
        or a > b
        or a < low
        or b > high
        or (log and a <= 0)
    ):
        raise ConfigError(f"{where}: [{a}, {b}] must satisfy {low} <= low <= high <= {high}")
    return a, b


def _choices(
    value: Any, where: str, allowed: Sequence[Any] | None = None, kind: type = str
) -> list[Any]:
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ConfigError(f"{where}: needs at least one choice")
    for v in values:
        if not isinstance(v, kind) or isinstance(v, bool):
            raise ConfigError(f"{where}: {v!r} is not a {kind.__name__}")
        if allowed is not None and v not in allowed:
            close = difflib.get_close_matches(str(v), [str(a) for a in allowed], n=1)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else f" (allowed: {', '.join(map(str, allowed))})"
            )
            raise ConfigError(f"{where}: unknown choice {v!r}{hint}")
    return list(values)


def _as_written(value: Any) -> str:
    """A search-space value as a config writes it: ``[low, high]`` or one number for a
    range, ``[a, b]`` for choices, ``null`` for ``target_modules``'s default.

    Example:
        >>> _as_written((2e-06, 0.0002)), _as_written((0.0, 0.0)), _as_written(["adamw"])
        ('[2e-06, 0.0002]', '0.0', '[adamw]')
    """
    if value is None:
        return "null (peft's choice for the architecture)"
    if isinstance(value, tuple):
        low, high = value
        return repr(low) if low == high else f"[{low!r}, {high!r}]"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return repr(value)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """What the sampler may choose. Ranges are ``[low, high]``; choices are lists."""

    learning_rate: tuple[float, float] = (2e-6, 2e-4)
    epochs: int = 4
    optimizer: list[str] = dataclasses.field(default_factory=lambda: ["adamw", "sgd"])
    scheduler: list[str] = dataclasses.field(default_factory=lambda: ["cosine", "linear"])
    warmup_ratio: tuple[float, float] = (0.0, 0.1)
    batch_size: list[int] = dataclasses.field(default_factory=lambda: [8])
    weight_decay: tuple[float, float] = (0.0, 0.0)
    method: list[str] = dataclasses.field(default_factory=lambda: ["lora"])
    lora_rank: list[int] = dataclasses.field(default_factory=lambda: [8, 16])
    lora_alpha: list[int] = dataclasses.field(default_factory=lambda: [16])
    lora_dropout: tuple[float, float] = (0.05, 0.05)
    target_modules: list[str] | None = None
    left_out: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)
    """The keys a config left out, which take the defaults above (set by
    :meth:`from_mapping`; not a key of the config)."""

    @classmethod
    def config_keys(cls) -> list[str]:
        """The keys of a config's ``search_space``, in order."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "left_out"]

    @classmethod
    def default_values(cls) -> dict[str, str]:
        """Each key's default as a config would write it (``docs/tune.md`` lists them; a
        test keeps the two equal).

        Example:
            >>> SearchSpace.default_values()["optimizer"]
            '[adamw, sgd]'
        """
        defaults = cls()
        return {key: _as_written(getattr(defaults, key)) for key in cls.config_keys()}

    def defaults_used(self) -> str | None:
        """One line naming the defaults this search uses for the keys its config left out
        (those of LoRA only when LoRA is among the methods), or ``None`` when there are none.

        Example:
            >>> space = {"optimizer": ["adamw"], "scheduler": ["linear"], "method": ["full"]}
            >>> print(SearchSpace.from_mapping(space).defaults_used())
            search_space defaults (keys not in the config, docs/tune.md): learning_rate \
[2e-06, 0.0002], epochs 4, warmup_ratio [0.0, 0.1], batch_size [8], weight_decay 0.0
        """
        lora = {"lora_rank", "lora_alpha", "lora_dropout", "target_modules"}
        shown = [k for k in self.left_out if "lora" in self.method or k not in lora]
        if not shown:
            return None
        values = self.default_values()
        return "search_space defaults (keys not in the config, docs/tune.md): " + ", ".join(
            f"{key} {values[key]}" for key in shown
        )

    def check_baseline(
        self, baseline: Mapping[str, Any], where: str = "config.baseline"
    ) -> list[str]:
        """Check the hyperparameters of the baseline trial (enqueued as trial 0) against
        this space; returns warnings.

        A value outside a searched range is allowed, with a warning: the baseline is a
        reference point (the demo's is Alpaca's learning rate, below the tiny model's range
        on purpose) that trial 0 runs as given, while the sampler searches the range.
        Refused: a key that is not a hyperparameter, one that every trial takes from the
        search space (``epochs``, ``target_modules``, a range fixed at one value), which
        trial 0 would silently not use, and a choice that is not among the search space's
        (Optuna cannot enqueue it).

        Raises:
            ConfigError: naming the key, the value and the search space's.
        """
        ranges = ("learning_rate", "warmup_ratio", "weight_decay", "lora_dropout")
        choices = ("optimizer", "scheduler", "batch_size", "method", "lora_rank", "lora_alpha")
        warnings = []
        for key, value in baseline.items():
            if key not in (*ranges, *choices):
                hint = (
                    f"; every trial takes search_space.{key}, so drop it here"
                    if key in self.config_keys()
                    else ""
                )
                close = difflib.get_close_matches(str(key), [*ranges, *choices], n=1)
                hint = hint or (f" (did you mean {close[0]!r}?)" if close else "")
                raise ConfigError(f"{where}: {key!r} is not a searched hyperparameter{hint}")
            space = getattr(self, key)
            if key in choices:
                if value not in space:
                    raise ConfigError(
                        f"{where}.{key}: {value!r} is not among search_space.{key} "
                        f"{_as_written(space)}: add it there, or change the baseline"
                    )
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
            low, high = space
            if low <= value <= high:
                continue
            if low == high:
                raise ConfigError(
                    f"{where}.{key}: {value!r}, but search_space.{key} fixes it at {low!r} "
                    f"for every trial (trial 0 would use {low!r}): widen the range to include "
                    "it, or drop it here"
                )
            warnings.append(
                f"{where}.{key} {value!r} is outside search_space.{key} {_as_written(space)}: "
                "trial 0 runs it as given, a reference point; the sampler searches the range"
            )
        return warnings

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "search_space") -> SearchSpace:
        fields = cls.config_keys()
        _unknown(list(data), fields, where)
        defaults = cls()

        def get(key: str) -> Any:
            return data.get(key, getattr(defaults, key))

        epochs = get("epochs")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= 100:
            raise ConfigError(f"{where}.epochs: expected an integer in 1..100, got {epochs!r}")
        targets = get("target_modules")
        if targets is not None:
            targets = _choices(targets, f"{where}.target_modules")
        return cls(
            learning_rate=_range(
                get("learning_rate"), f"{where}.learning_rate", low=1e-8, high=1.0, log=True
            ),
            epochs=epochs,
            optimizer=_choices(get("optimizer"), f"{where}.optimizer", list(OPTIMIZERS)),
            scheduler=_choices(get("scheduler"), f"{where}.scheduler", SCHEDULERS),
            warmup_ratio=_range(get("warmup_ratio"), f"{where}.warmup_ratio", low=0.0, high=1.0),
            batch_size=_choices(get("batch_size"), f"{where}.batch_size", kind=int),
            weight_decay=_range(get("weight_decay"), f"{where}.weight_decay", low=0.0, high=1.0),
            method=_choices(get("method"), f"{where}.method", METHODS),
            lora_rank=_choices(get("lora_rank"), f"{where}.lora_rank", kind=int),
            lora_alpha=_choices(get("lora_alpha"), f"{where}.lora_alpha", kind=int),
            lora_dropout=_range(get("lora_dropout"), f"{where}.lora_dropout", low=0.0, high=0.9),
            target_modules=targets,
            left_out=tuple(key for key in fields if key not in data),
        )

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Hyperparameters for one trial (fixed values are not suggested)."""

        def number(name: str, bounds: tuple[float, float], log: bool = False) -> float:
            low, high = bounds
            return low if low == high else trial.suggest_float(name, low, high, log=log)

        def pick(name: str, options: list[Any]) -> Any:
            return options[0] if len(options) == 1 else trial.suggest_categorical(name, options)

        params = {
            "learning_rate": number("learning_rate", self.learning_rate, log=True),
            "optimizer": pick("optimizer", self.optimizer),
            "scheduler": pick("scheduler", self.scheduler),
            "warmup_ratio": number("warmup_ratio", self.warmup_ratio),
            "batch_size": pick("batch_size", self.batch_size),
            "weight_decay": number("weight_decay", self.weight_decay),
            "method": pick("method", self.method),
        }
        if params["method"] == "lora":
            params["lora_rank"] = pick("lora_rank", self.lora_rank)
            params["lora_alpha"] = pick("lora_alpha", self.lora_alpha)
            params["lora_dropout"] = number("lora_dropout", self.lora_dropout)
        return params


@dataclasses.dataclass(frozen=True)
class TuneConfig:
    """Everything ``optuna-pandalm tune`` needs; see ``docs/tune.md`` for each key."""

    base_model: str
    train_data: str
    eval_prompts: str
    judge: str
    tokenizer: str | None = None
    template: PromptTemplate = "alpaca"
    trainer: str = "trainer"
    search_space: SearchSpace = dataclasses.field(default_factory=SearchSpace)
    n_trials: int = 20
    timeout: float | None = None
    storage: str = "sqlite:///optuna-pandalm.db"
    study_name: str = "optuna-pandalm"
    output_dir: str = "optuna-pandalm-runs"
    baseline: dict[str, Any] | None = None
    max_length: int = 512
    max_new_tokens: int = 256
    generation_batch_size: int = 16
    seed: int = 0
    trust_remote_code: bool = False
    save_best: bool = False
    length_control: bool | None = None

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, base: Path | None = None, check_files: bool = True
    ) -> TuneConfig:
        """Validate a parsed config; relative paths are resolved against ``base``."""
        fields = [f.name for f in dataclasses.fields(cls)]
        _unknown(list(data), fields, "config")
        for key in ("base_model", "train_data", "eval_prompts", "judge"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ConfigError(f"config: {key!r} is required (a non-empty string)")
        values = dict(data)
        if base is not None:
            for key in ("base_model", "train_data", "eval_prompts", "tokenizer", "output_dir"):
                value = values.get(key, getattr(cls, key, None))
                if isinstance(value, str) and not Path(value).is_absolute():
                    values[key] = str((base / value).resolve())
            storage = values.get("storage", cls.storage)
            if isinstance(storage, str):
                values["storage"] = sqlite_relative_to(storage, base)
        values["search_space"] = SearchSpace.from_mapping(values.get("search_space") or {})
        for key, low in (
            ("n_trials", 1),
            ("max_length", 16),
            ("max_new_tokens", 1),
            ("generation_batch_size", 1),
        ):
            value = values.get(key, getattr(cls, key, None))
            if key in values and (
                not isinstance(value, int) or isinstance(value, bool) or value < low
            ):
                raise ConfigError(f"config.{key}: expected an integer >= {low}, got {value!r}")
        if "template" in values:
            try:
                check_template(values["template"])
            except ValueError as error:
                raise ConfigError(
                    f"config.template: 'alpaca', 'chat' or a format string; {error}"
                ) from None
        for key in ("storage", "output_dir", "study_name"):
            if key in values and (not isinstance(values[key], str) or not values[key]):
                raise ConfigError(f"config.{key}: expected a non-empty string")
        if values.get("trainer", "trainer") not in TRAINERS:
            raise ConfigError(f"config.trainer: 'trainer' or 'sft', got {values['trainer']!r}")
        if values.get("trainer") == "sft" and importlib.util.find_spec("trl") is None:
            raise ConfigError(f"config.trainer: {TRL_MISSING}")
        if values.get("length_control") not in (None, True, False):
            raise ConfigError(
                "config.length_control: true, false or null (the study's setting), "
                f"got {values['length_control']!r}"
            )
        timeout = values.get("timeout")
        if timeout is not None and (
            not isinstance(timeout, (int, float))
            or isinstance(timeout, bool)
            or not (math.isfinite(timeout) and timeout > 0)
        ):
            raise ConfigError(f"config.timeout: expected seconds > 0 or null, got {timeout!r}")
        seed = values.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"config.seed: expected an integer >= 0, got {seed!r}")
        baseline = values.get("baseline")
        if baseline is not None and not isinstance(baseline, Mapping):
            raise ConfigError("config.baseline: expected a mapping of hyperparameters")
        if baseline:
            values["search_space"].check_baseline(baseline)  # errors now; warnings in preflight
        config = cls(**values)
        if check_files:
            config.check_files()
        return config

    @classmethod
    def from_file(cls, path: str | Path, *, check_files: bool = True) -> TuneConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the config ({error.strerror})") from None
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as error:  # YAML and JSON raise many kinds
            kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
            raise ConfigError(f"{path}: not valid {kind}: {error}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        try:
            return cls.from_mapping(data, base=path.parent, check_files=check_files)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None

    def check_files(self) -> None:
        model = Path(self.base_model)
        if is_gguf(model):
            problem = gguf_problem(model)
            if problem is not None:
                raise ConfigError(f"config.base_model: {str(model)!r}: {problem}")
        elif not (model / "config.json").is_file():
            raise ConfigError(f"config.base_model: {_not_a_model(model)}")
        for key in ("train_data", "eval_prompts"):
            if not Path(getattr(self, key)).is_file():
                raise ConfigError(f"config.{key}: file {getattr(self, key)!r} does not exist")
        if self.tokenizer is not None and not Path(self.tokenizer).exists():
            raise ConfigError(f"config.tokenizer: {self.tokenizer!r} does not exist")


def _not_a_model(path: Path) -> str:
    """What is wrong with a ``base_model`` that is neither a model folder nor a .gguf file.

    Example:
        >>> _not_a_model(Path("/no/such/model"))
        "no file or folder at '/no/such/model' (local model folders or .gguf files only)"
    """
    if path.is_dir():
        return (
            f"the folder {str(path)!r} has no config.json: a model folder holds config.json "
            "and the weights (as save_pretrained writes them), else give a .gguf file"
        )
    if path.exists():
        return f"{str(path)!r} is a file but not a .gguf file: give a model folder or a .gguf file"
    return f"no file or folder at {str(path)!r} (local model folders or .gguf files only)"


def sqlite_relative_to(url: str, base: Path) -> str:
    """``url`` with a relative SQLite file made relative to ``base`` (a config file's
    folder); other URLs unchanged.

    Example:
        >>> sqlite_relative_to("sqlite:///hpo.db", Path("/runs"))
        'sqlite:////runs/hpo.db'
        >>> sqlite_relative_to("postgresql://u@h/db", Path("/runs"))
        'postgresql://u@h/db'
    """
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return url  # the storage check names the malformed URL
    database = parsed.database or ""
    if (
        parsed.get_backend_name() != "sqlite"
        or database in ("", ":memory:")
        or database.startswith("file:")
        or Path(database).is_absolute()
    ):
        return url
    resolved = parsed.set(database=str((base / database).resolve()))
    return resolved.render_as_string(hide_password=False)


def load_train_data(path: str | Path) -> list[dict[str, str]]:
    """Alpaca records (instruction, input, output) from a JSON list or JSONL file."""
    prompts = load_prompts(path)
    records = []
    for i, prompt in enumerate(prompts):
        if prompt.reference is None:
            raise PromptFormatError(f"{path}, record {i}: training records need an 'output'")
        records.append(
            {"instruction": prompt.instruction, "input": prompt.input, "output": prompt.reference}
        )
    return records


def answer_ids(record: Mapping[str, str], template: PromptTemplate, tokenizer: Any) -> list[int]:
    """The tokens the trainee learns to write after the prompt: the answer, then what ends it.

    With ``template="chat"`` that is the assistant turn as the tokenizer's chat template
    closes it (for SmolLM2, the answer then ``<|im_end|>`` and a newline), so that training
    text and generation prompts have one layout; otherwise the answer and the EOS token. A chat
    template that does not lay out the conversation as the prompt followed by the answer (one
    that rewrites earlier turns) falls back to the answer and the EOS token.
    """
    answer = record["output"]
    if template == "chat":
        prompt = Prompt(record["instruction"], record.get("input", ""))
        turns = [
            {"role": "user", "content": user_message(prompt)},
            {"role": "assistant", "content": answer},
        ]
        whole: str = tokenizer.apply_chat_template(turns, tokenize=False)
        asked = format_prompt(prompt, "chat", tokenizer)
        if whole.startswith(asked) and whole[len(asked) :].startswith(answer):
            turn: list[int] = tokenizer(whole[len(asked) :], add_special_tokens=False)["input_ids"]
            return turn
    ids: list[int] = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.eos_token_id]


class InstructionDataset:
    """Alpaca records tokenized for causal-LM training: the prompt (formatted with the
    template) is masked out of the loss; the answer and what ends it (:func:`answer_ids`:
    the chat template's end of turn, or the EOS token) are learned."""

    def __init__(
        self,
        records: Sequence[Mapping[str, str]],
        tokenizer: Any,
        template: PromptTemplate,
        max_length: int,
    ) -> None:
        self.items: list[dict[str, list[int]]] = []
        for r in records:
            prompt_text = format_prompt(
                Prompt(r["instruction"], r.get("input", "")), template, tokenizer
            )
            prompt_ids = tokenizer(prompt_text)["input_ids"]
            answer = answer_ids(r, template, tokenizer)
            ids = (prompt_ids + answer)[:max_length]
            labels = ([-100] * len(prompt_ids) + answer)[:max_length]
            self.items.append({"input_ids": ids, "labels": labels})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]


def make_collator(pad_id: int) -> Callable[[list[dict[str, list[int]]]], dict[str, Any]]:
    """Pad a batch on the right: ``pad_id`` for inputs, -100 (ignored) for labels."""
    import torch

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[row, :n] = torch.tensor(b["input_ids"])
            labels[row, :n] = torch.tensor(b["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


def make_objective(
    config: TuneConfig,
    arena: Arena,
    *,
    train_records: Sequence[Mapping[str, str]] | None = None,
    callback_options: Mapping[str, Any] | None = None,
    on_trial_end: Callable[[Any, Any, Any], None] | None = None,
    progress: bool = True,
) -> Callable[[Any], float]:
    """An Optuna objective that fine-tunes ``config.base_model`` and returns the judge score.

    ``on_trial_end(trial, model, tokenizer)`` runs after training (for example to measure a
    held-out metric) before ``arena.finalize``. ``progress``: live progress on stderr and
    one line per finished trial (:class:`~optuna_pandalm.training.progress.TrialProgress`), with
    transformers' and Optuna's per-trial noise silenced. Ctrl-C during a trial records why in its
    ``pandalm_error`` user attribute (Optuna marks it FAIL) and propagates.
    """
    records = (
        list(train_records) if train_records is not None else load_train_data(config.train_data)
    )
    if progress:
        quiet_third_party()
        announce_scores(arena)  # once: what the trial lines' scores mean

    def objective(trial: Any) -> float:
        try:
            return train_and_judge(trial)
        except KeyboardInterrupt:
            # Optuna marks the trial FAIL; say why where users look (its user attributes).
            trial.set_user_attr(ERROR_ATTR, INTERRUPTED)
            raise

    def train_and_judge(trial: Any) -> float:
        import torch
        import transformers

        from optuna_pandalm.training.callback import JudgeCallback

        params = config.search_space.suggest(trial)
        for key, value in params.items():
            trial.set_user_attr(f"hp_{key}", value)
        model: torch.nn.Module
        model, tokenizer = load_trainee(
            config.base_model,
            tokenizer=config.tokenizer,
            trust_remote_code=config.trust_remote_code,
        )
        if params["method"] == "lora":
            import peft

            model = peft.get_peft_model(
                model,
                peft.LoraConfig(
                    r=params["lora_rank"],
                    lora_alpha=params["lora_alpha"],
                    lora_dropout=params["lora_dropout"],
                    target_modules=config.search_space.target_modules,
                    task_type="CAUSAL_LM",
                ),
            )
        output = Path(config.output_dir) / f"trial-{trial.number}"
        arguments = dict(
            output_dir=str(output),
            num_train_epochs=config.search_space.epochs,
            learning_rate=params["learning_rate"],
            optim=OPTIMIZERS[params["optimizer"]],
            lr_scheduler_type=params["scheduler"],
            warmup_steps=float(params["warmup_ratio"]),  # a float in [0, 1) is a ratio
            weight_decay=params["weight_decay"],
            per_device_train_batch_size=params["batch_size"],
            save_strategy="no",
            report_to=[],
            logging_strategy="no",
            disable_tqdm=True,
            seed=config.seed,
            use_cpu=not torch.cuda.is_available(),
            bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        )
        callback = JudgeCallback(
            arena,
            trial,
            tokenizer,
            template=config.template,
            max_new_tokens=config.max_new_tokens,
            batch_size=config.generation_batch_size,
            save_best_to=Path(config.output_dir) / "best" if config.save_best else None,
            **(callback_options or {}),
        )
        shown = TrialProgress(arena, trial) if progress else None
        callbacks: list[Any] = [shown.trainer_callback(), callback] if shown else [callback]
        if config.trainer == "sft":
            trainer = sft_trainer(
                model,
                tokenizer,
                records,
                template=config.template,
                max_length=config.max_length,
                arguments=arguments,
                callbacks=callbacks,
            )
        else:
            trainer = transformers.Trainer(
                model=model,
                args=transformers.TrainingArguments(**arguments),
                train_dataset=InstructionDataset(
                    records, tokenizer, config.template, config.max_length
                ),
                data_collator=make_collator(tokenizer.pad_token_id),
                callbacks=callbacks,
            )
        callback.trainer = trainer  # the judge's figures in trainer.state.log_history
        trainer.remove_callback(transformers.PrinterCallback)  # no metrics dict on stdout
        with shown or contextlib.nullcontext():
            trainer.train()
            if on_trial_end is not None:
                on_trial_end(trial, model, tokenizer)
            value = arena.finalize(trial)
            return shown.completed(value) if shown else value

    return objective
