"""PandaLM's format (2023): a base-model prompt, ``1`` / ``2`` / ``Tie`` on the first line.

The prompt and the parser are :func:`~optuna_pandalm.judges.pandalm.build_pandalm_prompt`
and :func:`~optuna_pandalm.judges.pandalm.parse_pandalm_output`, the ones
:class:`~optuna_pandalm.PandaLMJudge` has always used (seeds/000 Figure 5;
WeOpenML/PandaLM@6823887, ``pandalm/utils/pandalm_inference.py``'s ``build_pandalm_prompt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from optuna_pandalm.judges.base import JudgeRequest, Verdict
from optuna_pandalm.judges.formats._format import JudgeFormat, Message
from optuna_pandalm.judges.pandalm import LABELS, build_pandalm_prompt, parse_pandalm_output

__all__ = ["PandaLMFormat"]


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
