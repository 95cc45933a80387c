"""Standings: the Bradley–Terry scores of a study's players at one moment, immutable.

Everything people and other layers read (the incumbent, leaderboards, plots, the report,
the sampler's rescored trials, ``check``) comes from a :class:`Standings`, a pure function
of the games and players stored up to ``as_of``: every process that reads the same stored
games gets the same scores and the same P(best).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from optuna_pandalm.arena._players import Player
from optuna_pandalm.bradley_terry import BradleyTerryResult, fit_bradley_terry
from optuna_pandalm.store import GameCounts

__all__ = ["P_BEST_SAMPLES", "LeaderboardRow", "Standings", "fit_standings", "tally"]

# P(best) is drawn with these, whoever asks: a seed that depended on the caller (the
# arena's seed, unknown to a read-only reader) made the same games give different P(best).
P_BEST_SAMPLES = 4000
_P_BEST_SEED = 0


@dataclasses.dataclass(frozen=True)
class LeaderboardRow:
    """One player's line: score and 95% interval (log-odds against the anchor), P(best)
    (0..1) and its record over all its games."""

    player_id: int
    trial: int | None
    step: int | None
    name: str | None
    score: float
    ci_low: float
    ci_high: float
    p_best: float
    games: int
    wins: int
    ties: int
    losses: int
    human_votes: int = 0  # how many of the games are people's votes

    @property
    def label(self) -> str:
        return Player(self.player_id, self.trial, self.step, self.name).label

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tally(
    first: np.ndarray, second: np.ndarray, outcome: np.ndarray, count: np.ndarray, n: int
) -> np.ndarray:
    """Wins, ties and losses of each of ``n`` players, ``(n, 3)``, from game counts with
    player indices ``first`` / ``second`` and outcomes 0 tie, 1 first won, 2 second won.

    Example:
        >>> tally(np.array([0, 1]), np.array([1, 0]), np.array([1, 0]), np.ones(2), 2)
        array([[1., 1., 0.],
               [0., 1., 1.]])
    """
    records = np.zeros((n, 3))
    for who, won in ((first, 1), (second, 2)):
        np.add.at(records[:, 0], who, count * (outcome == won))
        np.add.at(records[:, 1], who, count * (outcome == 0))
        np.add.at(records[:, 2], who, count * (outcome == 3 - won))
    return records


@dataclasses.dataclass(frozen=True, eq=False)
class Standings:
    """Scores of every player from the games stored up to ``as_of``.

    Attributes:
        players: Every player, in creation order; row ``i`` of every array is ``players[i]``.
        result: The Bradley–Terry fit (``result.scores`` log-odds against the anchor).
        records: ``(players, 3)`` wins, ties, losses over all games.
        counts: The game counts fitted on, with the store's player ids.
        as_of: ``(largest game id, largest player id)`` fitted on.
        anchor: The player whose score is 0 (the baseline, else the first player).
        annotators: Annotator names by the fit's annotator code (the reference first);
            empty when the counts do not say.
        human_votes: People's votes (games of ``human:NAME`` annotators) per player.
    """

    players: tuple[Player, ...]
    result: BradleyTerryResult
    records: np.ndarray
    counts: GameCounts
    as_of: tuple[int, int]
    anchor: Player | None
    annotators: tuple[str, ...] = ()
    human_votes: np.ndarray | None = None

    @functools.cached_property
    def index(self) -> dict[int, int]:
        """Row of each player id."""
        return {p.id: i for i, p in enumerate(self.players)}

    @property
    def scores(self) -> np.ndarray:
        return self.result.scores

    def score(self, player: Player) -> float:
        return float(self.result.scores[self.index[player.id]])

    def interval(self, player: Player, level: float = 0.95) -> tuple[float, float]:
        return self.result.interval_of(self.index[player.id], level)

    def record(self, player: Player) -> tuple[int, int, int]:
        wins, ties, losses = self.records[self.index[player.id]]
        return int(wins), int(ties), int(losses)

    @functools.cached_property
    def _p_best(self) -> np.ndarray:
        return self.result.p_best(n_samples=P_BEST_SAMPLES, seed=_P_BEST_SEED)

    def p_best(self) -> np.ndarray:
        """P(best) of every player (0..1), drawn once per standings with a fixed seed."""
        return self._p_best

    def incumbent(self, *, exclude: Player | None = None) -> Player | None:
        """The player with the highest score (ties: the oldest), or ``None``.

        Players without games (their score is only the prior's) are passed over while any
        player has games: a checkpoint another worker has just added is not yet a champion.
        """
        candidates = [
            (float(self.result.scores[i]), -p.id, i)
            for i, p in enumerate(self.players)
            if exclude is None or p.id != exclude.id
        ]
        played = [c for c in candidates if self.records[c[2]].sum() > 0]
        pool = played or candidates
        return self.players[max(pool)[2]] if pool else None

    def best_of(self, players: Sequence[Player]) -> Player:
        """The highest-scoring of ``players`` (ties: the earliest)."""
        return max(players, key=lambda p: (self.score(p), -p.id))

    def leaderboard(self, *, top: int | None = None) -> list[LeaderboardRow]:
        """Players by score with 95% intervals, P(best) and records; the ``top`` rows only
        when given (only their intervals are computed: cheap with thousands of players)."""
        if not self.players:
            return []
        scores = self.result.scores
        order = sorted(range(len(self.players)), key=lambda i: (-scores[i], self.players[i].id))
        if top is not None:
            order = order[: max(top, 0)]
        low, high = self.result.interval(0.95, players=order if top is not None else None)
        if top is None:
            low, high = low[order], high[order]
        p_best = self.p_best()
        rows = []
        for k, i in enumerate(order):
            player = self.players[i]
            wins, ties, losses = self.record(player)
            votes = 0 if self.human_votes is None else int(self.human_votes[i])
            rows.append(
                LeaderboardRow(
                    player_id=player.id,
                    trial=player.trial,
                    step=player.step,
                    name=player.name,
                    score=float(scores[i]),
                    ci_low=float(low[k]),
                    ci_high=float(high[k]),
                    p_best=float(p_best[i]),
                    games=wins + ties + losses,
                    wins=wins,
                    ties=ties,
                    losses=losses,
                    human_votes=votes,
                )
            )
        return rows

    def pair_records(self, players: Sequence[Player]) -> np.ndarray:
        """``(k, k, 3)``: wins, ties, losses of row player against column player."""
        where = {p.id: k for k, p in enumerate(players)}
        c = self.counts
        keep = np.array(
            [int(a) in where and int(b) in where for a, b in zip(c.first, c.second, strict=True)],
            dtype=bool,
        )
        records = np.zeros((len(players), len(players), 3))
        for a, b, outcome, n in zip(
            c.first[keep], c.second[keep], c.outcome[keep], c.count[keep], strict=True
        ):
            i, j = where[int(a)], where[int(b)]
            if outcome == 0:
                records[i, j, 1] += n
                records[j, i, 1] += n
            else:
                winner, loser = (i, j) if outcome == 1 else (j, i)
                records[winner, loser, 0] += n
                records[loser, winner, 2] += n
        return records

    def snapshot(self) -> dict[str, Any]:
        """The scores with the data they were fitted on (published to the study; ``check``
        refits from scratch on the same ids and compares)."""
        return {
            "max_game_id": self.as_of[0],
            "max_player_id": self.as_of[1],
            "players": len(self.players),
            "scores": {p.key: float(self.result.scores[i]) for i, p in enumerate(self.players)},
        }


def fit_standings(
    players: Sequence[Player],
    counts: GameCounts,
    *,
    as_of: tuple[int, int],
    baseline: Player | None,
    fit_position: bool,
    robust_errors: bool = False,
    init: Standings | None = None,
) -> Standings:
    """Fit Bradley–Terry on ``counts`` (store ids) for ``players``; ``init`` warm-starts the
    optimiser from earlier standings (the optimum is the same, reached sooner)."""
    ids = np.array([p.id for p in players], dtype=np.int64)
    size = 1 + max(ids.max(initial=0), counts.first.max(initial=0), counts.second.max(initial=0))
    position = np.full(int(size), -1, dtype=np.int64)  # store id -> row, -1 unknown
    position[ids] = np.arange(len(players))
    first, second = position[counts.first], position[counts.second]
    if np.any(first < 0) or np.any(second < 0):
        raise RuntimeError("games of players that are not listed")
    anchor_player = baseline if baseline is not None else (players[0] if players else None)
    anchor = 0 if anchor_player is None else int(position[anchor_player.id])
    previous = init.result if init is not None else None
    result = fit_bradley_terry(
        first,
        second,
        counts.outcome,
        weights=counts.count,
        clusters=counts.prompt_position if robust_errors else None,
        n_players=len(players),
        anchor=anchor,
        fit_position=fit_position,
        init=previous if previous is not None and previous.n_players <= len(players) else None,
    )
    records = tally(first, second, counts.outcome, counts.count, len(players))
    votes = None
    if counts.human is not None:
        votes = np.bincount(first, counts.human, minlength=len(players))
        votes += np.bincount(second, counts.human, minlength=len(players))
    return Standings(tuple(players), result, records, counts, as_of, anchor_player, (), votes)
