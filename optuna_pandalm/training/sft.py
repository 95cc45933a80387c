"""Training with TRL's ``SFTTrainer``: Alpaca records as a prompt-completion dataset.

``optuna-pandalm tune`` trains with it when the config says ``trainer: sft``. The records
become TRL's *prompt-completion* format, so that ``SFTTrainer`` learns the answers only
(``completion_only_loss``): with the Alpaca template (or a callable) the prompt is the
formatted text, with ``template: chat`` a user turn and the completion an assistant turn, laid
out by the tokenizer's chat template. Either way the prompt the trainee learns from is the
one :class:`~optuna_pandalm.JudgeCallback` asks it at evaluation. Needs the ``trl`` extra
(trl and datasets are imported inside :func:`sft_trainer`, so this module imports without it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from optuna_pandalm.prompts import Prompt
from optuna_pandalm.training.generation import format_prompt, user_message

if TYPE_CHECKING:
    from optuna_pandalm.training.generation import PromptTemplate

__all__ = ["TRL_MISSING", "sft_records", "sft_trainer"]

TRL_MISSING = "training with SFTTrainer needs TRL: pip install 'optuna-pandalm[trl]'"


def sft_records(
    records: Sequence[Mapping[str, str]], template: PromptTemplate = "alpaca"
) -> list[dict[str, Any]]:
    """Alpaca records (instruction, input, output) in TRL's prompt-completion format.

    Example:
        >>> row = sft_records([{"instruction": "Add 2 and 3.", "output": "5"}])[0]
        >>> row["prompt"].endswith("### Response:\\n"), row["completion"]
        (True, '5')
        >>> sft_records([{"instruction": "Hi", "input": "", "output": "Hello"}], "chat")[0]
        {'prompt': [{'role': 'user', 'content': 'Hi'}], 'completion': [{'role': 'assistant', 'content': 'Hello'}]}
    """  # noqa: E501
    rows: list[dict[str, Any]] = []
    for record in records:
        prompt = Prompt(record["instruction"], record.get("input", ""))
        if template == "chat":
            rows.append(
                {
                    "prompt": [{"role": "user", "content": user_message(prompt)}],
                    "completion": [{"role": "assistant", "content": record["output"]}],
                }
            )
        else:
            text = format_prompt(prompt, template)
            rows.append({"prompt": text, "completion": record["output"]})
    return rows


def sft_trainer(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping[str, str]],
    *,
    template: PromptTemplate,
    max_length: int,
    arguments: Mapping[str, Any],
    callbacks: Sequence[Any] = (),
) -> Any:
    """A ``trl.SFTTrainer`` that learns the answers of ``records`` only.

    ``arguments`` are ``TrainingArguments`` keywords (``SFTConfig`` takes them all);
    ``model`` may already be a peft model. Raises ``ImportError`` naming the extra when TRL is
    not installed.
    """
    try:
        import datasets
        import trl
    except ImportError as error:
        raise ImportError(TRL_MISSING) from error
    config = trl.SFTConfig(
        **arguments,
        max_length=max_length,
        completion_only_loss=True,
        dataset_num_proc=None,
    )
    return trl.SFTTrainer(
        model=model,
        args=config,
        train_dataset=datasets.Dataset.from_list(sft_records(records, template)),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
