"""MT-Bench's pairwise judge format (FastChat ``llm_judge``, 2023): ``[[A]]`` / ``[[B]]`` /
``[[C]]`` after a short explanation. Skywork-Critic and CompassJudger-2 are prompted this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from optuna_pandalm.judges.base import JudgeRequest, Verdict
from optuna_pandalm.judges.formats._format import JudgeFormat, Message, question_of

__all__ = ["MTBenchFormat"]

# Copied verbatim from lm-sys/FastChat fastchat/llm_judge/data/judge_prompts.jsonl
# (commit 0e6d3e4beaab66f4d3f93db72541a4abab8af28d, Apache-2.0): "pair-v2" ...
_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by "
    "two AI assistants to the user question displayed below. You should choose the assistant "
    "that follows the user's instructions and answers the user's question better. Your "
    "evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, "
    "creativity, and level of detail of their responses. Begin your evaluation by comparing "
    "the two responses and provide a short explanation. Avoid any position biases and ensure "
    "that the order in which the responses were presented does not influence your decision. "
    "Do not allow the length of the responses to influence your evaluation. Do not favor "
    "certain names of the assistants. Be as objective as possible. After providing your "
    'explanation, output your final verdict by strictly following this format: "[[A]]" if '
    'assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
_TEMPLATE = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)
# ... and "pair-math-v1", its variant with a reference answer.
_SYSTEM_REF = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by "
    "two AI assistants to the user question displayed below. Your evaluation should consider "
    "correctness and helpfulness. You will be given a reference answer, assistant A's answer, "
    "and assistant B's answer. Your job is to evaluate which assistant's answer is better. "
    "Begin your evaluation by comparing both assistants' answers with the reference answer. "
    "Identify and correct any mistakes. Avoid any position biases and ensure that the order "
    "in which the responses were presented does not influence your decision. Do not allow "
    "the length of the responses to influence your evaluation. Do not favor certain names of "
    "the assistants. Be as objective as possible. After providing your explanation, output "
    'your final verdict by strictly following this format: "[[A]]" if assistant A is better, '
    '"[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
_TEMPLATE_REF = (
    "[User Question]\n{question}\n\n"
    "[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)

_VERDICTS = {"[[A]]": 1, "[[B]]": 2, "[[C]]": 0}


class MTBenchFormat(JudgeFormat):
    """MT-Bench's pairwise judge prompt ("LLM-as-a-judge", Zheng et al. 2023) and verdict.

    Source: lm-sys/FastChat (Apache-2.0) at commit
    ``0e6d3e4beaab66f4d3f93db72541a4abab8af28d``: the prompts are ``pair-v2`` and
    ``pair-math-v1`` of ``fastchat/llm_judge/data/judge_prompts.jsonl``; the reading is
    ``run_judge_pair`` in ``fastchat/llm_judge/common.py``.

    Prompt: chat messages, the ``system_prompt`` as the system message and the
    ``prompt_template`` filled with the question and the two answers (A = shown first) as the
    user message, as ``run_judge_pair`` sends them to OpenAI models. MT-Bench questions have no
    separate input: a request's ``input`` is appended to the instruction after a blank line.

    Reference: when the request has a ``reference``, the prompt is ``pair-math-v1`` (the
    variant MT-Bench uses for its math, reasoning and coding questions), with the reference in
    its "[The Start of Reference Answer]" block; without one it is ``pair-v2``.

    Verdict: ``[[A]]`` (the response shown first), ``[[B]]`` (shown second) or ``[[C]]`` (a
    tie) anywhere in the text, after an explanation; no strengths. ``run_judge_pair`` tests
    ``"[[A]]" in judgment``, then ``[[B]]``, then ``[[C]]``, and anything else is ``"error"``.
    Same substring test here, with one change: a text holding two different labels (say
    ``[[A]]`` then ``[[B]]``) is invalid, where FastChat's if/elif order would always pick A,
    a bias for the response shown first. A label repeated is read once. ``reason`` is the text
    before the first label.

    Likelihood labels: ``answer_prefix`` ``"[["`` then ``A`` / ``B`` / ``C``, the label right
    after the prompt. That fits judges trained to answer with the label alone
    (Skywork-Critic); a judge that writes its explanation first (GPT-4 on ``pair-v2``,
    CompassJudger-2) cannot be scored this way, its verdict has to be generated and parsed.

    Example:
        >>> from optuna_pandalm.judges import JudgeRequest
        >>> form = MTBenchFormat()
        >>> [m["role"] for m in form.messages(JudgeRequest("Add 2 and 3.", "5", "6"))]
        ['system', 'user']
        >>> verdict = form.parse("A is right, B is not.\\n\\nFinal Verdict: [[A]]")
        >>> verdict.winner, verdict.reason
        (1, 'A is right, B is not.\\n\\nFinal Verdict:')
        >>> form.parse("[[A]] or [[B]]?").winner is None, form.answer_prefix + form.labels[0]
        (True, '[[C')
    """

    name = "mtbench"
    chat = True
    ties = True
    strengths = False
    takes_reference = True
    answer_prefix = "[["
    labels: ClassVar[Mapping[int, str]] = MappingProxyType({1: "A", 2: "B", 0: "C"})

    def messages(self, request: JudgeRequest) -> list[Message]:
        question = question_of(request)
        if request.reference is None:
            system = _SYSTEM
            user = _TEMPLATE.format(
                question=question, answer_a=request.response_1, answer_b=request.response_2
            )
        else:
            system = _SYSTEM_REF
            user = _TEMPLATE_REF.format(
                question=question,
                ref_answer_1=request.reference,
                answer_a=request.response_1,
                answer_b=request.response_2,
            )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def parse(self, text: str) -> Verdict:
        if not isinstance(text, str):
            return Verdict(winner=None, raw=repr(text))
        found = {label: text.find(label) for label in _VERDICTS if label in text}
        if len(found) != 1:
            return Verdict(winner=None, raw=text)
        ((label, index),) = found.items()
        return Verdict(winner=_VERDICTS[label], reason=text[:index].strip(), raw=text)
