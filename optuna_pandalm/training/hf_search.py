"""``Trainer.hyperparameter_search(backend="optuna")`` with the judge.

transformers creates the study itself (``optuna.create_study(**kwargs)``, so our sampler,
pruner and storage pass straight through) and runs ``trainer.train(trial=trial)`` per trial.
A callback never sees that trial: the Trainer hands it only to ``model_init(trial)`` and to
``hp_space(trial)``, which it calls at the start of every ``train``. :func:`judged_hp_space`
wraps the search space so that it also gives the trial to the :class:`JudgeCallback`;
:func:`judge_objective` is the ``compute_objective`` that reads the judge's score from the
evaluation metrics (where the callback puts it). See ``docs/trainer.md``.

transformers also runs ``study.optimize`` itself and forwards no ``callbacks`` (its other
keyword arguments go to ``optuna.create_study``), so
:class:`~optuna_pandalm.publish.PublishCallback` cannot be passed through it: call it
after the search on the loaded study, once per finished trial (``docs/trainer.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna_pandalm.training.callback import JudgeCallback

__all__ = ["judge_objective", "judged_hp_space"]

_SCORE = "eval_judge/score"


def judged_hp_space(
    callback: JudgeCallback, hp_space: Callable[[Any], dict[str, Any]]
) -> Callable[[Any], dict[str, Any]]:
    """``hp_space`` for ``Trainer.hyperparameter_search`` that also hands each trial to
    ``callback`` (``callback.trial = trial``) before it trains.

    Example:
        >>> from types import SimpleNamespace
        >>> callback = SimpleNamespace(trial=None)
        >>> space = judged_hp_space(callback, lambda trial: {"learning_rate": 1e-4})
        >>> space("trial 3"), callback.trial
        ({'learning_rate': 0.0001}, 'trial 3')
    """

    def space(trial: Any) -> dict[str, Any]:
        callback.trial = trial
        return hp_space(trial)

    return space


def judge_objective(metrics: Mapping[str, float]) -> float:
    """``compute_objective`` for ``Trainer.hyperparameter_search``: the judge's score
    (log-odds against the anchor) of the checkpoint just evaluated.

    Raises:
        KeyError: the metrics hold no judge score (no :class:`JudgeCallback` in the Trainer).

    Example:
        >>> judge_objective({"eval_loss": 2.3, "eval_judge/score": 0.4})
        0.4
    """
    if _SCORE not in metrics:
        raise KeyError(
            f"no {_SCORE!r} in the evaluation metrics ({', '.join(sorted(metrics))}): "
            "add a JudgeCallback to the Trainer's callbacks"
        )
    return float(metrics[_SCORE])
