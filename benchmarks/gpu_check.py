"""Every check that needs a GPU, in one run that prints one JSON summary.

    bash benchmarks/gpu_check.sh            # on a GPU: under 8 minutes on one card
    bash benchmarks/gpu_check.sh --smoke    # anywhere: tiny sizes, on the CPU, ~1 minute

Three checks, on models built from configs (random weights: throughput does not depend on
what the weights say, and nothing is downloaded); the texts are pairs from PandaLM's
human-annotated test set (shipped with the package), with a word-level tokenizer fitted to
them (about one token per word, close to LLaMA's BPE):

* ``judge``: PandaLMJudge on a >= 1B-parameter Llama in bf16: pairs/s and peak memory in
  likelihood mode and in batched generate mode (PandaLM's 4-beam decoding, batched).
* ``beam_cache``: the same batched generate on the judge's preallocated beam search cache
  and on transformers' default cache: pairs/s of each, the speed-up, and whether the two
  decode identical texts.
* ``callback``: a >= 100M-parameter Llama trained in bf16 by a Hugging Face ``Trainer``,
  once without and once with ``JudgeCallback`` (judging every ``every_n_steps`` steps):
  training tokens/s of each, the callback's share of the run's time, the checkpoints it
  judged, peak memory.

``--smoke`` runs the same code on tiny models on the CPU in fp32 (peak memory is then
``null``: it is measured on CUDA only). ``tests/test_gpu_check.py`` runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_judges, beside this file

from bench_judges import throughput, word_tokenizer

from optuna_pandalm import Arena, JudgeCallback, PandaLMJudge, Prompt
from optuna_pandalm.judges import ReferenceJudge, build_pandalm_prompt
from optuna_pandalm.judges.evaluation import LabelledPair, load_testset


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each check runs: the full run on a GPU, or ``--smoke`` on a CPU."""

    judge_hidden: int
    judge_intermediate: int
    judge_layers: int
    judge_heads: int
    judge_pairs: int
    judge_batch: int
    batch1_pairs: int
    max_new_tokens: int
    trainee_hidden: int
    trainee_intermediate: int
    trainee_layers: int
    trainee_heads: int
    train_records: int
    train_batch: int
    train_length: int
    every_n_steps: int
    judge_prompts: int
    answer_tokens: int


FULL = Sizes(
    judge_hidden=2048,
    judge_intermediate=5504,
    judge_layers=20,  # ~1.0B parameters
    judge_heads=16,
    judge_pairs=64,
    judge_batch=16,
    batch1_pairs=16,
    max_new_tokens=128,
    trainee_hidden=1024,
    trainee_intermediate=2816,
    trainee_layers=8,  # ~0.11B parameters
    trainee_heads=16,
    train_records=960,  # 60 steps of 16
    train_batch=16,
    train_length=256,
    every_n_steps=20,
    judge_prompts=32,
    answer_tokens=64,
)
SMOKE = Sizes(
    judge_hidden=64,
    judge_intermediate=128,
    judge_layers=2,
    judge_heads=4,
    judge_pairs=4,
    judge_batch=2,
    batch1_pairs=2,
    max_new_tokens=4,
    trainee_hidden=64,
    trainee_intermediate=128,
    trainee_layers=2,
    trainee_heads=4,
    train_records=16,
    train_batch=4,
    train_length=48,
    every_n_steps=2,
    judge_prompts=3,
    answer_tokens=4,
)


def llama(tokenizer: Any, hidden: int, intermediate: int, layers: int, heads: int) -> Any:
    """A randomly initialised Llama of the given shape, built from a config."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def check_judges(pairs: list[LabelledPair], tokenizer: Any, sizes: Sizes, device: str) -> dict:
    """Likelihood and batched-generate throughput, and the beam cache against the default."""
    import torch

    model = llama(
        tokenizer,
        sizes.judge_hidden,
        sizes.judge_intermediate,
        sizes.judge_layers,
        sizes.judge_heads,
    )
    if device == "cuda":
        model = model.to(dtype=torch.bfloat16)
    requests = [p.request() for p in pairs[: sizes.judge_pairs]]
    common: dict[str, Any] = {
        "device": device,
        "max_length": 4096,
        "batch_size": sizes.judge_batch,
    }
    likelihood = PandaLMJudge(model, tokenizer, **common)
    decoding: dict[str, Any] = {
        "mode": "generate",
        "max_new_tokens": sizes.max_new_tokens,
        "num_beams": 4,
        "repetition_penalty": 1.2,
    }

    def generator(batch_size: int, beam_cache: bool | None, net: Any = model) -> PandaLMJudge:
        judge = PandaLMJudge(
            net,
            tokenizer,
            **{**common, "batch_size": batch_size},
            **decoding,
            beam_cache=beam_cache,
        )
        # Random weights give invalid outputs, which are retried by sampling: that would
        # measure the retry. One cheap retry token keeps all generate runs alike.
        judge.retry = {"max_new_tokens": 1, "num_beams": 1, "do_sample": False}
        return judge

    generate = generator(sizes.judge_batch, None)
    judge = {"model_parameters": parameters(model), "dtype": str(model.dtype).split(".")[-1]}
    judge["likelihood"] = throughput(likelihood, requests)
    judge["batched_generate"] = throughput(generate, requests)
    judge["batched_generate"]["beam_cache"] = generate.uses_beam_cache()
    # PandaLM's released pipeline: one pair per generate call (fewer pairs: it is slow).
    judge["pandalm_pipeline_batch1"] = throughput(
        generator(1, None), requests[: sizes.batch1_pairs]
    )
    judge["batched_vs_batch1"] = round(
        judge["batched_generate"]["pairs_per_s"] / judge["pandalm_pipeline_batch1"]["pairs_per_s"],
        3,
    )
    ours = throughput(generator(sizes.judge_batch, True), requests)
    default = throughput(generator(sizes.judge_batch, False), requests)
    cache = {
        "beam_cache": ours,
        "default_cache": default,
        "speedup": round(ours["pairs_per_s"] / default["pairs_per_s"], 3),
        "identical_outputs": ours["outputs_sha256"] == default["outputs_sha256"],
    }
    del likelihood, generate, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"judge": judge, "beam_cache": cache}


class _Timed:
    """Wraps a callback's event methods and adds up the seconds they take. On CUDA each
    event is timed between two synchronisations: training kernels still queued when the
    event starts are not charged to it, and the event's own kernels are."""

    def __init__(self, callback: Any, device: str) -> None:
        self.seconds = 0.0
        self.cuda = device == "cuda"
        for name in dir(callback):
            if name.startswith("on_"):
                setattr(callback, name, self._timed(getattr(callback, name)))

    def _timed(self, method: Any) -> Any:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._synchronize()
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._synchronize()
                self.seconds += time.perf_counter() - start

        return timed

    def _synchronize(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()


def _train(
    model: Any, tokenizer: Any, dataset: Any, sizes: Sizes, device: str, folder: str, callback: Any
) -> float:
    """Seconds to train one epoch (CUDA synchronised at both ends)."""
    import transformers

    from optuna_pandalm.training.tuning import make_collator

    args = transformers.TrainingArguments(
        output_dir=folder,
        num_train_epochs=1,
        per_device_train_batch_size=sizes.train_batch,
        learning_rate=1e-4,
        bf16=device == "cuda",
        use_cpu=device == "cpu",
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=make_collator(tokenizer.pad_token_id),
        callbacks=[] if callback is None else [callback],
    )
    _reset_peak()
    start = time.perf_counter()
    trainer.train()
    _peak_gib()  # synchronises
    return time.perf_counter() - start


def check_callback(pairs: list[LabelledPair], tokenizer: Any, sizes: Sizes, device: str) -> dict:
    """Training tokens/s with and without JudgeCallback, its share of the time, peak memory."""
    import optuna

    from optuna_pandalm.training.tuning import InstructionDataset

    records = [
        {"instruction": p.instruction, "input": p.input, "output": p.response_1}
        for p in pairs[: sizes.train_records]
    ]
    while len(records) < sizes.train_records:  # the test set has 999 pairs
        records += records[: sizes.train_records - len(records)]
    dataset = InstructionDataset(records, tokenizer, "alpaca", sizes.train_length)
    tokens = sum(len(item["input_ids"]) for item in dataset.items)
    # PandaLM's set repeats some pairs; an arena refuses a prompt twice (one verdict would
    # decide two games).
    unique = {(p.instruction, p.input, p.response_2): p for p in pairs[-sizes.judge_prompts :]}
    prompts = [Prompt(i, x, reference=r) for i, x, r in unique]

    def trainee() -> Any:
        return llama(
            tokenizer,
            sizes.trainee_hidden,
            sizes.trainee_intermediate,
            sizes.trainee_layers,
            sizes.trainee_heads,
        )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        # The first run warms CUDA up (kernel choice, allocator): time the second.
        _train(trainee(), tokenizer, dataset, sizes, device, folder, None)
        without = _train(trainee(), tokenizer, dataset, sizes, device, folder, None)
        peak_without = _peak_gib()
        url = f"sqlite:///{Path(folder) / 'check.db'}"
        arena = Arena(url, "gpu-check", ReferenceJudge("rouge_l"), prompts, racing=False)
        study = optuna.create_study(
            study_name="gpu-check",
            storage=url,
            direction="maximize",
            pruner=optuna.pruners.NopPruner(),  # every run trains all its steps
        )
        callback = JudgeCallback(
            arena,
            study.ask(),
            tokenizer,
            every_n_steps=sizes.every_n_steps,
            max_new_tokens=sizes.answer_tokens,
            batch_size=16,
        )
        timer = _Timed(callback, device)
        model = trainee()
        with_callback = _train(model, tokenizer, dataset, sizes, device, folder, callback)
        peak_with = _peak_gib()
    return {
        "model_parameters": parameters(model),
        "dtype": "bfloat16" if device == "cuda" else "float32",
        "train_tokens": tokens,
        "steps": -(-len(records) // sizes.train_batch),
        "every_n_steps": sizes.every_n_steps,
        "judged_checkpoints": len(callback.results),
        "judge_prompts": len(prompts),
        "answer_tokens": sizes.answer_tokens,
        "seconds_without": round(without, 3),
        "seconds_with": round(with_callback, 3),
        "tokens_per_s_without": round(tokens / without, 1),
        "tokens_per_s_with": round(tokens / with_callback, 1),
        "callback_seconds": round(timer.seconds, 3),
        "callback_share_of_step_time": round(timer.seconds / with_callback, 4),
        "slowdown_share": round((with_callback - without) / with_callback, 4),
        "peak_memory_gib_without": peak_without,
        "peak_memory_gib_with": peak_with,
    }


def _partial(summary: dict[str, Any]) -> None:
    """Print the figures so far on one stderr line: a run cut short keeps what it measured."""
    print("gpu_check partial: " + json.dumps(summary), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    args = parser.parse_args(argv)

    import torch
    import transformers

    start = time.perf_counter()
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (use --smoke to run on the CPU)", file=sys.stderr)
        return 2
    device = "cpu" if args.smoke else "cuda"
    sizes = SMOKE if args.smoke else FULL
    pairs = load_testset("pandalm")
    texts = [t for p in pairs for t in (p.instruction, p.input, p.response_1, p.response_2)]
    texts.append(build_pandalm_prompt("", "", "", "x") + "1 2 Tie ### Reason: Reference:")
    texts.append("Below is an instruction that describes a task. ### Instruction: ### Response:")
    tokenizer = word_tokenizer(texts, 4000)
    summary: dict[str, Any] = {
        "check": "gpu",
        "smoke": args.smoke,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    # Libraries print progress and metrics (the Trainer's summary) to stdout: only the JSON
    # summary goes there.
    with contextlib.redirect_stdout(sys.stderr):
        summary.update(check_judges(pairs, tokenizer, sizes, device))
        _partial(summary)
        summary["callback"] = check_callback(pairs, tokenizer, sizes, device)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
