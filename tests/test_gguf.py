"""Every place that takes a model folder also takes a ``.gguf`` file, and refuses a bad one
with one line before any model is loaded: judge specs, ``tune``'s ``base_model``, the loaders.

These tests write stand-in files (the four magic bytes ``GGUF`` and nothing after them);
loading the real SmolLM2 file is tests/test_real_model.py's.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from optuna_pandalm.errors import ConfigError
from optuna_pandalm.judges.loading import GGUF_MISSING, gguf_problem, load_model, load_pretrained
from optuna_pandalm.judges.spec import check_spec
from optuna_pandalm.training.trainee import load_trainee
from optuna_pandalm.training.tuning import TuneConfig


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.Q4_1.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00")
    return path


@pytest.fixture
def not_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 a zip file")
    return path


@pytest.fixture
def without_gguf_package(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gguf" else find_spec(name, *a),
    )


def test_a_gguf_file_is_recognised_by_its_magic_bytes(gguf_file, not_gguf, tmp_path):
    assert gguf_problem(gguf_file) is None
    assert (
        gguf_problem(not_gguf) == "not a GGUF file (it starts with b'PK\\x03\\x04', not b'GGUF')"
    )
    assert gguf_problem(tmp_path / "absent.gguf") == "no such file"


def test_without_the_gguf_package_a_gguf_file_asks_to_install_it(gguf_file, without_gguf_package):
    assert gguf_problem(gguf_file) == GGUF_MISSING
    assert "pip install gguf" in GGUF_MISSING
    with pytest.raises(ImportError, match="pip install gguf"):
        load_trainee(gguf_file)


def _load_judge_model(path: Path, *, kind: str) -> None:
    load_model(
        str(path),
        None,
        kind=kind,
        dtype=None,
        device="cpu",
        device_map=None,
        trust_remote_code=False,
    )


@pytest.mark.parametrize("kind", ["pandalm", "reward"])
def test_a_judge_spec_with_a_model_folder_still_needs_its_config(kind, tmp_path):
    with pytest.raises(ValueError, match=r"cannot read the judge model's .*config\.json"):
        check_spec(f"{kind}:{tmp_path}")


def test_a_judge_spec_takes_a_gguf_file(gguf_file):
    spec = f"pandalm:{gguf_file}?mode=likelihood&dtype=float32"
    assert check_spec(spec) == spec


def test_a_judge_spec_refuses_a_file_that_is_not_gguf_in_one_line(not_gguf, tmp_path):
    with pytest.raises(ValueError, match=r"model.gguf' \(not a GGUF file") as refused:
        check_spec(f"pandalm:{not_gguf}")
    assert "\n" not in str(refused.value)
    with pytest.raises(ValueError, match=r"absent.gguf' \(no such file\)"):
        check_spec(f"pandalm:{tmp_path / 'absent.gguf'}")


def test_a_judge_spec_refuses_a_gguf_file_without_the_package(gguf_file, without_gguf_package):
    with pytest.raises(ValueError, match="pip install gguf"):
        check_spec(f"pandalm:{gguf_file}")


def test_a_reward_judge_refuses_a_gguf_file_which_has_no_classification_head(gguf_file):
    with pytest.raises(ValueError, match=r"a \.gguf file holds no classification head"):
        check_spec(f"reward:{gguf_file}")
    with pytest.raises(ValueError, match="without the classification head a reward model needs"):
        _load_judge_model(gguf_file, kind="sequence-classification")


def test_a_judge_model_file_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"judge model file .*absent\.gguf' does not exist"
    ):
        _load_judge_model(tmp_path / "absent.gguf", kind="causal")


def test_a_trainee_file_that_is_not_gguf_is_refused_before_loading(not_gguf):
    with pytest.raises(ValueError, match="not a GGUF file"):
        load_pretrained(not_gguf)


def _config(tmp_path: Path, base_model: str) -> dict[str, str]:
    for name in ("train.jsonl", "prompts.jsonl"):
        (tmp_path / name).write_text('{"instruction": "Add 2 and 3.", "output": "5"}\n')
    return {
        "base_model": base_model,
        "train_data": "train.jsonl",
        "eval_prompts": "prompts.jsonl",
        "judge": "reference:exact",
    }


def test_tune_takes_a_gguf_base_model(gguf_file, tmp_path):
    config = TuneConfig.from_mapping(_config(tmp_path, gguf_file.name), base=tmp_path)
    assert config.base_model == str(gguf_file)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("model.gguf", r"config\.base_model: '.*model\.gguf': not a GGUF file"),
        ("absent.gguf", r"config\.base_model: '.*absent\.gguf': no such file"),
        ("absent", r"config\.base_model: no file or folder at '.*absent' \(local model folders"),
    ],
)
def test_tune_refuses_a_base_model_it_cannot_load(not_gguf, tmp_path, name, message):
    with pytest.raises(ConfigError, match=message):
        TuneConfig.from_mapping(_config(tmp_path, name), base=tmp_path)
