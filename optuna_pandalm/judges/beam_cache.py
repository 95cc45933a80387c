"""A key/value cache for batched beam search that copies each step's cache once, not twice.

transformers' default ``DynamicCache`` grows by concatenation (a copy of the whole cache at
every step) and beam search reorders it with ``index_select`` (another copy) at every step.
Both copies grow with the batch, so batching does not amortise them: on CPU they were a
large share of PandaLM's decoding (4 beams; ``benchmarks/README.md``). This cache
preallocates two buffers per layer for the whole generation (prompt plus new tokens), writes
each new token in place, and reorders by gathering from one buffer into the other: one copy
per step, no allocation.
Outputs are identical to the default cache's.

Used by :class:`~optuna_pandalm.judges.PandaLMJudge` in generate mode with beams, for
models whose layers are all full attention (LLaMA, PandaLM); anything else keeps the
default cache.

torch and transformers are imported inside the functions, so this module imports without them.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["beam_search_cache"]


def beam_search_cache(model: Any, capacity: int) -> Any | None:
    """A preallocated beam search cache holding ``capacity`` positions (prompt plus new
    tokens), or ``None`` when the model is not a plain full-attention decoder or this
    transformers has no layered ``Cache``.

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
        ...                      num_hidden_layers=2, num_attention_heads=2)
        >>> cache = beam_search_cache(LlamaForCausalLM(config), capacity=64)
        >>> len(cache.layers)
        2
    """
    try:
        from transformers.cache_utils import Cache, DynamicLayer
    except ImportError:  # transformers before the layered cache API
        return None
    config = model.config.get_text_config(decoder=True)
    if getattr(config, "sliding_window", None) or getattr(config, "attention_chunk_size", None):
        return None
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and any(kind != "full_attention" for kind in layer_types):
        return None
    if getattr(config, "is_encoder_decoder", False):
        return None
    layer_class = _layer_class(DynamicLayer)
    n_layers = int(config.num_hidden_layers)
    return Cache(layers=[layer_class(capacity) for _ in range(n_layers)])


@functools.cache
def _layer_class(dynamic_layer: type) -> type:
    """The double-buffered layer, defined once on transformers' ``DynamicLayer``."""
    import torch

    # The base is transformers' DynamicLayer, passed in at run time: mypy sees it as Any.
    class _BeamSearchLayer(dynamic_layer):  # type: ignore[misc]
        """Two ``[batch, heads, capacity, head_dim]`` buffers each for keys and values; the
        cache is the first ``length`` positions of the current one."""

        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity = max(int(capacity), 1)
            self.length = 0
            self._buffers: list[tuple[torch.Tensor, torch.Tensor]] = []
            self._current = 0

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            super().lazy_initialization(key_states, value_states)
            self._allocate(key_states, value_states, self.capacity)
            self.length = 0

        def _allocate(self, key_states: Any, value_states: Any, capacity: int) -> None:
            batch, heads, _, key_dim = key_states.shape
            value_shape = (batch, value_states.shape[1], capacity, value_states.shape[-1])
            self._buffers = [
                (
                    key_states.new_empty((batch, heads, capacity, key_dim)),
                    value_states.new_empty(value_shape),
                )
                for _ in range(2)
            ]
            self._current = 0
            self.capacity = capacity

        def _expose(self) -> None:
            keys, values = self._buffers[self._current]
            self.keys = keys[:, :, : self.length]
            self.values = values[:, :, : self.length]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> Any:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            if end > self.capacity:  # longer than planned: grow (one copy), never fail
                old_keys, old_values = self.keys, self.values
                self._allocate(key_states, value_states, max(end, 2 * self.capacity))
                if self.length:
                    keys, values = self._buffers[0]
                    keys[:, :, : self.length].copy_(old_keys)
                    values[:, :, : self.length].copy_(old_values)
            keys, values = self._buffers[self._current]
            keys[:, :, self.length : end].copy_(key_states)
            values[:, :, self.length : end].copy_(value_states)
            self.length = end
            self._expose()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length if self.is_initialized else 0

        def reorder_cache(self, beam_idx: Any) -> None:
            if not self.is_initialized or self.length == 0:
                return
            source, target = self._buffers[self._current], self._buffers[1 - self._current]
            beam_idx = beam_idx.to(source[0].device)
            # Whole buffers: ``out=`` needs contiguous tensors, and the unused tail is small.
            torch.index_select(source[0], 0, beam_idx, out=target[0])
            torch.index_select(source[1], 0, beam_idx, out=target[1])
            self._current = 1 - self._current
            self._expose()

        def _unsupported(self, *args: Any, **kwargs: Any) -> None:
            raise NotImplementedError(
                "the beam search cache supports beam search only (no cropping or batch "
                "selection); generate without past_key_values for other decoding"
            )

        crop = batch_repeat_interleave = batch_select_indices = _unsupported

        def reset(self) -> None:
            self.length = 0
            self._buffers = []
            super().reset()

    return _BeamSearchLayer
