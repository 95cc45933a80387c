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
