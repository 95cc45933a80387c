"""A sampler wrapper that shows the base sampler the *current* judge scores.

A completed Optuna trial's value can never change, but Bradley–Terry scores do as more
games are played. The wrapped sampler sees, through a proxy study, copies of the trials
whose values are the current scores: a COMPLETE trial's value is the score of its best
checkpoint, and every trial's intermediate values are its checkpoints' scores (TPE ranks
PRUNED trials by their last one). The cached trials are never mutated.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Container, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from optuna_pandalm.arena import Arena

__all__ = ["BradleyTerrySampler"]


class _ScoredStudy(Study):
    """The same study, but ``_get_trials`` returns trials carrying current scores."""

    def __init__(self, study: Study, rescore: Callable[[list[FrozenTrial]], list[FrozenTrial]]):
        # Share storage, study id and the per-thread trial cache with the real study.
        self.__dict__.update(study.__dict__)
        self._rescore = rescore

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = Study._get_trials(self, deepcopy=False, states=states, use_cache=use_cache)
        scored = self._rescore(trials)
        return copy.deepcopy(scored) if deepcopy else scored

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()

    def _get_best_trial(self, deepcopy: bool) -> FrozenTrial:
        complete = self._get_trials(deepcopy=deepcopy, states=(TrialState.COMPLETE,))
        if not complete:
            raise ValueError("No trials are completed yet.")
        return max(complete, key=lambda t: t.value)


class BradleyTerrySampler(BaseSampler):
    """Wrap any sampler so that it optimises the current Bradley–Terry scores.

    Args:
        arena: The :class:`~optuna_pandalm.Arena` scoring the study.
        base_sampler: The sampler doing the work (default ``TPESampler()``); TPE, GP,
            CMA-ES, random and others work unchanged.

    Every sampler hook is delegated (relative and independent sampling, ``before_trial``,
    ``after_trial``, ``reseed_rng``). Trials without judged checkpoints keep their own
    values. The study must be ``direction="maximize"``.

    Example:
        >>> import optuna
        >>> base = optuna.samplers.TPESampler(seed=0)
        >>> sampler = BradleyTerrySampler(arena, base)  # doctest: +SKIP
    """

    def __init__(self, arena: Arena, base_sampler: BaseSampler | None = None) -> None:
        self.arena = arena
        self.base_sampler = base_sampler or optuna.samplers.TPESampler()
        self._snapshot_cache: tuple[Any, dict[int, dict[int, float]], Any] | None = None
        self._copies: dict[int, tuple[Any, FrozenTrial]] = {}

    def __repr__(self) -> str:
        return f"BradleyTerrySampler({self.base_sampler!r})"

    def _snapshot(self, trial: FrozenTrial | None) -> dict[int, dict[int, float]]:
        """Current scores by trial and step, fitted once per sampled trial: the hooks of one
        trial (search space, relative and independent sampling) see one consistent view."""
        key = None if trial is None else trial._trial_id
        if self._snapshot_cache is not None and key is not None and self._snapshot_cache[0] == key:
            return self._snapshot_cache[1]
        fit = self.arena.fit()
        if self._snapshot_cache is not None and self._snapshot_cache[2] is fit:
            by_trial = self._snapshot_cache[1]
        else:
            by_trial = {}
            for i, player in enumerate(fit.players):
                if player.trial is not None and player.step is not None:
                    by_trial.setdefault(player.trial, {})[player.step] = float(
                        fit.result.scores[i]
                    )
            self._copies = {}
        self._snapshot_cache = (key, by_trial, fit)
        return by_trial

    def _rescore(
        self, trials: list[FrozenTrial], by_trial: dict[int, dict[int, float]]
    ) -> list[FrozenTrial]:
        out = []
        for trial in trials:
            scores = by_trial.get(trial.number)
            if not scores:
                out.append(trial)
                continue
            stamp = (trial.state, len(trial.intermediate_values))
            cached = self._copies.get(trial._trial_id)
            if cached is not None and cached[0] == stamp:
                out.append(cached[1])
                continue
            scored = copy.copy(trial)  # shallow: the cached original is never touched
            scored.intermediate_values = {
                step: scores.get(step, value) for step, value in trial.intermediate_values.items()
            }
            if trial.state == TrialState.COMPLETE:
                scored._values = [max(scores.values())]
            self._copies[trial._trial_id] = (stamp, scored)
            out.append(scored)
        return out

    def _proxy(self, study: Study, trial: FrozenTrial | None = None) -> Study:
        if study.direction != StudyDirection.MAXIMIZE:
            raise ValueError(
                "BradleyTerrySampler needs optuna.create_study(direction='maximize'): "
                "a higher judge score is better"
            )
        by_trial = self._snapshot(trial)
        return _ScoredStudy(study, lambda trials: self._rescore(trials, by_trial))

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.base_sampler.infer_relative_search_space(self._proxy(study, trial), trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.base_sampler.sample_relative(self._proxy(study, trial), trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.base_sampler.sample_independent(
            self._proxy(study, trial), trial, param_name, param_distribution
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.base_sampler.before_trial(self._proxy(study, trial), trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base_sampler.after_trial(self._proxy(study, trial), trial, state, values)

    def reseed_rng(self) -> None:
        self.base_sampler.reseed_rng()
