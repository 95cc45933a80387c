"""Learning curves for :class:`~optuna_pandalm.JudgePruner`'s curve rule (issue 27 §1).

A trial's later checkpoints are predictable from its early ones and from other trials'
curves (freeze-thaw BO, DyHPO, ifBO). The model here is the simplest of that family: each
checkpoint's Bradley–Terry score is its trial's own level plus a shape shared by every
trial at that step, ``score[i, t] = level[i] + shape[t] + noise`` with ``shape`` zero at the
last step any trial reached; it is fitted by weighted least squares (weights: one over the
score's variance plus the residual variance, refitted), so a trial's predicted score at
step ``t`` is ``level[i] + shape[t]``, with the level's standard error.

What a trial can still deliver is its best checkpoint: the best of its scores so far and
its predicted scores at the steps it has not reached. :func:`curve_p_best` draws every
trial's deliverable (finished and pruned trials: their best checkpoint's score; running
ones: the maximum of that and their predicted future, each normal) and returns each
trial's probability to deliver the best.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from optuna_pandalm.arena import Standings

__all__ = ["curve_p_best"]

_DRAWS = 2000
_SEED = 27


def curve_p_best(
    standings: Standings,
    running: Collection[int],
    *,
    skip_trials: Collection[int] = (),
    min_complete: int = 3,
) -> dict[int, float]:
    """Each trial's probability to deliver the study's best checkpoint, the ``running``
    trials' futures predicted by the shared-shape curve model; empty while fewer than
    ``min_complete`` trials reached the last step (no shape to share yet). Trials in
    ``skip_trials`` (failed ones) are left out.

    Example:
        >>> from optuna_pandalm import Arena
        >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
        >>> from optuna_pandalm.testing import simulated_response as answer
        >>> arena = Arena("sqlite://", "c", SimulatedJudge(), simulated_prompts(40), seed=0)
        >>> for trial, level in enumerate([0.0, 0.5, 1.0, -2.0]):
        ...     for step in (1, 2) if trial == 3 else (1, 2, 3):
        ...         _ = arena.evaluate(trial, step, [answer(level + step)] * 40)
        >>> p = curve_p_best(arena.standings(), running={3})
        >>> p[3] < 0.01 < p[2]
        True
    """
    scores, stderr = standings.scores, standings.result.stderr
    by_trial: dict[int, list[tuple[int, float, float]]] = {}
    for row, player in enumerate(standings.players):
        if player.trial is None or player.step is None or player.trial in skip_trials:
            continue
        by_trial.setdefault(player.trial, []).append(
            (player.step, float(scores[row]), float(stderr[row]))
        )
    if not by_trial:
        return {}
    steps = sorted({s for points in by_trial.values() for s, _, _ in points})
    last = steps[-1]
    complete = [t for t, points in by_trial.items() if any(s == last for s, _, _ in points)]
    if len(complete) < min_complete:
        return {}
    trials = sorted(by_trial)
    column = {s: k for k, s in enumerate(steps)}
    score = np.full((len(trials), len(steps)), np.nan)
    variance = np.full_like(score, np.nan)
    for r, t in enumerate(trials):
        for s, value, se in by_trial[t]:
            # The anchor's score is exact (0): a floor keeps its weight finite.
            score[r, column[s]], variance[r, column[s]] = value, max(se**2, 1e-4)
    level, level_se, shape, residual = _fit(score, variance)
    future_sd = np.sqrt(level_se**2 + residual)  # the future checkpoint's own noise too
    rng = np.random.default_rng(_SEED)
    draws = np.empty((_DRAWS, len(trials)))
    for r, t in enumerate(trials):
        seen = ~np.isnan(score[r])
        best = int(np.nanargmax(score[r]))
        deliver = score[r, best] + np.sqrt(variance[r, best]) * rng.standard_normal(_DRAWS)
        ahead = [k for k in range(len(steps)) if k > np.flatnonzero(seen).max()]
        if t in running and ahead:
            future = level[r] + future_sd[r] * rng.standard_normal(_DRAWS)
            deliver = np.maximum(deliver, future + shape[ahead].max())
        draws[:, r] = deliver
    winners = np.bincount(np.argmax(draws, axis=1), minlength=len(trials)) / _DRAWS
    return {t: float(winners[r]) for r, t in enumerate(trials)}


def _fit(
    score: np.ndarray, variance: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Levels, their standard errors, the shared shape (0 at the last step) and the
    residual variance of the additive model, by alternating weighted least squares."""
    seen = ~np.isnan(score)
    y = np.where(seen, score, 0.0)
    shape = np.zeros(score.shape[1])
    residual = 0.0
    for _ in range(3):  # refit the residual variance a few times
        weight = np.where(seen, 1.0 / (np.where(seen, variance, 1.0) + residual), 0.0)
        for _ in range(50):
            level = (weight * (y - shape)).sum(axis=1) / weight.sum(axis=1)
            total = weight.sum(axis=0)
            shape = np.where(
                total > 0,
                (weight * (y - level[:, None])).sum(axis=0) / np.maximum(total, 1e-12),
                0,
            )
            shape -= shape[-1]
        level = (weight * (y - shape)).sum(axis=1) / weight.sum(axis=1)
        errors = (y - level[:, None] - shape)[seen]
        dof = max(int(seen.sum()) - len(level) - len(shape) + 1, 1)
        residual = float(max((errors**2).sum() / dof - np.nanmean(variance), 0.0))
    weight = np.where(seen, 1.0 / (np.where(seen, variance, 1.0) + residual), 0.0)
    return level, 1.0 / np.sqrt(weight.sum(axis=1)), shape, residual
