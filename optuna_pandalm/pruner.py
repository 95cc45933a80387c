"""Prune trials whose checkpoints lose to the incumbent's trial, significantly."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna.pruners import BasePruner

from optuna_pandalm.sign_test import sign_test
from optuna_pandalm.study_direction import require_maximize

if TYPE_CHECKING:
    import optuna

    from optuna_pandalm.arena import Arena, Player

__all__ = ["JudgePruner"]


class JudgePruner(BasePruner):
    """Prune a trial whose newest checkpoint lost significantly to its opponent.

    Each checkpoint plays the opponent :meth:`~optuna_pandalm.Arena.opponent` picks: the
    incumbent's trial at the same step when it has one. "Significantly" is a one-sided sign
    test (ties split) of the checkpoint's games against that opponent.

    * A loss at the same step (level ``alpha``) prunes at once: like for like, as Optuna's
      pruners compare intermediate values at one step. A dip every trial takes at some
      epoch (PandaLM Appendix J) is a dip on both sides, so it does not prune.
    * A loss to an opponent at another step (a later, better-trained checkpoint) prunes
      only when the newest ``patience`` checkpoints all lost so, because a checkpoint can
      dip and recover.

    Never prunes: before ``n_warmup_steps``; when there is no incumbent (an arena that has
    judged nothing); the incumbent's own trial.

    Args:
        arena: The study's :class:`~optuna_pandalm.Arena`.
        alpha: Level of each one-sided test (0..1).
        n_warmup_steps: Steps before which nothing is pruned.
        patience: Consecutive significant losses needed against opponents at other steps
            (>= 1).
        same_step: Whether one significant loss at the same step is enough (``False``:
            every loss needs ``patience``).

    Raises:
        ValueError: From ``prune`` (``trial.should_prune()``), when the study is not
            single-objective with ``direction="maximize"``, as ``BradleyTerrySampler``.
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

    def _beaten_by(self, player: Player) -> Player | None:
        """The opponent of ``player``'s match that beat it significantly, or ``None``."""
        opponents = self.arena.incumbent_opponents(player)
        if not opponents:
            return None
        wins, ties, losses = self.arena.match_record(player, opponents[-1])
        lost = sign_test(wins, ties, losses, alternative="less") < self.alpha
        return opponents[-1] if lost else None

    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        require_maximize(study, "JudgePruner")
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        players = self.arena.trial_players(trial.number)
        if not players:
            return False
        incumbent = self.arena.incumbent()
        if incumbent is None or incumbent.trial == trial.number:
            return False
        winner = self._beaten_by(players[-1])
        if winner is None:
            return False
        if self.same_step and winner.step == players[-1].step:
            return True
        if len(players) < self.patience:
            return False
        return all(self._beaten_by(p) is not None for p in players[-self.patience : -1])
