"""A finished trial stays exactly as Optuna left it: its ``pandalm_score`` is its score as of
its finish, set while it ran; current scores are published to the study, never written
into Optuna's tables; and ``finalize`` alone publishes nothing."""

from __future__ import annotations

import optuna
import sqlalchemy as sa

from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner, PublishCallback
from optuna_pandalm.attributes import (
    BEST_STEP_ATTR,
    LEADERBOARD_ATTR,
    PRUNED_ATTR,
    SCORE_ATTR,
    SNAPSHOT_ATTR,
)
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

QUALITY = [0.0, 1.0, -4.0, 2.0, 0.5, 3.0]  # by trial number; trial 2 is pruned
OPTUNA_TRIAL_TABLES = (
    "trials",
    "trial_values",
    "trial_params",
    "trial_user_attributes",
    "trial_system_attributes",
    "trial_intermediate_values",
)


def _study(url: str, *, callbacks: bool = True) -> tuple[optuna.Study, Arena, list]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prompts = simulated_prompts(12)
    arena = Arena(url, "scores", SimulatedJudge(seed=0, noise=0.1), prompts, seed=0)
    study = optuna.create_study(
        study_name="scores",
        storage=url,
        direction="maximize",
        sampler=BradleyTerrySampler(arena, optuna.samplers.RandomSampler(seed=0)),
        pruner=JudgePruner(arena),
    )
    return study, arena, [PublishCallback(arena)] if callbacks else []


def _objective(arena: Arena, prompts: int = 12):
    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)
        for step in (1, 2):
            quality = QUALITY[trial.number] + step / 4
            arena.evaluate(trial, step, [simulated_response(quality)] * prompts)
        return arena.finalize(trial)

    return objective


def _rows(url: str, trial_ids: list[int]) -> dict[str, list[tuple]]:
    """Every row of Optuna's per-trial tables that belongs to ``trial_ids``, as stored."""
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine, only=OPTUNA_TRIAL_TABLES)
        rows = {}
        with engine.connect() as connection:
            for name in OPTUNA_TRIAL_TABLES:
                table = metadata.tables[name]
                query = table.select().where(table.c.trial_id.in_(trial_ids))
                rows[name] = sorted(tuple(row) for row in connection.execute(query))
        return rows
    finally:
        engine.dispose()


def test_a_finished_trials_rows_in_optunas_tables_never_change_as_more_trials_play(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study, arena, callbacks = _study(url)
    study.optimize(_objective(arena), n_trials=3, callbacks=callbacks)
    finished = study.get_trials(deepcopy=False)
    assert {t.state for t in finished} == {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    }
    ids = [t._trial_id for t in finished]
    before = _rows(url, ids)
    assert before["trial_user_attributes"] and before["trial_intermediate_values"]

    study.optimize(_objective(arena), n_trials=len(QUALITY) - 3, callbacks=callbacks)

    assert len(arena.players()) == 2 * len(QUALITY)  # the later trials played
    assert _rows(url, ids) == before


def test_a_trials_score_attribute_is_its_score_as_of_its_finish(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study, arena, callbacks = _study(url)
    study.optimize(_objective(arena), n_trials=len(QUALITY), callbacks=callbacks)
    # A fresh, uncached read: what Optuna Dashboard shows in its trial table.
    stored = optuna.load_study(study_name="scores", storage=url).trials
    complete = [t for t in stored if t.state == optuna.trial.TrialState.COMPLETE]
    for trial in complete:
        assert trial.user_attrs[SCORE_ATTR] == round(trial.value, 4)
        assert trial.user_attrs[BEST_STEP_ATTR] in (1, 2)
    standings = arena.standings()
    now = {t.number: round(standings.score(arena.best_checkpoint(t.number)), 4) for t in complete}
    assert any(t.user_attrs[SCORE_ATTR] != now[t.number] for t in complete), (
        "scores moved after some trial finished, so some frozen score must differ from now"
    )
    leader = standings.leaderboard(top=1)[0]  # current scores: the published leaderboard
    assert study.user_attrs[LEADERBOARD_ATTR].startswith(f"#1 {leader.label} {leader.score:+.3f} ")
    pruned = next(t for t in stored if t.state == optuna.trial.TrialState.PRUNED)
    assert pruned.user_attrs[PRUNED_ATTR].startswith("pruned at step 2: lost")
    assert pruned.user_attrs[BEST_STEP_ATTR] in (1, 2) and SCORE_ATTR in pruned.user_attrs


def test_finalize_alone_publishes_nothing_to_the_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study, arena, _ = _study(url, callbacks=False)
    study.optimize(_objective(arena), n_trials=3)
    assert {t.state for t in study.trials} >= {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    }
    assert LEADERBOARD_ATTR not in study.user_attrs and SNAPSHOT_ATTR not in study.user_attrs
    assert study.user_attrs == {}
