"""What a judge format is: how a judge model is asked, and how its answer is read.

A format knows nothing of models: it turns a :class:`JudgeRequest` into the prompt its
project publishes (chat messages for chat models, one text for base models), reads a verdict
out of raw text, and names the continuations that carry the label for likelihood mode.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar, TypedDict

from optuna_pandalm.judges.base import JudgeRequest, Verdict

__all__ = ["JudgeFormat", "Message", "question_of"]


class Message(TypedDict):
    """One chat message, as ``tokenizer.apply_chat_template`` and OpenAI-compatible servers
    take it."""

    role: str
    content: str


class JudgeFormat(abc.ABC):
    """A judge's prompt and verdict format.

    Class attributes say what the format can express:

    * ``name``: its key in :data:`~optuna_pandalm.judges.FORMATS`.
    * ``chat``: the prompt is chat messages, to be laid out by the judge's chat template;
      otherwise :meth:`text` is the whole prompt (the model continues it).
    * ``ties``: the verdict can be a tie. ``strengths``: it can say how much better
      (:attr:`Verdict.strength`).
    * ``takes_reference``: the prompt carries the prompt set's reference answer when the
      request has one.
    * ``answer_prefix`` and ``labels``: likelihood mode scores, after the prompt and
      ``answer_prefix``, each continuation in ``labels`` (winner code -> text: 0 tie, 1 and 2
      the response shown first or second) and takes the most likely one.

    :meth:`parse` never raises: text it cannot read is an invalid verdict (``winner=None``)
    with the text kept in ``raw``.
    """

    name: ClassVar[str]
    chat: ClassVar[bool]
    ties: ClassVar[bool]
    strengths: ClassVar[bool] = False
    takes_reference: ClassVar[bool] = False
    answer_prefix: ClassVar[str] = ""
    labels: ClassVar[Mapping[int, str]]

    @abc.abstractmethod
    def messages(self, request: JudgeRequest) -> list[Message]:
        """The prompt as chat messages (a base-model format gives one user message holding
        :meth:`text`)."""

    def text(self, request: JudgeRequest) -> str:
        """The prompt as one text, for formats that are not chat (``chat`` is false)."""
        return "\n\n".join(message["content"] for message in self.messages(request))

    @abc.abstractmethod
    def parse(self, text: str) -> Verdict:
        """The verdict in ``text`` (winner in the shown order), or an invalid verdict."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def question_of(request: JudgeRequest, *, separator: str = "\n\n") -> str:
    """The instruction with the request's input after it, for formats whose prompt has one
    question and no input field (each format says which separator its project's data uses).

    Example:
        >>> question_of(JudgeRequest("Translate.", "a", "b", input="Bonjour"))
        'Translate.\\n\\nBonjour'
        >>> question_of(JudgeRequest("Add 2 and 3.", "5", "6"), separator="\\n")
        'Add 2 and 3.'
    """
    if not request.input:
        return request.instruction
    return f"{request.instruction}{separator}{request.input}"
