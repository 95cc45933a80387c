"""Is a study's judge degenerate? Its first verdicts in the study, checked once.

A judge that always names one position, or always ties, gives games that say nothing about
the checkpoints, and a study on it spends its budget on noise. ``judge-eval`` measures a
judge before a study; this module tells a user who skipped that, as soon as the study has
:data:`MIN_VERDICTS` verdicts of its judge, by the same rule
(:func:`optuna_pandalm.judges.evaluation.judge_warnings`) on the verdicts in the shown order.

The shown order says something about the judge only where it is independent of the players:
with ``position="random"`` (a coin per game) and ``"swap"`` (both orders). With ``"fixed"``
the challenger is always shown first, so "first shown wins" is the challenger's win rate, and
nothing is checked.

Position consistency is not checked here, though ``"swap"`` judges pairs in both orders: a
study's pairs are neighbouring checkpoints, often about equal, and between equals a sound
judge that draws its verdict anew for each order is consistent about a third of the time.
Measured: the simulated judge calibrated on PandaLM-7B (``SimulatedJudge.pandalm_7b``), in a
swap study of 3 checkpoints 0.5 or 1.0 log-odds apart, scored 0.30-0.53 on 30 pairs (6
seeds), under the 0.5 of ``judge-eval``'s rule (whose pairs are PandaLM's test set) in 4 of
6. A judge that always names one position still gives one label in every verdict, which
the share rule catches; ``judge-eval --swap`` measures consistency on pairs people told
apart.
"""

from __future__ import annotations

from collections.abc import Sequence

from optuna_pandalm.judges.evaluation import judge_warnings, verdict_shares
from optuna_pandalm.store import HUMAN_PREFIX, GameCounts

__all__ = ["MIN_VERDICTS", "JudgeWatch", "stored_judge_warnings"]

MIN_VERDICTS = 40
"""Valid (or invalid) verdicts of a study's judge before it is checked, once: enough that a
sound judge shown a random order is very unlikely to give one label 90% of the time (at
40 fair coin tosses, 36 heads or more has probability under 1e-6)."""

_WATCHED = ("random", "swap")
"""Positions whose shown order is independent of the players; see the module docstring."""


class JudgeWatch:
    """The verdicts of one arena's judge in the shown order, until the check at
    :data:`MIN_VERDICTS` valid or invalid verdicts; :meth:`add` returns the warning sentences
    then, once, and nothing before or after.

    Example:
        >>> watch = JudgeWatch("judge J", position="random")
        >>> watch.add([1] * 39)
        []
        >>> print(watch.add([1])[0][:22])
        judge J is degenerate:
        >>> watch.add([1])
        []
    """

    def __init__(self, judge: str, *, position: str) -> None:
        self.judge = judge
        self.done = position not in _WATCHED
        self._labels: list[int | None] = []

    def add(self, winners: Sequence[int | None]) -> list[str]:
        """Count a batch: each verdict's winner in the shown order (``None``: invalid).
        Returns the warning sentences at the check, else ``[]``."""
        if self.done:
            return []
        self._labels.extend(winners)
        valid = sum(label is not None for label in self._labels)
        if max(valid, len(self._labels) - valid) < MIN_VERDICTS:
            return []
        self.done = True
        return judge_warnings(verdict_shares(self._labels), judge=self.judge)


def stored_judge_warnings(counts: GameCounts, *, position: str) -> list[str]:
    """The warning sentences for each judge (not people) of a study's stored games, counted
    by annotator (:meth:`ArenaStore.game_counts` with ``by_annotator``), for a study whose
    judges played :data:`MIN_VERDICTS` games or more. Only with ``position="random"``: there
    a game's outcome is its verdict in the shown order; with ``"swap"`` a game joins two
    verdicts (conflicting ones are a tie), with ``"fixed"`` the shown order is the
    challenger's. Identical-answer games are left out: the judge was not asked.
    """
    if position != "random" or counts.annotator is None:
        return []
    sentences = []
    for judge in sorted(set(counts.annotator.tolist())):
        if str(judge).startswith(HUMAN_PREFIX):
            continue
        mine = counts.annotator == judge
        if counts.identical is not None:  # certain ties, not the judge's statements
            mine &= ~counts.identical
        outcomes = zip(counts.outcome[mine].tolist(), counts.count[mine].tolist(), strict=True)
        labels: list[int | None] = [int(o) for o, n in outcomes for _ in range(int(n))]
        if len(labels) >= MIN_VERDICTS:
            sentences += judge_warnings(verdict_shares(labels), judge=f"judge {judge}")
    return sentences
