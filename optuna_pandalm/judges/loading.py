"""Loading judge models from local folders (never from a hub) and freeing their memory.

torch and transformers are imported inside the functions, when a model is loaded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["free_accelerator_memory", "load_model"]

_logger = logging.getLogger(__name__)

_KINDS = {
    "causal": "AutoModelForCausalLM",
    "sequence-classification": "AutoModelForSequenceClassification",
}


def _dtype(name: str | None) -> Any:
    if name in (None, "auto"):
        return name
    import torch

    value = getattr(torch, str(name), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}: use bfloat16, float16, float32 or auto")
    return value


def _default_device(device: str | None) -> str:
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    model: Any,
    tokenizer: Any,
    *,
    kind: str,
    dtype: str | None,
    device: str | None,
    device_map: Any,
    trust_remote_code: bool,
) -> tuple[Any, Any, str]:
    """Return ``(model, tokenizer, source)`` with the model in eval mode on its device.

    ``model`` is a local folder or a loaded model; ``source`` names it for cache keys.
    Raises ``FileNotFoundError`` naming the path when the folder does not exist.
    """
    import transformers

    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"judge model folder {str(path)!r} does not exist (models load from local "
                "folders only; nothing is downloaded)"
            )
        source = str(path.resolve())
        loader = getattr(transformers, _KINDS[kind])
        model = loader.from_pretrained(
            path,
            dtype=_dtype(dtype),
            device_map=device_map,
            trust_remote_code=trust_remote_code,
            local_files_only=True,
        )
        if tokenizer is None:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                path, trust_remote_code=trust_remote_code, local_files_only=True
            )
    else:
        if tokenizer is None:
            raise ValueError("a tokenizer is needed with an already loaded model")
        config = getattr(model, "config", None)
        source = str(getattr(config, "name_or_path", "") or type(model).__name__)
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            tokenizer, trust_remote_code=trust_remote_code, local_files_only=True
        )
    if device_map is None:
        model = model.to(_default_device(device))
    model.eval()
    return model, tokenizer, source


def free_accelerator_memory(model: Any) -> None:
    """Give cached CUDA memory back between batches (a no-op on CPU)."""
    try:
        device = next(model.parameters()).device
    except (StopIteration, AttributeError):
        return
    if device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
