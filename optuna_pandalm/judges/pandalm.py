"""PandaLM: a local LLM shown an instruction and two responses says which is better.

The prompt and output format are PandaLM's (Wang et al., 2023, Figure 5): the judge writes
``1``, ``2`` or ``Tie`` on the first line, then ``### Reason:`` and ``### Reference:``.
:class:`PandaLMJudge` is :class:`~optuna_pandalm.judges.LocalJudge` speaking PandaLM's
format (:mod:`optuna_pandalm.judges.formats._pandalm`, where the prompt builder and the
parser live), under its own name. Two modes:

* ``"likelihood"`` (default): one forward pass per request scores the continuations ``1``,
  ``2`` and ``Tie`` after the prompt and returns their normalised probabilities. PandaLM's
  Table 10 shows this is as good as generating or better, and it is many times faster.
* ``"generate"``: beam search with PandaLM's released decoding settings (4 beams,
  repetition penalty 1.2, 512 new tokens), batched with left padding, on a preallocated
  beam search cache on CPU (:mod:`optuna_pandalm.judges.beam_cache`); the output is parsed with
  :func:`parse_pandalm_output`, and an invalid output is retried once with sampling.

torch, transformers and tqdm are imported inside the methods that run the model, so the
judge's prompt and parser import without them.
"""

from __future__ import annotations

from typing import Any

from optuna_pandalm.judges.formats._pandalm import (
    LABEL_OF,
    LABELS,
    build_pandalm_prompt,
    parse_pandalm_output,
)
from optuna_pandalm.judges.local import LocalJudge

__all__ = ["LABELS", "LABEL_OF", "PandaLMJudge", "build_pandalm_prompt", "parse_pandalm_output"]


class PandaLMJudge(LocalJudge):
    """The PandaLM judge on a local causal language model: ``LocalJudge(format="pandalm")``
    with PandaLM's released decoding as its defaults, named ``pandalm:...`` as always (the
    verdict cache keys of earlier studies still hit).

    It takes :class:`~optuna_pandalm.judges.LocalJudge`'s arguments except ``format`` and
    ``chat_template`` (PandaLM's prompt is plain text); generate mode's decoding defaults are
    PandaLM's released settings, and ``name`` defaults to
    ``pandalm:{source}:{settings}:max_length=N``.

    Inputs longer than the context are cut from the end of the responses (never the
    instruction or input); the number cut is logged once per batch and kept in
    ``n_truncated``. Special tokens inside texts are removed first, as PandaLM does. Empty
    responses are judged as they are.

    Example:
        >>> judge = PandaLMJudge("/models/pandalm-7b", dtype="bfloat16")  # doctest: +SKIP
        >>> judge.judge([JudgeRequest("Add 2 and 3.", "5", "6")])  # doctest: +SKIP
        [Verdict(winner=1, probabilities=(0.02, 0.95, 0.03), ...)]
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        mode: str = "likelihood",
        batch_size: int = 8,
        dtype: str | None = None,
        device: str | None = None,
        device_map: Any = None,
        trust_remote_code: bool = False,
        tie_threshold: float | None = None,
        num_beams: int = 4,
        repetition_penalty: float = 1.2,
        max_new_tokens: int = 512,
        early_stopping: bool = True,
        generation_kwargs: dict[str, Any] | None = None,
        retry_kwargs: dict[str, Any] | None = None,
        max_length: int | None = None,
        beam_cache: bool | None = None,
        name: str | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(
            model,
            tokenizer,
            format="pandalm",
            mode=mode,
            batch_size=batch_size,
            dtype=dtype,
            device=device,
            device_map=device_map,
            trust_remote_code=trust_remote_code,
            tie_threshold=tie_threshold,
            num_beams=num_beams,
            repetition_penalty=repetition_penalty,
            max_new_tokens=max_new_tokens,
            early_stopping=early_stopping,
            generation_kwargs=generation_kwargs,
            retry_kwargs=retry_kwargs,
            max_length=max_length,
            beam_cache=beam_cache,
            name=name,
            progress=progress,
        )

    def _default_name(self, source: str, settings: str) -> str:
        # The name PandaLMJudge has always had: verdict caches of earlier studies key on it.
        return f"pandalm:{source}:{settings}:max_length={self.max_length}"
