"""A tiny causal language model with a character tokenizer, built from a config.

Nothing is downloaded: the tokenizer's vocabulary is a fixed alphabet and the weights are
random (or trained by the demo). Both save to a folder and load back with the ordinary
``from_pretrained`` calls, so the real loading code is exercised.

torch, transformers and tokenizers are imported inside the functions, so this module imports
without them.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

__all__ = ["char_tokenizer", "save_tiny_llama", "tiny_llama"]

SPECIAL = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}
ALPHABET = string.ascii_letters + string.digits + string.punctuation + " \n\t"


def char_tokenizer(alphabet: str = ALPHABET, *, model_max_length: int = 1024) -> Any:
    """A fast tokenizer with one token per character (unknown characters map to ``<unk>``).

    Example:
        >>> tokenizer = char_tokenizer()
        >>> tokenizer.decode(tokenizer("Hi!")["input_ids"], skip_special_tokens=True)
        'Hi!'
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocabulary = {token: i for i, token in enumerate(SPECIAL.values())}
    for character in dict.fromkeys(alphabet):
        vocabulary.setdefault(character, len(vocabulary))
    core = Tokenizer(models.WordLevel(vocabulary, unk_token=SPECIAL["unk"]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{SPECIAL['bos']} $A",
        special_tokens=[(SPECIAL["bos"], vocabulary[SPECIAL["bos"]])],
    )

    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        unk_token=SPECIAL["unk"],
        pad_token=SPECIAL["pad"],
        model_max_length=model_max_length,
    )


def tiny_llama(
    tokenizer: Any,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    context: int = 1024,
    seed: int = 0,
) -> Any:
    """A randomly initialised Llama of a few hundred thousand parameters."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)

    return LlamaForCausalLM(config).eval()


def save_tiny_llama(path: str | Path, **kwargs: Any) -> Path:
    """Build a tiny Llama and its character tokenizer and save both to ``path``."""
    path = Path(path)
    tokenizer = char_tokenizer(model_max_length=kwargs.get("context", 1024))
    tiny_llama(tokenizer, **kwargs).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
