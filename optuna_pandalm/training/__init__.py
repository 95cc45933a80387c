"""Training: where checkpoints come from and how they are asked to answer.

* ``callback``: :class:`JudgeCallback`, the transformers ``TrainerCallback``: reacts to the
  Trainer's events and takes the steps below in order.
* ``judge_schedule``: which checkpoints are judged.
* ``generation``: the prompt set's answers (templates, batched generation, its settings).
* ``ranks``: which rank answers what under ``torch.distributed``.
* ``judging``: a checkpoint's answers before the arena; best checkpoint saved; pruner asked.
* ``judge_metrics``: the judge's figures as the flat metrics a Trainer logs.
* ``tuning``: ``tune``'s config and objective (Trainer + peft).
* ``sft``: training with TRL's ``SFTTrainer``.
* ``progress``: live progress on the terminal.
* ``hf_search``: ``Trainer.hyperparameter_search(backend="optuna")`` with the judge.
* ``trl_judge``: TRL's removed pairwise-judge shape over our judges.
* ``ray_tune``: Ray Tune's ``OptunaSearch`` over a judged study, a scheduler asking
  ``JudgePruner``'s rule, and the trainable's side (Ray imported on first use).

Imports the arena, the Optuna wing and ``publish``; never review or command code. torch
and transformers are imported inside functions, so the package imports without them (but
``callback`` imports transformers at module level: its class is a ``TrainerCallback``).
"""
