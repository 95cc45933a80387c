"""PandaLM's format (2023): a base-model prompt, ``1`` / ``2`` / ``Tie`` on the first line.

The prompt and the parser are :func:`build_pandalm_prompt` and :func:`parse_pandalm_output`
(also importable from :mod:`optuna_pandalm.judges`), the ones
:class:`~optuna_pandalm.PandaLMJudge` has always used (seeds/000 Figure 5;
WeOpenML/PandaLM@6823887, ``pandalm/utils/pandalm_inference.py``'s ``build_pandalm_prompt``).
They live here, with the format, so that the judges that run a format import it and not the
other way round.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from optuna_pandalm.judges.base import JudgeRequest, Verdict
from optuna_pandalm.judges.formats._format import JudgeFormat, Message

__all__ = ["LABELS", "PandaLMFormat", "build_pandalm_prompt", "parse_pandalm_output"]

LABELS = ("Tie", "1", "2")  # in the order of Verdict.probabilities: (tie, 1, 2)
LABEL_OF = {label.lower(): winner for winner, label in enumerate(LABELS)}
_EVALUATION = "### Evaluation:"
_REASON = re.compile(r"###\s*Reason\s*:", re.IGNORECASE)
_REFERENCE = re.compile(r"###\s*Reference\s*:", re.IGNORECASE)


def build_pandalm_prompt(
    instruction: str, response_1: str, response_2: str, input: str = ""
) -> str:
    """PandaLM's evaluation prompt, exactly as the released model was trained on.

    The responses are stripped of surrounding white space first, as PandaLM's own prompt
    builder does (the instruction and input are not).

    Example:
        >>> prompt = build_pandalm_prompt("Add 2 and 3.", "5", "6")
        >>> prompt.startswith("Below are two responses"), prompt.endswith("### Evaluation:\\n")
        (True, True)
        >>> build_pandalm_prompt("Add 2 and 3.", "5\\n", " 6") == prompt
        True
    """
    response_1, response_2 = response_1.strip(), response_2.strip()
    context = " with an Input that provides further context" if input else ""
    parts = [
        "Below are two responses for a given task. The task is defined by the Instruction"
        f"{context}. Evaluate the responses and generate a reference answer for the task.\n\n",
        f"### Instruction:\n{instruction}\n\n",
    ]
    if input:
        parts.append(f"### Input:\n{input}\n\n")
    parts.append(f"### Response 1:\n{response_1}\n\n### Response 2:\n{response_2}\n\n")
    parts.append(f"{_EVALUATION}\n")
    return "".join(parts)


def parse_pandalm_output(text: str) -> Verdict:
    """Parse PandaLM's output: ``1``, ``2`` or ``Tie`` on the first line, then the reason and
    the reference answer.

    Tolerates surrounding whitespace, any case and a leading echo of the prompt (the text is
    split on the last ``### Evaluation:``). Anything else is an invalid verdict
    (``winner=None``), never a tie: PandaLM's released code silently calls garbage a tie.

    Example:
        >>> v = parse_pandalm_output("2\\n\\n### Reason: shorter.\\n\\n### Reference: 5\\n")
        >>> v.winner, v.reason, v.reference
        (2, 'shorter.', '5')
        >>> parse_pandalm_output("I think both are fine").winner is None
        True
    """
    raw = text
    if _EVALUATION in text:
        text = text.rsplit(_EVALUATION, 1)[1]
    body = text.strip()
    first_line = body.split("\n", 1)[0].strip()
    # The label may share its line with "### Reason:" when the model skips the blank line.
    label = _REASON.split(first_line, 1)[0].strip().lower()
    winner = LABEL_OF.get(label)
    reason = reference = ""
    reason_match = _REASON.search(body)
    reference_match = _REFERENCE.search(body)
    if reason_match:
        end = (
            reference_match.start()
            if reference_match and reference_match.start() > reason_match.end()
            else len(body)
        )
        reason = body[reason_match.end() : end].strip()
    if reference_match:
        reference = body[reference_match.end() :].strip()
    return Verdict(winner=winner, reason=reason, reference=reference, raw=raw)


class PandaLMFormat(JudgeFormat):
    """PandaLM-7B's prompt and verdict.

    Example:
        >>> from optuna_pandalm.judges import JudgeRequest
        >>> form = PandaLMFormat()
        >>> form.text(JudgeRequest("Add 2 and 3.", "5", "6")).endswith("### Evaluation:\\n")
        True
        >>> form.parse("Tie\\n\\n### Reason: both wrong.").winner, form.labels[0]
        (0, 'Tie')
    """

    name = "pandalm"
    chat = False
    ties = True
    # 0 "Tie", 1 "1", 2 "2", right after the prompt
    labels: ClassVar[Mapping[int, str]] = MappingProxyType(dict(enumerate(LABELS)))

    def messages(self, request: JudgeRequest) -> list[Message]:
        return [{"role": "user", "content": self.text(request)}]

    def text(self, request: JudgeRequest) -> str:
        return build_pandalm_prompt(
            request.instruction, request.response_1, request.response_2, request.input
        )

    def parse(self, text: str) -> Verdict:
        return parse_pandalm_output(text)
