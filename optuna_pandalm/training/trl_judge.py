"""For users of TRL's removed judges: the old pairwise shape over our judges, and a win rate
against a baseline played in the arena.

TRL removed ``BasePairwiseJudge`` (``PairRMJudge``, ``HfPairwiseJudge``,
``OpenAIPairwiseJudge``) and ``WinRateCallback`` in April 2026 (huggingface/trl#5485). Code
written against them calls ``judge.judge(prompts, completions, shuffle_order=True)`` and gets
one index per prompt: ``0`` or ``1`` for the preferred completion, ``-1`` when the judge
failed. :class:`TRLPairwiseJudge` answers that call with any of our
:class:`~optuna_pandalm.PairwiseJudge` (PandaLM, a reward model, a vLLM server, ...);
:func:`baseline_win_rate` replaces the callback's ``eval_win_rate``. See ``docs/trl.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from optuna_pandalm.judges.base import JudgeRequest

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena
    from optuna_pandalm.judges.base import PairwiseJudge

__all__ = ["TRLPairwiseJudge", "baseline_win_rate"]


class TRLPairwiseJudge:
    """Our pairwise judge behind TRL's old ``BasePairwiseJudge.judge`` signature.

    Args:
        judge: Any :class:`~optuna_pandalm.PairwiseJudge`.
        tie: What a tie becomes (TRL's pairwise judges had no ties): ``-1`` (the default,
            counted like a failure, so never as a win) or ``0`` / ``1``.
        seed: Seeds the order shuffling (``shuffle_order=True``).

    ``judge(prompts, completions, shuffle_order=True)`` takes one prompt (the instruction)
    and one pair of completions per row and returns one ``int`` per row: ``0`` or ``1``,
    the index of the preferred completion, ``-1`` for an invalid verdict (or a tie). With
    ``shuffle_order`` each pair is shown in a random order and the answer mapped back, as
    TRL's judges did to average out the judge's position bias.

    Example:
        >>> from optuna_pandalm.testing import SimulatedJudge, simulated_response
        >>> judge = TRLPairwiseJudge(SimulatedJudge(noise=0, position_bias=0), seed=0)
        >>> weak, strong = simulated_response(-4.0), simulated_response(4.0)
        >>> judge.judge(["Say hi.", "Say bye."], [[weak, strong], [strong, weak]])
        [1, 0]
    """

    def __init__(self, judge: PairwiseJudge, *, tie: int = -1, seed: int | None = None) -> None:
        if tie not in (-1, 0, 1):
            raise ValueError(f"tie must be -1, 0 or 1, got {tie!r}")
        self.inner = judge
        self.tie = tie
        self._rng = np.random.default_rng(seed)

    def judge(
        self,
        prompts: Sequence[str],
        completions: Sequence[Sequence[str]],
        shuffle_order: bool = True,
    ) -> list[int]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completion pairs")
        for i, pair in enumerate(completions):
            if len(pair) != 2:
                raise ValueError(f"completions[{i}]: expected a pair, got {len(pair)} completions")
        flips = (
            self._rng.random(len(prompts)) < 0.5 if shuffle_order else np.zeros(len(prompts), bool)
        )
        requests = [
            JudgeRequest(prompt, *(pair[::-1] if flip else pair))
            for prompt, pair, flip in zip(prompts, completions, flips, strict=True)
        ]
        verdicts = self.inner.judge(requests)
        ranks = []
        for verdict, flip in zip(verdicts, flips, strict=True):
            if verdict.winner is None:
                ranks.append(-1)
            elif verdict.winner == 0:
                ranks.append(self.tie)
            else:
                shown = verdict.winner - 1  # index of the winner as shown
                ranks.append(1 - shown if flip else shown)
        return ranks


def baseline_win_rate(arena: Arena, trial: Any, *, step: int | None = None) -> float:
    """Share of prompts (0..1, ties count half) on which the trial's checkpoint beats the
    arena's baseline: what ``WinRateCallback`` logged as ``eval_win_rate``.

    The checkpoint is the trial's at ``step`` (default: its best so far). The prompts the two
    have not played yet are played now (verdicts cached, games stored like every other); an
    arena built with ``racing=True`` may stop that match once its sign test is clear, so
    build it with ``racing=False`` for a win rate over the whole prompt set.

    Raises:
        ValueError: the arena has no baseline, or the trial no checkpoint at ``step``.
    """
    if arena.baseline is None:
        raise ValueError(
            "the arena has no baseline: build it with Arena(..., baseline=(name, answers))"
        )
    own = arena.trial_players(trial)
    if step is None:
        player = arena.best_checkpoint(trial)
    else:
        player = next((p for p in own if p.step == step), None)
    if player is None:
        where = "any step" if step is None else f"step {step}"
        raise ValueError(f"the trial has no judged checkpoint at {where}")
    arena.play(player, arena.baseline, kind="baseline")
    wins, ties, losses = arena.match_record(player, arena.baseline)
    games = wins + ties + losses
    if games == 0:
        raise ValueError(f"{player.label} and the baseline have no valid game")
    return (wins + ties / 2) / games
