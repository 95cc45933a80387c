"""A Hugging Face ``TrainerCallback`` that lets the judge score checkpoints during training.

It only reacts to the Trainer's events and flips ``control`` flags, as transformers' own
callbacks do; each step of the work lives in its own module, in the order it happens:

1. :class:`~optuna_pandalm.training.judge_schedule.JudgeSchedule`: is this checkpoint judged
   (each epoch's end, every N steps, and every step the Trainer evaluates)?
2. :func:`~optuna_pandalm.training.generation.answer_prompts`: the trainee answers the
   arena's prompt set with the :class:`~optuna_pandalm.training.generation.GenerationSettings`
   (a shard per rank under ``torch.distributed``, see :mod:`~optuna_pandalm.training.ranks`).
3. :mod:`~optuna_pandalm.training.judging`: on the main process, :meth:`Arena.evaluate` scores
   the answers, the trial's best checkpoint is saved, and the study's pruner is asked.
4. :func:`~optuna_pandalm.training.judge_metrics.judge_metrics`: the judge's figures, logged
   through ``trainer.log`` and added to evaluation metrics.
5. Here: when the pruner says so, ``control.should_training_stop``, so that
   ``arena.finalize(trial)`` raises ``TrialPruned``.

transformers is imported at module level (``TrainerCallback`` is our base class): the root
package exports this module lazily. torch is imported inside functions.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from optuna_pandalm.attributes import ERROR_ATTR
from optuna_pandalm.errors import TrainingDivergedError
from optuna_pandalm.training.generation import (
    GenerationSettings,
    PromptTemplate,
    answer_prompts,
    autocast_dtype_of,
)
from optuna_pandalm.training.judge_metrics import eval_metrics, judge_metrics
from optuna_pandalm.training.judge_schedule import JudgeSchedule
from optuna_pandalm.training.judging import judge_on_device, save_if_best, should_prune
from optuna_pandalm.training.ranks import broadcast_from_main, merge_shards, shard

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from optuna_pandalm.arena import Arena, EvaluationResult

# shard and merge_shards live in training.ranks; named here too, where they were first.
__all__ = ["JudgeCallback", "TrainingDivergedError", "merge_shards", "shard"]

_logger = logging.getLogger(__name__)


def _all_finite(model: Any) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.is_floating_point())


class JudgeCallback(TrainerCallback):
    """Score checkpoints with the arena's judge while a ``Trainer`` trains.

    Args:
        arena: The study's :class:`~optuna_pandalm.Arena`.
        trial: The Optuna trial being trained (only needed on the main process).
        tokenizer: The trainee's tokenizer.
        every_n_steps: Evaluate every N optimizer steps instead of at each epoch end.
        max_new_tokens, batch_size, generation_kwargs: Generation settings (greedy by
            default).
        template: ``"alpaca"`` (default), ``"chat"`` or a callable ``(instruction, input)``.
        offload_judge: Move the judge's model to the trainee's GPU only while judging, and
            back to the CPU after, so that trainee and judge can share one GPU.
        save_best_to: A folder; the trial's best checkpoint so far (the adapter for peft
            models) is saved under ``trial-<number>`` in it.
        progress: Show tqdm progress bars for generation and judging.
        trainer: The ``Trainer`` (or TRL ``SFTTrainer``) this callback is added to, or set
            ``callback.trainer`` later: the judge's figures (``judge/score`` and the rest of
            :data:`~optuna_pandalm.training.judge_metrics.JUDGE_METRICS`) are then logged through
            ``trainer.log`` at each judged checkpoint, so every ``report_to`` logger gets
            them. Without it they reach only evaluation metrics (``eval_judge/score``).

    Attributes:
        results: The :class:`~optuna_pandalm.arena.EvaluationResult` of each checkpoint
            judged in this training run (main process only).
        metrics: The judge's figures for the last judged checkpoint, on every rank.
        pruned: Whether the pruner stopped this training run.
        schedule: The :class:`~optuna_pandalm.training.judge_schedule.JudgeSchedule` built
            from ``every_n_steps``.
        generation: The :class:`~optuna_pandalm.training.generation.GenerationSettings` built
            from ``template``, ``max_new_tokens``, ``batch_size``, ``generation_kwargs`` and
            ``progress``.

    Under ``torch.distributed`` every rank generates a shard of the prompts, the main process
    judges, and the pruning decision is broadcast so that every rank stops together.

    Each evaluation of the Trainer adds the judge's figures of the checkpoint to its metrics
    (``eval_judge/score`` and the rest; a step not judged yet is judged first), so that
    ``metric_for_best_model="judge/score"`` selects checkpoints by the judge. See
    ``docs/trainer.md``, also for ``Trainer.hyperparameter_search``.

    Example:
        >>> trainer = Trainer(model, args, train_dataset=data,
        ...                   callbacks=[JudgeCallback(arena, trial, tokenizer)])  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
        >>> return arena.finalize(trial)  # doctest: +SKIP
    """

    def __init__(
        self,
        arena: Arena,
        trial: Any,
        tokenizer: Any,
        *,
        every_n_steps: int | None = None,
        max_new_tokens: int = 256,
        batch_size: int = 16,
        template: PromptTemplate = "alpaca",
        generation_kwargs: dict[str, Any] | None = None,
        offload_judge: bool = False,
        save_best_to: str | Path | None = None,
        progress: bool = False,
        trainer: Any = None,
    ) -> None:
        self.arena = arena
        self.trial = trial
        self.tokenizer = tokenizer
        self.schedule = JudgeSchedule(every_n_steps)
        self.generation = GenerationSettings(
            template=template,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            generation_kwargs=generation_kwargs,
            progress=progress,
        )
        self.offload_judge = offload_judge
        self.save_best_to = None if save_best_to is None else Path(save_best_to)
        self.trainer = trainer
        self.results: list[EvaluationResult] = []
        self.pruned = False
        # The judge's figures for the last judged checkpoint, on every rank, and its step.
        self.metrics: dict[str, float] = {}
        self._judged_step: int | None = None

    # --- events --------------------------------------------------------------------------------
    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        # One callback serves every trial of Trainer.hyperparameter_search.
        self.results, self.pruned, self.metrics, self._judged_step = [], False, {}, None
        return control

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        model: Any = None,
        **kwargs: Any,
    ) -> TrainerControl:
        # Before the Trainer reads metric_for_best_model: judge this step if not yet judged.
        if metrics is not None:
            self._judge(args, state, control, model)
            metrics.update(eval_metrics(self.metrics))
        return control

    def on_epoch_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        **kwargs: Any,
    ) -> TrainerControl:
        if self.schedule.at_epoch_end():
            self._judge(args, state, control, model)
        return control

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        **kwargs: Any,
    ) -> TrainerControl:
        if self.schedule.at_step_end(state.global_step):
            self._judge(args, state, control, model)
        return control

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> TrainerControl:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._diverged(f"training loss is {loss} at step {state.global_step}")
        return control

    # --- the steps, in order -------------------------------------------------------------------
    def _judge(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any
    ) -> None:
        """Judge the checkpoint at this step, once; log its figures; stop if pruned."""
        step = state.global_step
        if self._judged_step == step:
            return  # judged already (an evaluation, then the end of the epoch, at one step)
        if model is None:
            raise ValueError("JudgeCallback needs the model: use it with a transformers Trainer")
        if not _all_finite(model):
            self._diverged(f"the weights hold NaN or infinite values at step {step}")
        answers = answer_prompts(
            model,
            self.tokenizer,
            self.arena.prompts,
            self.generation,
            autocast_dtype=autocast_dtype_of(args),
        )
        # Only the main process holds the answers and judges; every rank gets its figures.
        figures = {} if answers is None else self._judge_answers(step, answers, model)
        self.metrics = dict(broadcast_from_main(figures))
        self._judged_step = step
        self._log(control)
        if self.metrics.get("judge/pruned") == 1.0:
            _logger.info("pruning at step %d: stopping training", step)
            self.pruned = True
            control.should_training_stop = True

    def _judge_answers(self, step: int, answers: list[str], model: Any) -> dict[str, float]:
        """The arena's evaluation of this checkpoint (main process only), as figures."""
        if self.trial is None:
            raise ValueError(
                "JudgeCallback has no trial: pass the Optuna trial (with "
                "Trainer.hyperparameter_search, wrap hp_space with judged_hp_space)"
            )
        beside_trainee = (
            judge_on_device(self.arena.judge, next(model.parameters()).device)
            if self.offload_judge
            else contextlib.nullcontext()
        )
        with beside_trainee:
            result = self.arena.evaluate(self.trial, step, answers)
        self.results.append(result)
        if self.save_best_to is not None:
            save_if_best(self.arena, result, model, self.tokenizer, self.save_best_to)
        return judge_metrics(result, self.arena.standings(), pruned=should_prune(self.trial))

    def _diverged(self, reason: str) -> None:
        if hasattr(self.trial, "set_user_attr"):
            self.trial.set_user_attr(ERROR_ATTR, reason)
        raise TrainingDivergedError(reason)

    def _log(self, control: TrainerControl) -> None:
        """The judge's figures through ``trainer.log`` (one log entry at this step)."""
        if self.trainer is None:
            return
        should_log = control.should_log  # Trainer.log clears it: keep the Trainer's own log
        self.trainer.log(dict(self.metrics))
        control.should_log = should_log
