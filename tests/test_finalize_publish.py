"""What ``finalize`` and publishing cost: P(best) drawn only when a decision needs it, on one
BLAS thread; the leaderboard computed once per publication; study attributes bounded
whatever the number of players; nothing rewritten that did not change."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from optuna_pandalm import Arena, PublishCallback
from optuna_pandalm.arena import Standings
from optuna_pandalm.attributes import LEADERBOARD_ATTR, SNAPSHOT_ATTR
from optuna_pandalm.statistics import BradleyTerryResult, fit_bradley_terry
from optuna_pandalm.statistics._threads import _openblas_controls, one_blas_thread
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response

PLAYERS = 40


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[optuna.Study, Arena]:
    """A study of 40 finished trials, one checkpoint each, qualities spread over 8 log-odds."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path_factory.mktemp('cost') / 'study.db'}"
    arena = Arena(url, "cost", SimulatedJudge(seed=0), simulated_prompts(16), seed=0)
    study = optuna.create_study(
        study_name="cost", storage=url, direction="maximize", pruner=optuna.pruners.NopPruner()
    )
    for number, quality in enumerate(np.linspace(-4, 4, PLAYERS)):
        trial = study.ask()
        assert trial.number == number
        score = arena.evaluate(trial, 1, [simulated_response(float(quality))] * 16).score
        study.tell(trial, score)
    return study, arena


def _count_calls(monkeypatch, owner: type, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(owner, name)

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_p_best_below_a_threshold_is_decided_as_the_draws_decide(study):
    _, arena = study
    standings = arena.standings()
    drawn = standings.p_best()
    for threshold in (0.01, 0.2, 0.5):
        fresh = Standings(**{f: getattr(standings, f) for f in standings.__dataclass_fields__})
        decided = [fresh.p_best_below(p, threshold) for p in standings.players]
        assert decided == [bool(v < threshold) for v in drawn]


def test_finalize_of_a_trial_far_behind_the_leader_draws_no_p_best(study, monkeypatch):
    study_, arena = study
    trial = study_.ask()
    arena.evaluate(trial, 1, [simulated_response(-3.5)] * 16)
    draws = _count_calls(monkeypatch, BradleyTerryResult, "p_best")
    value = arena.finalize(trial)
    study_.tell(trial, value)
    assert draws == []  # its P(best) is surely below p_best_threshold: no extra match


def test_finalize_of_a_new_leader_still_draws_p_best(study, monkeypatch):
    study_, arena = study
    trial = study_.ask()
    arena.evaluate(trial, 1, [simulated_response(8.0)] * 16)
    draws = _count_calls(monkeypatch, BradleyTerryResult, "p_best")
    value = arena.finalize(trial)
    study_.tell(trial, value)
    assert draws  # at the top: decided on the draws, as before


def test_p_best_is_drawn_on_one_blas_thread_and_the_setting_restored():
    controls = _openblas_controls()
    if not controls:
        pytest.skip("no OpenBLAS loaded in this process")
    before = [get() for get, _ in controls]
    with one_blas_thread():
        assert [get() for get, _ in controls] == [1] * len(controls)
    assert [get() for get, _ in controls] == before


def test_the_sparse_factorisation_behind_the_leaderboards_intervals_runs_on_one_blas_thread(
    monkeypatch,
):
    """SuperLU's dense blocks on one thread: with a thread per core, publishing at 3,000
    players burned 200 ms of CPU for 116 ms of wall time, and the idle thread spun on into
    the next evaluate."""
    from scipy.sparse import linalg as sparse_linalg

    controls = _openblas_controls()
    if not controls:
        pytest.skip("no OpenBLAS loaded in this process")
    seen: list[tuple[str, int]] = []
    splu = sparse_linalg.splu

    class _Watched:
        def __init__(self, factors):
            self.factors = factors

        def solve(self, rhs):
            seen.append(("solve", controls[0][0]()))
            return self.factors.solve(rhs)

    def watched_splu(*args, **kwargs):
        seen.append(("factorise", controls[0][0]()))
        return _Watched(splu(*args, **kwargs))

    monkeypatch.setattr(sparse_linalg, "splu", watched_splu)
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, 150, 3_000), rng.integers(0, 150, 3_000)
    keep = first != second
    outcome = rng.integers(0, 3, int(keep.sum()))
    result = fit_bradley_terry(first[keep], second[keep], outcome)
    assert result.n_players == 150  # above the dense limit: the sparse factorisation
    get, set_threads = controls[0]
    before = get()
    set_threads(2)  # as on a 2-core machine by default (tests under -n 2 start with one)
    try:
        assert get() == 2
        stderr = result.stderr_of([3, 1, 4])
        assert seen == [("factorise", 1), ("solve", 1)]
        assert get() == 2  # the process's own setting restored
    finally:
        set_threads(before)
    assert np.all(stderr > 0)


def test_the_dense_factorisations_of_a_few_players_run_on_one_blas_thread(monkeypatch):
    from scipy import linalg

    controls = _openblas_controls()
    if not controls:
        pytest.skip("no OpenBLAS loaded in this process")
    get, set_threads = controls[0]
    seen: list[tuple[str, int]] = []
    for module, name in ((linalg, "cho_factor"), (linalg.lapack, "dpotri")):
        original = getattr(module, name)

        def watched(*args, _name=name, _original=original, **kwargs):
            seen.append((_name, get()))
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, watched)
    rng = np.random.default_rng(1)
    first, second = rng.integers(0, 20, 400), rng.integers(0, 20, 400)
    keep = first != second
    result = fit_bradley_terry(first[keep], second[keep], rng.integers(0, 3, int(keep.sum())))
    before = get()
    set_threads(2)
    try:
        stderr = result.stderr  # the dense inverse: Cholesky, then LAPACK's dpotri
        assert ("cho_factor", 1) in seen and ("dpotri", 1) in seen
        assert all(threads == 1 for _, threads in seen)
        assert get() == 2
    finally:
        set_threads(before)
    assert np.all(stderr[np.arange(20) != result.anchor] > 0)


def test_publishing_computes_the_leaderboard_once_and_writes_small_attributes(study, monkeypatch):
    study_, arena = study
    leaderboards = _count_calls(monkeypatch, Standings, "leaderboard")
    PublishCallback(arena)(study_, study_.trials[-1])
    assert len(leaderboards) == 1  # attributes, figure and note from one computation
    attrs = study_.user_attrs
    assert len(attrs[LEADERBOARD_ATTR].split(" | ")) == 5
    snapshot = attrs[SNAPSHOT_ATTR]
    assert snapshot["players"] == len(arena.players()) > PLAYERS
    assert len(snapshot["scores"]) == 5
    # Optuna Dashboard clips a value at 1,024 characters of JSON.
    assert all(len(json.dumps(value)) < 1024 for value in attrs.values())


def test_publishing_again_without_a_new_game_writes_nothing(study, monkeypatch):
    study_, arena = study
    publish = PublishCallback(arena)
    publish(study_, study_.trials[-1])
    writes = _count_calls(monkeypatch, optuna.Study, "set_user_attr")
    figures: list[int] = []
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    monkeypatch.setattr(
        optuna_dashboard, "save_plotly_graph_object", lambda *a, **k: figures.append(1)
    )
    publish(study_, study_.trials[-1])
    assert writes == [] and figures == []
