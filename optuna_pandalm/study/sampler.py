"""A sampler wrapper that shows the base sampler the *current* judge scores.

A completed Optuna trial's value can never change, but Bradley–Terry scores do as more
games are played. The wrapped sampler sees, through a view of the study, copies of the
trials whose values are the current scores. The view is built as Optuna's
``HyperbandPruner`` builds its ``_BracketStudy``: through ``Study.__init__`` on the same
storage, letting through only the attributes it lists, so that anything else fails loudly
instead of silently reading a stale copy.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from optuna_pandalm.study.direction import require_maximize

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from optuna_pandalm.arena import Arena

__all__ = ["BradleyTerrySampler"]

# {trial number: {step: current score (log-odds)}}
_Scores = Mapping[int, Mapping[int, float]]


class _ScoredStudy(Study):
    """The study as the base sampler sees it: the same storage, current scores as values.

    Trials (``trials``, ``get_trials``, ``_get_trials``) are read from the wrapped study,
    so a pruner's filter (Hyperband's brackets) and Optuna's per-trial cache still apply,
    and rescored by ``rescore``. ``best_trial`` and its kin are computed from the rescored
    trials. ``stop`` stops the wrapped study. Storage writes (system attributes of trials
    and of the study) go to the same storage. Every other attribute raises
    ``AttributeError``.
    """

    _VALID_ATTRS = frozenset(
        {
            # Trials and the best one, rescored.
            "trials",
            "get_trials",
            "_get_trials",
            "best_trial",
            "best_value",
            "best_params",
            "_get_best_trial",
            # Read from the shared storage through Study's own code.
            "study_name",
            "directions",
            "direction",
            "_directions",
            "_is_multi_objective",
            "user_attrs",
            "set_user_attr",
            "metric_names",
            "_storage",
            "_study_id",
            "sampler",
            "pruner",
            # Forwarded to the wrapped study.
            "stop",
            # Our own.
            "_study",
            "_rescore",
            "_scores",
        }
    )

    def __init__(self, study: Study, scores: _Scores, rescore: _Rescorer) -> None:
        super().__init__(
            study_name=study.study_name,
            storage=study._storage,
            sampler=study.sampler,
            pruner=study.pruner,
        )
        self._study = study
        self._scores = scores
        self._rescore = rescore

    def __getattribute__(self, name: str) -> Any:
        if name not in _ScoredStudy._VALID_ATTRS:
            raise AttributeError(
                f"BradleyTerrySampler shows its base sampler a view of the study that does "
                f"not let {name!r} through; it lets through only "
                f"{', '.join(sorted(_ScoredStudy._VALID_ATTRS))}"
            )
        return object.__getattribute__(self, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=False, states=states, use_cache=use_cache)
        scored = self._rescore.rescored(trials, self._scores)
        return copy.deepcopy(scored) if deepcopy else scored

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        scored = self._rescore.rescored(
            self._study.get_trials(deepcopy=False, states=states), self._scores
        )
        return copy.deepcopy(scored) if deepcopy else scored

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()

    def _get_best_trial(self, deepcopy: bool) -> FrozenTrial:
        complete = self.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            raise ValueError("No trials are completed yet.")
        # A trial is feasible when all its constraint values are <= 0, as in Optuna.
        feasible = [t for t in complete if all(c <= 0.0 for c in t.constraints.values())]
        if not feasible:
            raise ValueError("No feasible trials are completed yet.")
        best = max(feasible, key=lambda t: float(t.values[0]))
        return copy.deepcopy(best) if deepcopy else best

    @property
    def best_trial(self) -> FrozenTrial:
        return self._get_best_trial(deepcopy=True)

    def stop(self) -> None:
        # GridSampler and BruteForceSampler stop the study in ``after_trial``: the flag
        # Optuna's loop reads is the wrapped study's.
        self._study.stop()


class _Rescorer:
    """Copies of trials carrying current scores, kept while trial and scores are unchanged.

    A trial with judged checkpoints gets a shallow copy (the original, cached by Optuna's
    storage, is never touched) whose intermediate values are its checkpoints' current
    scores (TPE ranks PRUNED trials by their last one); a COMPLETE trial's value is the
    score of its best checkpoint, a PRUNED trial's value (when Optuna stored one: its last
    intermediate value) the score of that step. Trials without judged checkpoints are
    returned as they are.
    """

    def __init__(self) -> None:
        # trial number -> (stored trial, its scores, rescored copy); finished trials only,
        # which storage never changes again.
        self._copies: dict[int, tuple[FrozenTrial, Mapping[int, float], FrozenTrial]] = {}

    def rescored(self, trials: list[FrozenTrial], scores: _Scores) -> list[FrozenTrial]:
        return [self._rescored(trial, scores.get(trial.number)) for trial in trials]

    def _rescored(self, trial: FrozenTrial, scores: Mapping[int, float] | None) -> FrozenTrial:
        if not scores:
            return trial
        cached = self._copies.get(trial.number)
        if cached is not None and cached[0] is trial and cached[1] == scores:
            return cached[2]
        scored = copy.copy(trial)
        scored.intermediate_values = {
            step: scores.get(step, value) for step, value in trial.intermediate_values.items()
        }
        if trial.state == TrialState.COMPLETE:
            scored.value = max(scores.values())
        elif trial.state == TrialState.PRUNED and trial.value is not None:
            last = trial.last_step
            if last is not None and last in scores:
                scored.value = scores[last]
        if trial.state.is_finished():
            self._copies[trial.number] = (trial, scores, scored)
        return scored


class BradleyTerrySampler(BaseSampler):
    """Wrap any sampler so that it optimises the current Bradley–Terry scores.

    The base sampler is given, instead of the study, a view of it in which every trial
    with judged checkpoints carries its current scores: a COMPLETE trial's value is the
    score of its best checkpoint, and every trial's intermediate values are its
    checkpoints' scores. Nothing is written to storage: Optuna's stored values stay as
    they were. Trials without judged checkpoints keep their own values.

    Every sampler hook is delegated (``infer_relative_search_space``, relative and
    independent sampling, ``before_trial``, ``after_trial``, ``reseed_rng``). The hooks of
    one trial, from ``before_trial`` to sampling, see one set of scores; ``after_trial``
    sees the scores after the trial's own games. What the base sampler does to the study
    reaches the real one: ``study.stop()`` (``GridSampler``, ``BruteForceSampler``) stops
    it, and system attributes go to its storage. The view lets through only the attributes
    Optuna's samplers use (trials, the best trial, directions, study attributes, storage,
    ``stop``); any other raises ``AttributeError`` naming it.

    Other public attributes and methods of the base sampler are reachable on the wrapper,
    for example ``GridSampler.is_exhausted``; ``base_sampler`` is the base sampler itself.

    Args:
        arena: The :class:`~optuna_pandalm.Arena` scoring the study.
        base_sampler: The sampler doing the work (default ``TPESampler()``); TPE, GP,
            CMA-ES, QMC, NSGA-II, random, grid and brute force work unchanged.

    Raises:
        ValueError: From every hook, when the study is not single-objective with
            ``direction="maximize"`` (a higher judge score is better).

    Example:
        >>> import optuna
        >>> from optuna_pandalm import Arena, BradleyTerrySampler
        >>> from optuna_pandalm.testing import (
        ...     SimulatedJudge, simulated_prompts, simulated_response
        ... )
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> arena = Arena("sqlite://", "doc", SimulatedJudge(seed=0), simulated_prompts(8))
        >>> grid = optuna.samplers.GridSampler({"quality": [-1.0, 0.0, 1.0]}, seed=0)
        >>> sampler = BradleyTerrySampler(arena, grid)
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
        >>> def objective(trial):
        ...     quality = trial.suggest_float("quality", -1.0, 1.0)
        ...     texts = [simulated_response(quality, text=str(i)) for i in range(8)]
        ...     arena.evaluate(trial, 1, texts)
        ...     return arena.finalize(trial)
        >>> study.optimize(objective)  # the grid stops the study after its 3 points
        >>> len(study.trials), sampler.is_exhausted(study)
        (3, True)
    """

    def __init__(self, arena: Arena, base_sampler: BaseSampler | None = None) -> None:
        if not callable(getattr(arena, "scores", None)):  # duck-typed: stand-ins in tests
            raise TypeError(f"arena must be an Arena, got {type(arena).__name__}")
        if base_sampler is not None and not isinstance(base_sampler, BaseSampler):
            raise TypeError(
                f"base_sampler must be an Optuna sampler (such as "
                f"optuna.samplers.TPESampler()), got {base_sampler!r}"
            )
        self.arena = arena
        self.base_sampler = base_sampler or optuna.samplers.TPESampler()
        self._rescore = _Rescorer()
        # ((storage, study id, trial number), view) of the trial last sampled: its hooks
        # share one view (threads sampling at once may each refresh it). Not keyed by the
        # study object: a pruner may filter the study (Hyperband's brackets) into a new
        # object for every hook.
        self._view: tuple[tuple[object, int, int], _ScoredStudy] | None = None
        # The trial this process began last: Ctrl-C while it is being sampled (after Optuna
        # created it, before the objective runs) would leave it RUNNING; see optimize().
        self.last_trial: int | None = None

    def __repr__(self) -> str:
        return f"BradleyTerrySampler({self.base_sampler!r})"

    def __getattr__(self, name: str) -> Any:
        # Called only for names the wrapper lacks: public ones are the base sampler's.
        base = self.__dict__.get("base_sampler")
        if name.startswith("_") or base is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(base, name)

    def __getstate__(self) -> dict[str, Any]:
        # The caches hold the study and its storage; they are rebuilt on demand.
        state = self.__dict__.copy()
        state["_rescore"] = _Rescorer()
        state["_view"] = None
        return state

    def _current_scores(self) -> dict[int, dict[int, float]]:
        """Current score of every judged checkpoint, by trial number and step."""
        by_trial: dict[int, dict[int, float]] = {}
        for player, score in self.arena.scores().items():
            if player.trial is not None and player.step is not None:
                by_trial.setdefault(player.trial, {})[player.step] = score
        return by_trial

    def _proxy(self, study: Study, trial: FrozenTrial | None = None) -> Study:
        """The view of ``study`` the base sampler gets; the same one for every hook of
        ``trial`` (a fresh one when ``trial`` is ``None``)."""
        require_maximize(study, "BradleyTerrySampler")
        view = self._view
        key = None if trial is None else (study._storage, study._study_id, trial.number)
        if key is not None and view is not None and view[0] == key:
            return view[1]
        scored = _ScoredStudy(study, self._current_scores(), self._rescore)
        if key is not None:
            self._view = (key, scored)
        return scored

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
        self.last_trial = trial.number
        self.base_sampler.before_trial(self._proxy(study, trial), trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        # Fresh scores, with the trial's own games; no cached view.
        self.base_sampler.after_trial(self._proxy(study), trial, state, values)

    def reseed_rng(self) -> None:
        self.base_sampler.reseed_rng()
