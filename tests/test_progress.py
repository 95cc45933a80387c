"""Live progress: the match being played on the bar, and one line per finished trial."""

from __future__ import annotations

import io

import optuna
import pytest

from optuna_pandalm import Arena, JudgePruner
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response
from optuna_pandalm.training.progress import TrialProgress, announce_scores, scores_legend

N_PROMPTS = 8


@pytest.fixture
def study_and_arena():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    arena = Arena(
        "sqlite://", "progress", SimulatedJudge(seed=0, noise=0.1), simulated_prompts(N_PROMPTS)
    )
    study = optuna.create_study(direction="maximize", pruner=JudgePruner(arena))
    return study, arena


def _objective(arena: Arena, out: io.StringIO, quality: float, *, bar: bool = False):
    def objective(trial: optuna.Trial) -> float:
        with TrialProgress(arena, trial, file=out, bar=bar) as progress:
            arena.evaluate(trial, 1, [simulated_response(quality)] * N_PROMPTS)
            return progress.completed(arena.finalize(trial))

    return objective


def test_a_completed_trial_ends_with_its_value_and_the_leader_in_one_short_line(
    study_and_arena,
):
    study, arena = study_and_arena
    out = io.StringIO()
    study.optimize(_objective(arena, out, 0.0), n_trials=1)
    assert out.getvalue() == (
        f"trial 0 complete: value {study.trials[0].value:+.3f} at step 1; "
        f"leader trial 0 step 1 {arena.standings().scores[0]:+.3f}\n"
    )  # what the value means is said once, at the start: scores_legend


def test_what_a_score_is_relative_to_and_what_freezes_is_said_once(study_and_arena):
    _, arena = study_and_arena
    legend = scores_legend(arena)
    assert "against the anchor (score 0), the first checkpoint judged" in legend
    assert "Optuna freezes it (and its pandalm_score)" in legend
    out = io.StringIO()
    announce_scores(arena, file=out)
    assert out.getvalue() == legend + "\n"


def test_a_pruned_trial_ends_with_the_loss_that_pruned_it(study_and_arena):
    study, arena = study_and_arena
    study.optimize(_objective(arena, io.StringIO(), 2.0), n_trials=1)
    out = io.StringIO()
    study.optimize(_objective(arena, out, -3.0), n_trials=1)
    assert study.trials[1].state == optuna.trial.TrialState.PRUNED
    line = out.getvalue().strip()
    assert line.startswith("trial 1 pruned at step 1: lost 0-0-8 (W-T-L) to trial 0 step 1")
    assert "sign test p = " in line


def test_a_failed_trial_says_why(study_and_arena):
    _, arena = study_and_arena
    out = io.StringIO()
    with pytest.raises(ValueError), TrialProgress(arena, 5, file=out):
        raise ValueError("the judge's server is down")
    assert out.getvalue().strip() == "trial 5 failed: ValueError: the judge's server is down"


def test_the_bar_shows_the_match_being_played_with_games_of_its_budget(study_and_arena):
    study, arena = study_and_arena
    study.optimize(_objective(arena, io.StringIO(), 0.0), n_trials=1)
    out = io.StringIO()
    study.optimize(_objective(arena, out, 0.5, bar=True), n_trials=1)
    shown = out.getvalue()
    assert "trial 1" in shown
    assert f"playing trial 1 step 1 vs trial 0 step 1: 0/{N_PROMPTS} games" in shown
    assert f"played trial 1 step 1 vs trial 0 step 1: {N_PROMPTS}/{N_PROMPTS} games" in shown
    assert not arena.matches.observers  # the trial's display let go of the arena


def test_an_interrupted_trial_says_so(study_and_arena):
    _, arena = study_and_arena
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt), TrialProgress(arena, 2, file=out):
        raise KeyboardInterrupt
    assert out.getvalue().strip() == "trial 2 interrupted"
