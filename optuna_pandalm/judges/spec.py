"""Build a judge from a one-line spec, for the command line and config files.

``KIND:TARGET[?option=value&...]``:

* ``reference:rouge_l`` (or ``token_f1``, ``exact``, ``char_ratio``), options ``tie_margin``,
  ``max_tokens``
* ``pandalm:/path/to/model``, options ``mode``, ``batch_size``, ``dtype``, ``device``,
  ``device_map``, ``max_new_tokens``, ``num_beams``, ``tie_threshold``, ``trust_remote_code``
* ``local:/path/to/model?format=prometheus2&mode=likelihood``: any local causal LM in a judge
  format (:class:`~optuna_pandalm.judges.LocalJudge`), options ``format`` (a name in
  :data:`~optuna_pandalm.judges.FORMATS`), ``chat_template``, ``max_length``,
  ``repetition_penalty``, ``early_stopping``, ``beam_cache``, ``progress`` and those of
  ``pandalm:``
* ``reward:/path/to/model``, options ``batch_size``, ``dtype``, ``device``, ``tie_margin``,
  ``template``, ``trust_remote_code``
* ``remote:http://host:8000/v1?model=NAME``, options ``format``, ``mode``, ``max_tokens``,
  ``max_concurrency``, ``timeout``, ``max_retries``, ``api_key_env``, ``tie_threshold``,
  ``top_logprobs``, ``tokenizer``

:func:`check_spec` validates a spec without loading any model (``tune --dry-run``).
"""

from __future__ import annotations

import difflib
import inspect
import json
import urllib.parse
from pathlib import Path
from typing import Any

from optuna_pandalm.judges.base import PairwiseJudge
from optuna_pandalm.judges.local import LocalJudge, resolve_format
from optuna_pandalm.judges.pandalm import PandaLMJudge
from optuna_pandalm.judges.reference import ReferenceJudge
from optuna_pandalm.judges.remote import RemoteJudge
from optuna_pandalm.judges.reward import RewardModelJudge

__all__ = ["check_spec", "judge_from_spec", "needs_reference", "options_of"]

_KINDS = ("reference", "pandalm", "reward", "remote", "local")

_INTEGER = {
    "batch_size",
    "max_new_tokens",
    "num_beams",
    "max_concurrency",
    "max_retries",
    "max_tokens",
    "top_logprobs",
    "max_length",
}
_FLOAT = {"tie_margin", "tie_threshold", "timeout", "temperature", "repetition_penalty", "backoff"}
_BOOLEAN = {"trust_remote_code", "progress", "early_stopping", "beam_cache"}


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


def _parse(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``(kind, target, options)`` of a spec; an unknown kind is refused with the closest."""
    kind, separator, rest = spec.partition(":")
    if not separator or not rest:
        raise ValueError(f"judge spec {spec!r}: expected KIND:TARGET, e.g. reference:rouge_l")
    if kind not in _KINDS:
        close = difflib.get_close_matches(kind, _KINDS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"judge spec {spec!r}: unknown kind {kind!r} ({hint}kinds: {', '.join(_KINDS)})"
        )
    target, _, query = rest.partition("?")
    return kind, target, _options(query, spec)


def _judge_class(kind: str) -> type[PairwiseJudge]:
    if kind == "reference":
        return ReferenceJudge
    if kind == "pandalm":
        return PandaLMJudge
    if kind == "reward":
        return RewardModelJudge
    if kind == "local":
        return LocalJudge
    return RemoteJudge


def options_of(kind: str) -> list[str]:
    """The option names a spec of ``kind`` takes: its judge class's keyword arguments,
    except the spec's target (the metric, model or URL).

    Example:
        >>> options_of("reference")
        ['tie_margin', 'max_tokens']
    """
    parameters = list(inspect.signature(_judge_class(kind).__init__).parameters.values())
    return [
        p.name
        for p in parameters[2:]  # self, then the target
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def _check_options(spec: str, kind: str, options: dict[str, Any]) -> None:
    """Refuse an option the judge does not take, with the closest one and the list."""
    accepted = options_of(kind)
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"judge spec {spec!r}: unknown option {key!r} ({hint}options of {kind}: "
                f"{', '.join(accepted)})"
            )


def needs_reference(spec: str) -> bool:
    """Whether the judge a spec names compares answers with each prompt's reference answer
    (so that prompts without one cannot be judged), known without building the judge.

    Example:
        >>> needs_reference("reference:rouge_l"), needs_reference("pandalm:/models/p")
        (True, False)
    """
    return bool(_judge_class(_parse(spec)[0]).needs_reference)


def _check_format(spec: str, kind: str, options: dict[str, Any]) -> None:
    """A local or remote judge's format: a name in FORMATS (or the closest one), and
    likelihood mode (the default) only where the format has labels."""
    if kind not in ("local", "remote"):
        return
    try:
        resolve_format(options.get("format", "pandalm"), options.get("mode", "likelihood"))
    except ValueError as error:
        raise ValueError(f"judge spec {spec!r}: {error}") from None


def judge_from_spec(spec: str) -> PairwiseJudge:
    """Build the judge a spec names.

    Example:
        >>> judge_from_spec("reference:token_f1?tie_margin=0.05").name
        'reference:token_f1:tie_margin=0.05:max_tokens=2048'
    """
    kind, target, options = _parse(spec)
    _check_options(spec, kind, options)
    _check_format(spec, kind, options)
    judge_class = _judge_class(kind)
    try:
        if kind == "remote":
            model = options.pop("model", None)
            if not model:
                raise ValueError(f"judge spec {spec!r}: remote judges need ?model=NAME")
            return judge_class(target, model, **options)  # type: ignore[call-arg]
        return judge_class(target, **options)  # type: ignore[call-arg]
    except TypeError as error:
        raise ValueError(f"judge spec {spec!r}: {error}") from None


def check_spec(spec: str) -> str:
    """Check a spec as far as can be done without loading a model or calling a server: the
    kind, the option names and types, a reference judge's metric, a model folder with a
    readable ``config.json`` or a readable ``.gguf`` file, a remote judge's model name and
    URL. Returns the spec.

    Raises:
        ValueError: naming the spec and what is wrong.

    Example:
        >>> check_spec("refrence:char_ratio")
        Traceback (most recent call last):
        ...
        ValueError: judge spec 'refrence:char_ratio': unknown kind 'refrence' (did you mean \
'reference'? kinds: reference, pandalm, reward, remote, local)
        >>> check_spec("remote:http://127.0.0.1:8000/v1?model=m&format=mtbnch")
        Traceback (most recent call last):
        ...
        ValueError: judge spec 'remote:http://127.0.0.1:8000/v1?model=m&format=mtbnch': unknown \
judge format 'mtbnch' (did you mean 'mtbench'? formats: arena_hard, judgelm, mtbench, pandalm, \
prometheus2)
        >>> check_spec("reference:rouge_l?tie_margn=0.1")
        Traceback (most recent call last):
        ...
        ValueError: judge spec 'reference:rouge_l?tie_margn=0.1': unknown option 'tie_margn' \
(did you mean 'tie_margin'? options of reference: tie_margin, max_tokens)
    """
    kind, target, options = _parse(spec)
    if kind == "reference":
        judge_from_spec(spec)  # instant: no model
        return spec
    _check_options(spec, kind, options)
    _check_format(spec, kind, options)
    if kind == "remote":
        parts = urllib.parse.urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc or not options.get("model"):
            raise ValueError(
                f"judge spec {spec!r}: expected remote:http(s)://host:port/v1?model=NAME"
            )
        return spec
    from optuna_pandalm.judges.loading import gguf_problem, is_gguf

    if is_gguf(target):
        if kind == "reward":
            raise ValueError(
                f"judge spec {spec!r}: a reward model loads from its folder; a .gguf file holds "
                "no classification head"
            )
        problem = gguf_problem(Path(target).expanduser())
        if problem is not None:
            raise ValueError(
                f"judge spec {spec!r}: cannot load the judge model's {target!r} ({problem})"
            )
        return spec
    config = Path(target).expanduser() / "config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        why = error.strerror if isinstance(error, OSError) else f"not valid JSON: {error}"
        raise ValueError(
            f"judge spec {spec!r}: cannot read the judge model's {str(config)!r} ({why}); "
            "models load from local folders only"
        ) from None
    return spec
