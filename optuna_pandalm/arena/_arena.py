"""The arena: the facade users call, over match play, standings and the Optuna glue."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from optuna_pandalm.arena import _trial
from optuna_pandalm.arena._decision import undecided
from optuna_pandalm.arena._judge_deadline import DeadlineJudge
from optuna_pandalm.arena._judge_watch import stored_judge_warnings
from optuna_pandalm.arena._ledger import Ledger, as_player
from optuna_pandalm.arena._match_play import (
    JudgeFailedError,
    MatchOutcome,
    MatchPlay,
)
from optuna_pandalm.arena._players import Player, checkpoint_step, trial_number
from optuna_pandalm.arena._result import EvaluationResult
from optuna_pandalm.arena._rules import MatchRules, check_arena_arguments
from optuna_pandalm.arena._standings import (
    LeaderboardRow,
    Standings,
    fit_standings,
    with_new_players,
)
from optuna_pandalm.arena._votes import Votes
from optuna_pandalm.attributes import ERROR_ATTR
from optuna_pandalm.errors import InvalidVerdictError
from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict
from optuna_pandalm.prompts import Prompt, load_prompts, prompt_set_hash
from optuna_pandalm.store import (
    SCORING_DEFAULTS,
    ArenaStore,
    Journal,
    PromptSetMismatchError,
    Store,
    journal_folder,
    journals_enabled,
    refuse_other_settings,
    replay_journals,
    text_hash,
)

__all__ = ["Arena", "refuse_another_prompt_set"]

_logger = logging.getLogger(__name__)


class Arena(Votes):
    """Judge checkpoints against the incumbent and keep Bradley–Terry scores in SQL.

    People's votes join the judge's games through :meth:`record_vote` (see ``_votes``).

    A facade over three parts: match play (shown order, racing, the verdict cache and what a
    judge failure means), :class:`Standings` (the scores, a pure function of the stored
    games) and the Optuna glue (reports, pruning, the trial's own attributes). It publishes
    nothing: :class:`~optuna_pandalm.publish.PublishCallback` does, after each trial.

    Args:
        storage: SQLAlchemy URL (the Optuna study's or a separate one), or a :class:`Store`
            (any :class:`~optuna_pandalm.store.ArenaStore`).
            Given a URL, the arena also prepares Optuna's own tables there, under the lock
            that guards ours, so many workers can start at once on an empty database.
        study_name: The Optuna study this arena scores. A study is bound to one prompt set
            and to the settings that change its scores (``position``, ``length_control``,
            ``robust_errors``), stored with it: another prompt set, or a setting given
            explicitly that differs from the stored one, raises ``PromptSetMismatchError``
            and stores nothing. Left unset (``None``), a setting is the study's, or the
            default for a new study.
        judge: Any :class:`~optuna_pandalm.judges.PairwiseJudge`.
        prompts: ``Prompt`` list or a path for :func:`~optuna_pandalm.load_prompts`.
        position: Who is shown first. ``"random"`` (a new study's default): a seeded coin
            per game, and
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
        robust_errors: Cluster-robust (per prompt) errors in the fit. Off for a new study by
            default: with fewer prompts than players the sandwich is rank-deficient.
        length_control: Fit a length term ``beta * (a - b) / (a + b)`` for every game (``a``,
            ``b``: the first- and second-shown responses' lengths in characters, Arena-Hard's
            style-control covariate), so scores are at equal length and a checkpoint cannot
            win by verbosity alone; :meth:`Standings.length_effect` reports ``beta`` with
            its interval. Off by default: on PandaLM's human test set people prefer the
            longer answer at least as much as PandaLM-7B does (docs/statistics.md), so the
            term would also remove length that people value. Stored with the study, so
            every worker and reader (:meth:`load`, the commands) fits the same way.
        judge_retries: Attempts after the judge fails to answer, with exponential backoff
            from ``judge_backoff`` seconds; then :class:`JudgeFailedError`.
        short_match: Fidelity in prompts: a new checkpoint still behind its opponent (more
            losses than wins) after this many games stops its match there; only those level
            with the top play every prompt. ``None``: every match runs to racing's end.
        contender_floor: A new checkpoint's match stops (after ``min_games``) once the
            checkpoint's P(best), refitted after each batch, is below this: more games
            would tell nothing about the top. Most matches are between near-equal
            checkpoints that racing cannot separate; this ends those of non-contenders and
            lets contenders play on. ``None`` (the default): every match runs to racing's
            end. Opt-in: with the pruner's rank rule it saved judge calls but lost regret at
            10 and 20 trainings (figures: ``benchmarks/README.md``, ``bt_tpe_lean``).
        judge_timeout: Seconds one judge call (a batch of up to ``batch_size`` requests,
            twice that with ``position="swap"``) may take: past it the call is abandoned and
            :class:`~optuna_pandalm.errors.JudgeTimeoutError` (a ``JudgeFailedError``, not
            retried) fails the trial, naming the timeout in ``pandalm_error``; the next
            trial runs (``study.optimize(..., catch=(JudgeTimeoutError,))``, as
            :func:`~optuna_pandalm.study.judged_study.optimize` does). ``None`` (the
            default): derived from the judge, a remote judge's own HTTP bound
            (``timeout * (max_retries + 1)`` plus backoffs, per wave of requests) or 60 s
            per request for a local model (see ``_judge_deadline``); ``math.inf``: none.
            Python cannot stop a thread: a hung local model keeps its thread (and memory)
            until it returns, and what it returns then is never used or cached.
        journal: Root folder of the local verdict journal (``docs/storage.md``): every
            verdict and batch of games is written there, fsynced, before the store is asked
            to take it, so a worker that dies while the database cannot take them loses
            nothing; opening the arena stores what dead workers on this machine left for
            the study. ``None``: ``$OPTUNA_PANDALM_JOURNAL``, else
            ``$XDG_CACHE_HOME/optuna-pandalm/journal``. ``False``: no journal. A memory
            database never has one.

    Attributes:
        rules: The :class:`~optuna_pandalm.arena.MatchRules` built from ``position``,
            ``seed``, ``racing``, ``batch_size``, ``min_games``, ``racing_alpha``,
            ``judge_retries``, ``judge_backoff`` and ``short_match``, checked before anything
            is stored (its ``position`` the study's); immutable, and what
            :class:`MatchPlay` plays by.
        position, length_control, robust_errors: The study's stored settings, which this
            arena plays and fits with.

    Example:
        >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
        >>> from optuna_pandalm.testing import simulated_response as answer
        >>> arena = Arena("sqlite://", "doc", SimulatedJudge(), simulated_prompts(8), seed=0)
        >>> first = arena.evaluate(0, 1, [answer(0.0)] * 8)
        >>> second = arena.evaluate(1, 1, [answer(2.0)] * 8)
        >>> second.opponent.label, second.games, second.wins > second.losses
        ('trial 0 step 1', 8, True)
    """

    def __init__(
        self,
        storage: str | ArenaStore,
        study_name: str,
        judge: PairwiseJudge,
        prompts: Sequence[Prompt] | str | os.PathLike[str],
        *,
        position: str | None = None,
        racing: bool = True,
        seed: int | None = None,
        baseline: tuple[str, Sequence[str]] | None = None,
        batch_size: int = 16,
        min_games: int = 16,
        racing_alpha: float = 0.01,
        p_best_threshold: float = 0.2,
        max_extra_matches: int = 2,
        robust_errors: bool | None = None,
        length_control: bool | None = None,
        judge_retries: int = 3,
        judge_backoff: float = 2.0,
        short_match: int | None = None,
        contender_floor: float | None = None,
        judge_timeout: float | None = None,
        journal: str | os.PathLike[str] | bool | None = None,
    ) -> None:
        check_arena_arguments(
            study_name,
            judge,
            p_best_threshold=p_best_threshold,
            max_extra_matches=max_extra_matches,
            contender_floor=contender_floor,
        )
        # A read-only arena reads a study as it was stored, even one stored before duplicate
        # prompts were refused (so that `check` can report the verdicts they share).
        read_back = not isinstance(storage, str) and bool(getattr(storage, "read_only", False))
        self.prompts = load_prompts(
            prompts if isinstance(prompts, (str, os.PathLike)) else list(prompts),
            allow_duplicates=read_back,
        )
        self.store = _open_store(storage, prepare_optuna=True)
        self.study_name = study_name
        self.judge = judge
        self.seed = 0 if seed is None else seed
        self.p_best_threshold = p_best_threshold
        self.max_extra_matches = max_extra_matches
        self.contender_floor = contender_floor
        # Set by JudgePruner(stop_matches=True): its level and risk; see _decision.py.
        self.decision_alpha: float | None = None
        self.decision_risk = 0.0
        deadline_judge = DeadlineJudge(judge, judge_timeout)  # checked before any write
        # Checked before anything is written: a bad rule must not bind the study. The
        # position is the study's, set below once it is read.
        rules = MatchRules(
            position=SCORING_DEFAULTS["position"] if position is None else position,
            seed=self.seed,
            racing=racing,
            batch_size=batch_size,
            min_games=min_games,
            racing_alpha=racing_alpha,
            judge_retries=judge_retries,
            judge_backoff=judge_backoff,
            short_match=short_match,
        )
        given: dict[str, Any] = {
            "position": position,
            "length_control": length_control,
            "robust_errors": robust_errors,
        }
        refuse_another_prompt_set(self.store, study_name, self.prompts, **given)
        if not self.store.read_only:  # an arena on a read-only store only reads
            self.store.bind_study(study_name, self.store.save_prompt_set(self.prompts), **given)
        settings = self.store.arena_settings(study_name)
        if settings is None:
            raise ValueError(
                f"no optuna-pandalm arena for study {study_name!r} in {self.store.masked_url!r}"
            )
        self.prompt_set_id, self.arena_id = settings["prompt_set_id"], settings["id"]
        # The study's settings; one an old arena has not recorded is the default.
        scoring = {
            name: default if settings[name] is None else settings[name]
            for name, default in SCORING_DEFAULTS.items()
        }
        self.position: str = scoring["position"]
        self.length_control: bool = bool(scoring["length_control"])
        self.robust_errors: bool = bool(scoring["robust_errors"])
        self.rules = dataclasses.replace(rules, position=self.position)
        self.matches = MatchPlay(
            self.store,
            self.arena_id,
            deadline_judge,
            self.prompts,
            self.rules,
            self._journal(journal),
        )
        self._ledger = self._new_ledger()
        self._standings: tuple[tuple[int, int, int, int], Standings] | None = None
        self.baseline: Player | None = None
        if baseline is not None:
            name, texts = baseline
            checked = self._check_generations(texts, f"baseline {name!r}")
            baseline_id = self.store.player(self.arena_id, name=name, generations=checked)
            self.baseline = Player(baseline_id, None, None, name)
        else:  # the study's stored baseline anchors the scores in every process
            self.baseline = next((p for p in self.players() if p.name is not None), None)

    def _journal(self, root: str | os.PathLike[str] | bool | None) -> Journal | None:
        """This process's journal of the study, after storing what dead workers on this
        machine left in it; ``None`` without one (read-only, memory database, ``False``)."""
        if root is False or self.store.read_only or not journals_enabled(self.store.masked_url):
            return None
        where = None if root is None or root is True else root
        replay_journals(self.store, self.study_name, root=where)
        folder = journal_folder(self.store.masked_url, self.study_name, root=where)
        return Journal(folder, study_name=self.study_name, arena_id=self.arena_id)

    @classmethod
    def load(cls, storage: str | ArenaStore, study_name: str) -> Arena:
        """Open a study's arena read-only (leaderboards, reports, checks): prompts, baseline
        and every setting that changes scores (position, length control, robust errors) come
        from the store, so it scores as the study's workers do; nothing is written and
        judging raises.

        Raises:
            StoreError: the storage does not exist or has no optuna-pandalm tables.
            ValueError: the storage has no arena for this study.
        """
        store = _open_store(storage, read_only=True)
        settings = store.arena_settings(study_name)
        if settings is None:
            raise ValueError(
                f"no optuna-pandalm arena for study {study_name!r} in {store.masked_url!r}"
            )
        prompts = [
            Prompt(r["instruction"], r["input"], r["reference"], r["user_id"])
            for r in store.study_prompts(study_name)
        ]
        return cls(store, study_name, _ReadOnlyJudge(), prompts)

    def __repr__(self) -> str:
        return (
            f"Arena(study={self.study_name!r}, judge={self.judge.name!r}, "
            f"prompts={len(self.prompts)})"
        )

    # --- counters and settings kept on the facade for users ----------------------------------
    @property
    def judge_calls(self) -> int:
        """Requests this arena sent to the judge (cache misses), in this process."""
        return self.matches.judge_calls

    @property
    def cache_hits(self) -> int:
        """Verdicts this arena found in the cache, in this process."""
        return self.matches.cache_hits

    # --- players -------------------------------------------------------------------------------
    def _check_generations(self, texts: Any, what: str) -> list[str]:
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise TypeError(
                f"{what}: generations must be a list of strings, one per prompt, "
                f"got {type(texts).__name__}"
            )
        if len(texts) != len(self.prompts):
            raise ValueError(
                f"{what}: {len(texts)} generations for {len(self.prompts)} prompts; "
                "give one response per prompt, in prompt order"
            )
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"{what}: generation {i} is {type(text).__name__}, not str")
        return list(texts)

    def players(self) -> list[Player]:
        """Every player of the study, in creation order."""
        return [as_player(r) for r in self.store.players(self.arena_id)]

    def trial_players(self, trial: Any) -> list[Player]:
        """The checkpoints of one trial, by step."""
        records = self.store.players(self.arena_id, trial_number=trial_number(trial))
        return sorted((as_player(r) for r in records), key=lambda p: p.step or 0)

    def _add_checkpoint(self, number: int, step: int, texts: list[str]) -> Player:
        """The player of ``(trial, step)``; a second evaluation must give the same texts."""
        player_id = self.store.player(self.arena_id, trial=number, step=step, generations=texts)
        stored = self.store.generation_hashes(player_id)
        given = [text_hash(t) for t in texts]
        if stored != given:
            changed = next(
                (i for i, (a, b) in enumerate(zip(stored, given, strict=False)) if a != b),
                min(len(stored), len(given)),
            )
            raise ValueError(
                f"trial {number} step {step} was already evaluated with other responses "
                f"(first difference at prompt {changed}); a checkpoint's responses cannot "
                "change: evaluate it under another step"
            )
        return Player(player_id, number, step, None)

    # --- standings -----------------------------------------------------------------------------
    def standings(self) -> Standings:
        """The scores of every player from every stored game; cached until a game or a
        player is added (by any worker)."""
        return self._standings_at(self.store.version(self.arena_id))

    def _standings_at(self, version: tuple[int, int, int, int]) -> Standings:
        """The standings fitted at the store's ``version``; cached."""
        if self._standings is not None and self._standings[0] == version:
            return self._standings[1]
        n_games, max_game_id, n_players, max_player_id = version
        standings = fit_standings(
            self._ledger.players(max_player_id, n_players),
            self._ledger.counts(max_game_id, n_games),
            as_of=(max_game_id, max_player_id),
            baseline=self.baseline,
            fit_position=self.position == "random",
            robust_errors=self.robust_errors,
            length_control=self.length_control,
            init=self._standings[1] if self._standings is not None else None,
        )
        self._standings = (version, standings)
        return standings

    def standings_as_of(self, max_game_id: int, max_player_id: int) -> Standings:
        """Standings refitted from scratch on the games and players stored up to these ids
        (no cache, no warm start): what ``check`` compares published scores against."""
        ledger = self._new_ledger()
        return fit_standings(
            ledger.players(max_player_id, -1),
            ledger.counts(max_game_id, -1),
            as_of=(max_game_id, max_player_id),
            baseline=self.baseline,
            fit_position=self.position == "random",
            robust_errors=self.robust_errors,
            length_control=self.length_control,
        )

    def _new_ledger(self) -> Ledger:
        return Ledger(
            self.store,
            self.arena_id,
            by_prompt=self.robust_errors,
            by_length=self.length_control,
            by_annotator=True,
        )

    def fit(self) -> Standings:
        """Alias of :meth:`standings` (kept for code written against 0.1)."""
        return self.standings()

    def scores(self) -> dict[Player, float]:
        """Current score of every player (log-odds against the anchor)."""
        standings = self.standings()
        return {p: standings.score(p) for p in standings.players}

    def snapshot(self) -> dict[str, Any]:
        """The current scores with the ids they were fitted on (see ``Standings.snapshot``)."""
        return self.standings().snapshot()

    def incumbent(
        self, *, exclude: Player | None = None, skip_trials: Collection[int] = ()
    ) -> Player | None:
        """The player with the highest current score (ties: the oldest), or ``None``; never
        ``exclude`` nor a checkpoint of the trials ``skip_trials``."""
        return self.standings().incumbent(exclude=exclude, skip_trials=skip_trials)

    def leaderboard(self, *, top: int | None = None) -> list[LeaderboardRow]:
        """Players by score, with 95% intervals, P(best) and game records (see
        :meth:`Standings.leaderboard`)."""
        return self.standings().leaderboard(top=top)

    def best_checkpoint(self, trial: Any) -> Player | None:
        """The trial's checkpoint with the highest current score (ties: the earliest)."""
        own = self.trial_players(trial)
        return self.standings().best_of(own) if own else None

    # --- matches -------------------------------------------------------------------------------
    def play(
        self, challenger: Player, opponent: Player, *, kind: str = "incumbent"
    ) -> MatchOutcome:
        """Play a match (see :class:`MatchPlay`); returns the challenger's side of it.
        A new checkpoint's match (``kind="incumbent"``) is short when it falls behind
        (``short_match``) and ends once the checkpoint is no contender
        (``contender_floor``)."""
        new = kind == "incumbent"
        go_on = self._contending(challenger) if new and self.contender_floor else None
        if new and self.decision_alpha is not None:
            stop = undecided(self, challenger, opponent, self.decision_alpha, self.decision_risk)
            go_on = _both(go_on, stop)
        return self.matches.play(challenger, opponent, kind=kind, short=new, go_on=go_on)

    def _contending(self, player: Player) -> Callable[[], bool]:
        """Whether ``player``'s P(best) is still at least ``contender_floor``, asked of
        the standings refitted on the games stored so far."""
        floor = self.contender_floor or 0.0

        def contending() -> bool:
            standings = self.standings()
            return bool(standings.p_best()[standings.index[player.id]] >= floor)

        return contending

    def opponent(self, player: Player, *, skip_trials: Collection[int] = ()) -> Player | None:
        """Whom a new checkpoint plays: the incumbent's trial at the same step, else the
        incumbent (``None`` when there is none). The incumbent is never a checkpoint of the
        trials ``skip_trials``: :meth:`evaluate` passes the study's FAILED trials, whose
        checkpoints stay in the scores but cannot be the study's result, so that the pruner
        compares with what the search can still deliver (see
        :class:`~optuna_pandalm.JudgePruner`).

        Like for like, as Optuna's pruners compare intermediate values at one step: an
        epoch-1 checkpoint is not pitted against a finished model, and a dip every trial
        takes at one epoch (PandaLM Appendix J) is a dip on both sides. The fit links the
        two anyway, and :meth:`finalize` plays the top contenders directly.
        """
        standings = self._standings_before(player)
        incumbent = standings.incumbent(exclude=player, skip_trials=skip_trials)
        if (
            incumbent is None
            or incumbent.trial in (None, player.trial)
            or incumbent.step == player.step
        ):
            return incumbent
        same = [p for p in self.trial_players(incumbent.trial) if p.step == player.step]
        return same[0] if same else incumbent

    def _standings_before(self, player: Player) -> Standings:
        """Standings to choose ``player``'s opponent from, as :meth:`standings` gives them.
        When the only row stored since the cached fit is ``player`` itself, they are the
        cached fit with ``player`` added (``with_new_players``): the same fit, bit for bit,
        without reading and aggregating every game again."""
        version = self.store.version(self.arena_id)
        if self._standings is not None:
            (games, max_game, players, max_player), cached = self._standings
            if version == (games, max_game, players + 1, player.id) and player.id > max_player:
                grown = with_new_players(cached, [player], as_of=(max_game, player.id))
                self._standings = (version, grown)
                return grown
        return self._standings_at(version)

    def contender(self, best: Player) -> Player | None:
        """The strongest rival of ``best`` worth an extra match (highest P(best), from
        another trial, with prompts left to play), or ``None`` when the top is settled."""
        standings = self.standings()
        if len(standings.players) < 2:
            return None
        # Most trials are far from the top: that is sure without drawing P(best).
        if standings.p_best_below(best, self.p_best_threshold):
            return None
        p_best = standings.p_best()
        rivals = sorted(
            (p for p in standings.players if p.id != best.id and p.trial != best.trial),
            key=lambda p: -p_best[standings.index[p.id]],
        )
        for rival in rivals:
            if p_best[standings.index[rival.id]] < 0.01:
                return None
            played = self.store.played_positions(self.arena_id, best.id, rival.id)
            if len(played) < len(self.prompts):
                return rival
        return None

    # --- the Optuna-facing API -----------------------------------------------------------------
    def evaluate(self, trial: Any, step: int, generations: Sequence[str]) -> EvaluationResult:
        """Score a checkpoint from its responses to the prompt set.

        Stores the generations, plays a match against :meth:`opponent` (the incumbent's
        trial at the same step, else the incumbent: the baseline, or nobody, for the very
        first checkpoint; never a FAILED trial's checkpoint), refits, reports the score to
        the trial (``trial.report(score, step)``) and returns what happened.

        Raises:
            TypeError, ValueError: generations that are not one string per prompt, a step
                that is not an integer, or other responses for a checkpoint already stored.
            JudgeFailedError: the judge failed to answer on every attempt.
            InvalidVerdictError: the judge returned a malformed verdict (after the
                well-formed ones were stored). Both judge errors are recorded on the trial
                as ``pandalm_error``.
            StoreError: the database stayed unreachable past the store's outage bound.
        """
        number = trial_number(trial)
        step = checkpoint_step(step)
        texts = self._check_generations(generations, f"trial {number} step {step}")
        calls_before = self.judge_calls
        _trial.record_worker(trial)
        player = self._add_checkpoint(number, step, texts)
        opponent = self.opponent(player, skip_trials=_trial.failed_trials(trial))
        outcome = MatchOutcome()
        if opponent is not None:
            with _recording_judge_errors(trial):
                outcome = self.play(player, opponent)
        standings = self.standings()
        score = standings.score(player)
        _trial.report(trial, score, step)
        _logger.info(
            "%s: %+.3f against %s (%d-%d-%d)",
            player.label,
            score,
            opponent.label if opponent else "nobody",
            outcome.wins,
            outcome.ties,
            outcome.losses,
        )
        return EvaluationResult(
            player=player,
            opponent=opponent,
            score=score,
            wins=outcome.wins,
            ties=outcome.ties,
            losses=outcome.losses,
            invalid=outcome.invalid,
            judge_calls=self.judge_calls - calls_before,
            p_value=outcome.p_value,
            stopped_early=outcome.stopped_early,
            # This player's only (one solve; all of them is O(n^3)), when first read.
            interval=functools.partial(standings.interval, player),
        )

    def finalize(self, trial: Any) -> float:
        """The trial's value: the current score of its best checkpoint.

        Raises ``optuna.TrialPruned`` when the study's pruner prunes the trial (after
        recording why in its user attribute ``pandalm_pruned``). When the best checkpoint
        may be the study's best (P(best) >= ``p_best_threshold``), plays up to
        ``max_extra_matches`` extra matches against the other contenders with the highest
        P(best), so the leader is settled without a round robin.

        While the trial runs, its user attributes ``pandalm_best_step`` and ``pandalm_score``
        get the chosen checkpoint and its score as of now; Optuna freezes them with the
        trial, so they keep that meaning as scores move. Nothing is published to the study
        here: pass :class:`~optuna_pandalm.publish.PublishCallback` to ``study.optimize``
        for the leaderboard and the trial's note.
        """
        number = trial_number(trial)
        own = self.trial_players(number)
        _trial.raise_if_pruned(trial, number, own, self.standings)
        if not own:
            raise ValueError(f"trial {number} has no evaluated checkpoint: call evaluate() first")
        best = self.standings().best_of(own)
        for _ in range(self.max_extra_matches):
            rival = self.contender(best)
            if rival is None:
                break
            with _recording_judge_errors(trial):
                self.play(best, rival, kind="top")
            best = self.standings().best_of(own)
        standings = self.standings()
        _trial.record_finish(trial, standings, best)
        return standings.score(best)

    # --- what happened, for people -------------------------------------------------------------
    def check(self) -> dict[str, list[str]]:
        """Integrity problems of the stored data, by kind (all lists empty when sound):
        duplicates, orphans, games counting invalid verdicts, stored winners outside 0, 1,
        2 and NULL, players without their generations. What the Optuna study adds
        (unknown trials, trials left RUNNING, published scores against a refit) is
        :func:`optuna_pandalm.study.check_study`'s.
        """
        return self.store.integrity(self.arena_id, len(self.prompts))

    def judge_warnings(self) -> list[str]:
        """Sentences saying that a judge of this study's stored games looks degenerate (one
        label in 90% or more of its games; see :mod:`optuna_pandalm.judges.evaluation`),
        empty when none does. Judged on studies shown in random order with
        :data:`~optuna_pandalm.arena._judge_watch.MIN_VERDICTS` games or more of a judge;
        while judging, match play logs the same sentences once, after the first verdicts."""
        counts = self.store.game_counts(self.arena_id, by_annotator=True)
        return stored_judge_warnings(counts, position=self.position)

    def match_record(self, player: Player, opponent: Player) -> tuple[int, int, int]:
        """(wins, ties, losses) of ``player`` against ``opponent`` over all their games."""
        return self.store.pair_record(self.arena_id, player.id, opponent.id)

    def reasons(self, player: Player, *, limit: int = 3) -> list[tuple[int, str]]:
        """A few (prompt position, judge's reason) pairs from the player's games."""
        return self.store.reasons(self.arena_id, player.id, limit=limit)

    def game_examples(self, player: Player, *, limit: int = 3) -> list[dict[str, Any]]:
        """A few of the player's latest games with both responses, the outcome and the
        judge's reason and reference."""
        return self.store.game_details(self.arena_id, player.id, limit=limit)

    def verdict_counts(self) -> dict[str, int]:
        """Games, verdicts behind them and invalid verdicts of this study."""
        return self.store.verdict_counts(self.arena_id)

    def judge_names(self) -> list[str]:
        """The names of the judges whose verdicts are behind this study's games, from the
        store (an arena opened with :meth:`load` judges nothing itself)."""
        return self.store.judge_names(self.arena_id)

    def incumbent_opponents(self, player: Player) -> list[Player]:
        """The players ``player`` challenged as the then-incumbent, oldest first."""
        ids = self.store.opponents(self.arena_id, player.id, kind="incumbent")
        by_id = {r.id: as_player(r) for r in self.store.players(self.arena_id, ids=ids)}
        return [by_id[i] for i in ids]


def _both(first: Callable[[], bool] | None, second: Callable[[], bool]) -> Callable[[], bool]:
    """A ``go_on`` that goes on while both do (``first`` may be absent)."""
    return second if first is None else lambda: first() and second()


@contextlib.contextmanager
def _recording_judge_errors(trial: Any) -> Iterator[None]:
    """Record a judge's failure on the trial (``pandalm_error``, what ``docs/storage.md``
    promises) before it ends the trial."""
    try:
        yield
    except (JudgeFailedError, InvalidVerdictError) as error:
        _trial.record(trial, ERROR_ATTR, str(error)[:2000])
        raise


def _open_store(storage: str | ArenaStore, **options: bool) -> ArenaStore:
    """The store at a URL (opened with ``options``), or the store given."""
    if isinstance(storage, str):
        return Store(storage, **options)
    if not isinstance(storage, ArenaStore):
        raise TypeError(f"storage must be a URL or a Store, got {type(storage).__name__}")
    return storage


def refuse_another_prompt_set(
    store: ArenaStore,
    study_name: str,
    prompts: Sequence[Prompt],
    *,
    position: str | None = None,
    length_control: bool | None = None,
    robust_errors: bool | None = None,
) -> None:
    """Refuse, before anything is written, a study bound to other prompts, or to another
    value of a scoring setting given here (``None``: the study's, accepted).

    Raises:
        PromptSetMismatchError: naming the study, the storage and both prompt set hashes,
            or both values of the setting.
    """
    settings = store.arena_settings(study_name)
    if settings is None:
        return
    stored = store.prompt_set_hash(settings["prompt_set_id"])
    given = prompt_set_hash(prompts)
    if stored != given:
        raise PromptSetMismatchError(
            f"study {study_name!r} in {store.masked_url!r} already uses prompt "
            f"set {stored[:12]}, not {given[:12]} ({len(prompts)} prompts); "
            "use the same prompts or another study name"
        )
    scoring = {
        "position": position,
        "length_control": length_control,
        "robust_errors": robust_errors,
    }
    refuse_other_settings(study_name, store.masked_url, settings, scoring)


class _ReadOnlyJudge(PairwiseJudge):
    """The judge of an arena opened with :meth:`Arena.load`: it must not be called."""

    name = "read-only"

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        raise RuntimeError("this arena was opened read-only (Arena.load): it cannot judge")
