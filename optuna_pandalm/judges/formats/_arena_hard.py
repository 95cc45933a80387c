"""Arena-Hard-Auto's pairwise judge (2024): a system prompt, ``[[A>>B]]`` ... ``[[B>>A]]``.

Source: ``lmarena/arena-hard-auto`` (Apache-2.0), ``config/judge_config.yaml`` at commit
7f1b7f5dd6ce53e1f8530220ceb452b7019a8056 (the v0.1 release: ``system_prompt``,
``prompt_template``, ``regex_pattern``) and ``gen_judgment.py`` (``get_score``) at the same
commit. The same system prompt is ``OG_ARENA_HARD_PROMPT`` in ``utils/judge_utils.py`` and the
same user template is ``prompt_template`` in ``config/arena-hard-v2.0.yaml`` at
196f6b826783b3da7310e361a805fa36f0be83f3 (v2.0).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from optuna_pandalm.judges.base import JudgeRequest, Verdict
from optuna_pandalm.judges.formats._format import JudgeFormat, Message, question_of

__all__ = ["ArenaHardFormat"]

SYSTEM_PROMPT = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two"
    " AI assistants to the user prompt displayed below. You will be given assistant A's answer"
    " and assistant B's answer. Your job is to evaluate which assistant's answer is better.\n\n"
    "Begin your evaluation by generating your own answer to the prompt. You must provide your"
    " answers before judging any answers.\n\n"
    "When evaluating the assistants' answers, compare both assistants' answers with your"
    " answer. You must identify and correct any mistakes or inaccurate information.\n\n"
    "Then consider if the assistant's answers are helpful, relevant, and concise. Helpful means"
    " the answer correctly responds to the prompt or follows the instructions. Note when user"
    " prompt has any ambiguity or more than one interpretation, it is more helpful and"
    " appropriate to ask for clarifications or more information from the user than providing"
    " an answer based on assumptions. Relevant means all parts of the response closely connect"
    " or are appropriate to what is being asked. Concise means the response is clear and not"
    " verbose or excessive.\n\n"
    "Then consider the creativity and novelty of the assistant's answers when needed. Finally,"
    " identify any missing important information in the assistants' answers that would be"
    " beneficial to include when responding to the user prompt.\n\n"
    "After providing your explanation, you must output only one of the following choices as"
    " your final verdict with a label:\n\n"
    "1. Assistant A is significantly better: [[A>>B]]\n"
    "2. Assistant A is slightly better: [[A>B]]\n"
    "3. Tie, relatively the same: [[A=B]]\n"
    "4. Assistant B is slightly better: [[B>A]]\n"
    "5. Assistant B is significantly better: [[B>>A]]\n\n"
    'Example output: "My final verdict is tie: [[A=B]]".'
)
"""``system_prompt`` of the v0.1 ``config/judge_config.yaml``, verbatim."""

USER_TEMPLATE = (
    "<|User Prompt|>\n{question_1}\n\n"
    "<|The Start of Assistant A's Answer|>\n{answer_1}\n<|The End of Assistant A's Answer|>\n\n"
    "<|The Start of Assistant B's Answer|>\n{answer_2}\n<|The End of Assistant B's Answer|>"
)
"""``prompt_template`` of the v0.1 ``config/judge_config.yaml``, verbatim."""

VERDICT_PATTERN = re.compile(r"\[\[([AB<>=]+)\]\]")
"""``regex_pattern`` of the v0.1 ``config/judge_config.yaml``."""

# label -> (winner in shown order, strength); the five published labels and the mirrored
# spellings that the project's ``show_result.py`` (``label_to_score``) also scores
_OUTCOMES: Mapping[str, tuple[int, int | None]] = MappingProxyType(
    {
        "A>>B": (1, 2),
        "A>B": (1, 1),
        "A=B": (0, None),
        "B>A": (2, 1),
        "B>>A": (2, 2),
        "B<<A": (1, 2),
        "B<A": (1, 1),
        "B=A": (0, None),
        "A<B": (2, 1),
        "A<<B": (2, 2),
    }
)


class ArenaHardFormat(JudgeFormat):
    """Arena-Hard-Auto's judge prompt and five-level verdict.

    * Prompt (``chat = True``): the project's system message, then one user message, the
      ``<|User Prompt|>`` template with response 1 as Assistant A and response 2 as
      Assistant B. Arena-Hard questions have no separate input: a request's ``input`` is
      appended to the instruction after a blank line, inside ``<|User Prompt|>``.
    * Verdict: the label in ``[[...]]`` (``\\[\\[([AB<>=]+)\\]\\]``), read as the release's
      ``get_score`` reads it: exactly one distinct label in the text; none, or two different
      labels (conflicting), is an invalid verdict. (The 2025 v2.0 code instead takes the last
      match and falls back to single brackets; this keeps the stricter v0.1 rule, so a
      conflicting judgment is dropped rather than guessed.) A label other than the five, or
      their mirrored spellings ``B<<A``/``B<A``/``B=A``/``A<B``/``A<<B`` that the project's
      ``show_result.py`` also scores, is invalid too.
    * Ties: ``[[A=B]]`` is winner 0. Strengths: ``>>`` is strength 2, ``>`` strength 1.
    * ``reason`` is the judgment text before the last label: the judge's own answer and its
      evaluation. Arena-Hard's judge writes its own answer first, so generate mode is the
      natural mode for this format.
    * Reference: none (``takes_reference = False``); the release runs with
      ``reference: False`` and its template has no reference slot, so ``request.reference``
      is not shown.
    * Likelihood: after the prompt and ``answer_prefix`` ``"[["``, the continuations
      ``"A>B"`` (1), ``"B>A"`` (2) and ``"A=B"`` (0), the project's "slightly better" and tie
      labels. Scoring the label straight after the prompt skips the judge's own answer, and
      strengths are not scored: ``A>B`` and ``A>>B`` share the first tokens, so the three
      outcomes are what a likelihood can tell apart; ``>`` is the shorter, unhedged choice.

    Example:
        >>> from optuna_pandalm.judges import JudgeRequest
        >>> form = ArenaHardFormat()
        >>> system, user = form.messages(JudgeRequest("Add 2 and 3.", "5", "6"))
        >>> system["role"], user["content"].splitlines()[:2]
        ('system', ['<|User Prompt|>', 'Add 2 and 3.'])
        >>> verdict = form.parse("Mine: 5. A is right. My final verdict is: [[A>>B]]")
        >>> verdict.winner, verdict.strength
        (1, 2)
        >>> form.parse("[[A>B]] ... no, [[B>A]]").winner is None
        True
        >>> form.answer_prefix + form.labels[0]
        '[[A=B'
    """

    name = "arena_hard"
    chat = True
    ties = True
    strengths = True
    takes_reference = False
    answer_prefix = "[["
    labels: ClassVar[Mapping[int, str]] = MappingProxyType({1: "A>B", 2: "B>A", 0: "A=B"})

    def messages(self, request: JudgeRequest) -> list[Message]:
        question = question_of(request)
        user = USER_TEMPLATE.format(
            question_1=question, answer_1=request.response_1, answer_2=request.response_2
        )
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def parse(self, text: str) -> Verdict:
        if not isinstance(text, str):
            return Verdict(winner=None, raw=repr(text))
        matches = [match for match in VERDICT_PATTERN.finditer(text) if match.group(1)]
        labels = {match.group(1).strip("\n") for match in matches}
        if len(labels) != 1:
            return Verdict(winner=None, raw=text)
        outcome = _OUTCOMES.get(labels.pop())
        if outcome is None:
            return Verdict(winner=None, raw=text)
        winner, strength = outcome
        reason = text[: matches[-1].start()].strip()
        return Verdict(winner=winner, reason=reason, raw=text, strength=strength)
