"""Which pair and prompt a person reviews next: the contenders first.

A vote is worth most where it can change who leads. The contenders are the players with the
highest P(best); a pair of them is worth ``(P_best(a) + P_best(b)) * q * (1 - q)`` with ``q``
the fitted chance that ``a`` beats ``b`` on a prompt (the variance of one game's outcome,
largest when the fit cannot tell them apart), divided by ``1 + votes`` people already gave
on the pair, so votes spread over the contested pairs. Within the pair, the prompts nobody
voted on come first, then those with fewest votes; a prompt this person already voted on or
skipped, or on which both answers are the same text, is never offered.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Collection

from optuna_pandalm.arena import Arena, Player

__all__ = ["Task", "next_task"]


@dataclasses.dataclass(frozen=True)
class Task:
    """One review: a prompt and two players' answers, ``first`` shown as answer A."""

    prompt_position: int
    first: Player
    second: Player
    worth: float

    @property
    def key(self) -> tuple[int, int, int]:
        """(low player id, high player id, prompt): the same whichever is shown first."""
        low, high = sorted((self.first.id, self.second.id))
        return low, high, self.prompt_position


def next_task(
    arena: Arena,
    annotator: str,
    *,
    rng: random.Random,
    skipped: Collection[tuple[int, int, int]] = (),
    contenders: int = 4,
) -> Task | None:
    """The most useful review for ``annotator`` (``human:NAME``), or ``None`` when there is
    nothing left to review among the ``contenders`` players with the highest P(best)."""
    standings = arena.standings()
    if len(standings.players) < 2:
        return None
    p_best = standings.p_best()
    scores = standings.scores
    ranked = sorted(range(len(standings.players)), key=lambda i: (-p_best[i], -scores[i], i))[
        :contenders
    ]
    votes: dict[tuple[int, int, int], list[str]] = {}
    for vote in arena.human_votes():
        low, high = sorted((vote.first_player_id, vote.second_player_id))
        votes.setdefault((low, high, vote.prompt_position), []).append(vote.annotator)
    pairs = []
    for i, j in itertools.combinations(ranked, 2):
        a, b = standings.players[i], standings.players[j]
        q = 1.0 / (1.0 + math.exp(-(scores[i] - scores[j])))
        low, high = sorted((a.id, b.id))
        given = sum(len(v) for k, v in votes.items() if k[:2] == (low, high))
        worth = float(p_best[i] + p_best[j]) * q * (1.0 - q) / (1 + given)
        pairs.append((worth, rng.random(), a, b))
    for worth, _, a, b in sorted(pairs, key=lambda t: (-t[0], t[1])):
        low, high = sorted((a.id, b.id))
        texts_a, texts_b = arena.store.generations(a.id), arena.store.generations(b.id)
        open_prompts = [
            (len(votes.get((low, high, p), [])), rng.random(), p)
            for p in range(min(len(texts_a), len(texts_b)))
            if annotator not in votes.get((low, high, p), [])
            and (low, high, p) not in skipped
            and texts_a[p] != texts_b[p]
        ]
        if open_prompts:
            _, _, position = min(open_prompts)
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            return Task(position, first, second, worth)
    return None
