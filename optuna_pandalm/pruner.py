"""Prune trials whose checkpoints keep losing to the incumbent, significantly."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna.pruners import BasePruner

from optuna_pandalm.arena import sign_test

if TYPE_CHECKING:
    import optuna

    from optuna_pandalm.arena import Arena, Player

__all__ = ["JudgePruner"]


class JudgePruner(BasePruner):
    """Prune trials whose newest checkpoint lost significantly to the opponent the arena
    matched it against.

    "Significantly" is a one-sided sign test (ties split) of the checkpoint's games against
    that opponent at level ``alpha``. The arena matches a checkpoint with the incumbent's
    trial at the same step when it can (:meth:`~optuna_pandalm.Arena.opponent`), as Optuna's
    pruners compare intermediate values at one step; such a like-for-like loss prunes at
    once (``same_step=True``). A loss to an opponent at another step prunes only when the
    newest ``patience`` checkpoints all lost, because a checkpoint can dip and recover
    (PandaLM Appendix J): one bad epoch against a finished model never prunes by default.

    Never prunes: before ``n_warmup_steps``; when there is no incumbent; the incumbent's own
    trial.

    Args:
        arena: The study's :class:`~optuna_pandalm.Arena`.
        alpha: Level of each one-sided test (0..1).
        n_warmup_steps: Steps before which nothing is pruned.
        patience: Consecutive significant losses needed against opponents at other steps
            (>= 1).
        same_step: Whether one significant loss at the same step is enough.
    """

    def __init__(
        self,
        arena: Arena,
        *,
        alpha: float = 0.05,
        n_warmup_steps: int = 0,
        patience: int = 2,
        same_step: bool = True,
    ) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.arena = arena
        self.alpha = alpha
        self.n_warmup_steps = n_warmup_steps
        self.patience = patience
        self.same_step = same_step

    def _lost(self, player: Player) -> Player | None:
        """The opponent ``player`` lost to significantly in its last match, or ``None``."""
        opponents = self.arena.incumbent_opponents(player)
        if not opponents:
            return None
        wins, ties, losses = self.arena.match_record(player, opponents[-1])
        lost = sign_test(wins, ties, losses, alternative="less") < self.alpha
        return opponents[-1] if lost else None

    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        players = self.arena.trial_players(trial.number)
        if not players:
            return False
        incumbent = self.arena.incumbent()
        if incumbent is None or incumbent.trial == trial.number:
            return False
        winner = self._lost(players[-1])
        if winner is None:
            return False
        if self.same_step and winner.step == players[-1].step:
            return True
        if len(players) < self.patience:
            return False
        return all(self._lost(p) is not None for p in players[-self.patience : -1])
