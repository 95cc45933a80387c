"""Prometheus 2's relative grading (2024): a rubric-guided pairwise prompt, ``[RESULT] A|B``.

Source: prometheus-eval/prometheus-eval (Apache-2.0) at commit
dcfb44272d5d0414832f5dbb8c2a05ebc2614234: the prompts and the relative rubric in
``libs/prometheus-eval/prometheus_eval/prompts.py`` (``REL_SYSTEM_PROMPT``,
``RELATIVE_PROMPT``, ``RELATIVE_PROMPT_WO_REF``, ``HELPFULNESS_RUBRIC``, ``load_rubric``), the
messages in ``prometheus_eval/judge.py`` (``PrometheusEval.relative_grade``), the verdict regex
in ``prometheus_eval/parser.py`` (``_parse_output_relative``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from optuna_pandalm.judges.base import JudgeRequest, Verdict
from optuna_pandalm.judges.formats._format import JudgeFormat, Message, question_of

__all__ = ["Prometheus2Format"]

REL_SYSTEM_PROMPT = (
    "You are a fair judge assistant assigned to deliver insightful feedback that compares "
    "individual performances, highlighting how each stands relative to others within the same "
    "cohort."
)

_TASK_WITH_REFERENCE = (
    "An instruction (might include an Input inside it), two responses to evaluate (denoted as "
    "Response A and Response B), a reference answer, and an evaluation criteria are given."
)
_TASK_WITHOUT_REFERENCE = (
    "An instruction (might include an Input inside it), two responses to evaluate (denoted as "
    "Response A and Response B), and an evaluation criteria are given."
)
_STEPS = """\
1. Write a detailed feedback that assess the quality of the two responses strictly based on the given evaluation criteria, not evaluating in general.
2. Make comparisons between Response A, Response B, and the Reference Answer. Instead of examining Response A and Response B separately, go straight to the point and mention about the commonalities and differences between them.
3. After writing the feedback, indicate the better response, either "A" or "B".
4. The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] (Either "A" or "B")"
5. Please do not generate any other opening, closing, and explanations."""  # noqa: E501 (verbatim)

HELPFULNESS_RUBRIC_RELATIVE = (
    "[Does the model provide relevant and useful responses to the user's needs or questions?]"
)
"""``load_rubric("helpfulness", "relative")``: the first line of the project's
``HELPFULNESS_RUBRIC`` (relative grading takes the criterion only, no score descriptions)."""

# _parse_output_relative's pattern, verbatim (re.IGNORECASE | re.VERBOSE | re.MULTILINE)
_RESULT = re.compile(
    r"""
        (?:                                # Start of non-capturing group
            \[RESULT\]|\[RESULT:\s*|        # Match [RESULT] or [RESULT:
            \[Response\s+|                  # Match [Response
            \[Result\](?:\s+Response)?|     # Match [Result] or [Result] Response
            \[Result:\s*|                   # Match [Result:
            (?:^|\n)Result:?\s*             # Match Result: at the start of a line
        )                                   # End of non-capturing group
        \s*                                 # Allow any whitespace
        (A|B)                               # Capture A or B
        (?:\])?                             # Allow closing bracket, whitespace, or end of string
        (?:\s*$)                            # Match from the end of string
    """,
    re.IGNORECASE | re.VERBOSE | re.MULTILINE,
)
_FEEDBACK = re.compile(r"^\s*Feedback:\s*", re.IGNORECASE)


class Prometheus2Format(JudgeFormat):
    """Prometheus 2's relative (pairwise) grading prompt and verdict.

    Source: prometheus-eval/prometheus-eval@dcfb442 (Apache-2.0),
    ``libs/prometheus-eval/prometheus_eval/prompts.py``, ``judge.py`` and ``parser.py``.

    * Prompt: chat messages exactly as ``PrometheusEval.relative_grade`` builds them: the
      system message ``REL_SYSTEM_PROMPT``, then one user message, ``RELATIVE_PROMPT`` filled
      in when the request has a reference answer, else ``RELATIVE_PROMPT_WO_REF`` (the
      library's default template). The published templates say "An instruction (might include
      an Input inside it)": a request's ``input`` is appended to the instruction after a blank
      line. ``merge_system=True`` gives the project README's ``transformers`` variant instead,
      for chat templates without a system role (Mistral's): one user message,
      ``REL_SYSTEM_PROMPT + "\\n\\n" + prompt``.
    * Rubric: ``rubric`` (the prompt's ``###Score Rubric:``), by default the project's own
      relative helpfulness rubric, ``load_rubric("helpfulness", "relative")``:
      ``"[Does the model provide relevant and useful responses to the user's needs or
      questions?]"``.
    * Verdict: ``Feedback: ... [RESULT] A`` or ``B``, read with the project's regex
      (``_parse_output_relative``: ``[RESULT] A``, ``[RESULT: A]``, ``[Response A]``,
      ``[Result] Response A``, ``Result: A`` at a line start; the label must end its line).
      A is the response shown first (winner 1), B second (2). No ties, no strengths.
      The project takes the first match; here matches that disagree (``[RESULT] A`` ...
      ``[RESULT] B``) make the verdict invalid instead, and text with no match is invalid.
      ``reason`` is the feedback before the label, without its ``Feedback:`` lead-in.
    * Likelihood labels: ``answer_prefix = "[RESULT]"``, ``labels = {1: " A", 2: " B"}``.
      The user turn already ends with ``###Feedback: `` and the model's trained answer is
      ``(feedback) [RESULT] X``; a likelihood judge writes no feedback, so the assistant turn
      opens straight at the label position, ``[RESULT]``, and the label keeps its leading
      space as in ``[RESULT] A`` (so it tokenises as in generated text, ``▁A``).

    Example:
        >>> from optuna_pandalm.judges import JudgeRequest
        >>> form = Prometheus2Format()
        >>> system, user = form.messages(JudgeRequest("Add 2 and 3.", "5", "6", reference="5"))
        >>> system["role"], user["content"].endswith("###Feedback: ")
        ('system', True)
        >>> "###Reference Answer:\\n5\\n" in user["content"]
        True
        >>> verdict = form.parse("Feedback: Response A is right. [RESULT] A")
        >>> verdict.winner, verdict.reason
        (1, 'Response A is right.')
        >>> form.parse("[RESULT] A\\n[RESULT] B").winner is None
        True
        >>> form.answer_prefix + form.labels[2]
        '[RESULT] B'
    """

    name = "prometheus2"
    chat = True
    ties = False
    strengths = False
    takes_reference = True
    answer_prefix = "[RESULT]"
    labels: ClassVar[Mapping[int, str]] = MappingProxyType({1: " A", 2: " B"})

    def __init__(
        self, rubric: str = HELPFULNESS_RUBRIC_RELATIVE, *, merge_system: bool = False
    ) -> None:
        self.rubric = rubric
        self.merge_system = merge_system

    def prompt(self, request: JudgeRequest) -> str:
        """The filled user prompt (``RELATIVE_PROMPT`` or ``RELATIVE_PROMPT_WO_REF``)."""
        instruction = question_of(request)
        with_reference = request.reference is not None
        parts = [
            "###Task Description:",
            _TASK_WITH_REFERENCE if with_reference else _TASK_WITHOUT_REFERENCE,
            _STEPS,
            "",
            f"###Instruction:\n{instruction}",
            "",
            f"###Response A:\n{request.response_1}",
            "",
            f"###Response B:\n{request.response_2}",
            "",
        ]
        if with_reference:
            parts += [f"###Reference Answer:\n{request.reference}", ""]
        parts += [f"###Score Rubric:\n{self.rubric}", "", "###Feedback: "]
        return "\n".join(parts)

    def messages(self, request: JudgeRequest) -> list[Message]:
        content = self.prompt(request)
        if self.merge_system:
            return [{"role": "user", "content": f"{REL_SYSTEM_PROMPT}\n\n{content}"}]
        return [
            {"role": "system", "content": REL_SYSTEM_PROMPT},
            {"role": "user", "content": content},
        ]

    def parse(self, text: str) -> Verdict:
        if not isinstance(text, str):
            return Verdict(winner=None, raw="" if text is None else repr(text))
        matches = list(_RESULT.finditer(text))
        found = {match.group(1).upper() for match in matches}
        if len(found) != 1:
            return Verdict(winner=None, raw=text)
        reason = _FEEDBACK.sub("", text[: matches[0].start()], count=1).strip()
        return Verdict(winner=1 if found == {"A"} else 2, reason=reason, raw=text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, rubric={self.rubric!r})"
