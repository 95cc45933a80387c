"""Match play: who is shown first, racing, the verdict cache, and what a judge failure means.

This is the one place that talks to the judge. Its rules:

* What the judge returns is checked and canonicalised once, here
  (:func:`~optuna_pandalm.judges.base.canonical_verdict`): a malformed verdict is a bug in
  the judge, raised at once naming the judge and the request, never retried or stored.
* Only a real judge output is cached: a parsed verdict, or the model's unparseable text
  (an *invalid* verdict, counted and reported, never silently a tie). A failure to answer
  (an exception, :class:`~optuna_pandalm.judges.base.JudgeUnavailableError`) is retried
  with backoff and never cached; what the judge did answer in a failed batch is kept.
* Verdicts are saved before their games; verdicts the store could not take stay in memory
  and are saved first at the next call, so a database outage loses no judge call. With a
  :class:`~optuna_pandalm.store.Journal`, every verdict and batch of games is also written
  to local disk (fsynced) before the store is asked, and forgotten once stored, so a
  worker that dies with them unsaved loses nothing: the next arena replays them.
* A malformed verdict (a bug in the judge) is raised after the well-formed verdicts of the
  same call are saved.
* After the first verdicts of the judge in this arena, a degenerate judge (one label, such
  as "the response shown first wins", in 90% or more of them) is logged once as a WARNING
  (:class:`~optuna_pandalm.arena._judge_watch.JudgeWatch`).
* Two answers that are the same text are a tie whatever the judge would say: the judge is
  not asked. The game is stored as a tie (so records show it and the pair does not play
  that prompt again) on a verdict of the judge's key whose reason says so
  (:data:`IDENTICAL_REASON`; a verdict the cache already holds for that key is used as it
  is), and the fit leaves it out (``docs/statistics.md``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from optuna_pandalm.arena._judge_watch import JudgeWatch
from optuna_pandalm.arena._players import Player
from optuna_pandalm.arena._rules import POSITIONS, MatchRules
from optuna_pandalm.errors import (
    InvalidVerdictError,
    JudgeFailedError,
    JudgeInputError,
    JudgeRefusedError,
    JudgeTimeoutError,
    JudgeUnavailableError,
)
from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict, canonical_verdict
from optuna_pandalm.outcomes import Side, check_winner, outcome_of, side
from optuna_pandalm.prompts import Prompt
from optuna_pandalm.statistics.sign_test import sign_test
from optuna_pandalm.store import (
    HUMAN_PREFIX,
    ArenaStore,
    GameRecord,
    Journal,
    StoredVerdict,
    VerdictKey,
    text_hash,
)

__all__ = [
    "IDENTICAL_REASON",
    "POSITIONS",
    "JudgeFailedError",
    "MatchOutcome",
    "MatchPlay",
    "MatchProgress",
]

_logger = logging.getLogger(__name__)

IDENTICAL_REASON = "identical answers: a tie, the judge was not asked"
"""The reason stored on the tie recorded for two answers that are the same text."""


@dataclasses.dataclass(frozen=True)
class MatchOutcome:
    """A match from the challenger's side: its wins, ties and losses in this match, the
    invalid verdicts, the two-sided sign test's p-value, and whether racing stopped it."""

    wins: int = 0
    ties: int = 0
    losses: int = 0
    invalid: int = 0
    p_value: float | None = None
    stopped_early: bool = False


@dataclasses.dataclass(frozen=True)
class MatchProgress:
    """A match being played, after each batch: ``games`` played of the ``budget`` (the
    prompts the pair has not played yet; racing may stop sooner), the challenger's record
    so far, and whether the match is over."""

    challenger: Player
    opponent: Player
    games: int
    budget: int
    wins: int
    ties: int
    losses: int
    done: bool


class MatchPlay:
    """Plays matches between two players of one arena by its :class:`MatchRules`; see the
    module docstring.

    ``observers`` are called with a :class:`MatchProgress` as a match starts and after each
    batch (progress displays); they must not raise.
    """

    def __init__(
        self,
        store: ArenaStore,
        arena_id: int,
        judge: PairwiseJudge,
        prompts: Sequence[Prompt],
        rules: MatchRules,
        journal: Journal | None = None,
    ) -> None:
        if str(judge.name).startswith(HUMAN_PREFIX):
            # People's votes are stored under such names; a judge must never read them.
            raise ValueError(f"judge name {judge.name!r}: {HUMAN_PREFIX!r} is for people")
        self.store = store
        self.arena_id = arena_id
        self.judge = judge
        self.prompts = list(prompts)
        self.rules = rules
        self.judge_calls = 0
        self.cache_hits = 0
        self._unsaved: dict[VerdictKey, StoredVerdict] = {}
        self.journal = journal
        self._journal_failed = False  # a save failed: the journal may hold the only copy
        self._match: dict[str, int] | None = None  # the match being played, for the journal
        self.observers: list[Callable[[MatchProgress], None]] = []
        self._watch = JudgeWatch(f"judge {judge.name}", position=rules.position)

    # --- the verdict cache and the judge ---------------------------------------------------
    def verdicts(
        self, requests: Sequence[JudgeRequest], keys: Sequence[VerdictKey]
    ) -> list[StoredVerdict]:
        """Stored verdicts for the requests: from the cache, else from the judge."""
        self._save_unsaved()
        cached = self.store.find_verdicts(self.judge.name, keys)
        for verdict in cached.values():
            try:
                check_winner(verdict.winner)
            except ValueError:
                raise InvalidVerdictError(
                    f"cached verdict {verdict.id} of judge {self.judge.name!r} has winner "
                    f"{verdict.winner!r}, not 0, 1, 2 or NULL (written by an older version "
                    "from a judge returning numpy or bool values): run `optuna-pandalm check`"
                ) from None
        missing = [i for i, key in enumerate(keys) if key not in cached]
        self.cache_hits += len(keys) - len(missing)
        if missing:
            fresh = self._judge([requests[i] for i in missing], [keys[i] for i in missing])
            cached.update(fresh)
        return [cached[key] for key in keys]

    def certain_ties(self, keys: Sequence[VerdictKey]) -> list[StoredVerdict]:
        """Stored verdicts for keys whose two answers are the same text, without asking the
        judge: the cached one, else a tie saved with :data:`IDENTICAL_REASON`."""
        if not keys:
            return []
        self._save_unsaved()
        found = self.store.find_verdicts(self.judge.name, keys)
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        found.update(
            self._save([(key, StoredVerdict(0, reason=IDENTICAL_REASON)) for key in missing])
        )
        return [found[key] for key in keys]

    def _judge(
        self, requests: list[JudgeRequest], keys: list[VerdictKey]
    ) -> dict[VerdictKey, StoredVerdict]:
        """Judge the requests, retrying those the judge failed to answer; every answer is
        saved as soon as it arrives."""
        saved: dict[VerdictKey, StoredVerdict] = {}
        remaining = list(range(len(requests)))
        for attempt in range(self.rules.judge_retries + 1):
            start = time.perf_counter()
            refused = False
            try:
                answers = self.judge.judge([requests[i] for i in remaining])
                error: Exception | None = None
                completed, malformed = self._checked(answers, remaining)
            except (InvalidVerdictError, JudgeTimeoutError):  # a bug, or a hung call
                raise
            except JudgeInputError as failure:  # the same requests would fail the same way
                raise JudgeFailedError(
                    f"judge {self.judge.name!r} cannot answer {len(remaining)} of "
                    f"{len(requests)} requests, and retrying cannot change that: {failure}"
                ) from failure
            except Exception as failure:  # OOM, HTTP, timeouts: a failure to answer
                error, malformed = failure, None
                refused = isinstance(failure, JudgeRefusedError)
                partial = failure.completed if isinstance(failure, JudgeUnavailableError) else {}
                completed = {
                    remaining[j]: canonical_verdict(v, judge=self.judge.name, index=remaining[j])
                    for j, v in partial.items()
                    if 0 <= j < len(remaining)
                }
            latency = (time.perf_counter() - start) / max(len(remaining), 1)
            answered = sorted(completed.items())
            self.judge_calls += len(answered)
            saved.update(self._save([(keys[i], _stored(v, latency)) for i, v in answered]))
            if malformed is not None:
                raise malformed  # the well-formed verdicts of the call are saved
            done = {i for i, _ in answered}
            remaining = [i for i in remaining if i not in done]
            if error is None or not remaining:
                return saved
            if refused:  # the server said no (HTTP 4xx): asking again cannot change that
                raise JudgeFailedError(
                    f"judge {self.judge.name!r} was refused on {len(remaining)} of "
                    f"{len(requests)} requests, and retrying cannot change that: {error}"
                ) from error
            if attempt == self.rules.judge_retries:
                raise JudgeFailedError(
                    f"judge {self.judge.name!r} failed {attempt + 1} times on "
                    f"{len(remaining)} of {len(requests)} requests: "
                    f"{type(error).__name__}: {error}"
                ) from error
            wait = self.rules.judge_backoff * 2**attempt
            _logger.warning(
                "judge failed on %d requests (%s); retry %d in %.1f s",
                len(remaining),
                error,
                attempt + 1,
                wait,
            )
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _checked(
        self, answers: object, indices: list[int]
    ) -> tuple[dict[int, Verdict], InvalidVerdictError | None]:
        """The judge's well-formed answers to the requests ``indices`` (by index), checked
        and canonicalised, and the error of the first malformed one (naming the request's
        index in the caller's batch). Answers that cannot be matched to their requests (not
        a list, the wrong number) raise at once."""
        expected = len(indices)
        if not isinstance(answers, Sequence) or isinstance(answers, (str, bytes)):
            raise InvalidVerdictError(
                f"judge {self.judge.name!r} returned {type(answers).__name__}, "
                "not a list of verdicts"
            )
        if len(answers) != expected:
            raise InvalidVerdictError(
                f"judge {self.judge.name!r} returned {len(answers)} verdicts "
                f"for {expected} requests"
            )
        checked: dict[int, Verdict] = {}
        malformed: InvalidVerdictError | None = None
        for i, answer in zip(indices, answers, strict=True):
            try:
                checked[i] = canonical_verdict(answer, judge=self.judge.name, index=i)
            except InvalidVerdictError as error:
                malformed = malformed or error
        return checked, malformed

    def _save(
        self, items: list[tuple[VerdictKey, StoredVerdict]]
    ) -> dict[VerdictKey, StoredVerdict]:
        if not items:
            return {}
        self._journal_write(lambda journal: journal.verdicts(self.judge.name, items, self._match))
        try:
            saved = self.store.save_verdicts(self.judge.name, items)
        except Exception:
            # The judge's work is the expensive part: keep it for the next call.
            self._unsaved.update(items)
            self._journal_failed = True
            raise
        self._settled()
        return saved

    def _save_unsaved(self) -> None:
        if self._unsaved:
            items = list(self._unsaved.items())
            self.store.save_verdicts(self.judge.name, items)
            self._unsaved.clear()
            _logger.info("saved %d verdicts kept through a storage failure", len(items))
            self._settled()

    def _save_games(self, match_id: int, records: list[GameRecord]) -> None:
        self._journal_write(lambda journal: journal.games(match_id, records))
        try:
            self.store.save_games(self.arena_id, match_id, records)
        except Exception:
            self._journal_failed = True
            raise
        self._settled()

    def _journal_write(self, write: Callable[[Journal], None]) -> None:
        """Write to the journal; a journal that cannot be written (a full or read-only
        disk) is given up with a warning: the store may still take everything."""
        if self.journal is None:
            return
        try:
            write(self.journal)
        except OSError as error:
            _logger.warning(
                "cannot write the verdict journal in %s (%s): going on without it",
                self.journal.folder,
                error,
            )
            self.journal = None

    def _settled(self) -> None:
        """The store took a write: forget the journal once nothing waits in memory (after
        a failure, first store everything in it: a failed batch's games are only there)."""
        if self.journal is None or self._unsaved:
            return
        if self._journal_failed:
            self.journal.replay_own(self.store)
            self._journal_failed = False
        else:
            self.journal.forget()

    # --- matches ---------------------------------------------------------------------------
    def _request(self, position: int, first: str, second: str) -> tuple[JudgeRequest, VerdictKey]:
        prompt = self.prompts[position]
        request = JudgeRequest(
            prompt.instruction, first, second, input=prompt.input, reference=prompt.reference
        )
        return request, VerdictKey(prompt.hash, text_hash(first), text_hash(second))

    def play(
        self,
        challenger: Player,
        opponent: Player,
        *,
        kind: str,
        short: bool = False,
        go_on: Callable[[], bool] | None = None,
    ) -> MatchOutcome:
        """Play the prompts the two have not played yet, in seeded batches, until racing's
        sign test is clear (after ``min_games``) or the prompts run out.

        With ``short`` (and ``short_match`` set), a challenger still behind its opponent
        (fewer wins than losses) after ``short_match`` games stops there: only challengers
        level with their opponent play the whole prompt set. ``go_on``, asked after each
        batch once ``min_games`` are played (the batch's games are stored by then), stops
        the match when it returns ``False``.
        """
        rules = self.rules
        a, b = (self.store.generations(p.id) for p in (challenger, opponent))
        done = self.store.played_positions(self.arena_id, challenger.id, opponent.id)
        # Seeded by the responses, not the player ids: the same two sets of responses get the
        # same prompt order and the same shown orders in any study, so cached verdicts hit.
        content = text_hash("\x00".join(a) + "\x01" + "\x00".join(b))
        rng = np.random.default_rng([rules.seed, int(content[:15], 16)])
        order = [int(i) for i in rng.permutation(len(self.prompts)) if int(i) not in done]
        coins = rng.random(len(self.prompts)) < 0.5
        match_id = self.store.start_match(self.arena_id, challenger.id, opponent.id, kind=kind)
        self._match = {"id": match_id, "challenger": challenger.id, "opponent": opponent.id}
        wins = ties = losses = invalid = 0
        p_value: float | None = None
        stopped = False

        def tell(done: bool) -> None:
            played = wins + ties + losses
            for observe in self.observers:
                observe(
                    MatchProgress(
                        challenger, opponent, played, len(order), wins, ties, losses, done
                    )
                )

        tell(False)
        for start in range(0, len(order), rules.batch_size):
            batch = order[start : start + rules.batch_size]
            shown = [(p, first) for p in batch for first in self._shown_orders(bool(coins[p]))]
            same = [(p, True) for p in batch if a[p] == b[p]]
            shown = [(p, first) for p, first in shown if a[p] != b[p]]
            built = [
                self._request(p, a[p], b[p]) if first else self._request(p, b[p], a[p])
                for p, first in shown
            ]
            verdicts = self.verdicts([r for r, _ in built], [k for _, k in built])
            sentences = self._watch.add([v.winner for v in verdicts])
            if sentences:
                _logger.warning("in this study's first matches, %s", " ".join(sentences))
            ties_for_sure = self.certain_ties([self._request(p, a[p], a[p])[1] for p, _ in same])
            # The challenger's side of each verdict (None: invalid), with the verdict's id.
            results: dict[int, list[tuple[Side | None, int | None]]] = {}
            for (p, first), verdict in zip(shown, verdicts, strict=True):
                ours = None if verdict.winner is None else side(verdict.winner, shown_first=first)
                results.setdefault(p, []).append((ours, verdict.id))
            for (p, _), verdict in zip(same, ties_for_sure, strict=True):
                results[p] = [(Side.TIE, verdict.id)]
            records = []
            for p, seen in results.items():
                valid = [(s, v) for s, v in seen if s is not None]
                invalid += len(seen) - len(valid)
                if not valid:
                    continue
                sides = {s for s, _ in valid}
                # Conflicting orders: a tie.
                result = valid[0][0] if len(sides) == 1 else Side.TIE
                challenger_first = rules.position != "random" or bool(coins[p])
                outcome = outcome_of(result, shown_first=challenger_first)
                pair = (challenger.id, opponent.id)
                first_id, second_id = pair if challenger_first else pair[::-1]
                verdict_id = valid[0][1]
                assert verdict_id is not None  # stored verdicts have ids
                records.append(GameRecord(p, first_id, second_id, verdict_id, outcome))
                wins += result == Side.WIN
                ties += result == Side.TIE
                losses += result == Side.LOSS
            self._save_games(match_id, records)
            p_value = sign_test(wins, ties, losses)
            played = wins + ties + losses
            decided = rules.racing and played >= rules.min_games and p_value < rules.racing_alpha
            behind = (
                short
                and rules.short_match is not None
                and played >= rules.short_match
                and wins < losses
            )
            moot = go_on is not None and played >= rules.min_games and not go_on()
            if decided or behind or moot:
                stopped = start + rules.batch_size < len(order)
                break
            tell(False)
        tell(True)
        return MatchOutcome(wins, ties, losses, invalid, p_value, stopped)

    def _shown_orders(self, coin: bool) -> tuple[bool, ...]:
        """Whether the challenger is shown first, per judge call on one prompt."""
        if self.rules.position == "swap":
            return (True, False)
        if self.rules.position == "fixed":
            return (True,)
        return (coin,)


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
