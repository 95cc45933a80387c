"""People's votes: a person's verdict on one prompt and two checkpoints, stored as a game.

A vote is a verdict of annotator ``human:NAME`` in the same tables as the judge's (a
verdict row and a game row), so every fit counts it as a game. It is never a judge's cache
hit: judges look verdicts up under their own name, and no judge may be named ``human:...``.
Each person votes once per pair of players and prompt (a second vote there is ignored);
the judge's game on the same pair and prompt is kept beside it, which is what
:meth:`Votes.judge_agreement` compares.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from optuna_pandalm.arena._ledger import as_player
from optuna_pandalm.arena._players import Player
from optuna_pandalm.outcomes import FIRST_WON, SECOND_WON, TIE, check_outcome
from optuna_pandalm.store import (
    HUMAN_PREFIX,
    GameCounts,
    GameRecord,
    StoredVerdict,
    VerdictKey,
    text_hash,
)

if TYPE_CHECKING:
    from optuna_pandalm.arena._standings import Standings
    from optuna_pandalm.prompts import Prompt
    from optuna_pandalm.store import ArenaStore, VoteRecord

__all__ = ["OUTCOMES", "JudgeAgreement", "Votes", "annotator_name"]

OUTCOMES = {"first": FIRST_WON, "tie": TIE, "second": SECOND_WON}
"""A vote's outcome by name, as stored (1 first-shown won, 0 tie, 2 second-shown won)."""

_NAME_LENGTH = 64
Who = Player | tuple[int, int] | str
"""A player as a vote names it: a :class:`Player`, ``(trial, step)`` or a baseline's name."""


def annotator_name(name: str) -> str:
    """The stored annotator of a person: ``human:NAME``, name stripped and checked.

    Example:
        >>> annotator_name(" ada ")
        'human:ada'
        >>> annotator_name("human:ada")
        'human:ada'
    """
    if not isinstance(name, str):
        raise TypeError(f"annotator name must be a string, got {type(name).__name__}")
    bare = name.removeprefix(HUMAN_PREFIX).strip()
    if not bare or len(bare) > _NAME_LENGTH or not bare.isprintable():
        raise ValueError(f"annotator name {name!r}: give 1 to {_NAME_LENGTH} printable characters")
    return HUMAN_PREFIX + bare


def _outcome(outcome: Any) -> int:
    if isinstance(outcome, str) and outcome in OUTCOMES:
        return OUTCOMES[outcome]
    try:
        return check_outcome(outcome)
    except ValueError:
        raise ValueError(
            f"vote outcome must be 'first', 'tie' or 'second', got {outcome!r}"
        ) from None


@dataclasses.dataclass(frozen=True)
class JudgeAgreement:
    """How often the judge agreed with people on the pairs and prompts they reviewed.

    ``votes``: people's votes with a judge's game on the same pair and prompt; ``agree``:
    those where the judge gave the same outcome (tie, or the same winner); ``rate`` =
    agree / votes (NaN without votes); ``by_annotator``: ``(votes, agree)`` per person.
    """

    votes: int
    agree: int
    by_annotator: dict[str, tuple[int, int]]

    @property
    def rate(self) -> float:
        return self.agree / self.votes if self.votes else float("nan")

    def summary(self) -> str:
        """One line for people.

        Example:
            >>> JudgeAgreement(4, 3, {"human:ada": (4, 3)}).summary()
            'the judge agrees with people on 3 of 4 reviewed pairs (75%)'
        """
        if not self.votes:
            return "no pair reviewed by people and the judge yet"
        return (
            f"the judge agrees with people on {self.agree} of {self.votes} reviewed pairs "
            f"({self.rate:.0%})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "votes": self.votes,
            "agree": self.agree,
            "rate": None if not self.votes else self.rate,
            "by_annotator": {k: list(v) for k, v in self.by_annotator.items()},
        }


def _wide(column: np.ndarray) -> Any:
    """The dtype a column keeps when a value is added: text as objects, so that a longer
    name is not cut to the column's width."""
    return object if column.dtype.kind in "US" else column.dtype


class Votes:
    """The arena's methods for people's votes (mixed into :class:`Arena`)."""

    store: ArenaStore
    arena_id: int
    prompts: list[Prompt]

    baseline: Player | None
    position: str
    robust_errors: bool
    length_control: bool

    if TYPE_CHECKING:

        def players(self) -> list[Player]: ...  # provided by Arena

        def standings(self) -> Standings: ...  # provided by Arena

    def _player(self, who: Player | tuple[int, int] | str) -> Player:
        """A player of this arena from a :class:`Player`, ``(trial, step)`` or a baseline's
        name."""
        for player in self.players():
            if (
                (isinstance(who, Player) and who.id == player.id)
                or (isinstance(who, tuple) and (player.trial, player.step) == tuple(who))
                or (isinstance(who, str) and player.name == who)
            ):
                return player
        raise ValueError(f"no player {who!r} in this study (a Player, (trial, step) or a name)")

    def _position(self, prompt: int | str) -> int:
        integral = isinstance(prompt, numbers.Integral) and not isinstance(prompt, bool)
        if integral and 0 <= int(prompt) < len(self.prompts):
            return int(prompt)
        for position, known in enumerate(self.prompts):
            if isinstance(prompt, str) and known.id == prompt:
                return position
        raise ValueError(
            f"no prompt {prompt!r}: give a position 0..{len(self.prompts) - 1} or a prompt id"
        )

    def record_vote(
        self,
        prompt: int | str,
        first: Player | tuple[int, int] | str,
        second: Player | tuple[int, int] | str,
        outcome: str | int,
        annotator: str,
        *,
        comment: str = "",
    ) -> bool:
        """Store a person's vote on one prompt and two players' answers to it.

        Args:
            prompt: The prompt's position in the prompt set, or its id.
            first, second: The players in the order the person saw them: a
                :class:`Player`, ``(trial, step)``, or a baseline's name.
            outcome: ``"first"``, ``"tie"`` or ``"second"`` (or 1, 0, 2).
            annotator: The person's name; stored as annotator ``human:NAME``.
            comment: Kept as the verdict's reason.

        Returns:
            ``True`` when stored; ``False`` when this person already voted on these two
            players and this prompt (the first vote stays). A person who already judged
            the very same two texts on the same prompt in the same order (in any study)
            keeps that first verdict.

        Raises:
            ValueError: an unknown player or prompt, the same player twice, an outcome or
                name that is not one.

        Example:
            >>> from optuna_pandalm import Arena
            >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
            >>> from optuna_pandalm.testing import simulated_response as answer
            >>> arena = Arena("sqlite://", "votes", SimulatedJudge(), simulated_prompts(4))
            >>> _ = arena.evaluate(0, 1, [answer(0.0)] * 4)
            >>> _ = arena.evaluate(1, 1, [answer(1.0)] * 4)
            >>> arena.record_vote(2, (0, 1), (1, 1), "second", "ada")
            True
            >>> arena.leaderboard()[0].human_votes
            1
        """
        name = annotator_name(annotator)
        won = _outcome(outcome)
        a, b = self._player(first), self._player(second)
        if a.id == b.id:
            raise ValueError(f"a vote needs two players, got {a.label} twice")
        position = self._position(prompt)
        text_a, text_b = (self.store.generations(p.id)[position] for p in (a, b))
        key = VerdictKey(self.prompts[position].hash, text_hash(text_a), text_hash(text_b))
        vote = StoredVerdict(winner=won, reason=str(comment), raw=f"vote of {name}")
        stored = self.store.save_verdicts(name, [(key, vote)])[key]
        assert stored.id is not None and stored.winner is not None
        match = self.store.start_match(self.arena_id, a.id, b.id, kind="human")
        game = GameRecord(position, a.id, b.id, stored.id, stored.winner, annotator=name)
        return self.store.save_games(self.arena_id, match, [game]) == 1

    def standings_with_vote(
        self, prompt: int | str, first: Who, second: Who, outcome: str | int, annotator: str
    ) -> Standings:
        """The standings as they would be after this vote (arguments as for
        :meth:`record_vote`), refitted on the stored games plus this one; nothing is stored.
        What the review page shows before a vote: what each choice would change.

        Example:
            >>> from optuna_pandalm import Arena, testing
            >>> judge, prompts = testing.SimulatedJudge(), testing.simulated_prompts(4)
            >>> arena = Arena("sqlite://", "what-if", judge, prompts)
            >>> for trial, quality in ((0, 0.0), (1, 0.2)):
            ...     _ = arena.evaluate(trial, 1, [testing.simulated_response(quality)] * 4)
            >>> better = arena.players()[1]
            >>> then = arena.standings_with_vote(2, (0, 1), (1, 1), "second", "ada")
            >>> then.score(better) > arena.standings().score(better), len(arena.human_votes())
            (True, 0)
        """
        from optuna_pandalm.arena._standings import fit_standings

        name = annotator_name(annotator)
        won = _outcome(outcome)
        a, b = self._player(first), self._player(second)
        position = self._position(prompt)
        text_a, text_b = (self.store.generations(p.id)[position] for p in (a, b))
        now = self.standings()
        stored = now.counts
        extra: dict[str, Any] = {
            "first": a.id,
            "second": b.id,
            "outcome": won,
            "count": 1,
            "prompt_position": position,
            "first_length": len(text_a),
            "second_length": len(text_b),
            "annotator": name,
            "identical": text_a == text_b,
        }
        columns: dict[str, Any] = {}
        for field in dataclasses.fields(GameCounts):
            column = getattr(stored, field.name)  # an optional column stays absent
            columns[field.name] = (
                None
                if column is None
                else np.concatenate([column.astype(_wide(column)), [extra[field.name]]])
            )
        return fit_standings(
            now.players,
            GameCounts(**columns),
            as_of=now.as_of,
            baseline=self.baseline,
            fit_position=self.position == "random",
            robust_errors=self.robust_errors,
            length_control=self.length_control,
            init=now,
        )

    def human_votes(self) -> list[VoteRecord]:
        """Every person's vote in the study, oldest first, each with the judge's outcome on
        the same pair and prompt when the judge played it (see
        :class:`~optuna_pandalm.store.VoteRecord`)."""
        return self.store.votes(self.arena_id)

    def judge_agreement(self, votes: Sequence[VoteRecord] | None = None) -> JudgeAgreement:
        """How often the judge agreed with people where both judged (see
        :class:`JudgeAgreement`)."""
        by: dict[str, tuple[int, int]] = {}
        for vote in self.human_votes() if votes is None else votes:
            if vote.judge_outcome is None:
                continue
            n, k = by.get(vote.annotator, (0, 0))
            by[vote.annotator] = (n + 1, k + (vote.judge_outcome == vote.outcome))
        return JudgeAgreement(
            votes=sum(n for n, _ in by.values()),
            agree=sum(k for _, k in by.values()),
            by_annotator=by,
        )

    def player_by_id(self, player_id: int) -> Player:
        """The player with this store id."""
        records = self.store.players(self.arena_id, ids=[player_id])
        if not records:
            raise ValueError(f"no player {player_id} in this study")
        return as_player(records[0])
