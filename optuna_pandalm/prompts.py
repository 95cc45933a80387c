"""The evaluation prompt set: instructions every checkpoint answers.

:func:`load_prompts` reads JSON lists, JSONL, Alpaca data (``instruction`` / ``input`` /
``output``, the output becoming the reference answer), PandaLM's ``testset-inference``
format, or Python records. Every prompt and every set has a stable content hash, which keys
stored generations and verdicts and lets a study refuse a different prompt set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from optuna_pandalm.errors import PromptFormatError

__all__ = ["Prompt", "PromptFormatError", "load_prompts", "prompt_set_hash"]

_logger = logging.getLogger(__name__)

PromptSource = Union[str, "os.PathLike[str]", Iterable[Union["Prompt", Mapping[str, Any]]]]

# Accepted names of each field; the first is ours, the rest come from Alpaca and PandaLM.
_ID_FIELDS = ("id", "idx")
_REFERENCE_FIELDS = ("reference", "output")


@dataclasses.dataclass(frozen=True)
class Prompt:
    """One evaluation prompt.

    Attributes:
        instruction: The task, non-empty.
        input: Optional context for the task ("" when none), as in Alpaca and PandaLM.
        reference: Optional reference answer (for reference-based judges).
        id: Optional user id, unique within a set.

    Example:
        >>> p = Prompt("Name a prime number.", reference="2")
        >>> len(p.hash)
        64
    """

    instruction: str
    input: str = ""
    reference: str | None = None
    id: str | None = None

    @property
    def hash(self) -> str:
        """SHA-256 of the content (instruction, input, reference), hex."""
        content = json.dumps([self.instruction, self.input, self.reference], ensure_ascii=False)
        return hashlib.sha256(content.encode("utf-8")).hexdigest()


def prompt_set_hash(prompts: Sequence[Prompt]) -> str:
    """SHA-256 of the ordered prompt hashes: equal sets in equal order have equal hashes."""
    return hashlib.sha256("\n".join(p.hash for p in prompts).encode("ascii")).hexdigest()


def _where(origin: str, line: int | None, record: int) -> str:
    return f"{origin}, line {line}" if line is not None else f"{origin}, record {record}"


def _text_field(record: Mapping[str, Any], names: Sequence[str], where: str) -> str | None:
    present = [name for name in names if name in record and record[name] is not None]
    if len(present) > 1:
        raise PromptFormatError(f"{where}: both {present[0]!r} and {present[1]!r} are given")
    if not present:
        return None
    value = record[present[0]]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and names == _ID_FIELDS:
        return str(value)
    if not isinstance(value, str):
        raise PromptFormatError(
            f"{where}: field {present[0]!r} must be a string, got {type(value).__name__}"
        )
    return value


def _encodable(prompt: Prompt, where: str) -> Prompt:
    """Refuse text that is not valid Unicode (a lone surrogate such as JSON's "\\ud800"):
    it cannot be hashed, stored or shown to a judge."""
    for field in ("instruction", "input", "reference", "id"):
        value = getattr(prompt, field)
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise PromptFormatError(
                f"{where}: field {field!r} is not valid Unicode "
                f"({error.reason} at character {error.start})"
            ) from None
    return prompt


def _prompt(record: Any, where: str) -> Prompt:
    if isinstance(record, Prompt):
        if not record.instruction.strip():
            raise PromptFormatError(f"{where}: field 'instruction' is empty")
        return _encodable(record, where)
    if not isinstance(record, Mapping):
        raise PromptFormatError(f"{where}: expected an object, got {type(record).__name__}")
    instruction = _text_field(record, ("instruction",), where)
    if instruction is None:
        raise PromptFormatError(f"{where}: field 'instruction' is missing")
    if not instruction.strip():
        raise PromptFormatError(f"{where}: field 'instruction' is empty")
    reference = _text_field(record, _REFERENCE_FIELDS, where)
    prompt = Prompt(
        instruction=instruction,
        input=_text_field(record, ("input",), where) or "",
        reference=reference if reference else None,
        id=_text_field(record, _ID_FIELDS, where),
    )
    return _encodable(prompt, where)


def _json_records(text: str, origin: str) -> Iterator[tuple[int, Any]]:
    """Records of a JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()

    def fail(error: json.JSONDecodeError) -> PromptFormatError:
        return PromptFormatError(f"{origin}, line {error.lineno}: invalid JSON ({error.msg})")

    def skip(position: int) -> int:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        return position

    position = skip(0)
    if text.startswith("{", position):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise fail(error) from None
        if isinstance(document, Mapping) and isinstance(document.get("prompts"), list):
            yield from ((1, r) for r in document["prompts"])
            return
        raise PromptFormatError(f"{origin}, line 1: expected a JSON list of prompts")
    if not text.startswith("[", position):
        raise PromptFormatError(f"{origin}, line 1: expected a JSON list of prompts")
    position = skip(position + 1)
    if text.startswith("]", position):
        return
    while True:
        try:
            record, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise fail(error) from None
        yield text.count("\n", 0, position) + 1, record
        position = skip(end)
        if text.startswith(",", position):
            position = skip(position + 1)
        elif text.startswith("]", position):
            break
        else:
            line = text.count("\n", 0, position) + 1
            raise PromptFormatError(f"{origin}, line {line}: invalid JSON (expected ',' or ']')")
    if skip(position + 1) != len(text):
        line = text.count("\n", 0, position) + 1
        raise PromptFormatError(f"{origin}, line {line}: invalid JSON (text after the list)")


def _jsonl_records(text: str, origin: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise PromptFormatError(
                f"{origin}, line {number}: invalid JSON ({error.msg})"
            ) from None


def _read_file(path: Path) -> tuple[Iterator[tuple[int, Any]], str]:
    origin = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PromptFormatError(f"{origin}: cannot read prompt file ({error.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise PromptFormatError(
            f"{origin}, line {line}: not valid UTF-8 (byte {error.start})"
        ) from None
    is_jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    if not is_jsonl and text.lstrip()[:1] == "{":
        # One object is either {"prompts": [...]} or the first line of JSONL.
        try:
            json.loads(text)
        except json.JSONDecodeError:
            is_jsonl = True
    return (_jsonl_records(text, origin) if is_jsonl else _json_records(text, origin)), origin


def load_prompts(
    source: PromptSource, *, on_invalid: str = "raise", allow_duplicates: bool = False
) -> list[Prompt]:
    """Load an evaluation prompt set.

    Args:
        source: A path to a JSON list or JSONL file, or an iterable of :class:`Prompt` or
            dicts. Records need ``instruction``; ``input``, ``reference`` (or Alpaca's
            ``output``) and ``id`` (or PandaLM's ``idx``) are optional; other fields (such as
            PandaLM's ``motivation_app``) are ignored.
        on_invalid: ``"raise"`` (default) stops at the first invalid record;
            ``"skip"`` leaves it out with a warning naming the file and line. PandaLM's
            ``testset-inference-v1.json`` needs ``"skip"``: its record 161 has a blank
            instruction.
        allow_duplicates: Keep two prompts of equal content (instruction, input and
            reference). Off by default: the verdict cache is keyed by content, so one
            verdict would stand for two games. Only for reading back a study stored before
            duplicates were refused.

    Returns:
        The prompts, in order.

    Raises:
        PromptFormatError: For unreadable or non-UTF-8 files, invalid JSON, a missing, empty
            or non-string field, duplicate ids, duplicate prompts or an empty set; the
            message names the file, the line (of both, for a duplicate) and the field.

    Example:
        >>> prompts = load_prompts([{"instruction": "Add 2 and 3.", "output": "5"}])
        >>> prompts[0].reference
        '5'
    """
    if on_invalid not in ("raise", "skip"):
        raise ValueError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
    if isinstance(source, (str, os.PathLike)):
        records, origin = _read_file(Path(source))
    elif isinstance(source, (Mapping, bytes)):
        raise PromptFormatError("prompts must be a path or a list of records")
    else:
        origin = "prompts"
        records = ((None, record) for record in source)  # type: ignore[misc]
    prompts: list[Prompt] = []
    seen: dict[str, str] = {}
    seen_content: dict[str, str] = {}
    for index, (line, record) in enumerate(records):
        where = _where(origin, line, index)
        try:
            prompt = _prompt(record, where)
        except PromptFormatError as error:
            if on_invalid == "raise":
                raise
            _logger.warning("skipping an invalid prompt: %s", error)
            continue
        if prompt.id is not None:
            if prompt.id in seen:
                raise PromptFormatError(
                    f"{where}: duplicate id {prompt.id!r} (first at {seen[prompt.id]})"
                )
            seen[prompt.id] = where
        if not allow_duplicates:
            if prompt.hash in seen_content:
                raise PromptFormatError(
                    f"{where}: duplicate prompt: the same instruction, input and reference "
                    f"as {seen_content[prompt.hash]} (one verdict would decide both games)"
                )
            seen_content[prompt.hash] = where
        prompts.append(prompt)
    if not prompts:
        raise PromptFormatError(f"{origin}: the prompt set is empty")
    return prompts
