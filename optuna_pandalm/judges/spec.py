"""Build a judge from a one-line spec, for the command line and config files.

``KIND:TARGET[?option=value&...]``:

* ``reference:rouge_l`` (or ``token_f1``, ``exact``), options ``tie_margin``, ``max_tokens``
* ``pandalm:/path/to/model``, options ``mode``, ``batch_size``, ``dtype``, ``device``,
  ``device_map``, ``max_new_tokens``, ``num_beams``, ``tie_threshold``, ``trust_remote_code``
* ``reward:/path/to/model``, options ``batch_size``, ``dtype``, ``device``, ``tie_margin``,
  ``template``, ``trust_remote_code``
* ``remote:http://host:8000/v1?model=NAME``, options ``mode``, ``max_concurrency``,
  ``timeout``, ``max_retries``, ``api_key_env``, ``tie_threshold``, ``top_logprobs``, ``tokenizer``
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from optuna_pandalm.judges.base import PairwiseJudge

__all__ = ["judge_from_spec"]

_INTEGER = {
    "batch_size",
    "max_new_tokens",
    "num_beams",
    "max_concurrency",
    "max_retries",
    "max_tokens",
    "top_logprobs",
}
_FLOAT = {"tie_margin", "tie_threshold", "timeout", "temperature", "repetition_penalty", "backoff"}
_BOOLEAN = {"trust_remote_code", "progress"}


def _options(query: str, spec: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        try:
            if key in _INTEGER:
                options[key] = int(value)
            elif key in _FLOAT:
                options[key] = float(value)
            elif key in _BOOLEAN:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                options[key] = value.lower() in ("true", "1")
            else:
                options[key] = value
        except ValueError:
            raise ValueError(
                f"judge spec {spec!r}: option {key}={value!r} has the wrong type"
            ) from None
    return options


def judge_from_spec(spec: str) -> PairwiseJudge:
    """Build the judge a spec names.

    Example:
        >>> judge_from_spec("reference:token_f1?tie_margin=0.05").name
        'reference:token_f1:tie_margin=0.05:max_tokens=2048'
    """
    kind, separator, rest = spec.partition(":")
    if not separator or not rest:
        raise ValueError(f"judge spec {spec!r}: expected KIND:TARGET, e.g. reference:rouge_l")
    target, _, query = rest.partition("?")
    options = _options(query, spec)
    try:
        if kind == "reference":
            from optuna_pandalm.judges.reference import ReferenceJudge

            return ReferenceJudge(target, **options)
        if kind == "pandalm":
            from optuna_pandalm.judges.pandalm import PandaLMJudge

            return PandaLMJudge(target, **options)
        if kind == "reward":
            from optuna_pandalm.judges.reward import RewardModelJudge

            return RewardModelJudge(target, **options)
        if kind == "remote":
            from optuna_pandalm.judges.remote import RemoteJudge

            model = options.pop("model", None)
            if not model:
                raise ValueError(f"judge spec {spec!r}: remote judges need ?model=NAME")
            return RemoteJudge(target, model, **options)
    except TypeError as error:
        raise ValueError(f"judge spec {spec!r}: {error}") from None
    raise ValueError(
        f"judge spec {spec!r}: unknown kind {kind!r} (reference, pandalm, reward, remote)"
    )
