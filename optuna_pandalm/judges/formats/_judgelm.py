"""JudgeLM's format (2023): a base-model prompt, two scores ``"s1 s2"`` on the first line.

Source: ``baaivision/JudgeLM`` (Apache-2.0) at commit
``00c45169de47641f62223f57cc15b608bc3cc69d``: the templates ``conv_judge_pair`` and
``conv_judge_pair_w_reference`` in ``judgelm/llm_judge/common.py``, put together as
``judgelm/llm_judge/gen_model_judgement.py`` does, and that file's ``parse_score`` with
``translate_score_to_win_list`` (``T=0.0``) for the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from optuna_pandalm.judges.base import JudgeRequest, Verdict
from optuna_pandalm.judges.formats._format import JudgeFormat, Message, question_of

__all__ = ["JudgeLMFormat"]

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."

PROMPT = (
    "We would like to request your feedback on the performance of two AI assistants in "
    "response to the user question displayed above.\nPlease rate the helpfulness, relevance, "
    "accuracy, level of details of their responses. Each assistant receives an overall score "
    "on a scale of 1 to 10, where a higher score indicates better overall performance.\n"
    "Please first output a single line containing only two values indicating the scores for "
    "Assistant 1 and 2, respectively. The two scores are separated by a space. In the "
    "subsequent line, please provide a comprehensive explanation of your evaluation, avoiding "
    "any potential bias and ensuring that the order in which the responses were presented "
    "does not affect your judgment."
)

TEMPLATE = (
    "[Question]\n{question}\n\n"
    "[The Start of Assistant 1's Answer]\n{answer_1}\n\n[The End of Assistant 1's Answer]\n\n"
    "[The Start of Assistant 2's Answer]\n{answer_2}\n\n[The End of Assistant 2's Answer]\n\n"
    "[System]\n{prompt}\n\n"
)

TEMPLATE_W_REFERENCE = (
    "[Question]\n{question}\n\n[Reference Answer]\n{reference}\n\n"
    "[The Start of Assistant 1's Answer]\n{answer_1}\n\n[The End of Assistant 1's Answer]\n\n"
    "[The Start of Assistant 2's Answer]\n{answer_2}\n\n[The End of Assistant 2's Answer]\n\n"
    "[System]\n{prompt}\n\n"
)

APPENDIX = "### Response:"


class JudgeLMFormat(JudgeFormat):
    """JudgeLM-7B/13B/33B's prompt and verdict (Zhu et al., 2023, arXiv:2310.17631).

    Source: `baaivision/JudgeLM <https://github.com/baaivision/JudgeLM>`_, Apache-2.0,
    commit ``00c45169de47641f62223f57cc15b608bc3cc69d``: ``judgelm/llm_judge/common.py``
    (templates, ``parse_score``, ``translate_score_to_win_list``) and
    ``judgelm/llm_judge/gen_model_judgement.py`` (how the prompt is put together).

    Prompt: JudgeLM is fine-tuned from Vicuna-v1.3, but neither its training
    (``LazyJudgeSupervisedDataset`` in ``judgelm/train/train.py``) nor its inference uses
    Vicuna's ``USER: ... ASSISTANT:`` conversation: both feed one plain text, ``system +
    "\\n" + template.format(...) + "### Response:"``, and the judgment follows
    ``"### Response:"`` directly. So the format is not chat (``chat = False``) and
    :meth:`text` is that whole text; :meth:`messages` wraps it in one user message. The
    tokenizer's BOS token starts it, as in the project (``input_ids[0][0] = 1``).

    Input: JudgeLM's questions have no separate input field; its data put a seed's input on
    the line after the instruction (e.g. ``"Edit the following sentence ...\\nI wants to
    visit Europe ..."`` in ``judgelm/serve/gradio_web_server_judgelm.py``), so a request's
    ``input``, when there is one, follows the instruction after a ``"\\n"``.

    Reference: ``takes_reference = True``; with ``request.reference`` the prompt is the
    project's ``conv_judge_pair_w_reference`` (a ``[Reference Answer]`` block after the
    question); without one it is the project's no-reference ``conv_judge_pair``, as
    ``gen_model_judgement.py`` picks between them.

    Verdict: as ``parse_score``: the first line, commas read as spaces, split on single
    spaces into exactly two numbers ``s1 s2`` (Assistant 1 = the response shown first).
    Winner 1 if ``s1 > s2``, 2 if ``s2 > s1``, a tie (0) if equal (``T = 0.0``); the lines
    after the first are the ``reason``. Where ``parse_score`` would give ``[-1, -1]`` (which
    the project's win list would count as a tie) the verdict is invalid instead; so are
    non-finite scores (``nan``, ``inf``). Strengths: none (``strengths = False``): the project
    only compares the two scores, and a score gap is no published strength.

    Likelihood labels: none (``labels`` is empty, so likelihood mode is refused). The winner
    is a function of the joint continuation ``"s1 s2"`` over about 100 score pairs, not of one
    label: the first score's token says nothing on its own, and three fixed pairs such as
    ``"10 1"``, ``"1 10"`` and ``"5 5"`` would cover a sliver of the probability mass (a
    tie is any equal pair, ``"8 8"`` as much as ``"5 5"``) and so would not estimate
    ``(tie, 1, 2)``. Use generation with :meth:`parse`.

    Example:
        >>> from optuna_pandalm.judges import JudgeRequest
        >>> form = JudgeLMFormat()
        >>> prompt = form.text(JudgeRequest("Add 2 and 3.", "5", "6"))
        >>> prompt.startswith(SYSTEM + "\\n[Question]\\nAdd 2 and 3.\\n\\n"), prompt[-13:]
        (True, '### Response:')
        >>> verdict = form.parse("9 2\\nAssistant 1 is right; Assistant 2 is wrong.")
        >>> verdict.winner, verdict.reason
        (1, 'Assistant 1 is right; Assistant 2 is wrong.')
        >>> form.parse("7 7\\nBoth fine.").winner, form.parse("Assistant 1 wins").winner
        (0, None)
        >>> dict(form.labels)
        {}
    """

    name = "judgelm"
    chat = False
    ties = True
    strengths = False
    takes_reference = True
    answer_prefix = ""
    # Empty: a two-score verdict has no three continuations to compare (see above).
    labels: ClassVar[Mapping[int, str]] = MappingProxyType({})

    def messages(self, request: JudgeRequest) -> list[Message]:
        return [{"role": "user", "content": self.text(request)}]

    def text(self, request: JudgeRequest) -> str:
        question = question_of(request, separator="\n")
        if request.reference is None:
            body = TEMPLATE.format(
                question=question,
                answer_1=request.response_1,
                answer_2=request.response_2,
                prompt=PROMPT,
            )
        else:
            body = TEMPLATE_W_REFERENCE.format(
                question=question,
                reference=request.reference,
                answer_1=request.response_1,
                answer_2=request.response_2,
                prompt=PROMPT,
            )
        return SYSTEM + "\n" + body + APPENDIX

    def parse(self, text: str) -> Verdict:
        scores = _scores(text)
        if scores is None:
            return Verdict(winner=None, raw=text)
        first, second = scores
        winner = 1 if first > second else 2 if second > first else 0
        reason = text.strip().split("\n", 1)[1].strip() if "\n" in text.strip() else ""
        return Verdict(winner=winner, reason=reason, raw=text)


def _scores(text: str) -> tuple[float, float] | None:
    """The two scores on the first line, as ``parse_score`` reads them, or ``None``.

    The project strips the generated text before storing it (``output.strip()``), so this
    does too; then exactly two fields split on single spaces, each a finite float.
    """
    if not isinstance(text, str):
        return None
    fields = text.strip().split("\n")[0].replace(",", " ").split(" ")
    if len(fields) != 2:
        return None
    try:
        first, second = float(fields[0]), float(fields[1])
    except ValueError:
        return None
    if not (math.isfinite(first) and math.isfinite(second)):
        return None
    return first, second
