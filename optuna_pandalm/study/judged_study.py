"""One way to create, resume and run a judge-driven study, shared by ``tune`` and the demo."""

from __future__ import annotations

import copy
import datetime
import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from optuna_pandalm.arena import Arena

from optuna_pandalm.attributes import BASELINE_ATTR, ERROR_ATTR
from optuna_pandalm.errors import JudgeTimeoutError
from optuna_pandalm.publish.callback import PublishCallback

__all__ = [
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "INTERRUPTED",
    "fail_trials_without_heartbeat",
    "open_judged_study",
    "optimize",
    "trials_to_run",
]

_logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted (Ctrl-C) before it finished"
HEARTBEAT_INTERVAL = 60
"""Seconds between the heartbeats of a study opened from a URL by :func:`open_judged_study`."""
GRACE_PERIOD = 180
"""Seconds without a heartbeat after which such a study's RUNNING trial is failed (``check``'s
default too)."""


def open_judged_study(
    arena: Arena,
    storage: str | optuna.storages.BaseStorage,
    *,
    base_sampler: optuna.samplers.BaseSampler,
    baseline_params: Mapping[str, Any] | None = None,
) -> optuna.Study:
    """Create the study, or load it when it exists (an interrupted study resumes), with
    ``BradleyTerrySampler(arena, base_sampler)`` and ``JudgePruner(arena)``; a new study
    gets ``baseline_params`` enqueued as its first trial, marked ``baseline``.

    A URL (but an in-memory SQLite one, which no other worker can share) opens
    :class:`~optuna_pandalm.study.optuna_storage.OutageTolerantStorage` with Optuna's
    heartbeat (every :data:`HEARTBEAT_INTERVAL` s, failed after :data:`GRACE_PERIOD` s of
    silence), so a worker that dies leaves no trial RUNNING for ever: the next worker's
    :func:`optimize` fails it. Every worker of a study must then have a heartbeat (``tune``
    and the demo do); a storage object is used as given."""
    import optuna

    from optuna_pandalm.study.optuna_storage import OutageTolerantStorage
    from optuna_pandalm.study.pruner import JudgePruner
    from optuna_pandalm.study.sampler import BradleyTerrySampler

    if isinstance(storage, str) and storage not in ("sqlite://", "sqlite:///:memory:"):
        with warnings.catch_warnings():  # Optuna's heartbeat is "experimental" since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = OutageTolerantStorage(
                storage, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD
            )

    study = optuna.create_study(
        study_name=arena.study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=BradleyTerrySampler(arena, base_sampler),
        pruner=JudgePruner(arena),
    )
    if baseline_params and not study.get_trials(deepcopy=False):
        study.enqueue_trial(dict(baseline_params), user_attrs={BASELINE_ATTR: True})
    return study


def trials_to_run(study: optuna.Study, n_trials: int) -> int:
    """How many trials are left to reach ``n_trials`` finished ones (complete, pruned or
    failed); a trial left RUNNING by a dead worker does not count (``check`` lists it)."""
    finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    return max(0, n_trials - finished)


def fail_trials_without_heartbeat(study: optuna.Study, arena: Arena) -> list[int]:
    """Fail the RUNNING trials of ``study`` that never had a heartbeat and started longer
    than the storage's grace period ago; returns their numbers, and logs a WARNING for each.

    Optuna fails a trial whose heartbeat went stale, but not one whose worker died before
    its first heartbeat (an outage right after the trial was created): it stayed RUNNING
    for ever and ``check`` kept exiting 1. Only with a heartbeat (on ``study``'s storage,
    hence on every worker's, as Optuna requires): without one, no trial has a heartbeat
    and a running one cannot be told from a dead one. The trial gets ``pandalm_error``
    saying why, and the storage's ``heartbeat_stale_trial_callback`` (for example
    ``RetryHeartbeatStaleTrialCallback``) is called as for a stale trial. The trials'
    heartbeats are read through ``arena``'s store, so this needs the study and the arena in
    one database (otherwise it fails nothing). The age is measured with this machine's
    clock against the trial's start, which Optuna writes with the creating worker's.
    """
    import optuna
    from optuna.storages._heartbeat import BaseHeartbeat

    storage = study._storage  # no public accessor; Optuna's own fail_stale_trials uses it
    if not isinstance(storage, BaseHeartbeat):
        return []
    interval = storage.get_heartbeat_interval()
    if not interval:
        return []
    backend = getattr(storage, "_backend", storage)  # Optuna's cache wraps the RDB storage
    grace = getattr(backend, "grace_period", None) or 2 * interval
    beatless = set(arena.store.trials_without_heartbeat(study.study_name))
    if not beatless:
        return []
    now = datetime.datetime.now()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.number not in beatless or trial.datetime_start is None:
            continue
        age = (now - trial.datetime_start).total_seconds()
        if age <= grace:
            continue
        why = (
            f"its worker died before its first heartbeat: RUNNING since "
            f"{trial.datetime_start:%Y-%m-%d %H:%M:%S} ({age:.0f} s, grace period {grace} s) "
            "with no heartbeat; failed by a resumed worker"
        )
        try:
            storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, why)
            if not storage.set_trial_state_values(
                trial._trial_id, state=optuna.trial.TrialState.FAIL
            ):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed or finished it meanwhile
        _logger.warning("trial %d failed: %s", trial.number, why)
        failed.append(trial.number)
        callback = storage.get_heartbeat_stale_trial_callback()
        if callback is not None:
            callback(study, copy.deepcopy(storage.get_trial(trial._trial_id)))
    return failed


def optimize(
    study: optuna.Study,
    objective: Any,
    *,
    arena: Arena,
    n_trials: int,
    timeout: float | None = None,
) -> None:
    """``study.optimize`` that publishes ``arena``'s standings after each finished trial
    (:class:`~optuna_pandalm.publish.PublishCallback`) and leaves no trial of this process
    RUNNING on Ctrl-C. First, and after each trial, it fails the trials whose worker died
    before their first heartbeat (:func:`fail_trials_without_heartbeat`). A trial whose
    judge call timed out (:class:`~optuna_pandalm.errors.JudgeTimeoutError`) fails, and the
    next one runs.

    Optuna marks a trial FAIL when Ctrl-C stops its objective (the objective of
    :func:`~optuna_pandalm.training.tuning.make_objective` then records why in ``pandalm_error``),
    but not when it comes while the trial is being sampled: that trial is marked FAIL here,
    with the same reason. ``KeyboardInterrupt`` then propagates.
    """
    import optuna

    fail_trials_without_heartbeat(study, arena)
    try:
        study.optimize(
            objective,
            n_trials=n_trials,
            timeout=timeout,
            catch=(JudgeTimeoutError,),  # a hung judge fails its trial; the study goes on
            callbacks=[PublishCallback(arena), _FailTrialsWithoutHeartbeat(arena)],
        )
    except KeyboardInterrupt:
        number = getattr(study.sampler, "last_trial", None)
        trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
        if trial is not None and trial.state == optuna.trial.TrialState.RUNNING:
            # No public setter for another trial's attributes: the storage's own call.
            study._storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, INTERRUPTED)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        raise


class _FailTrialsWithoutHeartbeat:
    """After each finished trial, :func:`fail_trials_without_heartbeat`: a trial that was
    within its grace period when the worker resumed is failed once it is past it."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        fail_trials_without_heartbeat(study, self.arena)
