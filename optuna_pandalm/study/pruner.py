"""Prune trials whose checkpoints lose to the incumbent's trial, significantly."""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import TYPE_CHECKING

from optuna.pruners import BasePruner

from optuna_pandalm.statistics.sign_test import sign_test
from optuna_pandalm.study.direction import require_maximize

if TYPE_CHECKING:
    import optuna

    from optuna_pandalm.arena import Arena, Player, Standings

__all__ = ["JudgePruner", "PruningReason"]


@dataclasses.dataclass(frozen=True)
class PruningReason:
    """The significant loss that prunes a trial: its checkpoint at ``step`` lost to
    ``opponent`` (a player label, at ``opponent_step``) with this record, at one-sided
    level ``alpha`` of ``test`` (the sign test of their games, or the score test of their
    Bradley–Terry scores); ``earlier`` counts the checkpoints before it that lost too (the
    ``patience`` rule). A prune by the rank rule has ``test="rank"``: the checkpoint ranked
    ``rank`` of ``peers`` at its step where the top ``kept`` go on, ``opponent`` is the
    last one kept, ``p_value`` the chance to be ahead of it and ``alpha`` the guard.

    Example:
        >>> print(PruningReason(4, "trial 1 step 4", 4, 2, 3, 15, 0.0007, 0.05))
        pruned at step 4: lost 2-3-15 (W-T-L) to trial 1 step 4 (sign test p = 0.0007 < 0.05)
    """

    step: int
    opponent: str
    opponent_step: int | None
    wins: int
    ties: int
    losses: int
    p_value: float
    alpha: float
    earlier: int = 0
    test: str = "sign test"
    rank: int = 0
    peers: int = 0
    kept: int = 0

    def __str__(self) -> str:
        if self.test == "curve":
            return (
                f"pruned at step {self.step}: its learning curve, predicted from its "
                f"checkpoints and the shape all trials share, gives it P(best) = "
                f"{self.p_value:.2g} < {self.alpha:g}"
            )
        if self.rank:
            return (
                f"pruned at step {self.step}: ranked {self.rank} of {self.peers} trials at "
                f"this step (the top {self.kept} go on); P(ahead of {self.opponent}, the "
                f"last one kept) = {self.p_value:.2g} < {self.alpha:g}"
            )
        text = (
            f"pruned at step {self.step}: lost {self.wins}-{self.ties}-{self.losses} (W-T-L) "
            f"to {self.opponent} ({self.test} p = {self.p_value:.2g} < {self.alpha:g})"
        )
        if self.earlier:
            text += f", after {self.earlier} earlier significant loss(es)"
        return text


class JudgePruner(BasePruner):
    """Prune a trial whose newest checkpoint lost significantly to its opponent (and, with
    ``rank_keep``, one whose first checkpoints rank low among all trials' at their step).

    Each checkpoint plays the opponent :meth:`~optuna_pandalm.Arena.opponent` picks: the
    incumbent's trial at the same step when it has one. "Significantly" is a one-sided sign
    test (ties split) of the checkpoint's games against that opponent.

    * A loss at the same step (level ``alpha``) prunes at once: like for like, as Optuna's
      pruners compare intermediate values at one step. A dip every trial takes at some
      epoch (PandaLM Appendix J) is a dip on both sides, so it does not prune.
    * A loss to an opponent at another step (a later, better-trained checkpoint) prunes
      only when the newest ``patience`` checkpoints all lost so, because a checkpoint can
      dip and recover.
    * The rank rule (off by default), as Optuna's ``SuccessiveHalvingPruner`` prunes at a
      rung: a trial's first ``rank_checkpoints`` checkpoints are ranked by score against
      every trial's checkpoint at the same step; one below the top ``rank_keep`` share is
      pruned unless the score test gives it at least ``rank_guard`` chance to be ahead of
      the last one kept. It needs no significant loss, so it stops near-equal trials that
      a judge as weak as PandaLM-7B cannot separate. Only early checkpoints: that is where
      pruning saves the most training, and later a dip the best trials take hardest
      (PandaLM Appendix J) would rank them low.

    Never prunes: before ``n_warmup_steps``; when there is no incumbent (an arena that has
    judged nothing); the incumbent's own trial.

    A FAILED trial's checkpoints never prune: a loss to one does not count, and neither
    the incumbent nor the rank rule's peers are taken from FAILED trials (the arena does
    not pick them as opponents either). Their games stay in the scores, being real
    verdicts, but a failed trial is no result the search can deliver (it has no value, and
    it may have failed because something broke: a judge that timed out mid-match, a worker
    killed, weights gone NaN after the judged step), so losing to it says nothing about
    whether a trial can still win. Optuna's median, percentile and Wilcoxon pruners likewise
    compare only with finished trials that have values. Losses to RUNNING and PRUNED
    trials' checkpoints count: a running trial may become the best, and a pruned one's
    checkpoints were judged to the end by the same rules (as ``SuccessiveHalvingPruner``
    compares with every trial that reached a rung).

    Two more opt-in levers (issue 27; figures: ``benchmarks/README.md``, "Search efficiency
    v3"): ``stop_matches`` stops a new checkpoint's match once no outcome of its remaining
    prompts can change this pruner's test or the incumbent (``stop_risk``: once no likely
    outcome can), and ``curve_floor`` prunes on a trial's P(best) predicted by a
    shared-shape learning-curve model. Not defaults: on the ``dips`` landscape the curve
    rule pruned the would-be-best trial, and 4 seeds cannot tell the stops' regret.

    The rank rule is opt-in: with the arena's ``contender_floor`` (``bt_tpe_lean`` in
    ``benchmarks/hpo_efficiency.py``) it trains fewer epochs with fewer judge calls, but it
    lost regret at 10 and 20 trainings (figures: ``benchmarks/README.md``).

    Args:
        arena: The study's :class:`~optuna_pandalm.Arena`.
        alpha: Level of each one-sided test (0..1).
        n_warmup_steps: Steps before which nothing is pruned.
        patience: Consecutive significant losses needed against opponents at other steps
            (>= 1).
        same_step: Whether one significant loss at the same step is enough (``False``:
            every loss needs ``patience``).
        evidence: ``"games"``: a sign test of the two players' own games; ``"scores"``: a
            one-sided z-test of the two Bradley–Terry scores, which also draws on every
            other game that links them.
        rank_keep: The share of each step's checkpoints the rank rule keeps (0..1);
            ``None`` (the default) switches the rule off: significant losses only.
        rank_guard: The rank rule's guard (0..1): a checkpoint that may be ahead of the
            last one kept at its step with at least this probability is kept.
        rank_min_peers: Checkpoints at a step before the rank rule applies there.
        rank_checkpoints: How many of a trial's first checkpoints the rank rule judges
            (counted, not step values, so it means the same for epochs and for global
            steps).
        stop_matches: Ask the arena to stop a new checkpoint's match once no outcome of
            the prompts left can change this pruner's sign test at ``alpha`` nor the
            incumbent (``optuna_pandalm/arena/_decision.py``): exact, it changes no
            decision and saves judge calls. Only with ``evidence="games"`` and no rank
            rule, whose decisions rest on every score.
        curve_floor: The curve rule (off by default, ``None``): prune a trial whose
            probability to deliver the study's best checkpoint, its future predicted by a
            learning-curve model (its own level plus a shape every trial shares;
            ``optuna_pandalm/study/_curves.py``), is below this, once ``curve_min_trials``
            trials reached the last step. Never at a trial's last step.
        curve_min_trials: Trials that must have reached the last step before the curve
            rule applies.
        curve_checkpoints: How many of a trial's first checkpoints the curve rule judges
            (``None``: every one but the last step's). A dip the best trials take hardest
            (the ``dips`` landscape) is not in a shape all trials share, so later
            checkpoints may mislead it.
        stop_risk: With ``stop_matches``, stop once the outcomes still likely (between
            the ``stop_risk / 2`` and ``1 - stop_risk / 2`` quantiles of the posterior
            predictive of the match's remaining games) cannot change those decisions:
            each may then change with a probability of about ``stop_risk``. 0: exact.

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
        evidence: str = "games",
        rank_keep: float | None = None,
        rank_guard: float = 0.3,
        rank_min_peers: int = 4,
        rank_checkpoints: int = 2,
        stop_matches: bool = False,
        stop_risk: float = 0.0,
        curve_floor: float | None = None,
        curve_min_trials: int = 3,
        curve_checkpoints: int | None = None,
    ) -> None:
        if not callable(getattr(arena, "standings", None)):  # duck-typed, as the sampler
            raise TypeError(f"arena must be an Arena, got {type(arena).__name__}")
        if operator.index(n_warmup_steps) < 0:
            raise ValueError(f"n_warmup_steps must be >= 0, got {n_warmup_steps!r}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.arena = arena
        self.alpha = alpha
        self.n_warmup_steps = n_warmup_steps
        self.patience = patience
        self.same_step = same_step
        if evidence not in ("games", "scores"):
            raise ValueError(f"evidence must be 'games' or 'scores', got {evidence!r}")
        self.evidence = evidence
        if rank_keep is not None and not 0 < rank_keep < 1:
            raise ValueError(f"rank_keep must be in (0, 1), got {rank_keep}")
        if not 0 < rank_guard < 1:
            raise ValueError(f"rank_guard must be in (0, 1), got {rank_guard}")
        self.rank_keep = rank_keep
        self.rank_guard = rank_guard
        self.rank_min_peers = max(int(rank_min_peers), 2)
        if rank_checkpoints < 1:
            raise ValueError(f"rank_checkpoints must be >= 1, got {rank_checkpoints}")
        self.rank_checkpoints = rank_checkpoints
        if stop_matches:
            if evidence != "games" or rank_keep is not None:
                raise ValueError(
                    "stop_matches needs evidence='games' and no rank rule (rank_keep=None): "
                    "their decisions rest on every score, not on the match"
                )
            if not 0 <= stop_risk < 1:
                raise ValueError(f"stop_risk must be in [0, 1), got {stop_risk}")
            arena.decision_alpha, arena.decision_risk = alpha, float(stop_risk)
        self.stop_matches = stop_matches
        if curve_floor is not None and not 0 < curve_floor < 1:
            raise ValueError(f"curve_floor must be in (0, 1), got {curve_floor}")
        self.curve_floor = curve_floor
        self.curve_min_trials = max(int(curve_min_trials), 1)
        self.curve_checkpoints = curve_checkpoints

    def _loss(self, player: Player, failed: frozenset[int]) -> PruningReason | None:
        """The significant loss of ``player``'s latest match, or ``None`` (also when that
        opponent is a checkpoint of the ``failed`` trials)."""
        opponents = self.arena.incumbent_opponents(player)
        if not opponents or opponents[-1].trial in failed:
            return None
        opponent = opponents[-1]
        wins, ties, losses = self.arena.match_record(player, opponent)
        if self.evidence == "scores":
            test, p_value = "score test", _score_test(self.arena.standings(), player, opponent)
        else:
            test, p_value = "sign test", sign_test(wins, ties, losses, alternative="less")
        if p_value >= self.alpha:
            return None
        step = player.step if player.step is not None else 0
        return PruningReason(
            step, opponent.label, opponent.step, wins, ties, losses, p_value, self.alpha, 0, test
        )

    def _rank_loss(self, players: list[Player], failed: frozenset[int]) -> PruningReason | None:
        """The trial's newest checkpoint, one of its first ``rank_checkpoints``, is below
        the kept share of every trial's checkpoint at its step and not plausibly ahead of
        the last one kept; ``None`` otherwise."""
        player = players[-1]
        if self.rank_keep is None or player.step is None:
            return None
        if len(players) > self.rank_checkpoints:
            return None
        standings = self.arena.standings()  # its players: every checkpoint fitted
        if player.id not in standings.index:
            return None
        peers = [
            p
            for p in standings.players
            if p.step == player.step and p.trial is not None and p.trial not in failed
        ]
        if len(peers) < self.rank_min_peers:
            return None
        ranked = sorted(peers, key=lambda p: (-standings.score(p), p.id))
        kept = max(1, math.ceil(self.rank_keep * len(ranked)))
        rank = next(k for k, p in enumerate(ranked, 1) if p.id == player.id)
        if rank <= kept:
            return None
        last_kept = ranked[kept - 1]
        ahead = _score_test(standings, player, last_kept)  # P(player's score > its score)
        if ahead >= self.rank_guard:
            return None
        wins, ties, losses = self.arena.match_record(player, last_kept)
        return PruningReason(
            step=player.step,
            opponent=last_kept.label,
            opponent_step=last_kept.step,
            wins=wins,
            ties=ties,
            losses=losses,
            p_value=ahead,
            alpha=self.rank_guard,
            test="rank",
            rank=rank,
            peers=len(ranked),
            kept=kept,
        )

    def reason(
        self, trial_number: int, *, study: optuna.study.Study | None = None
    ) -> PruningReason | None:
        """Why this pruner prunes the trial now, or ``None`` when it does not (same rules
        as :meth:`prune`; without ``study``, no trial is known to have failed)."""
        players = self.arena.trial_players(trial_number)
        if not players or (players[-1].step or 0) < self.n_warmup_steps:
            return None
        failed = _failed_trials(study)
        incumbent = self.arena.incumbent(skip_trials=failed)
        if incumbent is None or incumbent.trial == trial_number:
            return None
        return (
            self._significant_loss(players, failed)
            or self._rank_loss(players, failed)
            or self._curve_loss(trial_number, players, failed, study)
        )

    def _curve_loss(
        self,
        trial_number: int,
        players: list[Player],
        failed: frozenset[int],
        study: optuna.study.Study | None,
    ) -> PruningReason | None:
        """The curve rule: the trial's predicted P(best) is below ``curve_floor``."""
        if self.curve_floor is None:
            return None
        if self.curve_checkpoints is not None and len(players) > self.curve_checkpoints:
            return None
        from optuna_pandalm.study._curves import curve_p_best

        standings = self.arena.standings()
        last = max((p.step for p in standings.players if p.step is not None), default=None)
        step = players[-1].step
        if step is None or last is None or step >= last:
            return None
        running = {trial_number} | _running_trials(study)
        p_best = curve_p_best(
            standings, running, skip_trials=failed, min_complete=self.curve_min_trials
        )
        p = p_best.get(trial_number)
        if p is None or p >= self.curve_floor:
            return None
        return PruningReason(step, "", None, 0, 0, 0, p, self.curve_floor, test="curve")

    def _significant_loss(
        self, players: list[Player], failed: frozenset[int]
    ) -> PruningReason | None:
        loss = self._loss(players[-1], failed)
        if loss is None:
            return None
        if self.same_step and loss.opponent_step == players[-1].step:
            return loss
        if len(players) < self.patience:
            return None
        earlier = players[-self.patience : -1]
        if all(self._loss(p, failed) is not None for p in earlier):
            return dataclasses.replace(loss, earlier=len(earlier))
        return None

    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        require_maximize(study, "JudgePruner")
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        return self.reason(trial.number, study=study) is not None


def _failed_trials(study: optuna.study.Study | None) -> frozenset[int]:
    """Numbers of the study's FAILED trials (none without a study)."""
    if study is None:
        return frozenset()
    from optuna.trial import TrialState

    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return frozenset(t.number for t in failed)


def _running_trials(study: optuna.study.Study | None) -> frozenset[int]:
    """Numbers of the study's RUNNING trials (none without a study)."""
    if study is None:
        return frozenset()
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return frozenset(t.number for t in running)


def _score_test(standings: Standings, player: Player, opponent: Player) -> float:
    """One-sided p-value that ``player`` is not worse than ``opponent``, from their
    Bradley–Terry scores and the variance of the difference."""
    i, j = standings.index[player.id], standings.index[opponent.id]
    variance = standings.result.contrast_variance(i, j)
    if variance <= 0:
        return 1.0
    z = (standings.scores[i] - standings.scores[j]) / math.sqrt(variance)
    return 0.5 * math.erfc(-z / math.sqrt(2))
