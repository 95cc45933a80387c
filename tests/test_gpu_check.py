"""benchmarks/gpu_check.sh: known to run before a GPU is at hand (``--smoke`` on the CPU),
and its full sizes are the ones the GPU check promises."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_smoke_run_prints_one_sane_json_summary():
    done = _run("--smoke")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary) == {
        "check",
        "smoke",
        "device",
        "torch",
        "transformers",
        "judge",
        "beam_cache",
        "callback",
        "seconds",
    }
    assert summary["smoke"] is True and summary["seconds"] > 0
    judge = summary["judge"]
    for mode in ("likelihood", "batched_generate"):
        assert judge[mode]["pairs"] == gpu_check.SMOKE.judge_pairs
        assert judge[mode]["pairs_per_s"] > 0
    assert judge["likelihood"]["valid"] == judge["likelihood"]["pairs"]  # always a label
    assert judge["pandalm_pipeline_batch1"]["pairs"] == gpu_check.SMOKE.batch1_pairs
    assert judge["batched_vs_batch1"] > 0
    assert judge["batched_generate"]["beam_cache"] is True  # the default on CPU
    cache = summary["beam_cache"]
    assert cache["identical_outputs"] is True and cache["speedup"] > 0
    callback = summary["callback"]
    sizes = gpu_check.SMOKE
    assert callback["steps"] == sizes.train_records // sizes.train_batch
    assert callback["judged_checkpoints"] == callback["steps"] // sizes.every_n_steps
    assert 0 < callback["callback_share_of_step_time"] < 1
    assert callback["callback_seconds"] < callback["seconds_with"]
    assert callback["tokens_per_s_with"] > 0 and callback["tokens_per_s_without"] > 0
    assert callback["peak_memory_gib_with"] is None  # measured on CUDA only


def test_without_a_gpu_the_full_check_refuses_in_one_line():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    done = _run()
    assert done.returncode == 2
    assert done.stderr.strip() == "gpu_check: no CUDA device (use --smoke to run on the CPU)"


class _Vocabulary(types.SimpleNamespace):
    """What gpu_check.llama reads of a tokenizer: the word tokenizer's 4,000 words."""

    def __len__(self) -> int:
        return 4000


def test_full_sizes_are_a_1b_judge_and_a_100m_trainee():
    import torch

    tokenizer = _Vocabulary(bos_token_id=1, eos_token_id=2, pad_token_id=0)
    full = gpu_check.FULL
    with torch.device("meta"):
        judge = gpu_check.llama(
            tokenizer,
            full.judge_hidden,
            full.judge_intermediate,
            full.judge_layers,
            full.judge_heads,
        )
        trainee = gpu_check.llama(
            tokenizer,
            full.trainee_hidden,
            full.trainee_intermediate,
            full.trainee_layers,
            full.trainee_heads,
        )
    assert gpu_check.parameters(judge) >= 1_000_000_000
    assert gpu_check.parameters(trainee) >= 100_000_000
