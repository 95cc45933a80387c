"""A judge-driven search in your own training script: Trainer + JudgeCallback + Arena.

    python examples/train_with_callback.py [--base-model /path/to/local/model] [--trials 6]

Without --base-model it uses the CPU demo's tiny pre-trained model (built on first use).
"""

import argparse

import optuna
import transformers

from optuna_pandalm import (
    Arena,
    BradleyTerrySampler,
    JudgeCallback,
    JudgePruner,
    PublishCallback,
)
from optuna_pandalm.demo.run import DEMO_TEMPLATE, pretrained_base
from optuna_pandalm.demo.tasks import make_data
from optuna_pandalm.judges import ReferenceJudge
from optuna_pandalm.training.tuning import InstructionDataset, make_collator

parser = argparse.ArgumentParser()
parser.add_argument("--base-model", default=None)
parser.add_argument("--trials", type=int, default=6)
cli = parser.parse_args()
base = cli.base_model or str(pretrained_base())
data = make_data(n_train=600, n_judge=30, n_heldout=10)
url = "sqlite:///example.db"
arena = Arena(url, "example", ReferenceJudge("char_ratio"), data.judge_prompts)
study = optuna.create_study(
    study_name="example",
    storage=url,
    direction="maximize",
    load_if_exists=True,
    sampler=BradleyTerrySampler(arena),
    pruner=JudgePruner(arena),
)


def objective(trial: optuna.Trial) -> float:
    tokenizer = transformers.AutoTokenizer.from_pretrained(base, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
    args = transformers.TrainingArguments(
        output_dir=f"runs/trial-{trial.number}",
        num_train_epochs=3,
        report_to=[],
        save_strategy="no",
        learning_rate=trial.suggest_float("learning_rate", 1e-4, 3e-2, log=True),
        lr_scheduler_type=trial.suggest_categorical("scheduler", ["cosine", "linear"]),
        per_device_train_batch_size=16,
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=InstructionDataset(data.train, tokenizer, DEMO_TEMPLATE, 128),
        data_collator=make_collator(tokenizer.pad_token_id),
        callbacks=[
            JudgeCallback(arena, trial, tokenizer, template=DEMO_TEMPLATE, max_new_tokens=8)
        ],
    )
    trainer.train()  # the callback judges each epoch and stops the run when pruned
    return arena.finalize(trial)  # the best checkpoint's score, or TrialPruned


study.optimize(objective, n_trials=cli.trials, callbacks=[PublishCallback(arena)])
for row in arena.leaderboard()[:5]:
    print(row.trial, row.step, f"{row.score:+.3f}", f"P(best)={row.p_best:.2f}")
