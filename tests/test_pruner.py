"""Specification of JudgePruner as Optuna sees it: silent with nothing judged, and refusing
the studies BradleyTerrySampler refuses."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from optuna_pandalm import Arena, JudgePruner
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def empty_arena(tmp_path) -> Arena:
    return Arena(f"sqlite:///{tmp_path / 'a.db'}", "p", SimulatedJudge(), simulated_prompts(4))


def _states_after_collapsing_trials(pruner: optuna.pruners.BasePruner) -> list[TrialState]:
    """Eight trials, each reporting ten steps; from the fourth on, every reported value is far
    below every earlier trial's at the same step."""
    study = optuna.create_study(direction="maximize", pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        value = 10.0 if trial.number < 3 else -10.0
        for step in range(10):
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=8)
    return [t.state for t in study.trials]


def test_pruner_never_prunes_with_an_arena_that_has_judged_nothing(empty_arena):
    # The same trials under a pruner that reads the reported values are pruned.
    assert TrialState.PRUNED in _states_after_collapsing_trials(optuna.pruners.MedianPruner())
    states = _states_after_collapsing_trials(JudgePruner(empty_arena))
    assert states == [TrialState.COMPLETE] * 8


def test_pruner_refuses_a_minimize_study_as_the_sampler_does(empty_arena):
    study = optuna.create_study(direction="minimize", pruner=JudgePruner(empty_arena))
    trial = study.ask()
    trial.report(1.0, 0)
    with pytest.raises(
        ValueError, match=r"^JudgePruner needs a single-objective .*direction='maximize'.*MINIMIZE"
    ):
        trial.should_prune()


def _curve_decisions(tmp_path, curves: list[dict[int, float]], **options) -> optuna.Study:
    """One trial per curve ({step: quality}), judged by a noiseless judge; a pruner whose
    significance rule never fires (alpha 1e-15), so what prunes is the curve rule."""
    from optuna_pandalm.testing import simulated_response

    tmp_path.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp_path / 'curves.db'}"
    arena = Arena(url, "c", SimulatedJudge(seed=9, noise=0.0), simulated_prompts(40))
    pruner = JudgePruner(arena, alpha=1e-15, **options)
    study = optuna.create_study(study_name="c", storage=url, direction="maximize", pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        for step, quality in curves[trial.number].items():
            texts = [simulated_response(quality, text=f"{trial.number}-{step}")] * 40
            arena.evaluate(trial, step, texts)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return arena.finalize(trial)

    study.optimize(objective, n_trials=len(curves))
    return study


# Three finished trials sharing one shape (each epoch better), a little apart.
FIELD = [{1: 1.0, 2: 2.0, 3: 2.5}, {1: 0.9, 2: 1.9, 3: 2.4}, {1: 0.8, 2: 1.8, 3: 2.3}]


def test_curve_rule_prunes_a_trial_whose_predicted_final_cannot_be_best(tmp_path):
    hopeless = [*FIELD, {1: -1.5, 2: -0.5, 3: 0.0}]  # far below the field's shape at step 1
    study = _curve_decisions(tmp_path, hopeless, curve_floor=0.05)
    assert study.trials[3].state == TrialState.PRUNED and study.trials[3].last_step == 1
    reason = study.pruner.reason(3)
    assert reason is not None and reason.test == "curve" and reason.p_value < 0.05
    # Off by default: the same trial, with significance alone at this alpha, runs on.
    study = _curve_decisions(tmp_path / "off", hopeless)
    assert study.trials[3].state == TrialState.COMPLETE


def test_curve_rule_compares_through_the_shared_shape_not_with_finished_models(tmp_path):
    # Level with the leader at its step 1, far below every finished model: kept even at a
    # high floor, since the shape every trial shares predicts it will end level with them.
    level = [*FIELD, {1: 1.0, 2: 2.0, 3: 2.5}]
    study = _curve_decisions(tmp_path, level, curve_floor=0.2)
    assert study.trials[3].state == TrialState.COMPLETE


def test_curve_rule_waits_for_enough_finished_trials_to_share_a_shape(tmp_path):
    hopeless = [*FIELD, {1: -1.5, 2: -0.5, 3: 0.0}]
    study = _curve_decisions(tmp_path, hopeless, curve_floor=0.05, curve_min_trials=4)
    assert study.trials[3].state == TrialState.COMPLETE
