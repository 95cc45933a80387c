"""Loading models from local folders or ``.gguf`` files (never from a hub), and freeing their
memory.

A judge (:func:`load_model`) and a trainee (``optuna_pandalm.training.trainee``) both load
through :func:`load_pretrained` and :func:`load_tokenizer`, so every place that takes a model
folder also takes a GGUF file: ``from_pretrained(path.parent, gguf_file=path.name)``. Its
weights are unpacked into a plain dense model (``GgufConfig(dequantize=True)``): left in
GGUF blocks, transformers marks the model as quantized, which then neither trains nor
``save_pretrained``, and fetches a matmul kernel from a hub.

torch and transformers are imported inside the functions, when a model is loaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

__all__ = [
    "GGUF_MISSING",
    "free_accelerator_memory",
    "gguf_problem",
    "is_gguf",
    "load_model",
    "load_model_config",
    "load_pretrained",
    "load_tokenizer",
]

GGUF_MISSING = "loading a .gguf file needs the gguf package: pip install gguf"
_GGUF_MAGIC = b"GGUF"  # the first four bytes of every GGUF file (its spec, version 1 to 3)

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


def is_gguf(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a GGUF file (by its suffix; nothing is read).

    Example:
        >>> is_gguf("models/SmolLM2-135M-Instruct.Q4_1.gguf"), is_gguf("models/pandalm-7b")
        (True, False)
    """
    return str(path).lower().endswith(".gguf")


def gguf_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be loaded as a GGUF file (missing, unreadable, not GGUF, or the
    ``gguf`` package absent), in a few words; ``None`` when it can. Reads four bytes.

    Example:
        >>> gguf_problem("/no/such/model.gguf")
        'no such file'
    """
    try:
        with open(path, "rb") as file:
            magic = file.read(len(_GGUF_MAGIC))
    except OSError as error:
        return "no such file" if isinstance(error, FileNotFoundError) else str(error.strerror)
    if magic != _GGUF_MAGIC:
        return f"not a GGUF file (it starts with {magic!r}, not {_GGUF_MAGIC!r})"
    if importlib.util.find_spec("gguf") is None:
        return GGUF_MISSING
    return None


def _gguf_arguments(path: Path) -> tuple[Path, dict[str, Any]]:
    """The folder and ``from_pretrained`` keywords that load ``path`` (a folder or a GGUF
    file), after checking that a GGUF file can be read."""
    if not is_gguf(path):
        return path, {}
    problem = gguf_problem(path)
    if problem == GGUF_MISSING:
        raise ImportError(GGUF_MISSING)
    if problem == "no such file":
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    if problem is not None:
        raise ValueError(f"model file {str(path)!r}: {problem}")
    return path.parent, {"gguf_file": path.name}


def load_tokenizer(path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a local model folder or GGUF file (a GGUF file carries its
    vocabulary and chat template)."""
    import transformers

    folder, gguf = _gguf_arguments(Path(path).expanduser())
    return transformers.AutoTokenizer.from_pretrained(
        folder, trust_remote_code=trust_remote_code, local_files_only=True, **gguf
    )


def load_model_config(path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> Any:
    """The configuration (not the weights) of a local model folder or GGUF file."""
    import transformers

    folder, gguf = _gguf_arguments(Path(path).expanduser())
    return transformers.AutoConfig.from_pretrained(
        folder, trust_remote_code=trust_remote_code, local_files_only=True, **gguf
    )


def load_pretrained(
    path: str | os.PathLike[str],
    *,
    kind: str = "causal",
    dtype: str | None = None,
    device_map: Any = None,
    trust_remote_code: bool = False,
) -> Any:
    """The model in a local folder or GGUF file, as ``from_pretrained`` loads it.

    ``kind``: ``"causal"`` or ``"sequence-classification"``; a GGUF file holds a causal LM
    only (no classification head transformers can read), so the latter is refused for one.
    A GGUF file's weights are unpacked into a plain dense model in ``dtype`` (so a 7B judge
    needs its dense size in memory), which trains, and saves and reloads as one loaded from
    a folder.

    Raises:
        FileNotFoundError: the folder or file does not exist.
        ValueError: a GGUF file that is not one, or one for sequence classification, or with a
            ``device_map``.
        ImportError: a GGUF file without the ``gguf`` package (saying ``pip install gguf``).
    """
    import transformers

    path = Path(path).expanduser()
    if not is_gguf(path):
        if not path.is_dir():
            raise FileNotFoundError(
                f"model folder {str(path)!r} does not exist (models load from local "
                "folders or .gguf files only; nothing is downloaded)"
            )
        return getattr(transformers, _KINDS[kind]).from_pretrained(
            path,
            dtype=_dtype(dtype),
            device_map=device_map,
            trust_remote_code=trust_remote_code,
            local_files_only=True,
        )
    if kind != "causal":
        raise ValueError(
            f"model file {str(path)!r}: a .gguf file holds a causal LM without the "
            "classification head a reward model needs; load the reward model from its folder"
        )
    if device_map is not None:
        raise ValueError(
            f"model file {str(path)!r}: device_map is not supported for a .gguf file "
            "(it loads on one device: use device=...)"
        )
    folder, gguf = _gguf_arguments(path)
    unpacked = getattr(transformers, "GgufConfig", None)
    if unpacked is not None:  # transformers >= 5 would keep the GGUF blocks: a quantized model
        gguf["quantization_config"] = unpacked(dequantize=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder,
        dtype=_dtype(dtype),
        trust_remote_code=trust_remote_code,
        local_files_only=True,
        **gguf,
    )
    model.config.name_or_path = str(path)
    return model


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

    ``model`` is a local folder, a ``.gguf`` file (see :func:`load_pretrained`) or a loaded
    model; ``source`` names it for cache keys. Raises ``FileNotFoundError`` naming the path
    when the folder or file does not exist.
    """
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        if not (path.is_file() if is_gguf(path) else path.is_dir()):
            what = "file" if is_gguf(path) else "folder"
            raise FileNotFoundError(
                f"judge model {what} {str(path)!r} does not exist (models load from local "
                "folders or .gguf files only; nothing is downloaded)"
            )
        source = str(path.resolve())
        model = load_pretrained(
            path,
            kind=kind,
            dtype=dtype,
            device_map=device_map,
            trust_remote_code=trust_remote_code,
        )
        if tokenizer is None:
            tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    else:
        if tokenizer is None:
            raise ValueError("a tokenizer is needed with an already loaded model")
        config = getattr(model, "config", None)
        source = str(getattr(config, "name_or_path", "") or type(model).__name__)
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code)
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
