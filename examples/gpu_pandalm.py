"""A real search on a GPU: a local base model, LoRA, and PandaLM-7B as the judge.

Not run in CI (it needs a GPU and local weights). Paths are local folders: nothing is
downloaded. With one GPU, keep the judge on the CPU between evaluations (offload_judge)
so trainee and judge share the card.

    python examples/gpu_pandalm.py --base-model /models/llama-7b --judge /models/pandalm-7b \
        --train-data alpaca_data.json --eval-prompts testset-inference-v1.json --trials 20
"""

import argparse

import optuna

from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner, PandaLMJudge, PublishCallback
from optuna_pandalm.training.tuning import SearchSpace, TuneConfig, make_objective

parser = argparse.ArgumentParser()
parser.add_argument("--base-model", required=True)
parser.add_argument("--judge", required=True)
parser.add_argument("--train-data", required=True)
parser.add_argument("--eval-prompts", required=True)
parser.add_argument("--trials", type=int, default=20)
parser.add_argument("--storage", default="sqlite:///pandalm-gpu.db")
args = parser.parse_args()

judge = PandaLMJudge(args.judge, dtype="bfloat16", mode="likelihood", batch_size=16, device="cpu")
config = TuneConfig(
    base_model=args.base_model,
    train_data=args.train_data,
    eval_prompts=args.eval_prompts,
    judge=judge.name,
    search_space=SearchSpace(
        learning_rate=(2e-6, 2e-4), epochs=4, method=["lora"], lora_rank=[8, 16, 32]
    ),
    storage=args.storage,
    study_name="pandalm-gpu",
    output_dir="pandalm-gpu-runs",
    save_best=True,
)
config.check_files()
arena = Arena(args.storage, "pandalm-gpu", judge, args.eval_prompts)
study = optuna.create_study(
    study_name="pandalm-gpu",
    storage=args.storage,
    direction="maximize",
    load_if_exists=True,
    sampler=BradleyTerrySampler(arena),
    pruner=JudgePruner(arena),
)
study.enqueue_trial({"learning_rate": 2e-5}, user_attrs={"baseline": True})  # Alpaca's default
study.optimize(
    make_objective(config, arena, callback_options={"offload_judge": True, "progress": True}),
    n_trials=args.trials,
    callbacks=[PublishCallback(arena)],  # the leaderboard and notes, for Optuna Dashboard
)
print(study.best_trial.params, study.best_trial.user_attrs.get("pandalm_best_step"))
