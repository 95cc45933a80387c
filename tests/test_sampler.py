"""Specification of BradleyTerrySampler: what the base sampler sees, and what reaches the study.

The ``scored`` fixture is a study whose stored values rank its trials the other way round
from the arena's current scores, as they would after later games overturned early results:
a base sampler that is shown stored values instead of current scores fails these tests.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from optuna_pandalm import Arena, BradleyTerrySampler
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

QUALITIES = [-1.0, 0.0, 1.0, 2.0]  # latent quality of trial n's only checkpoint (step 1)
SPACE = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}
COMPLETE = (TrialState.COMPLETE,)

BASE_SAMPLERS: dict[str, type[optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "gp": optuna.samplers.GPSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
    "random": optuna.samplers.RandomSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
}
# Options that make each sampler model the four trials instead of sampling at random.
OPTIONS: dict[str, dict[str, Any]] = {
    "tpe": {"n_startup_trials": 2},
    "gp": {"n_startup_trials": 2},
    "cmaes": {"n_startup_trials": 2},
    "nsga2": {"population_size": 2},
}


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Arena:
    """Trial n's checkpoint at step 1 has quality ``QUALITIES[n]``: trial 3 is the best."""
    url = f"sqlite:///{tmp_path_factory.mktemp('arena') / 'arena.db'}"
    prompts = simulated_prompts(30)
    arena = Arena(url, "s", SimulatedJudge(seed=0, noise=0.0), prompts, racing=False)
    for number, quality in enumerate(QUALITIES):
        arena.evaluate(number, 1, [simulated_response(quality, text=str(i)) for i in range(30)])
    return arena


@pytest.fixture
def current(arena: Arena) -> dict[int, float]:
    """The current score of each trial (its only checkpoint's)."""
    return {p.trial: s for p, s in arena.scores().items() if p.trial is not None}


def _scored_study(sampler: optuna.samplers.BaseSampler, values: dict[int, float]) -> optuna.Study:
    """Four COMPLETE trials storing ``values`` (value and step-1 intermediate value)."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for number in range(len(QUALITIES)):
        study.add_trial(
            create_trial(
                params={"x": 0.2 * number + 0.1, "y": 0.9 - 0.25 * number},
                distributions=SPACE,
                value=values[number],
                intermediate_values={1: values[number]},
            )
        )
    return study


def _stale(current: dict[int, float]) -> dict[int, float]:
    """Stored values ranking the trials the other way round from ``current``."""
    return {number: -score for number, score in current.items()}


def _seen(study: optuna.Study) -> dict[str, dict[int, float]]:
    """The COMPLETE trials' values along every road a sampler reads them by."""
    best = study.best_trial
    return {
        "trials": {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE},
        "get_trials": {t.number: t.value for t in study.get_trials(states=COMPLETE)},
        # The road TPE, GP, CMA-ES and NSGA-II take.
        "_get_trials": {
            t.number: t.value
            for t in study._get_trials(deepcopy=False, states=COMPLETE, use_cache=True)
        },
        "intermediate": {
            t.number: t.intermediate_values[1] for t in study.get_trials(states=COMPLETE)
        },
        "best_trial": {best.number: study.best_value},
    }


def _spying(cls: type[optuna.samplers.BaseSampler]) -> type[optuna.samplers.BaseSampler]:
    """``cls``, recording in ``seen`` what the study shows it whenever it samples."""

    class Spy(cls):  # type: ignore[misc,valid-type]
        seen: list[dict[str, dict[int, float]]]

        def sample_relative(self, study: optuna.Study, trial: Any, search_space: Any) -> Any:
            self.seen.append(_seen(study))
            return super().sample_relative(study, trial, search_space)

        def sample_independent(
            self, study: optuna.Study, trial: Any, name: str, distribution: Any
        ) -> Any:
            self.seen.append(_seen(study))
            return super().sample_independent(study, trial, name, distribution)

    Spy.seen = []
    return Spy


# --- what the base sampler sees --------------------------------------------------------------
@pytest.mark.parametrize("name", BASE_SAMPLERS)
def test_base_sampler_sees_current_scores_not_stored_values(arena, current, name):
    base = _spying(BASE_SAMPLERS[name])(seed=0, **OPTIONS.get(name, {}))
    study = _scored_study(BradleyTerrySampler(arena, base), _stale(current))
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_float("y", 0.0, 1.0)

    best = max(current, key=current.__getitem__)
    assert base.seen
    for seen in base.seen:
        assert seen["best_trial"] == {best: pytest.approx(current[best])}
        for road in ("trials", "get_trials", "_get_trials", "intermediate"):
            assert seen[road] == pytest.approx(current), road


@pytest.mark.parametrize("name", ["tpe", "gp"])
def test_model_based_sampler_proposes_what_it_would_if_current_scores_were_stored(
    arena, current, name
):
    def propose(study: optuna.Study) -> dict[str, float]:
        trial = study.ask()
        return {p: trial.suggest_float(p, 0.0, 1.0) for p in SPACE}

    def base() -> optuna.samplers.BaseSampler:
        return BASE_SAMPLERS[name](seed=3, **OPTIONS[name])

    wrapped = propose(_scored_study(BradleyTerrySampler(arena, base()), _stale(current)))
    as_if_stored = propose(_scored_study(base(), current))
    on_stale_values = propose(_scored_study(base(), _stale(current)))
    assert wrapped == as_if_stored
    assert on_stale_values != as_if_stored  # the scores do change the proposal


def test_stored_values_are_left_as_they_were(arena, current):
    study = _scored_study(BradleyTerrySampler(arena), _stale(current))
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) - 10.0, n_trials=2)
    stored = {t.number: t.value for t in study.get_trials(states=COMPLETE)}
    assert stored == {**_stale(current), **{n: stored[n] for n in (4, 5)}}
    assert all(stored[n] < -9.0 for n in (4, 5))  # trials without checkpoints keep theirs


def test_the_view_refuses_attributes_it_does_not_list(arena, current):
    refused = ("optimize", "ask", "enqueue_trial", "_stop_flag")
    errors: list[str] = []

    class Probing(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):
            for attribute in refused:
                try:
                    getattr(study, attribute)
                except AttributeError as error:
                    errors.append(str(error))
            return super().sample_independent(study, trial, name, distribution)

    study = _scored_study(BradleyTerrySampler(arena, Probing(seed=0)), _stale(current))
    study.ask().suggest_float("x", 0.0, 1.0)
    assert len(errors) == len(refused)
    for attribute, error in zip(refused, errors, strict=True):
        assert f"not let {attribute!r} through" in error


# --- what reaches the real study -------------------------------------------------------------
@pytest.fixture
def idle_arena(tmp_path) -> Arena:
    """An arena that has judged nothing: every trial keeps its own value."""
    return Arena(f"sqlite:///{tmp_path / 'idle.db'}", "g", SimulatedJudge(), simulated_prompts(5))


# What GridSampler and BruteForceSampler do to a study through the wrapper (stop, exhaustion,
# enqueued trials, NaN): tests/test_optuna_sampler_suite.py.
def test_base_sampler_public_attributes_are_reachable_on_the_wrapper(idle_arena):
    grid = optuna.samplers.GridSampler({"x": [0.0, 1.0]}, seed=0)
    sampler = BradleyTerrySampler(idle_arena, grid)
    assert sampler.base_sampler is grid
    assert sampler.is_exhausted == grid.is_exhausted
    with pytest.raises(AttributeError, match="_search_space"):
        sampler._search_space  # noqa: B018  private names are not delegated


def test_attributes_the_base_sampler_sets_are_read_back_through_the_view(idle_arena):
    read: list[tuple[Any, ...]] = []

    class Marking(optuna.samplers.RandomSampler):
        def before_trial(self, study, trial):
            study.set_user_attr(f"before {trial.number}", trial.number)
            study._storage.set_trial_system_attr(trial._trial_id, "mark", trial.number)

        def sample_independent(self, study, trial, name, distribution):
            (now,) = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            read.append(("sample", study.user_attrs[f"before {trial.number}"], now.system_attrs))
            return super().sample_independent(study, trial, name, distribution)

        def after_trial(self, study, trial, state, values):
            marks = study._storage.get_trial_system_attrs(trial._trial_id)
            read.append(("after", study.user_attrs[f"before {trial.number}"], marks))

    study = optuna.create_study(
        direction="maximize", sampler=BradleyTerrySampler(idle_arena, Marking(seed=0))
    )
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    assert read == [
        ("sample", 0, {"mark": 0}),
        ("after", 0, {"mark": 0}),
        ("sample", 1, {"mark": 1}),
        ("after", 1, {"mark": 1}),
    ]
    assert study.user_attrs == {"before 0": 0, "before 1": 1}


def test_wrapper_works_under_hyperband_brackets(idle_arena):
    # Hyperband hands samplers its own filtered study (_BracketStudy), with its allowlist.
    study = optuna.create_study(
        direction="maximize",
        sampler=BradleyTerrySampler(idle_arena, optuna.samplers.TPESampler(seed=0)),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=4),
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(1, 5):
            trial.report(x * step, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x

    study.optimize(objective, n_trials=12)
    assert len(study.trials) == 12
    assert not [t for t in study.trials if t.state == TrialState.FAIL]


# --- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "directions", [["minimize"], ["maximize", "maximize"], ["minimize", "maximize"]]
)
def test_sampler_refuses_studies_other_than_single_objective_maximize(idle_arena, directions):
    study = optuna.create_study(directions=directions, sampler=BradleyTerrySampler(idle_arena))
    with pytest.raises(ValueError, match=r"single-objective .*direction='maximize'.*got"):
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)


# Optuna's own multi-objective refusal case, for every base: tests/test_optuna_sampler_suite.py.


# --- pickling ---------------------------------------------------------------------------------
class _FixedScores:
    """A picklable stand-in for the arena (the real one holds a database engine)."""

    def __init__(self, scores: dict[Any, float]) -> None:
        self._scores = scores

    def scores(self) -> dict[Any, float]:
        return self._scores


@pytest.mark.parametrize(
    "clone", [lambda s: pickle.loads(pickle.dumps(s)), copy.deepcopy], ids=["pickle", "deepcopy"]
)
def test_wrapper_pickles_and_deep_copies_after_sampling(arena, current, clone):
    sampler = BradleyTerrySampler(_FixedScores(arena.scores()), optuna.samplers.TPESampler())
    study = _scored_study(sampler, _stale(current))
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) - 10.0, n_trials=1)  # fills caches

    study.sampler = clone(sampler)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0) - 10.0, n_trials=1)
    assert len(study.trials) == 6
    assert study.sampler.arena.scores() == arena.scores()
