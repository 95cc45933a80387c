"""What happens to one checkpoint's answers on the main process, step by step.

:class:`~optuna_pandalm.JudgeCallback` hands the answers to :meth:`Arena.evaluate`, with the
judge's model beside the trainee only while it judges (:func:`judge_on_device`), keeps the
trial's best checkpoint on disk (:func:`save_if_best`), and asks the study's pruner
(:func:`should_prune`); :func:`~optuna_pandalm.training.judge_metrics.judge_metrics` turns
the result into the figures it logs.

torch is imported inside functions, so this module imports without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena, EvaluationResult

__all__ = ["judge_on_device", "save_if_best", "should_prune"]


@contextlib.contextmanager
def judge_on_device(judge: Any, device: Any) -> Iterator[None]:
    """Move the judge's model (``judge.model``) to ``device`` for the duration of the block,
    and back to the CPU after (emptying the CUDA cache), so that trainee and judge can share
    one GPU. A judge without a movable model is left alone.

    Example:
        >>> class Model:
        ...     def to(self, device):
        ...         print("on", device)
        >>> class Judge:
        ...     model = Model()
        >>> with judge_on_device(Judge(), "cuda:0"):
        ...     pass
        on cuda:0
        on cpu
    """
    model = getattr(judge, "model", None)
    if model is None or not hasattr(model, "to"):
        yield
        return
    model.to(device)
    try:
        yield
    finally:
        model.to("cpu")
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def save_if_best(
    arena: Arena, result: EvaluationResult, model: Any, tokenizer: Any, folder: Path
) -> bool:
    """Save the checkpoint ``result`` scored (the adapter for peft models), its tokenizer and
    its step (in ``pandalm_step.txt``) under ``folder/trial-<number>`` if it is now its
    trial's best; return whether it was saved."""
    best = arena.best_checkpoint(result.player.trial)
    if best is None or best.step != result.player.step:
        return False
    target = folder / f"trial-{result.player.trial}"
    getattr(model, "module", model).save_pretrained(target)
    tokenizer.save_pretrained(target)
    (target / "pandalm_step.txt").write_text(f"{result.player.step}\n", encoding="utf-8")
    return True


def should_prune(trial: Any) -> bool:
    """The study's pruner's decision for ``trial`` at the step just reported; ``False`` for
    an object without ``should_prune`` (a fixed trial, a stand-in).

    Example:
        >>> should_prune(object())
        False
    """
    return bool(trial.should_prune()) if hasattr(trial, "should_prune") else False
