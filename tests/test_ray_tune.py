"""Specification: a judged study run by Ray Tune on a local Ray cluster.

Tune's ``OptunaSearch`` (our :class:`JudgedOptunaSearch`, with ``BradleyTerrySampler``)
suggests each trial in the driver; the trials train (simulated) and are judged in Ray worker
processes; :class:`JudgePrunerScheduler` stops the trials ``JudgePruner``'s rule prunes.
The study left in the database reads as one ``study.optimize`` leaves: every checkpoint
belongs to the Optuna trial whose parameters made it, pruned trials are PRUNED with their
reason and stopped early, finished ones have ``arena.finalize``'s value, the published
leaderboard is the one a reader computes from the stored games, and ``check`` is clean.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import optuna
import pytest

ray = pytest.importorskip(
    "ray", reason="Ray is not installed: pip install 'optuna-pandalm[ray]' (the `ray` extra)"
)
pytest.importorskip("ray.tune", reason="Ray Tune is not installed: the `ray` extra")

from ray import tune  # noqa: E402
from ray.tune.search import ConcurrencyLimiter  # noqa: E402

from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner  # noqa: E402
from optuna_pandalm.attributes import (  # noqa: E402
    BEST_STEP_ATTR,
    LEADERBOARD_ATTR,
    PRUNED_ATTR,
    SCORE_ATTR,
    WORKER_ATTR,
)
from optuna_pandalm.commands.cli import main  # noqa: E402
from optuna_pandalm.study.check import check_study  # noqa: E402
from optuna_pandalm.study.optuna_storage import OutageTolerantStorage  # noqa: E402
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response  # noqa: E402
from optuna_pandalm.training.ray_tune import (  # noqa: E402
    FINAL,
    SCORE,
    STEP,
    TRIAL_NUMBER,
    JudgedOptunaSearch,
    JudgePrunerScheduler,
    JudgePublishCallback,
    judged_trial,
    report_checkpoint,
    report_final,
)
from tests.conftest import _postgres_database  # noqa: E402

STUDY = "ray-tune"
PROMPTS = simulated_prompts(16, seed=3)
STEPS = (1, 2, 3)
# The first four trials, in order: two strong ones run first (two at a time), then two
# weak ones, each of which meets a finished strong trial's checkpoint at its first step.
FIRST = [{"x": 2.0}, {"x": 1.5}, {"x": -2.0}, {"x": -1.0}]
N_TRIALS = 6
# Ray's Unix sockets live under its temp folder: <folder>/session_<date>_<pid>/sockets/
# plasma_store must fit AF_UNIX's 107 bytes.
RAY_TEMP_MAX = 42


def _arena(url: str) -> Arena:
    judge = SimulatedJudge(seed=0, noise=0.3, position_bias=0.0)
    return Arena(url, STUDY, judge, PROMPTS, seed=0)


def _answers(x: float, step: int) -> list[str]:
    """A simulated checkpoint: quality grows with x and with training."""
    quality = x * (0.5 + step / 2)
    return [simulated_response(quality, text=f"{i}") for i in range(len(PROMPTS))]


def _trainable(config: dict, *, url: str) -> None:
    """Runs in a Ray worker process: train (simulated), judge each checkpoint, report."""
    arena = _arena(url)
    trial = judged_trial(config, url, study_name=STUDY, pruner=JudgePruner(arena))
    for step in STEPS:
        report_checkpoint(arena.evaluate(trial, step, _answers(config["x"], step)))
    report_final(arena, trial)


def _space(trial: optuna.Trial) -> None:
    trial.suggest_float("x", -2.0, 2.0)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray cluster, 2 CPUs, on loopback; its files under the tests' temp folder.
    Yields the verdict journal folder of its processes (and of the driver's arena)."""
    folder = tempfile.mkdtemp(prefix="ray", dir=Path(tempfile.gettempdir()).resolve())
    if len(folder) > RAY_TEMP_MAX:
        # Ray's socket paths must fit in 107 bytes: under a long TMPDIR (a CI checkout's),
        # a short folder in /tmp instead, removed with the cluster.
        shutil.rmtree(folder)
        folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    repo = str(Path(__file__).resolve().parents[1])
    with pytest.MonkeyPatch.context() as env:
        # Ray's processes inherit these: tests.* importable, their verdict journal out of
        # the user's cache (module-scoped, this runs before the per-test journal fixture),
        # no usage report over the network, no token file in ~/.ray for a loopback cluster.
        journal = tmp_path_factory.mktemp("journal-ray")
        env.setenv("OPTUNA_PANDALM_JOURNAL", str(journal))
        path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
        env.setenv("PYTHONPATH", path)
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.setenv("RAY_AUTH_MODE", "disabled")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=folder,
            log_to_driver=False,
        )
        try:
            yield journal
        finally:
            ray.shutdown()
            shutil.rmtree(folder, ignore_errors=True)


def _run(url: str, tune_folder: Path) -> tune.ResultGrid:
    """The recipe of docs/ray_tune.md: the driver's search, scheduler and publisher."""
    arena = _arena(url)
    storage = OutageTolerantStorage(url)
    search = JudgedOptunaSearch(
        _space,
        sampler=BradleyTerrySampler(arena, optuna.samplers.TPESampler(seed=0)),
        storage=storage,
        study_name=STUDY,
        points_to_evaluate=FIRST,
    )
    tuner = tune.Tuner(
        tune.with_parameters(_trainable, url=url),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(search, max_concurrent=2),
            scheduler=JudgePrunerScheduler(JudgePruner(arena), storage=storage, study_name=STUDY),
            num_samples=N_TRIALS,
        ),
        run_config=tune.RunConfig(
            name="judged",
            storage_path=str(tune_folder),
            callbacks=[JudgePublishCallback(arena, storage=storage)],
            verbose=0,
        ),
    )
    return tuner.fit()


@pytest.fixture(scope="module", params=["sqlite-file", "postgresql"])
def tuned(request, ray_cluster, tmp_path_factory):
    """A finished Tune run on each database several processes share: (results, URL, the
    journal folder of its processes)."""
    folder = tmp_path_factory.mktemp("tuned")
    if request.param == "sqlite-file":
        databases = iter([f"sqlite:///{folder / 'study.db'}"])
    else:
        databases = _postgres_database()
    url = next(databases)
    results = _run(url, folder / "tune")
    assert not results.errors, results.errors
    yield results, url, ray_cluster
    next(databases, None)  # drops the PostgreSQL database


def _reported(result) -> tuple[list[dict], dict | None]:
    """What one Tune trial reported: its checkpoints' results, in order, and its final
    result (``None`` when the pruner stopped it)."""
    rows = result.metrics_dataframe.to_dict("records")
    checkpoints = [row for row in rows if not math.isnan(row[STEP])]
    final = [row for row in rows if math.isnan(row[STEP])]
    assert len(final) <= 1 and rows[: len(checkpoints)] == checkpoints
    return checkpoints, final[0] if final else None


def test_each_trial_is_judged_in_a_ray_worker_process_under_its_optuna_trial(tuned):
    results, url, _ = tuned
    study = optuna.load_study(study_name=STUDY, storage=url)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    arena = Arena.load(url, STUDY)
    pids = set()
    assert len(results) == len(trials) == N_TRIALS
    for result in results:
        number = result.config[TRIAL_NUMBER]
        checkpoints, final = _reported(result)
        (pid,) = {int(row["pid"]) for row in [*checkpoints, *([final] if final else [])]}
        pids.add(pid)
        trial = trials[number]
        assert trial.params == {"x": result.config["x"]}
        assert trial.user_attrs[WORKER_ATTR].endswith(f":{pid}")
        assert [p.step for p in arena.trial_players(number)] == [
            int(row[STEP]) for row in checkpoints
        ]
        assert trial.intermediate_values == {
            int(row[STEP]): pytest.approx(row[SCORE]) for row in checkpoints
        }
    assert os.getpid() not in pids and len(pids) == N_TRIALS  # one worker process per trial


def test_pruned_trials_stop_early_and_finished_ones_get_finalize_value(tuned):
    results, url, _ = tuned
    study = optuna.load_study(study_name=STUDY, storage=url)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    stopped = {}  # pruned trial -> checkpoints it reported
    for result in results:
        trial = trials[result.config[TRIAL_NUMBER]]
        checkpoints, final = _reported(result)
        assert trial.user_attrs[BEST_STEP_ATTR] in STEPS  # as arena.finalize records it
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert trial.user_attrs[PRUNED_ATTR].startswith("pruned at step")
            stopped[trial.number] = len(checkpoints)
        else:
            assert trial.state == optuna.trial.TrialState.COMPLETE
            assert len(checkpoints) == len(STEPS) and final is not None and final[FINAL]
            assert trial.value == pytest.approx(final[SCORE])
            assert trial.user_attrs[SCORE_ATTR] == pytest.approx(trial.value, abs=1e-4)
    # Both weak trials of FIRST lose to a finished strong trial at their first step, and
    # the scheduler stops them there: no worker trains on after its trial is pruned.
    early = [n for n, judged in stopped.items() if judged < len(STEPS)]
    assert len(early) >= 2, f"pruned trials and their checkpoints: {stopped}"


def test_the_stored_study_reads_as_study_optimize_leaves_it(tuned, capsys, monkeypatch):
    _, url, journal = tuned
    monkeypatch.setenv("OPTUNA_PANDALM_JOURNAL", str(journal))  # check reads the workers'
    study = optuna.load_study(study_name=STUDY, storage=url)
    arena = Arena.load(url, STUDY)
    assert not any(check_study(arena, study).values())
    assert main(["check", "--storage", url, "--study-name", STUDY]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "--storage", url, "--study-name", STUDY, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    # the published line: "#1 trial T step S +score [...] ... | #2 ...", the top 5
    published = re.findall(
        r"#\d+ trial (\d+) step (\d+) ([+-]\d+\.\d+)", study.user_attrs[LEADERBOARD_ATTR]
    )
    top = rows[: len(published)]
    assert len(published) == min(5, len(rows))
    assert [(int(t), int(s)) for t, s, _ in published] == [(r["trial"], r["step"]) for r in top]
    assert [float(x) for *_, x in published] == pytest.approx([r["score"] for r in top], abs=1e-3)
    numbers = {t.number for t in study.get_trials(deepcopy=False)}
    assert {r["trial"] for r in rows} <= numbers


@pytest.mark.parametrize(
    ("build", "error", "names"),
    [
        (lambda url: judged_trial({"x": 1.0}, url, study_name=STUDY), KeyError, TRIAL_NUMBER),
        (
            lambda url: JudgedOptunaSearch(
                {"x": optuna.distributions.FloatDistribution(-2, 2)},
                sampler=optuna.samplers.RandomSampler(),
                storage=OutageTolerantStorage(url),
                study_name=STUDY,
            ),
            TypeError,
            "define-by-run",
        ),
        (
            lambda url: JudgedOptunaSearch(
                _space,
                sampler=optuna.samplers.RandomSampler(),
                storage=optuna.storages.InMemoryStorage(),
                study_name=STUDY,
            ),
            TypeError,
            "worker processes share",
        ),
    ],
    ids=["config-without-trial-number", "dict-space", "memory-storage"],
)
def test_a_search_or_trial_that_cannot_map_to_the_optuna_trial_is_refused(
    build, error, names, tmp_path
):
    with pytest.raises(error, match=names):
        build(f"sqlite:///{tmp_path / 'study.db'}")
