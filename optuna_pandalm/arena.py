"""The arena: where checkpoints play matches, judged pairwise, and get Bradley–Terry scores.

Orchestration only: the judges judge, the store stores, ``fit_bradley_terry`` fits. Every
verdict goes through the store's cache, every game is committed as it is judged, and every
score is a pure function of the stored games, so all workers on one study agree.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from optuna_pandalm.bradley_terry import BradleyTerryResult, fit_bradley_terry
from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict
from optuna_pandalm.prompts import Prompt, load_prompts
from optuna_pandalm.store import (
    GameCounts,
    GameRecord,
    PlayerRecord,
    Store,
    StoredVerdict,
    VerdictKey,
    text_hash,
)

__all__ = ["Arena", "EvaluationResult", "JudgeFailedError", "LeaderboardRow", "Player"]

_logger = logging.getLogger(__name__)

_POSITIONS = ("random", "swap", "fixed")


class JudgeFailedError(RuntimeError):
    """The judge raised on every attempt (CUDA out of memory, HTTP 500, a timeout...).

    Games committed before the failure stay valid; the trial fails with this cause in its
    user attribute ``pandalm_error``.
    """


@dataclasses.dataclass(frozen=True)
class Player:
    """A checkpoint ``(trial, step)`` or a named baseline; ``id`` is the store's."""

    id: int
    trial: int | None
    step: int | None
    name: str | None

    @property
    def label(self) -> str:
        return (
            f"baseline {self.name}"
            if self.name is not None
            else f"trial {self.trial} step {self.step}"
        )


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """What :meth:`Arena.evaluate` did for one checkpoint.

    ``score``, ``ci_low`` and ``ci_high`` are log-odds against the anchor; ``wins``, ``ties``
    and ``losses`` are this checkpoint's games against ``opponent`` in this match;
    ``p_value`` is the two-sided sign test of that match (ties split).
    """

    player: Player
    opponent: Player | None
    score: float
    ci_low: float
    ci_high: float
    wins: int
    ties: int
    losses: int
    invalid: int
    judge_calls: int
    p_value: float | None
    stopped_early: bool

    @property
    def games(self) -> int:
        return self.wins + self.ties + self.losses


@dataclasses.dataclass(frozen=True)
class LeaderboardRow:
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

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class _Fit:
    players: list[Player]
    index: dict[int, int]
    result: BradleyTerryResult
    records: np.ndarray  # (players, 3): wins, ties, losses over all games
    as_of: tuple[int, int]  # (largest game id, largest player id) fitted on
    _p_best: dict[tuple[int, int | None], np.ndarray] = dataclasses.field(default_factory=dict)

    def p_best(self, n_samples: int, seed: int | None) -> np.ndarray:
        """P(best) of every player, drawn once per fit (finalize, the leaderboard and the
        dashboard figure all ask for the same one)."""
        key = (n_samples, seed)
        if key not in self._p_best:
            self._p_best[key] = self.result.p_best(n_samples=n_samples, seed=seed)
        return self._p_best[key]


def sign_test(wins: float, ties: float, losses: float, *, alternative: str = "two-sided") -> float:
    """Sign test of ``wins`` against ``losses`` with ties split half and half.

    Returns the p-value (normal approximation with continuity correction; exact enough for
    the racing and pruning decisions, and defined for half-integer counts).

    Example:
        >>> round(sign_test(15, 0, 5), 3)  # the exact binomial test gives 0.041
        0.044
    """
    n = wins + ties + losses
    if n == 0:
        return 1.0
    k = wins + ties / 2
    from scipy import stats

    if alternative == "less":
        return float(stats.norm.cdf((k + 0.5 - n / 2) / math.sqrt(n / 4)))
    if alternative == "greater":
        return float(stats.norm.sf((k - 0.5 - n / 2) / math.sqrt(n / 4)))
    z = (abs(k - n / 2) - 0.5) / math.sqrt(n / 4)
    return float(min(1.0, 2 * stats.norm.sf(max(z, 0.0))))


class Arena:
    """Judge checkpoints against the incumbent and keep Bradley–Terry scores in SQL.

    Args:
        storage: SQLAlchemy URL (the Optuna study's or a separate one) or a :class:`Store`.
        study_name: The Optuna study this arena scores. A study is bound to one prompt set;
            another set raises ``PromptSetMismatchError``.
        judge: Any :class:`~optuna_pandalm.judges.PairwiseJudge`.
        prompts: ``Prompt`` list or a path for :func:`~optuna_pandalm.load_prompts`.
        position: Who is shown first. ``"random"`` (default): a seeded coin per game, and
            the fit estimates the first-shown advantage. ``"swap"``: both orders are judged
            and conflicting verdicts are a tie (PandaLM's maintainers' rule; twice the
            calls). ``"fixed"``: the challenger is always shown first.
        racing: Stop a match early once the sign test is clear (``racing_alpha``, after
            ``min_games``); otherwise play the whole prompt set.
        seed: Seeds prompt order and order coins (deterministic per pair of players).
        baseline: ``(name, generations)`` of a fixed reference player (for example the
            model tuned with Alpaca's defaults). It anchors the scores and is the first
            checkpoint's opponent.
        batch_size: Games judged per judge call (and per commit).
        min_games: Racing never stops a match before this many games.
        racing_alpha: Two-sided level of racing's sign test. Repeated looks inflate the
            error rate, hence a stricter default than 0.05.
        p_best_threshold: In :meth:`finalize`, extra matches are played when the trial's best
            checkpoint has at least this probability of being the best.
        max_extra_matches: At most this many extra matches per finalize.
        robust_errors: Cluster-robust (per prompt) errors in the fit. Off by default: with
            fewer prompts than players the sandwich is rank-deficient.
        judge_retries: Attempts after a judge call raises, with exponential backoff from
            ``judge_backoff`` seconds; then :class:`JudgeFailedError`.
    """

    def __init__(
        self,
        storage: str | Store,
        study_name: str,
        judge: PairwiseJudge,
        prompts: Sequence[Prompt] | str | os.PathLike[str],
        *,
        position: str = "random",
        racing: bool = True,
        seed: int | None = None,
        baseline: tuple[str, Sequence[str]] | None = None,
        batch_size: int = 16,
        min_games: int = 16,
        racing_alpha: float = 0.01,
        p_best_threshold: float = 0.2,
        max_extra_matches: int = 2,
        robust_errors: bool = False,
        judge_retries: int = 3,
        judge_backoff: float = 2.0,
    ) -> None:
        if position not in _POSITIONS:
            raise ValueError(f"position must be one of {_POSITIONS}, got {position!r}")
        self.prompts = (
            load_prompts(prompts)
            if isinstance(prompts, (str, os.PathLike))
            else load_prompts(list(prompts))
        )
        self.store = storage if isinstance(storage, Store) else Store(storage)
        self.study_name = study_name
        self.judge = judge
        self.position = position
        self.racing = racing
        self.seed = 0 if seed is None else seed
        self.batch_size = batch_size
        self.min_games = min_games
        self.racing_alpha = racing_alpha
        self.p_best_threshold = p_best_threshold
        self.max_extra_matches = max_extra_matches
        self.robust_errors = robust_errors
        self.judge_retries = judge_retries
        self.judge_backoff = judge_backoff
        self.judge_calls = 0
        self.cache_hits = 0
        self.prompt_set_id = self.store.save_prompt_set(self.prompts)
        self.arena_id = self.store.bind_study(study_name, self.prompt_set_id, position=position)
        self._fit_cache: tuple[Any, _Fit] | None = None
        # (largest game id, games, counts) last counted, and (largest player id, players)
        # last listed: fits add what was stored since instead of reading everything again.
        self._counts: tuple[int, int, GameCounts] | None = None
        self._known_players: tuple[int, list[Player]] | None = None
        self.baseline: Player | None = None
        if baseline is not None:
            name, texts = baseline
            self._check_generations(texts, f"baseline {name!r}")
            baseline_id = self.store.player(self.arena_id, name=name, generations=list(texts))
            self.baseline = Player(baseline_id, None, None, name)

    @classmethod
    def load(cls, storage: str | Store, study_name: str) -> Arena:
        """Open a study's arena read-only (leaderboards, reports, checks): prompts, position
        mode and baseline come from the store; judging raises.

        Raises:
            ValueError: the storage has no arena for this study.
        """
        store = storage if isinstance(storage, Store) else Store(storage)
        settings = store.arena_settings(study_name)
        if settings is None:
            raise ValueError(
                f"no optuna-pandalm arena for study {study_name!r} in {store.masked_url!r}"
            )
        prompts = [
            Prompt(r["instruction"], r["input"], r["reference"], r["user_id"])
            for r in store.study_prompts(study_name)
        ]
        arena = cls(store, study_name, _ReadOnlyJudge(), prompts, position=settings["position"])
        baselines = [p for p in arena.players() if p.name is not None]
        arena.baseline = baselines[0] if baselines else None
        return arena

    def __repr__(self) -> str:
        return (
            f"Arena(study={self.study_name!r}, judge={self.judge.name!r}, "
            f"prompts={len(self.prompts)})"
        )

    # --- players ------------------------------------------------------------------------------
    def _check_generations(self, texts: Sequence[str], what: str) -> None:
        if len(texts) != len(self.prompts):
            raise ValueError(
                f"{what}: {len(texts)} generations for {len(self.prompts)} prompts; "
                "give one response per prompt, in prompt order"
            )
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"{what}: generation {i} is {type(text).__name__}, not str")

    @staticmethod
    def _player(record: PlayerRecord) -> Player:
        return Player(record.id, record.trial_number, record.step, record.name)

    def players(self) -> list[Player]:
        """Every player of the study, in creation order."""
        return [self._player(r) for r in self.store.players(self.arena_id)]

    def trial_players(self, trial: Any) -> list[Player]:
        """The checkpoints of one trial, by step."""
        records = self.store.players(self.arena_id, trial_number=_trial_number(trial))
        return sorted((self._player(r) for r in records), key=lambda p: p.step or 0)

    # --- fitting ------------------------------------------------------------------------------
    def fit(self, *, as_of: tuple[int, int] | None = None) -> _Fit:
        """The Bradley–Terry fit on every stored game, cached until a game or player is added.

        ``as_of=(max_game_id, max_player_id)`` refits from scratch on the games and players
        stored up to those ids (no cache, no warm start): what ``check`` compares against.
        """
        version = self.store.version(self.arena_id)
        if as_of is None and self._fit_cache is not None and self._fit_cache[0] == version:
            return self._fit_cache[1]
        # Exactly the games and players up to the ids just read, whatever other workers
        # commit meanwhile: the fit is a pure function of its version.
        max_game_id, max_player_id = as_of if as_of is not None else (version[1], version[3])
        players = (
            self._players_up_to(max_player_id, version[2])
            if as_of is None
            else [p for p in self.players() if p.id <= max_player_id]
        )
        index = {p.id: i for i, p in enumerate(players)}
        counts = (
            self._counts_up_to(max_game_id, version[0])
            if as_of is None
            else self.store.game_counts(
                self.arena_id, by_prompt=self.robust_errors, max_game_id=max_game_id
            )
        )
        ids = np.array([p.id for p in players], dtype=np.int64)
        size = 1 + max(
            ids.max(initial=0), counts.first.max(initial=0), counts.second.max(initial=0)
        )
        position = np.full(int(size), -1, dtype=np.int64)  # store id -> index, -1 unknown
        position[ids] = np.arange(len(players))
        first, second = position[counts.first], position[counts.second]
        if np.any(first < 0) or np.any(second < 0):
            raise RuntimeError(f"games of unlisted players in study {self.study_name!r}")
        anchor = index[self.baseline.id] if self.baseline is not None else 0
        previous = (
            self._fit_cache[1].result if self._fit_cache is not None and as_of is None else None
        )
        result = fit_bradley_terry(
            first,
            second,
            counts.outcome,
            weights=counts.count,
            clusters=counts.prompt_position if self.robust_errors else None,
            n_players=len(players),
            anchor=anchor,
            fit_position=self.position == "random",
            init=previous if previous is not None and previous.n_players <= len(players) else None,
        )
        records = np.zeros((len(players), 3))
        for who, won in ((first, 1), (second, 2)):
            np.add.at(records[:, 0], who, counts.count * (counts.outcome == won))
            np.add.at(records[:, 1], who, counts.count * (counts.outcome == 0))
            np.add.at(records[:, 2], who, counts.count * (counts.outcome == 3 - won))
        fit = _Fit(players, index, result, records, (max_game_id, max_player_id))
        if as_of is None:
            self._fit_cache = (version, fit)
        return fit

    def _players_up_to(self, max_player_id: int, n_players: int) -> list[Player]:
        """Players up to ``max_player_id``: those stored after the last listed one added to
        the list, when together they are the ``n_players`` the version counted (else a
        player with a smaller id committed late: all listed afresh)."""
        if self._known_players is not None and self._known_players[0] <= max_player_id:
            last, known = self._known_players
            records = self.store.players(self.arena_id, min_id=last, max_id=max_player_id)
            if len(known) + len(records) == n_players:
                listed = known + [self._player(r) for r in records]
                self._known_players = (max_player_id, listed)
                return list(listed)
        listed = [p for p in self.players() if p.id <= max_player_id]
        self._known_players = (max_player_id, listed)
        return list(listed)

    def _counts_up_to(self, max_game_id: int, n_games: int) -> GameCounts:
        """Game counts up to ``max_game_id``: the games after the previous fit's last one
        added to its counts, when together they are exactly the ``n_games`` the version
        counted (else a game with a smaller id committed late: all counted afresh)."""
        by_prompt = self.robust_errors
        counts = None
        if self._counts is not None and self._counts[0] <= max_game_id:
            last, total, known = self._counts
            delta = self.store.game_counts(
                self.arena_id, by_prompt=by_prompt, max_game_id=max_game_id, min_game_id=last
            )
            if total + int(delta.count.sum()) == n_games:
                counts = _merge_counts(known, delta)
        if counts is None:
            counts = self.store.game_counts(
                self.arena_id, by_prompt=by_prompt, max_game_id=max_game_id
            )
        self._counts = (max_game_id, int(counts.count.sum()), counts)
        return counts

    def snapshot(self) -> dict[str, Any]:
        """The current scores with the data they were fitted on (stored by ``publish``;
        ``check`` refits from scratch and compares)."""
        fit = self.fit()
        return {
            "max_game_id": fit.as_of[0],
            "max_player_id": fit.as_of[1],
            "players": len(fit.players),
            "scores": {_key(p): float(fit.result.scores[i]) for i, p in enumerate(fit.players)},
        }

    def scores(self) -> dict[Player, float]:
        """Current score of every player (log-odds against the anchor)."""
        fit = self.fit()
        return {p: float(fit.result.scores[i]) for i, p in enumerate(fit.players)}

    def incumbent(self, *, exclude: Player | None = None) -> Player | None:
        """The player with the highest current score (ties: the oldest), or ``None``.

        Players without games (their score is only the prior's) are passed over while any
        player has games: a checkpoint another worker has just added is not yet a champion.
        """
        fit = self.fit()
        candidates = [
            (float(fit.result.scores[i]), -p.id, p)
            for i, p in enumerate(fit.players)
            if exclude is None or p.id != exclude.id
        ]
        played = [c for c in candidates if fit.records[fit.index[c[2].id]].sum() > 0]
        pool = played or candidates
        return max(pool, key=lambda c: (c[0], c[1]))[2] if pool else None

    def leaderboard(
        self, *, n_samples: int = 4000, top: int | None = None
    ) -> list[LeaderboardRow]:
        """Players by score, with 95% intervals, P(best) and game records; the ``top`` rows
        only when given (their intervals alone are computed: cheap with thousands of
        players, where every player's interval needs a dense inverse)."""
        fit = self.fit()
        if not fit.players:
            return []
        order = sorted(range(len(fit.players)), key=lambda i: -fit.result.scores[i])
        if top is not None:
            order = order[: max(top, 0)]
        low, high = fit.result.interval(0.95, players=order if top is not None else None)
        if top is None:
            low, high = low[order], high[order]
        p_best = fit.p_best(n_samples, self.seed)
        return [
            LeaderboardRow(
                trial=fit.players[i].trial,
                step=fit.players[i].step,
                name=fit.players[i].name,
                score=float(fit.result.scores[i]),
                ci_low=float(low[k]),
                ci_high=float(high[k]),
                p_best=float(p_best[i]),
                games=int(fit.records[i].sum()),
                wins=int(fit.records[i, 0]),
                ties=int(fit.records[i, 1]),
                losses=int(fit.records[i, 2]),
            )
            for k, i in enumerate(order)
        ]

    # --- matches ------------------------------------------------------------------------------
    def _verdicts(
        self, requests: list[JudgeRequest], keys: list[VerdictKey]
    ) -> list[StoredVerdict]:
        """Verdicts for the requests: from the cache, else from the judge (then cached)."""
        cached = self.store.find_verdicts(self.judge.name, keys)
        missing = [i for i, key in enumerate(keys) if key not in cached]
        self.cache_hits += len(keys) - len(missing)
        if missing:
            start = time.perf_counter()
            fresh = self._judge_with_retries([requests[i] for i in missing])
            latency = (time.perf_counter() - start) / len(missing)
            if len(fresh) != len(missing):
                raise RuntimeError(
                    f"judge {self.judge.name!r} returned {len(fresh)} verdicts "
                    f"for {len(missing)} requests"
                )
            self.judge_calls += len(missing)
            stored = self.store.save_verdicts(
                self.judge.name,
                [(keys[i], _stored(v, latency)) for i, v in zip(missing, fresh, strict=True)],
            )
            cached.update(stored)
        return [cached[key] for key in keys]

    def _judge_with_retries(self, requests: list[JudgeRequest]) -> list[Verdict]:
        for attempt in range(self.judge_retries + 1):
            try:
                return self.judge.judge(requests)
            except Exception as error:  # any judge failure: OOM, HTTP, timeouts...
                if attempt == self.judge_retries:
                    raise JudgeFailedError(
                        f"judge {self.judge.name!r} failed {attempt + 1} times on "
                        f"{len(requests)} requests: {type(error).__name__}: {error}"
                    ) from error
                wait = self.judge_backoff * 2**attempt
                _logger.warning("judge failed (%r); retry %d in %.1f s", error, attempt + 1, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _request(self, position: int, first: str, second: str) -> tuple[JudgeRequest, VerdictKey]:
        prompt = self.prompts[position]
        request = JudgeRequest(
            prompt.instruction, first, second, input=prompt.input, reference=prompt.reference
        )
        return request, VerdictKey(prompt.hash, text_hash(first), text_hash(second))

    def play(
        self, challenger: Player, opponent: Player, *, kind: str = "incumbent"
    ) -> dict[str, Any]:
        """Play a match; returns the challenger's wins, ties and losses in it, the number of
        invalid verdicts, the p-value and whether racing stopped it early."""
        texts = {p.id: self.store.generations(p.id) for p in (challenger, opponent)}
        done = self.store.played_positions(self.arena_id, challenger.id, opponent.id)
        # Seeded by the responses, not the player ids: the same two sets of responses get the
        # same prompt order and the same shown orders in any study, so cached verdicts hit.
        content = text_hash(
            "\x00".join(texts[challenger.id]) + "\x01" + "\x00".join(texts[opponent.id])
        )
        rng = np.random.default_rng([self.seed, int(content[:15], 16)])
        order = [int(i) for i in rng.permutation(len(self.prompts)) if int(i) not in done]
        coins = rng.random(len(self.prompts)) < 0.5
        match_id = self.store.start_match(self.arena_id, challenger.id, opponent.id, kind=kind)
        wins = ties = losses = invalid = 0
        p_value: float | None = None
        stopped = False
        a, b = texts[challenger.id], texts[opponent.id]
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            shown = []  # (position, challenger shown first?)
            for position in batch:
                if self.position == "swap":
                    shown += [(position, True), (position, False)]
                elif self.position == "fixed":
                    shown.append((position, True))
                else:
                    shown.append((position, bool(coins[position])))
            built = [
                self._request(p, a[p], b[p]) if first else self._request(p, b[p], a[p])
                for p, first in shown
            ]
            verdicts = self._verdicts([r for r, _ in built], [k for _, k in built])
            # Outcome from the challenger's side: +1 win, 0 tie, -1 loss, None invalid.
            results: dict[int, list[tuple[int | None, int]]] = {}
            for (position, first), verdict in zip(shown, verdicts, strict=True):
                if verdict.winner is None:
                    side = None
                elif verdict.winner == 0:
                    side = 0
                else:
                    side = 1 if (verdict.winner == 1) == first else -1
                results.setdefault(position, []).append((side, verdict.id))
            records = []
            for position, seen in results.items():
                valid = [s for s, _ in seen if s is not None]
                invalid += len(seen) - len(valid)
                if not valid:
                    continue
                side = valid[0] if len(set(valid)) == 1 else 0  # conflicting orders: a tie
                verdict_id = next(v for s, v in seen if s is not None)
                first_is_challenger = self.position != "random" or bool(coins[position])
                outcome = 0 if side == 0 else (1 if (side == 1) == first_is_challenger else 2)
                first_id, second_id = (
                    (challenger.id, opponent.id)
                    if first_is_challenger
                    else (opponent.id, challenger.id)
                )
                records.append(GameRecord(position, first_id, second_id, verdict_id, outcome))
                wins += side == 1
                ties += side == 0
                losses += side == -1
            self.store.save_games(self.arena_id, match_id, records)
            played = wins + ties + losses
            p_value = sign_test(wins, ties, losses)
            if self.racing and played >= self.min_games and p_value < self.racing_alpha:
                stopped = start + self.batch_size < len(order)
                break
        return {
            "wins": wins,
            "ties": ties,
            "losses": losses,
            "invalid": invalid,
            "p_value": p_value,
            "stopped_early": stopped,
        }

    # --- the Optuna-facing API ----------------------------------------------------------------
    def evaluate(self, trial: Any, step: int, generations: Sequence[str]) -> EvaluationResult:
        """Score a checkpoint from its responses to the prompt set.

        Stores the generations, plays a match against :meth:`opponent` (the incumbent's
        trial at the same step, else the incumbent: the baseline, or nobody, for the very
        first checkpoint), refits, reports the score to the trial
        (``trial.report(score, step)``) and returns what happened.
        """
        number = _trial_number(trial)
        self._check_generations(generations, f"trial {number} step {step}")
        calls_before = self.judge_calls
        player_id = self.store.player(
            self.arena_id, trial=number, step=int(step), generations=list(generations)
        )
        player = Player(player_id, number, int(step), None)
        opponent = self.opponent(player)
        outcome = {
            "wins": 0,
            "ties": 0,
            "losses": 0,
            "invalid": 0,
            "p_value": None,
            "stopped_early": False,
        }
        if opponent is not None:
            try:
                outcome = self.play(player, opponent)
            except JudgeFailedError as error:
                if hasattr(trial, "set_user_attr"):
                    trial.set_user_attr("pandalm_error", str(error)[:2000])
                raise
        fit = self.fit()
        i = fit.index[player.id]
        score = float(fit.result.scores[i])
        low, high = fit.result.interval_of(i)  # not every player's: O(n^3) per evaluate
        if hasattr(trial, "report"):
            trial.report(score, int(step))
        _logger.info(
            "%s: %+.3f against %s (%d-%d-%d)",
            player.label,
            score,
            opponent.label if opponent else "nobody",
            outcome["wins"],
            outcome["ties"],
            outcome["losses"],
        )
        return EvaluationResult(
            player=player,
            opponent=opponent,
            score=score,
            ci_low=low,
            ci_high=high,
            judge_calls=self.judge_calls - calls_before,
            **outcome,
        )

    def opponent(self, player: Player) -> Player | None:
        """Whom a new checkpoint plays: the incumbent's trial at the same step, else the
        incumbent (``None`` when there is none).

        Like for like, as Optuna's pruners compare intermediate values at one step: an
        epoch-1 checkpoint is not pitted against a finished model, and a dip every trial
        takes at one epoch (PandaLM Appendix J) is a dip on both sides. The fit links the
        two anyway, and :meth:`finalize` plays the top contenders directly.
        """
        incumbent = self.incumbent(exclude=player)
        if (
            incumbent is None
            or incumbent.trial in (None, player.trial)
            or incumbent.step == player.step
        ):
            return incumbent
        same = [p for p in self.trial_players(incumbent.trial) if p.step == player.step]
        return same[0] if same else incumbent

    def finalize(self, trial: Any) -> float:
        """The trial's value: the current score of its best checkpoint.

        Raises ``optuna.TrialPruned`` when the study's pruner prunes the trial. When the
        best checkpoint may be the study's best (P(best) >= ``p_best_threshold``), plays up
        to ``max_extra_matches`` extra matches against the other contenders with the highest
        P(best), so the leader is settled without a round robin. The chosen step is stored
        in the trial's user attribute ``pandalm_best_step``.
        """
        import optuna

        number = _trial_number(trial)
        if hasattr(trial, "should_prune") and trial.should_prune():
            raise optuna.TrialPruned(f"trial {number} pruned by the judge")
        own = self.trial_players(number)
        if not own:
            raise ValueError(f"trial {number} has no evaluated checkpoint: call evaluate() first")
        best = self._best_of(own)
        for _ in range(self.max_extra_matches):
            opponent = self._contender(best)
            if opponent is None:
                break
            self.play(best, opponent, kind="top")
            best = self._best_of(own)
        fit = self.fit()
        value = float(fit.result.scores[fit.index[best.id]])
        if hasattr(trial, "set_user_attr"):
            trial.set_user_attr("pandalm_best_step", best.step)
        if hasattr(trial, "study"):
            from optuna_pandalm.dashboard import publish

            publish(self, trial.study, trial)
        return value

    def _best_of(self, players: Sequence[Player]) -> Player:
        fit = self.fit()
        return max(players, key=lambda p: (fit.result.scores[fit.index[p.id]], -p.id))

    def best_checkpoint(self, trial: Any) -> Player | None:
        """The trial's checkpoint with the highest current score (ties: the earliest)."""
        own = self.trial_players(trial)
        return self._best_of(own) if own else None

    def _contender(self, best: Player) -> Player | None:
        """The strongest rival worth an extra match, or ``None`` when the top is settled."""
        fit = self.fit()
        if len(fit.players) < 2:
            return None
        p_best = fit.p_best(4000, self.seed)
        if p_best[fit.index[best.id]] < self.p_best_threshold:
            return None
        rivals = sorted(
            (p for p in fit.players if p.id != best.id and p.trial != best.trial),
            key=lambda p: -p_best[fit.index[p.id]],
        )
        for rival in rivals:
            if p_best[fit.index[rival.id]] < 0.01:
                return None
            if len(self.store.played_positions(self.arena_id, best.id, rival.id)) < len(
                self.prompts
            ):
                return rival
        return None

    def check(self, study: Any = None, *, tolerance: float = 1e-6) -> dict[str, list[str]]:
        """Integrity problems of the stored data, by kind (all lists empty when sound).

        Duplicates, orphans, games counting invalid verdicts, players without their
        generations; with the Optuna ``study``: players of trials the study does not have,
        and the scores last published to the study (``pandalm_fit``) against a refit from
        scratch on the same games.
        """
        problems = self.store.integrity(self.arena_id, len(self.prompts))
        if study is None:
            return problems
        numbers = {t.number for t in study.trials}
        problems["players of unknown trials"] = [
            p.label for p in self.players() if p.trial is not None and p.trial not in numbers
        ]
        stored = study.user_attrs.get("pandalm_fit")
        mismatches: list[str] = []
        if stored:
            refit = self.fit(as_of=(stored["max_game_id"], stored["max_player_id"]))
            fresh = {_key(p): float(refit.result.scores[i]) for i, p in enumerate(refit.players)}
            if set(fresh) != set(stored["scores"]):
                mismatches.append(
                    f"players differ: {len(fresh)} now up to the stored ids, "
                    f"{len(stored['scores'])} stored"
                )
            for key, score in stored["scores"].items():
                if key in fresh and abs(fresh[key] - score) > tolerance:
                    mismatches.append(f"{key}: stored {score:+.6f}, refit {fresh[key]:+.6f}")
        problems["stored scores that a refit does not reproduce"] = mismatches
        return problems

    def match_record(self, player: Player, opponent: Player) -> tuple[int, int, int]:
        """(wins, ties, losses) of ``player`` against ``opponent`` over all their games."""
        return self.store.pair_record(self.arena_id, player.id, opponent.id)

    def reasons(self, player: Player, *, limit: int = 3) -> list[tuple[int, str]]:
        """A few (prompt position, judge's reason) pairs from the player's games."""
        return self.store.reasons(self.arena_id, player.id, limit=limit)

    def incumbent_opponents(self, player: Player) -> list[Player]:
        """The players ``player`` challenged as the then-incumbent."""
        ids = self.store.opponents(self.arena_id, player.id, kind="incumbent")
        by_id = {r.id: self._player(r) for r in self.store.players(self.arena_id, ids=ids)}
        return [by_id[i] for i in ids]


class _ReadOnlyJudge(PairwiseJudge):
    """The judge of an arena opened with :meth:`Arena.load`: it must not be called."""

    name = "read-only"

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        raise RuntimeError("this arena was opened read-only (Arena.load): it cannot judge")


def _merge_counts(known: GameCounts, delta: GameCounts) -> GameCounts:
    """Two sets of game counts as one, grouped and sorted by key like the store's."""
    if not len(delta.count):
        return known
    columns = [known.first, known.second, known.outcome]
    extra = [delta.first, delta.second, delta.outcome]
    if known.prompt_position is not None and delta.prompt_position is not None:
        columns.append(known.prompt_position)
        extra.append(delta.prompt_position)
    keys = np.concatenate(
        [np.column_stack(columns).reshape(-1, len(columns)), np.column_stack(extra)]
    )
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    count = np.bincount(
        inverse.reshape(-1), np.concatenate([known.count, delta.count]), minlength=len(unique)
    )
    return GameCounts(
        first=unique[:, 0],
        second=unique[:, 1],
        outcome=unique[:, 2],
        count=count.astype(np.float64),
        prompt_position=unique[:, 3] if len(columns) == 4 else None,
    )


def _key(player: Player) -> str:
    return (
        f"baseline/{player.name}"
        if player.name is not None
        else f"trial/{player.trial}/step/{player.step}"
    )


def _trial_number(trial: Any) -> int:
    if isinstance(trial, (int, np.integer)):
        return int(trial)
    number = getattr(trial, "number", None)
    if number is None:
        raise TypeError(f"expected an Optuna trial or a trial number, got {type(trial).__name__}")
    return int(number)


def _stored(verdict: Verdict, latency: float) -> StoredVerdict:
    p = verdict.probabilities
    return StoredVerdict(
        winner=verdict.winner,
        p_tie=None if p is None else p[0],
        p_1=None if p is None else p[1],
        p_2=None if p is None else p[2],
        reason=verdict.reason,
        reference=verdict.reference,
        raw=verdict.raw,
        latency_s=latency,
    )
