"""Ray Tune with the judge: Optuna's search, the arena's scores, the pruner's rule.

Ray Tune schedules trials on a cluster; its :class:`~ray.tune.search.optuna.OptunaSearch`
asks an Optuna study for each trial's parameters, in the driver, and tells it each trial's
result. Three pieces fit the judge into that loop (``docs/ray_tune.md``):

* :class:`JudgedOptunaSearch`, the driver's search: ``OptunaSearch`` with
  ``sampler=BradleyTerrySampler(arena, ...)`` on a storage every worker shares. It puts the
  Optuna trial's number into each Tune trial's config (:data:`TRIAL_NUMBER`), leaves the
  intermediate values to the arena (each checkpoint's score at its own step, from the
  worker), and tells Optuna PRUNED for a trial the pruner stopped.
* :class:`JudgePrunerScheduler`, the driver's scheduler: Tune does not run Optuna pruners,
  so on each checkpoint's result it asks :meth:`JudgePruner.reason
  <optuna_pandalm.JudgePruner.reason>` and stops the trial with the reason recorded, as
  ``trial.should_prune()`` would in ``study.optimize``.
* In the trainable (a Ray worker process): :func:`judged_trial` opens the live Optuna trial
  of the Tune trial, ``arena.evaluate(trial, step, answers)`` judges each checkpoint and
  :func:`report_checkpoint` reports it to Tune; :func:`report_final` finalizes the trial
  (``arena.finalize``) and reports its value.

:class:`JudgePublishCallback` publishes the standings after each finished trial, as
:class:`~optuna_pandalm.PublishCallback` does for ``study.optimize``.

Ray is an optional extra (``pip install optuna-pandalm[ray]``): the three Ray classes are
built on first access (``from optuna_pandalm.training.ray_tune import JudgedOptunaSearch``
imports Ray then), so this module imports without it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from optuna_pandalm.attributes import BEST_STEP_ATTR, PRUNED_ATTR, SCORE_ATTR

if TYPE_CHECKING:
    import optuna

    from optuna_pandalm.arena import Arena, EvaluationResult
    from optuna_pandalm.study.pruner import JudgePruner

__all__ = [
    "FINAL",
    "SCORE",
    "STEP",
    "TRIAL_NUMBER",
    "JudgePrunerScheduler",  # noqa: F822 (built on first access: __getattr__)
    "JudgePublishCallback",  # noqa: F822 (built on first access: __getattr__)
    "JudgedOptunaSearch",  # noqa: F822 (built on first access: __getattr__)
    "NumberedSpace",
    "judged_trial",
    "report_checkpoint",
    "report_final",
]

_logger = logging.getLogger(__name__)

TRIAL_NUMBER = "optuna_trial_number"
"""The config key holding the Optuna trial's number, which the arena's players carry."""
SCORE = "judge_score"
"""The metric: a checkpoint's score (log-odds against the anchor), or the trial's value in
its final result."""
STEP = "judge_step"
"""The checkpoint's step in a result (Tune's ``training_iteration`` only counts results)."""
FINAL = "judge_final"
"""Set in a trial's last result, whose :data:`SCORE` is its value (``arena.finalize``)."""

_RAY_CLASSES = ("JudgedOptunaSearch", "JudgePrunerScheduler", "JudgePublishCallback")


class NumberedSpace:
    """A define-by-run search space that also returns the trial's number as
    :data:`TRIAL_NUMBER`, so that the Tune trial's config names its Optuna trial.

    ``OptunaSearch`` merges the dict a define-by-run function returns into the config (as
    constants beside the suggested values). It pickles (Tune saves its search with
    ``pickle``) when ``space`` does: a function defined at a module's top level.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize")
        >>> space = NumberedSpace(lambda t: {"lr": t.suggest_float("lr", 1e-5, 1e-3)})
        >>> sorted(space(study.ask()))
        ['lr', 'optuna_trial_number']
    """

    def __init__(self, space: Callable[[Any], Mapping[str, Any] | None]) -> None:
        if not callable(space):
            raise TypeError(
                "space must be a define-by-run function (trial -> dict or None), got "
                f"{type(space).__name__}: a dict of distributions has no trial to number"
            )
        self.space = space

    def __call__(self, trial: Any) -> dict[str, Any]:
        constants = self.space(trial) or {}
        if TRIAL_NUMBER in constants:
            raise ValueError(f"the search space may not return {TRIAL_NUMBER!r}: it is ours")
        return {**constants, TRIAL_NUMBER: trial.number}


def judged_trial(
    config: Mapping[str, Any],
    storage: str | optuna.storages.BaseStorage,
    *,
    study_name: str,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.trial.Trial:
    """The live Optuna trial of this Tune trial, for the trainable (a Ray worker process).

    :class:`JudgedOptunaSearch` created the trial in the driver (``study.ask()``); this
    opens it here, from the shared ``storage``, so that ``arena.evaluate(trial, ...)`` and
    ``arena.finalize(trial)`` write to it as in ``study.optimize``: each checkpoint's score
    reported at its step, this worker's host and process (``pandalm_worker``), a judge's
    failure, and why the pruner prunes it at its end (give ``pruner``, the study's
    :class:`~optuna_pandalm.JudgePruner`, for that).

    Raises:
        KeyError: the config has no :data:`TRIAL_NUMBER` (the search is not a
            :class:`JudgedOptunaSearch`).
    """
    import optuna

    if TRIAL_NUMBER not in config:
        raise KeyError(
            f"no {TRIAL_NUMBER!r} in the trial's config ({', '.join(sorted(config))}): "
            "search with JudgedOptunaSearch"
        )
    if isinstance(storage, str):
        from optuna_pandalm.study.optuna_storage import OutageTolerantStorage

        storage = OutageTolerantStorage(storage)
    # The parameters were sampled in the driver: this process's sampler never samples, and
    # a random one does nothing when the trial is opened (Trial calls its before_trial).
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),
        pruner=pruner,
    )
    trial_id = _optuna_trial_id(storage, study_name, int(config[TRIAL_NUMBER]))
    # Optuna's own optimize builds the live trial so after study.ask(); the ask was the
    # driver's.
    return optuna.trial.Trial(study, trial_id)


def report_checkpoint(result: EvaluationResult, **metrics: Any) -> None:
    """Report a judged checkpoint to Tune: its score (:data:`SCORE`), its step
    (:data:`STEP`), the match's record and judge calls, and ``metrics`` (the training
    loss, ...). :class:`JudgePrunerScheduler` decides on it."""
    from ray import tune

    tune.report(
        {
            SCORE: result.score,
            STEP: result.player.step,
            "judge_wins": result.wins,
            "judge_ties": result.ties,
            "judge_losses": result.losses,
            "judge_calls": result.judge_calls,
            **metrics,
        }
    )


def report_final(arena: Arena, trial: optuna.trial.Trial) -> float | None:
    """End the trial as ``study.optimize`` would: ``arena.finalize(trial)``, reported to Tune
    as the trial's value (:data:`SCORE` with :data:`FINAL` set), which
    :class:`JudgedOptunaSearch` tells Optuna. Returns it, or ``None`` when the study's
    pruner pruned the trial at its end (the reason recorded on the trial, which
    :class:`JudgedOptunaSearch` then tells Optuna is PRUNED): call this last in the
    trainable, and return."""
    import optuna
    from ray import tune

    try:
        value = arena.finalize(trial)
    except optuna.TrialPruned as pruned:
        _logger.info("%s", pruned)
        return None
    tune.report({SCORE: value, FINAL: True})
    return value


def _number(tune_trial: Any) -> int | None:
    """The Optuna trial number a Tune trial's config names, or ``None``."""
    number = getattr(tune_trial, "config", {}).get(TRIAL_NUMBER)
    return None if number is None else int(number)


def _optuna_trial_id(storage: optuna.storages.BaseStorage, study_name: str, number: int) -> int:
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def _was_pruned(storage: optuna.storages.BaseStorage, study_name: str, number: int) -> bool:
    """Whether the trial carries the pruner's reason (the scheduler's, or finalize's)."""
    trial_id = _optuna_trial_id(storage, study_name, number)
    return PRUNED_ATTR in storage.get_trial(trial_id).user_attrs


@functools.cache
def _ray_classes() -> dict[str, type]:
    """The classes that subclass Ray's, built once, when first asked for (Ray imported
    then). Each names this module, so that pickling finds it (``__getattr__`` below)."""
    import optuna
    from ray.tune import Callback
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler
    from ray.tune.search.optuna import OptunaSearch

    from optuna_pandalm.publish.callback import PublishCallback

    class JudgedOptunaSearch(OptunaSearch):  # type: ignore[misc]
        """``OptunaSearch`` over a judged study (run it in the Tune driver).

        Args:
            space: A define-by-run function (``trial -> dict | None``), as for
                ``OptunaSearch``; the Optuna trial's number is added to each config as
                :data:`TRIAL_NUMBER` (:class:`NumberedSpace`).
            sampler: ``BradleyTerrySampler(arena, base_sampler)``.
            storage: An Optuna storage every worker shares (``OutageTolerantStorage(url)``
                on SQLite or PostgreSQL); ``OptunaSearch`` creates the study there, or loads
                it (``load_if_exists``), with ``direction="maximize"``.
            study_name: The study's (and the arena's) name.
            metric: The result key of the score (:data:`SCORE`).
            **options: Other ``OptunaSearch`` arguments (``points_to_evaluate``, ...).

        Differs from ``OptunaSearch`` in two hooks. ``on_trial_result`` writes nothing: the
        worker's ``arena.evaluate`` reports each checkpoint's score to the Optuna trial at
        the checkpoint's step, where ``OptunaSearch`` would report at Tune's
        ``training_iteration`` (a count of results). ``on_trial_complete`` tells PRUNED
        for a trial that carries the pruner's reason (``pandalm_pruned``), where
        ``OptunaSearch`` would tell COMPLETE with the last score; otherwise the last
        result's :data:`SCORE` (``report_final``'s value) is the trial's value, and a
        trial that errored is FAIL, as in ``OptunaSearch``.
        """

        def __init__(
            self,
            space: Callable[[Any], Mapping[str, Any] | None],
            *,
            sampler: optuna.samplers.BaseSampler,
            storage: optuna.storages.BaseStorage,
            study_name: str,
            metric: str = SCORE,
            **options: Any,
        ) -> None:
            if not isinstance(storage, optuna.storages.BaseStorage) or isinstance(
                storage, optuna.storages.InMemoryStorage
            ):
                raise TypeError(
                    "storage must be an Optuna storage that Ray's worker processes share "
                    "(OutageTolerantStorage(url) on SQLite or PostgreSQL), got "
                    f"{type(storage).__name__}"
                )
            self.judged_storage = storage
            self.judged_study_name = study_name
            self.numbers: dict[str, int] = {}  # Tune trial id -> Optuna trial number
            super().__init__(
                NumberedSpace(space),
                metric=metric,
                mode="max",
                sampler=sampler,
                study_name=study_name,
                storage=storage,
                **options,
            )

        def suggest(self, trial_id: str) -> dict[str, Any] | None:
            config: dict[str, Any] | None = super().suggest(trial_id)
            if config is not None:
                self.numbers[trial_id] = int(config[TRIAL_NUMBER])
            return config

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            """Nothing: the arena reported the checkpoint's score at its step."""

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            number = self.numbers.get(trial_id)
            if (
                result
                and not error
                and number is not None
                and _was_pruned(self.judged_storage, self.judged_study_name, number)
            ):
                result = None  # OptunaSearch tells PRUNED for a trial with no result
            super().on_trial_complete(trial_id, result=result, error=error)

    class JudgePrunerScheduler(FIFOScheduler):  # type: ignore[misc]
        """A Tune scheduler that asks :class:`~optuna_pandalm.JudgePruner`'s rule on each
        judged checkpoint (run it in the Tune driver).

        On each result with a score (:func:`report_checkpoint`'s; the final one is not
        asked), it asks ``pruner.reason(number, study=study)``, the rule
        ``trial.should_prune()`` applies in ``study.optimize``. When it prunes, the trial
        gets the reason (``pandalm_pruned``) and its best checkpoint as of now
        (``pandalm_best_step``, ``pandalm_score``), as ``arena.finalize`` records them, and
        Tune stops the trial (its worker trains no further checkpoint);
        :class:`JudgedOptunaSearch` then tells Optuna PRUNED. Trials run first in, first
        out, as with Tune's default scheduler.

        Args:
            pruner: The study's :class:`~optuna_pandalm.JudgePruner` (its arena is read in
                the driver: the games every worker stored).
            storage: The study's Optuna storage (the search's).
            study_name: The study's name.
        """

        # No result buffering (Tune then forces TUNE_RESULT_BUFFER_LENGTH=1, as for
        # HyperBand): a worker must not train past a checkpoint the rule has not seen.
        _supports_buffered_results = False

        def __init__(
            self,
            pruner: JudgePruner,
            *,
            storage: optuna.storages.BaseStorage,
            study_name: str,
        ) -> None:
            super().__init__()
            self.pruner = pruner
            self.storage = storage
            self.study_name = study_name
            self.pruned: dict[int, str] = {}  # Optuna trial number -> reason

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
            number = _number(trial)
            if number is None or SCORE not in result or result.get(FINAL):
                return str(TrialScheduler.CONTINUE)
            study = optuna.load_study(study_name=self.study_name, storage=self.storage)
            reason = self.pruner.reason(number, study=study)
            if reason is None:
                return str(TrialScheduler.CONTINUE)
            arena = self.pruner.arena
            trial_id = _optuna_trial_id(self.storage, self.study_name, number)
            self.storage.set_trial_user_attr(trial_id, PRUNED_ATTR, str(reason))
            best = arena.best_checkpoint(number)
            if best is not None:
                self.storage.set_trial_user_attr(trial_id, BEST_STEP_ATTR, best.step)
                score = round(arena.standings().score(best), 4)
                self.storage.set_trial_user_attr(trial_id, SCORE_ATTR, score)
            self.pruned[number] = str(reason)
            _logger.info("trial %d %s", number, reason)
            return str(TrialScheduler.STOP)

    class JudgePublishCallback(Callback):  # type: ignore[misc]
        """A Tune callback that publishes the arena's standings to the study after each
        finished trial (complete, pruned or failed): :class:`~optuna_pandalm.PublishCallback`
        on the finished Optuna trial, as ``study.optimize(callbacks=[...])`` runs it.

        Args:
            arena: The study's arena (the driver's).
            storage: The study's Optuna storage (the search's).
        """

        def __init__(self, arena: Arena, *, storage: optuna.storages.BaseStorage) -> None:
            self.publish = PublishCallback(arena)
            self.storage = storage

        def _published(self, trial: Any) -> None:
            number = _number(trial)
            if number is None:
                return
            study = optuna.load_study(
                study_name=self.publish.arena.study_name, storage=self.storage
            )
            trial_id = _optuna_trial_id(self.storage, study.study_name, number)
            self.publish(study, self.storage.get_trial(trial_id))

        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            self._published(trial)

        def on_trial_error(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            self._published(trial)

    classes: dict[str, type] = {
        "JudgedOptunaSearch": JudgedOptunaSearch,
        "JudgePrunerScheduler": JudgePrunerScheduler,
        "JudgePublishCallback": JudgePublishCallback,
    }
    for name, cls in classes.items():
        cls.__module__, cls.__qualname__ = __name__, name
    return classes


def __getattr__(name: str) -> Any:
    if name in _RAY_CLASSES:
        return _ray_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
