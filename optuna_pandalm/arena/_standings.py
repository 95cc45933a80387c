"""Standings: the Bradley–Terry scores of a study's players at one moment, immutable.

Everything people and other layers read (the incumbent, leaderboards, plots, the report,
the sampler's rescored trials, ``check``) comes from a :class:`Standings`, a pure function
of the games and players stored up to ``as_of``: every process that reads the same stored
games gets the same scores and the same P(best).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from optuna_pandalm.arena._meaning import score_meaning
from optuna_pandalm.arena._players import Player
from optuna_pandalm.outcomes import Side, side, sides
from optuna_pandalm.statistics.bradley_terry import (
    BradleyTerryResult,
    fit_bradley_terry,
    refit_with_players,
)
from optuna_pandalm.store import HUMAN_PREFIX, GameCounts

__all__ = [
    "P_BEST_SAMPLES",
    "Effect",
    "LeaderboardRow",
    "Standings",
    "fit_standings",
    "length_feature",
    "rank_key",
    "tally",
    "with_new_players",
]

# P(best) is drawn with these, whoever asks: a seed that depended on the caller (the
# arena's seed, unknown to a read-only reader) made the same games give different P(best).
P_BEST_SAMPLES = 4000
_P_BEST_SEED = 0
# A player's record is (wins, ties, losses): the column of each side.
_RECORD_COLUMN = {Side.WIN: 0, Side.TIE: 1, Side.LOSS: 2}
# The length feature is rounded to this step so that games aggregate into few rows.
_LENGTH_STEP = 0.02
# Scores are ranked at this many decimals: a warm-started fit and a fresh one agree to far
# more, but not to the last bit, and players with the same record must not swap places.
_RANK_DECIMALS = 6


def rank_key(score: float, player_id: int) -> tuple[float, int]:
    """The one order of players everywhere (leaderboards, the report, the dashboard, the
    incumbent): higher score first, scores equal to 6 decimals by player id (the older
    first). Sort by it ascending.

    Example:
        >>> sorted([(1.0 + 1e-12, 7), (1.0, 3), (2.0, 9)], key=lambda s: rank_key(*s))
        [(2.0, 9), (1.0, 3), (1.000000000001, 7)]
    """
    return (-round(float(score), _RANK_DECIMALS) + 0.0, int(player_id))


def length_feature(first_length: np.ndarray, second_length: np.ndarray) -> np.ndarray:
    """Arena-Hard's style-control length covariate ``(a - b) / (a + b)`` of the first- and
    second-shown responses' lengths (characters), in -1..1, rounded to 0.02; 0 when both
    are empty.

    Example:
        >>> length_feature(np.array([300, 100, 0]), np.array([100, 100, 0])).tolist()
        [0.5, 0.0, 0.0]
    """
    a = np.asarray(first_length, dtype=np.float64)
    b = np.asarray(second_length, dtype=np.float64)
    total = a + b
    ratio = np.divide(a - b, total, out=np.zeros_like(total), where=total > 0)
    return np.round(ratio / _LENGTH_STEP) * _LENGTH_STEP + 0.0  # +0.0: no negative zero


@dataclasses.dataclass(frozen=True)
class Effect:
    """A fitted effect with its 95% interval (``low``, ``high``), e.g. the length effect in
    log-odds per unit of the length feature, or an annotator's reliability (a ratio)."""

    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LeaderboardRow:
    """One player's line: score and 95% interval (log-odds against the anchor), P(best)
    (0..1) and its record over the games fitted on; ``identical`` counts its games on
    prompts where both answers were the same text, ties kept out of the fit."""

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
    identical: int = 0  # identical-answer ties, not in games nor in the fit

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
    for who, shown_first in ((first, True), (second, False)):
        seen = sides(outcome, shown_first=shown_first)
        for result, column in _RECORD_COLUMN.items():
            np.add.at(records[:, column], who, count * (seen == result))
    return records


@dataclasses.dataclass(frozen=True, eq=False)
class Standings:
    """Scores of every player from the games stored up to ``as_of``.

    Attributes:
        players: Every player, in creation order; row ``i`` of every array is ``players[i]``.
        result: The Bradley–Terry fit (``result.scores`` log-odds against the anchor).
        records: ``(players, 3)`` wins, ties, losses over the games fitted on.
        counts: Every stored game's counts, with the store's player ids; those with
            ``identical`` responses are not fitted on.
        as_of: ``(largest game id, largest player id)`` fitted on.
        anchor: The player whose score is 0 (the baseline, else the first player).
        annotators: Annotator names by the fit's annotator code (the reference first);
            empty when the counts do not say.
        human_votes: People's votes (games of ``human:NAME`` annotators) per player.
        identical: Games per player on which both answers were the same text: certain
            ties, counted here and kept out of the fit (docs/statistics.md).
    """

    players: tuple[Player, ...]
    result: BradleyTerryResult
    records: np.ndarray
    counts: GameCounts
    as_of: tuple[int, int]
    anchor: Player | None
    annotators: tuple[str, ...] = ()
    human_votes: np.ndarray | None = None
    identical: np.ndarray | None = None

    def length_effect(self) -> Effect | None:
        """The length effect (log-odds per unit of :func:`length_feature`) with its 95%
        interval, or ``None`` when the fit had no length term."""
        estimate = self.result.length_effect
        if estimate is None:
            return None
        half = 1.96 * self.result.effect_stderr["length_effect"]
        return Effect(float(estimate), float(estimate - half), float(estimate + half))

    def model_effects(self) -> dict[str, Any]:
        """What the fit learnt besides the scores, for reports: ``length_effect`` (an
        :meth:`Effect` as a dict, or ``None``) and ``reliability`` (by annotator name)."""
        length = self.length_effect()
        return {
            "length_effect": None if length is None else length.as_dict(),
            "reliability": {name: e.as_dict() for name, e in self.reliability().items()},
        }

    def reliability(self) -> dict[str, Effect]:
        """Each annotator's reliability ``gamma`` with its 95% interval, relative to the
        reference annotator (the first of :attr:`annotators`, 1 by definition)."""
        gamma = self.result.reliability
        errors = self.result.effect_stderr if len(self.annotators) > 1 else {}
        effects = {}
        for code, name in enumerate(self.annotators):
            half = 1.96 * errors.get(f"log_reliability:{code}", 0.0)
            value = float(gamma[code]) if code < len(gamma) else 1.0
            effects[name] = Effect(value, value * math.exp(-half), value * math.exp(half))
        return effects

    def score_meaning(self) -> str:
        """What a score means with this fit's tie strength, in one sentence (the report,
        the CLI and the trial notes say it alike); see ``arena/_meaning.py``."""
        return score_meaning(self.result.tie_strength)

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

    def p_best_below(self, player: Player, threshold: float) -> bool:
        """Whether ``player``'s P(best) is below ``threshold`` (0..1): the drawn value when
        it has been drawn, else decided without drawing where that is sure (a player far
        behind the leader; see ``BradleyTerryResult.p_best_surely_below``) and drawn only
        otherwise. The answer is :meth:`p_best`'s (but with a chance under ``exp(-40)``),
        so a decision taken on it is the one taken on the draws."""
        i = self.index[player.id]
        if "_p_best" not in self.__dict__ and self.result.p_best_surely_below(
            i, threshold, P_BEST_SAMPLES
        ):
            return True
        return bool(self.p_best()[i] < threshold)

    def incumbent(
        self, *, exclude: Player | None = None, skip_trials: Collection[int] = ()
    ) -> Player | None:
        """The player with the highest score (ties: the oldest), or ``None``; never
        ``exclude`` nor a checkpoint of the trials ``skip_trials`` (failed ones).

        Players without games (their score is only the prior's) are passed over while any
        player has games: a checkpoint another worker has just added is not yet a champion.
        """
        candidate = np.array(
            [
                (exclude is None or p.id != exclude.id) and p.trial not in skip_trials
                for p in self.players
            ],
            dtype=bool,
        )
        played = candidate & (self.records.sum(axis=1) > 0)
        pool = played if played.any() else candidate
        if not pool.any():
            return None
        # rank_key on the few players within rounding of the top only: a score more than
        # 1e-5 below the best cannot round (to 6 decimals) to the best's value, and
        # rank_key on thousands of players cost more than the rest of the choice.
        scores = self.result.scores
        near = np.flatnonzero(pool & (scores >= scores[pool].max() - 1e-5))
        return self.players[min((rank_key(scores[i], self.players[i].id), i) for i in near)[1]]

    def best_of(self, players: Sequence[Player]) -> Player:
        """The highest-scoring of ``players`` (ties: the earliest)."""
        return min(players, key=lambda p: rank_key(self.score(p), p.id))

    def leaderboard(self, *, top: int | None = None) -> list[LeaderboardRow]:
        """Players by score with 95% intervals, P(best) and records; the ``top`` rows only
        when given (only their intervals are computed: cheap with thousands of players)."""
        if not self.players:
            return []
        scores = self.result.scores
        order = sorted(
            range(len(self.players)),
            key=lambda i: rank_key(float(scores[i]), self.players[i].id),
        )
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
            identical = 0 if self.identical is None else int(self.identical[i])
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
                    identical=identical,
                )
            )
        return rows

    def pair_records(self, players: Sequence[Player]) -> np.ndarray:
        """``(k, k, 3)``: wins, ties, losses of row player against column player, over the
        games fitted on."""
        where = {p.id: k for k, p in enumerate(players)}
        c = _judged(self.counts)
        keep = np.array(
            [int(a) in where and int(b) in where for a, b in zip(c.first, c.second, strict=True)],
            dtype=bool,
        )
        records = np.zeros((len(players), len(players), 3))
        for a, b, outcome, n in zip(
            c.first[keep], c.second[keep], c.outcome[keep], c.count[keep], strict=True
        ):
            i, j = where[int(a)], where[int(b)]
            records[i, j, _RECORD_COLUMN[side(outcome, shown_first=True)]] += n
            records[j, i, _RECORD_COLUMN[side(outcome, shown_first=False)]] += n
        return records

    def snapshot(self, *, top: int | None = None) -> dict[str, Any]:
        """The scores with the data they were fitted on (published to the study; ``check``
        refits from scratch on the same ids and compares): every player's, or with ``top``
        those of the ``top`` best only, so that what is published stays small however many
        players there are (``players`` always counts them all).

        Example:
            >>> from optuna_pandalm.arena import Player
            >>> from optuna_pandalm.store import GameCounts
            >>> one = np.array([0]), np.array([1]), np.array([1]), np.array([3.0])
            >>> standings = fit_standings([Player(0, 0, 1, None), Player(1, 1, 1, None)],
            ...     GameCounts(*one), as_of=(1, 1), baseline=None, fit_position=False)
            >>> snapshot = standings.snapshot(top=1)
            >>> snapshot["players"], list(snapshot["scores"])
            (2, ['trial/0/step/1'])
        """
        chosen = list(range(len(self.players)))
        if top is not None:
            scores = self.result.scores
            chosen = sorted(chosen, key=lambda i: rank_key(float(scores[i]), self.players[i].id))
            chosen = chosen[: max(top, 0)]
        return {
            "max_game_id": self.as_of[0],
            "max_player_id": self.as_of[1],
            "players": len(self.players),
            "scores": {self.players[i].key: float(self.result.scores[i]) for i in chosen},
        }


def fit_standings(
    players: Sequence[Player],
    counts: GameCounts,
    *,
    as_of: tuple[int, int],
    baseline: Player | None,
    fit_position: bool,
    robust_errors: bool = False,
    length_control: bool = False,
    init: Standings | None = None,
) -> Standings:
    """Fit Bradley–Terry on ``counts`` (store ids) for ``players``; ``init`` warm-starts the
    optimiser from earlier standings (the optimum is the same, reached sooner).

    With ``length_control`` (the counts must carry the responses' lengths) every game gets
    the length term ``beta * length_feature``, so scores are at equal length. When the
    counts carry annotators and there is more than one, each gets a reliability and the
    machine judges a deviation on the players people voted on (see ``fit_bradley_terry``);
    the reference annotator is the machine judge with the most games.

    Games whose two answers were the same text are left out of the fit and of the records
    (they are certain ties, whatever the judge: they would only raise the tie strength and
    so stretch every score) and counted in :attr:`Standings.identical`."""
    stored = counts
    counts = _judged(stored)
    ids = np.array([p.id for p in players], dtype=np.int64)
    size = 1 + max(ids.max(initial=0), counts.first.max(initial=0), counts.second.max(initial=0))
    position = np.full(int(size), -1, dtype=np.int64)  # store id -> row, -1 unknown
    position[ids] = np.arange(len(players))
    if np.any(position[stored.first] < 0) or np.any(position[stored.second] < 0):
        raise RuntimeError("games of players that are not listed")
    first, second = position[counts.first], position[counts.second]
    anchor_player = baseline if baseline is not None else (players[0] if players else None)
    anchor = 0 if anchor_player is None else int(position[anchor_player.id])
    previous = init.result if init is not None else None
    length = None
    if length_control:
        if counts.first_length is None or counts.second_length is None:
            raise ValueError("length control needs game counts with the responses' lengths")
        length = length_feature(counts.first_length, counts.second_length)
    names, codes, humans = _annotator_codes(counts)
    result = fit_bradley_terry(
        first,
        second,
        counts.outcome,
        weights=counts.count,
        length_diff=length,
        clusters=counts.prompt_position if robust_errors else None,
        annotators=codes,
        human_annotators=humans,
        n_players=len(players),
        anchor=anchor,
        fit_position=fit_position,
        init=previous if previous is not None and previous.n_players <= len(players) else None,
    )
    records = tally(first, second, counts.outcome, counts.count, len(players))
    votes = None
    if codes is not None:
        by_human = np.isin(codes, humans)
        votes = np.bincount(first[by_human], counts.count[by_human], minlength=len(players))
        votes += np.bincount(second[by_human], counts.count[by_human], minlength=len(players))
    identical = None
    if stored.identical is not None:
        same = stored.identical
        identical = np.bincount(
            position[stored.first[same]], stored.count[same], minlength=len(players)
        ) + np.bincount(position[stored.second[same]], stored.count[same], minlength=len(players))
    return Standings(
        tuple(players), result, records, stored, as_of, anchor_player, names, votes, identical
    )


def with_new_players(
    standings: Standings, new: Sequence[Player], *, as_of: tuple[int, int]
) -> Standings:
    """``standings`` refitted with the players ``new`` added, none of whom has a game:
    exactly what :func:`fit_standings` warm-started from ``standings`` gives on the same
    counts with these players listed after the others (the same fit, see
    ``refit_with_players``), without reading, coding and aggregating the counts again.

    A player without games moves no other score but by the one Newton step the refit takes
    from the warm start; taking it keeps every later score on the path of a full refit."""
    added = len(new)
    n = len(standings.players) + added

    def grown(per_player: np.ndarray | None) -> np.ndarray | None:
        if per_player is None:
            return None
        zeros = np.zeros((added, *per_player.shape[1:]), dtype=per_player.dtype)
        return np.concatenate([per_player, zeros])

    records = grown(standings.records)
    assert records is not None
    players = (*standings.players, *new)
    return dataclasses.replace(
        standings,
        players=players,
        # fit_standings' anchor: the baseline, else the first player (a new one, at first).
        anchor=standings.anchor if standings.anchor is not None else players[0],
        result=refit_with_players(standings.result, n),
        records=records,
        as_of=as_of,
        human_votes=grown(standings.human_votes),
        identical=grown(standings.identical),
    )


def _judged(counts: GameCounts) -> GameCounts:
    """The counts without the games whose two answers were the same text."""
    if counts.identical is None or not counts.identical.any():
        return counts
    keep = ~counts.identical
    kept: dict[str, Any] = {
        field.name: None if value is None else value[keep]
        for field in dataclasses.fields(counts)
        for value in [getattr(counts, field.name)]
    }
    return GameCounts(**kept)


def _annotator_codes(
    counts: GameCounts,
) -> tuple[tuple[str, ...], np.ndarray | None, list[int]]:
    """Annotator names by code (the machine judge with the most games first, then by name),
    each game's code, and the codes of people (``human:NAME``)."""
    if counts.annotator is None or not len(counts.annotator):
        return (), None, []
    # The counts have a row per (pair, order, outcome, annotator), tens of thousands, and
    # few annotators with long names: one comparison per name codes them (np.unique sorted
    # the strings, the fit's biggest cost at 3,000 players). The order below does not
    # depend on the order of ``unique``.
    annotator = counts.annotator
    unique = list(set(annotator.tolist()))
    inverse = np.zeros(len(annotator), dtype=np.int64)
    for code, name in enumerate(unique[1:], start=1):
        inverse[annotator == name] = code
    totals = np.bincount(inverse, counts.count, minlength=len(unique))
    order = sorted(
        range(len(unique)),
        key=lambda k: (str(unique[k]).startswith(HUMAN_PREFIX), -totals[k], str(unique[k])),
    )
    names = tuple(str(unique[k]) for k in order)
    code_of_unique = np.empty(len(unique), dtype=np.int64)
    code_of_unique[order] = np.arange(len(unique))
    codes = code_of_unique[inverse]
    humans = [code for code, name in enumerate(names) if name.startswith(HUMAN_PREFIX)]
    return names, codes, humans
