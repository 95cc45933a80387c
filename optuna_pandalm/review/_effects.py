"""What a vote can change before it is cast, and what it changed after.

One vote can move the leader: a person's vote is a game of a new annotator, and the fit
weighs people against the judge. So the page says, before the choice, what each choice
would do (the standings refitted with that vote added, nothing stored:
:meth:`~optuna_pandalm.Arena.standings_with_vote`), told blind, as "A" and "B" (which
checkpoint is which stays hidden until the vote); and after it, what it did, by name: the
two players' scores before and after, and the leader before and after.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena, LeaderboardRow, Player, Standings
    from optuna_pandalm.review._tasks import Task

__all__ = ["CHOICES", "Stake", "VoteEffect", "stakes", "vote_effect"]

CHOICES = (("first", "A is better"), ("tie", "Tie"), ("second", "B is better"))
"""The page's choices that are votes, with their button labels (skip is not a vote)."""


def _leader(standings: Standings) -> LeaderboardRow | None:
    rows = standings.leaderboard(top=1)
    return rows[0] if rows else None


@dataclasses.dataclass(frozen=True)
class Stake:
    """What one choice would change, blind: how far A's and B's scores would move
    (log-odds), and who would lead: ``"stays"`` (the leader now), ``"A"``, ``"B"`` or
    ``"another"`` (a third player)."""

    choice: str
    move_a: float
    move_b: float
    leader: str

    def sentence(self) -> str:
        """In words, for the page.

        Example:
            >>> Stake("first", 0.41, -0.38, "A").sentence()
            'A is better: A moves +0.41, B moves -0.38; A would lead'
        """
        label = dict(CHOICES)[self.choice]
        who = {"stays": "the leader stays", "another": "another player would lead"}
        lead = who.get(self.leader, f"{self.leader} would lead")
        return f"{label}: A moves {self.move_a:+.2f}, B moves {self.move_b:+.2f}; {lead}"


def stakes(arena: Arena, task: Task, annotator: str) -> list[Stake]:
    """What each of the three votes on ``task`` would change, from refits that store
    nothing (one per choice)."""
    now = arena.standings()
    leader = _leader(now)
    found = []
    for choice, _ in CHOICES:
        then = arena.standings_with_vote(
            task.prompt_position, task.first, task.second, choice, annotator
        )
        top = _leader(then)
        if top is None or leader is None or top.player_id == leader.player_id:
            who = "stays"
        else:
            names = {task.first.id: "A", task.second.id: "B"}
            who = names.get(top.player_id, "another")
        found.append(
            Stake(
                choice,
                then.score(task.first) - now.score(task.first),
                then.score(task.second) - now.score(task.second),
                who,
            )
        )
    return found


@dataclasses.dataclass(frozen=True)
class VoteEffect:
    """What a cast vote did, by name: ``choice`` on ``first`` (shown as A) against
    ``second`` (B); their scores ``before`` and ``after``; the leader (label, score,
    P(best)) before and after."""

    choice: str
    first: str
    second: str
    before: tuple[float, float]
    after: tuple[float, float]
    leader_before: tuple[str, float, float] | None
    leader_after: tuple[str, float, float] | None

    def sentences(self) -> list[str]:
        """In words, for the page.

        Example:
            >>> effect = VoteEffect("first", "trial 2 step 1", "trial 1 step 1",
            ...                     (1.2, 1.5), (1.6, 1.1),
            ...                     ("trial 1 step 1", 1.5, 0.55), ("trial 2 step 1", 1.6, 0.6))
            >>> print(*effect.sentences(), sep="\\n")
            Your last vote: A is better (A was trial 2 step 1, B was trial 1 step 1).
            trial 2 step 1: +1.200 -> +1.600; trial 1 step 1: +1.500 -> +1.100.
            Leader before: trial 1 step 1 (+1.500, P(best) 0.55); after: trial 2 step 1 (+1.600, P(best) 0.60): your vote changed the leader.
        """  # noqa: E501
        label = dict(CHOICES)[self.choice]

        def lead(row: tuple[str, float, float] | None) -> str:
            return "none" if row is None else f"{row[0]} ({row[1]:+.3f}, P(best) {row[2]:.2f})"

        before, after = self.leader_before, self.leader_after
        changed = (before and before[0]) != (after and after[0])
        return [
            f"Your last vote: {label} (A was {self.first}, B was {self.second}).",
            f"{self.first}: {self.before[0]:+.3f} -> {self.after[0]:+.3f}; "
            f"{self.second}: {self.before[1]:+.3f} -> {self.after[1]:+.3f}.",
            f"Leader before: {lead(before)}; after: {lead(after)}"
            + (": your vote changed the leader." if changed else "."),
        ]


def vote_effect(
    choice: str, first: Player, second: Player, before: Standings, after: Standings
) -> VoteEffect:
    """What the vote ``choice`` on ``first`` (A) and ``second`` (B) did, from the standings
    before and after it was stored."""

    def lead(standings: Standings) -> tuple[str, float, float] | None:
        row = _leader(standings)
        return None if row is None else (row.label, row.score, row.p_best)

    return VoteEffect(
        choice,
        first.label,
        second.label,
        (before.score(first), before.score(second)),
        (after.score(first), after.score(second)),
        lead(before),
        lead(after),
    )
