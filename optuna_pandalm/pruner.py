"""Prune trials whose checkpoints keep losing to the incumbent, significantly."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna.pruners import BasePruner

from optuna_pandalm.arena import sign_test

if TYPE_CHECKING:
    import optuna

    from optuna_pandalm.arena import Arena

__all__ = ["JudgePruner"]


class JudgePruner(BasePruner):
    """Prune when the newest ``patience`` checkpoints each lost significantly to the
    incumbent they were matched against.

    "Significantly" is a one-sided sign test (ties split) of the checkpoint's games against
    that opponent at level ``alpha``. ``patience`` exists because a checkpoint can dip and
    recover (PandaLM Appendix J): one bad epoch never prunes by default.

    Never prunes: before ``n_warmup_steps``; with fewer than ``patience`` judged
    checkpoints; when there is no incumbent; the incumbent's own trial.

    Args:
        arena: The study's :class:`~optuna_pandalm.Arena`.
        alpha: Level of each one-sided test (0..1).
        n_warmup_steps: Steps before which nothing is pruned.
        patience: Consecutive significant losses needed (>= 1).
    """

    def __init__(
        self, arena: Arena, *, alpha: float = 0.05, n_warmup_steps: int = 0, patience: int = 2
    ) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.arena = arena
        self.alpha = alpha
        self.n_warmup_steps = n_warmup_steps
        self.patience = patience

    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        players = self.arena.trial_players(trial.number)
        if len(players) < self.patience:
            return False
        incumbent = self.arena.incumbent()
        if incumbent is None or incumbent.trial == trial.number:
            return False
        for player in players[-self.patience :]:
            opponents = self.arena.incumbent_opponents(player)
            if not opponents:
                return False
            wins, ties, losses = self.arena.match_record(player, opponents[-1])
            if sign_test(wins, ties, losses, alternative="less") >= self.alpha:
                return False
        return True
