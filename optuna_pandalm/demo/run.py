"""The CPU demo: the whole judge-driven search in a few minutes, with nothing downloaded.

1. A tiny Llama with a character tokenizer is pre-trained briefly on random text in the
   prompt format (cached on disk, so reruns skip it).
2. A synthetic instruction task with verifiable answers (reverse, sort, copy, count, add) is
   split into training data, judge prompts with references and held-out prompts.
3. An Optuna study on SQLite, ``BradleyTerrySampler(TPE)`` and ``JudgePruner``, tunes the
   learning rate, optimizer, scheduler, warm-up, batch size and full vs LoRA fine-tuning.
   Trial 0 is the baseline: the Alpaca defaults (learning rate 2e-5, AdamW, cosine).
   ``ReferenceJudge`` compares each epoch's answers with the incumbent's, prompt by prompt.
4. The leaderboard is printed and an HTML report written; held-out exact-match accuracy of
   the best trial and of the baseline shows whether the judge picked well.
5. It ends by saying where the study is (masked storage URL, study name) and the exact
   ``optuna-dashboard`` and ``optuna-pandalm report`` commands to look at it.

Counts in the summary (``n_trials``, ``n_pruned``, ``judge_calls``, ``seconds``) are this
run's; ``study`` holds the study's totals (a rerun resumes the same study).

The CLI's parser imports this module: torch, transformers, Optuna, tqdm, optuna-dashboard
and the arena, store and study code (SQLAlchemy, numpy) are imported inside the functions
that run the demo.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna_pandalm.attributes import BASELINE_ATTR
from optuna_pandalm.demo.tasks import DemoData, exact_match_accuracy, make_data
from optuna_pandalm.demo.tiny_model import char_tokenizer, tiny_llama
from optuna_pandalm.publish.report import write_report
from optuna_pandalm.training.generation import generate_responses
from optuna_pandalm.training.progress import quiet_third_party

__all__ = ["DEMO_TEMPLATE", "demo_space", "next_steps", "pretrained_base", "run_demo"]

_logger = logging.getLogger(__name__)

BASE_VERSION = "demo-base-v1"
ALPACA_DEFAULTS = {
    "learning_rate": 2e-5,
    "optimizer": "adamw",
    "scheduler": "cosine",
    "warmup_ratio": 0.03,
    "batch_size": 16,
    "weight_decay": 0.0,
    "method": "full",
}


def DEMO_TEMPLATE(instruction: str, input: str) -> str:
    """A compact prompt layout: the tiny model's context is short."""
    return f"### Instruction:\n{instruction}\n### Input:\n{input}\n### Response:\n"


def demo_space() -> Any:
    from optuna_pandalm.training.tuning import SearchSpace

    return SearchSpace(
        learning_rate=(1e-4, 3e-2),
        epochs=4,
        optimizer=["adamw", "sgd"],
        scheduler=["cosine", "linear"],
        warmup_ratio=(0.0, 0.1),
        batch_size=[16, 32],
        weight_decay=(0.0, 0.0),
        method=["full", "lora"],
        lora_rank=[8, 16],
        lora_alpha=[16, 32],
        lora_dropout=(0.0, 0.0),
        target_modules=[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
    )


def _cache_dir() -> Path:
    root = os.environ.get("OPTUNA_PANDALM_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(root or Path.home() / ".cache") / "optuna-pandalm"


def pretrained_base(cache: Path | None = None, *, seed: int = 0) -> Path:
    """The demo's base model folder, pre-trained on first use and cached afterwards."""
    import torch
    import transformers

    from optuna_pandalm.training.tuning import InstructionDataset, make_collator

    key = hashlib.sha256(f"{BASE_VERSION}:{seed}:{torch.__version__}".encode()).hexdigest()[:12]
    folder = (cache or _cache_dir()) / f"{BASE_VERSION}-{key}"
    if (folder / "config.json").is_file():
        return folder
    started = time.perf_counter()
    tokenizer = char_tokenizer(model_max_length=128)
    model = tiny_llama(tokenizer, hidden=96, layers=2, heads=4, context=128, seed=seed)
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789+"

    def word(low: int, high: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))

    text = [
        {
            "instruction": " ".join(word(2, 7) for _ in range(3)),
            "input": word(2, 6),
            "output": word(1, 6),
        }
        for _ in range(3000)
    ]
    folder.parent.mkdir(parents=True, exist_ok=True)
    # The Trainer makes its output folder even when it saves nothing: a scratch folder,
    # removed afterwards, so the cache holds only finished models.
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f"{folder.name}.train-") as scratch:
        args = transformers.TrainingArguments(
            output_dir=scratch,
            num_train_epochs=1,
            learning_rate=3e-3,
            per_device_train_batch_size=32,
            save_strategy="no",
            report_to=[],
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
            seed=seed,
        )
        trainer = transformers.Trainer(
            model=model,
            args=args,
            train_dataset=InstructionDataset(text, tokenizer, DEMO_TEMPLATE, 128),
            data_collator=make_collator(tokenizer.pad_token_id),
        )
        trainer.remove_callback(transformers.PrinterCallback)
        trainer.train()
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(folder)  # atomic: a concurrent run never sees half a model
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)  # another run finished first
        if not (folder / "config.json").is_file():
            raise
    _logger.info(
        "pre-trained the demo base model in %.1f s: %s", time.perf_counter() - started, folder
    )
    return folder


def run_demo(
    *,
    storage: str | None = None,
    study_name: str = "optuna-pandalm-demo",
    n_trials: int = 12,
    out: str | Path = "optuna-pandalm-demo",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the demo and return its summary (the ``demo --json`` document)."""
    import optuna
    import torch
    from tqdm.auto import tqdm

    from optuna_pandalm.arena import Arena
    from optuna_pandalm.judges import ReferenceJudge
    from optuna_pandalm.study.judged_study import open_judged_study, optimize, trials_to_run
    from optuna_pandalm.training.tuning import TuneConfig, make_objective

    def say(message: str) -> None:
        if progress is not None:
            with tqdm.external_write_mode(file=sys.stderr):  # above a live progress bar
                progress(message)

    started = time.perf_counter()
    quiet_third_party()
    # The baseline is Alpaca's learning rate, outside the tiny model's range on purpose.
    warnings.filterwarnings("ignore", message="Fixed parameter learning_rate")
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'demo.db').resolve()}"
    say("preparing the base model (cached after the first run)")
    base = pretrained_base(seed=seed)
    data: DemoData = make_data(seed=seed, n_train=1500, n_judge=30, n_heldout=100)
    judge = ReferenceJudge("char_ratio")
    arena = Arena(
        storage, study_name, judge, data.judge_prompts, seed=seed, batch_size=10, min_games=10
    )
    config = TuneConfig(
        base_model=str(base),
        train_data="(in memory)",
        eval_prompts="(in memory)",
        judge=judge.name,
        template=DEMO_TEMPLATE,
        search_space=demo_space(),
        n_trials=n_trials,
        storage=storage,
        study_name=study_name,
        output_dir=str(out / "runs"),
        max_length=128,
        max_new_tokens=8,
        generation_batch_size=64,
        seed=seed,
    )
    heldout: dict[int, float] = {}

    def measure(trial: Any, model: Any, tokenizer: Any) -> None:
        answers = generate_responses(
            model,
            tokenizer,
            data.heldout,
            template=DEMO_TEMPLATE,
            max_new_tokens=8,
            batch_size=100,
        )
        heldout[trial.number] = exact_match_accuracy(answers, data.heldout)
        trial.set_user_attr("heldout_exact_match", heldout[trial.number])
        say(f"trial {trial.number}: held-out exact match {heldout[trial.number]:.2f}")

    study = open_judged_study(
        arena,
        storage,
        base_sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
        baseline_params=ALPACA_DEFAULTS,
    )
    objective = make_objective(config, arena, train_records=data.train, on_trial_end=measure)
    remaining = trials_to_run(study, n_trials)
    # Finished trials only: a new study's enqueued baseline is waiting, and runs now.
    before = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
    say(f"running {remaining} trials" + (f" (the study has {len(before)})" if before else ""))
    optimize(study, objective, arena=arena, n_trials=remaining)
    this_run = [t for t in study.get_trials(deepcopy=False) if t.number not in before]

    standings = arena.standings()
    rows = standings.leaderboard()
    best_row = next((r for r in rows if r.trial is not None), None)
    complete = {t.number: t for t in study.trials}
    baseline_trial = next((t.number for t in study.trials if t.user_attrs.get(BASELINE_ATTR)), 0)
    best_trial = best_row.trial if best_row else None
    report = write_report(arena, study, out / "report.html")
    pruned = optuna.trial.TrialState.PRUNED
    summary = {
        "n_trials": len(this_run),
        "n_pruned": sum(t.state == pruned for t in this_run),
        "judge_calls": arena.judge_calls,
        "cache_hits": arena.cache_hits,
        "best_trial": best_trial,
        "best_step": best_row.step if best_row else None,
        "best_params": complete[best_trial].params if best_trial is not None else None,
        "baseline_trial": baseline_trial,
        "heldout_accuracy": {
            "best": complete[best_trial].user_attrs.get("heldout_exact_match")
            if best_trial is not None
            else None,
            "baseline": complete[baseline_trial].user_attrs.get("heldout_exact_match"),
        },
        "leaderboard": [r.as_dict() for r in rows[:10]],
        "score_meaning": standings.score_meaning(),
        "report": str(report),
        "seconds": round(time.perf_counter() - started, 1),
        "study": {
            "n_trials": len(study.trials),
            "n_pruned": sum(t.state == pruned for t in study.trials),
            "games": arena.verdict_counts()["games"],
        },
        **_where_to_look(storage, study_name, out),
    }
    return summary


def _where_to_look(storage: str, study_name: str, out: Path) -> dict[str, str]:
    """The study's address (password masked) and the commands that show it."""
    from optuna_pandalm.url_masking import mask_url

    url = shlex.quote(mask_url(storage))
    name = shlex.quote(study_name)
    return {
        "storage": mask_url(storage),
        "study_name": study_name,
        "dashboard_command": f"optuna-dashboard {url}",
        "report_command": (
            f"optuna-pandalm report --storage {url} --study-name {name} "
            f"--out {shlex.quote(str(out / 'report.html'))}"
        ),
    }


def next_steps(summary: dict[str, Any]) -> list[str]:
    """The demo's closing lines: this run against the study's totals, where the study is,
    and the commands to look at it.

    Example:
        >>> summary = {"n_trials": 0, "n_pruned": 0, "judge_calls": 0,
        ...            "study": {"n_trials": 12, "n_pruned": 7, "games": 420},
        ...            "storage": "sqlite:///d/demo.db", "study_name": "s",
        ...            "dashboard_command": "optuna-dashboard sqlite:///d/demo.db",
        ...            "report_command": "optuna-pandalm report ..."}
        >>> print(*next_steps(summary), sep="\\n")  # doctest: +ELLIPSIS
        this run: 0 trials (0 pruned), 0 judge calls; the study: 12 trials (7 pruned), 420 games
        study 's' in sqlite:///d/demo.db...
        look at it: optuna-dashboard sqlite:///d/demo.db
        report:     optuna-pandalm report ...
    """
    study = summary["study"]
    lines = [
        f"this run: {summary['n_trials']} trials ({summary['n_pruned']} pruned), "
        f"{summary['judge_calls']} judge calls; the study: {study['n_trials']} trials "
        f"({study['n_pruned']} pruned), {study['games']} games",
        f"study {summary['study_name']!r} in {summary['storage']}",
    ]
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        lines.append(
            "optuna-dashboard is not installed, so nothing was published to it: "
            "pip install 'optuna-pandalm[dashboard]' and rerun the demo"
        )
    lines += [
        f"look at it: {summary['dashboard_command']}",
        f"report:     {summary['report_command']}",
    ]
    return lines
