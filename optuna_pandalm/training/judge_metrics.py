"""The judge's figures for one checkpoint, as the flat ``{name: float}`` a Trainer logs.

:class:`~optuna_pandalm.JudgeCallback` adds these to the Trainer's logs at each judged
checkpoint (so every ``report_to`` logger records them) and, prefixed with ``eval_``, to the
metrics of an evaluation (so ``metric_for_best_model="judge/score"`` can pick the best
checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna_pandalm.arena import EvaluationResult, Standings

__all__ = ["JUDGE_METRICS", "eval_metrics", "judge_metrics"]

# Every name judge_metrics() may return; ``judge/win_rate_vs_opponent`` only when a game
# was played (the very first checkpoint of a study has nobody to play).
JUDGE_METRICS = (
    "judge/score",
    "judge/ci_low",
    "judge/ci_high",
    "judge/p_best",
    "judge/win_rate_vs_opponent",
    "judge/games",
    "judge/pruned",
)


def judge_metrics(
    result: EvaluationResult, standings: Standings, *, pruned: bool
) -> dict[str, float]:
    """The judge's figures for the checkpoint ``result`` scored.

    ``judge/score``, ``judge/ci_low`` and ``judge/ci_high`` are log-odds against the anchor
    (the 95% interval); ``judge/p_best`` is the chance (0..1) that this checkpoint is the
    study's best; ``judge/win_rate_vs_opponent`` is (wins + ties / 2) / games of the match
    just played, left out when no game was played; ``judge/games`` the games of that match;
    ``judge/pruned`` 1.0 when the pruner stopped the trial here, else 0.0.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> import numpy as np
        >>> result = NS(player=NS(id=7), score=0.5, ci_low=0.1, ci_high=0.9,
        ...             wins=3, ties=2, losses=1, games=6)
        >>> standings = NS(index={7: 0}, p_best=lambda: np.array([0.8]))
        >>> judge_metrics(result, standings, pruned=False)["judge/win_rate_vs_opponent"]
        0.6666666666666666
    """
    metrics = {
        "judge/score": float(result.score),
        "judge/ci_low": float(result.ci_low),
        "judge/ci_high": float(result.ci_high),
        "judge/p_best": float(standings.p_best()[standings.index[result.player.id]]),
        "judge/games": float(result.games),
        "judge/pruned": 1.0 if pruned else 0.0,
    }
    if result.games:
        metrics["judge/win_rate_vs_opponent"] = (result.wins + result.ties / 2) / result.games
    return metrics


def eval_metrics(metrics: Mapping[str, float], prefix: str = "eval") -> dict[str, float]:
    """The same figures named as a Trainer names evaluation metrics (``eval_judge/score``):
    ``metric_for_best_model="judge/score"`` is looked up under that name.

    Example:
        >>> eval_metrics({"judge/score": 0.5})
        {'eval_judge/score': 0.5}
    """
    return {f"{prefix}_{name}": value for name, value in metrics.items()}
