"""Finished trials carry their current judge score where users look (trial user attributes),
refreshed as the arena changes, while Optuna's frozen value stays what it was."""

from __future__ import annotations

import optuna
import pytest

from optuna_pandalm import Arena, JudgePruner
from optuna_pandalm.attributes import BEST_STEP_ATTR, PRUNED_ATTR, SCORE_ATTR
from optuna_pandalm.store import Store
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

QUALITY = [0.0, 1.0, -4.0, 2.0, 0.5]  # by trial number; trial 2 is pruned


def _run(url: str) -> tuple[optuna.Study, Arena]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prompts = simulated_prompts(12)
    arena = Arena(url, "scores", SimulatedJudge(seed=0, noise=0.1), prompts, seed=0)
    study = optuna.create_study(
        study_name="scores", storage=url, direction="maximize", pruner=JudgePruner(arena)
    )

    def objective(trial: optuna.Trial) -> float:
        for step in (1, 2):
            quality = QUALITY[trial.number] + step / 4
            arena.evaluate(trial, step, [simulated_response(quality)] * len(prompts))
        return arena.finalize(trial)

    study.optimize(objective, n_trials=len(QUALITY))
    return study, arena


def test_finished_trials_carry_their_current_score_refreshed_as_the_arena_changes(
    shared_storage_url,
):
    _, arena = _run(shared_storage_url)
    # A fresh, uncached read: what Optuna Dashboard shows in its trial table.
    stored = optuna.load_study(
        study_name="scores", storage=optuna.storages.RDBStorage(shared_storage_url)
    ).trials
    states = {t.state for t in stored}
    assert optuna.trial.TrialState.PRUNED in states and optuna.trial.TrialState.COMPLETE in states
    standings = arena.standings()
    for trial in stored:
        best = arena.best_checkpoint(trial.number)
        assert trial.user_attrs[SCORE_ATTR] == round(standings.score(best), 4)
        assert trial.user_attrs[BEST_STEP_ATTR] == best.step
    complete = [t for t in stored if t.state == optuna.trial.TrialState.COMPLETE]
    moved = [t for t in complete if abs(t.value - t.user_attrs[SCORE_ATTR]) > 1e-3]
    assert moved, "scores moved after some trial completed, so some value must differ"
    pruned = next(t for t in stored if t.state == optuna.trial.TrialState.PRUNED)
    assert pruned.user_attrs[PRUNED_ATTR].startswith("pruned at step")


def test_only_our_attributes_of_finished_trials_of_that_study_are_rewritten(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study, _ = _run(url)
    store = Store(url)
    with pytest.raises(ValueError, match="only pandalm_"):
        store.refresh_trial_attrs("scores", {0: {"baseline": True}})
    assert store.refresh_trial_attrs("another-study", {0: {SCORE_ATTR: 1.0}}) == 0
    running = study.ask()
    assert store.refresh_trial_attrs("scores", {running.number: {SCORE_ATTR: 9.0}}) == 0
    assert (
        SCORE_ATTR not in optuna.storages.RDBStorage(url).get_trial(running._trial_id).user_attrs
    )
