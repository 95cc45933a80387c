"""`tune` checks before it trains (all of them in `--dry-run`), explains itself in one line,
and takes paths relative to its config file; Ctrl-C and bad storage in `tune` and `demo`."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from optuna_pandalm import Arena, Prompt, load_prompts
from optuna_pandalm.arena import JudgeFailedError
from optuna_pandalm.commands.cli import main
from optuna_pandalm.demo.tasks import make_data
from optuna_pandalm.judges import ReferenceJudge
from optuna_pandalm.training.tuning import TuneConfig
from tests.signals import default_sigint

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    {"instruction": "Copy the letters.", "input": "abc", "output": "abc"},
    {"instruction": "Reverse the letters.", "input": "abc", "output": "cba"},
    {"instruction": "Sort the letters.", "input": "cab", "output": "abc"},
]


@pytest.fixture(scope="module")
def short_context_model(tmp_path_factory) -> str:
    """The demo's model size: a 128-token context, too short for Alpaca's template."""
    from optuna_pandalm.demo.tiny_model import save_tiny_llama

    return str(save_tiny_llama(tmp_path_factory.mktemp("short-llama"), context=128))


@pytest.fixture
def write_config(tmp_path, tiny_llama_path):
    """Write a valid config (relative paths, 512-token model) with ``changes`` applied."""
    (tmp_path / "train.jsonl").write_text(
        "\n".join(json.dumps(r) for r in make_data(n_train=20, n_judge=1, n_heldout=1).train)
        + "\n"
    )
    (tmp_path / "prompts.jsonl").write_text("\n".join(json.dumps(p) for p in PROMPTS) + "\n")
    base = {
        "base_model": tiny_llama_path,
        "train_data": "train.jsonl",
        "eval_prompts": "prompts.jsonl",
        "judge": "reference:char_ratio",
        "search_space": {"learning_rate": [1e-4, 1e-2], "epochs": 1, "method": ["full"]},
        "n_trials": 2,
        "storage": "sqlite:///tune.db",
        "output_dir": "runs",
        "max_length": 256,
        "max_new_tokens": 4,
    }

    def write(**changes) -> Path:
        data = {k: v for k, v in {**base, **changes}.items() if v is not None}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


def _dry_run(path: Path, capsys) -> tuple[int, str, str]:
    code = main(["tune", str(path), "--dry-run"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_dry_run_of_a_valid_config_says_what_it_checked(write_config, capsys):
    code, out, err = _dry_run(write_config(), capsys)
    assert code == 0, err
    assert "valid; 2 trials" in out and "3 eval prompts, 20 training records" in out
    assert "context 512 tokens" in out and "(new)" in out


def _broken_prompts(tmp_path: Path) -> dict:
    lines = [json.dumps(p) for p in PROMPTS]
    lines[2] = lines[2][:-1]  # line 3 loses its closing brace
    (tmp_path / "broken.jsonl").write_text("\n".join(lines) + "\n")
    return {"eval_prompts": "broken.jsonl"}


def _empty_instruction(tmp_path: Path) -> dict:
    records = [*PROMPTS[:1], {"instruction": "  ", "output": "x"}]
    (tmp_path / "empty.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return {"eval_prompts": "empty.jsonl"}


def _unreadable_model_config(tmp_path: Path) -> dict:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{not json")
    return {"base_model": "model"}


def _folder_without_config(tmp_path: Path) -> dict:
    (tmp_path / "empty").mkdir()
    return {"base_model": "empty"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_broken_prompts, r"config\.eval_prompts: .*broken\.jsonl, line 3: invalid JSON"),
        (_empty_instruction, r"empty\.jsonl, line 2: field 'instruction' is empty"),
        (
            lambda _: {"judge": "refrence:char_ratio"},
            r"config\.judge: .*unknown kind 'refrence' \(did you mean 'reference'\?",
        ),
        (lambda _: {"judge": "reference:char_ratios"}, r"config\.judge: .*char_ratios"),
        (lambda _: {"judge": "pandalm:/no/such/model"}, r"config\.judge: .*cannot read"),
        (
            lambda _: {"storage": "sqlite:///no/such/dir/x.db"},
            r"config\.storage: no folder '.*/no/such/dir' for the SQLite file",
        ),
        (lambda _: {"storage": "nosuchdb://x"}, r"config\.storage: unsupported storage URL"),
        (_unreadable_model_config, r"config\.base_model: cannot read '.*model/config\.json'"),
        (lambda _: {"template": "Q: {question}"}, r"config\.template: .*unknown field"),
        (lambda _: {"max_length": 1024}, r"config\.max_length: 1024 is more than .* 512"),
        (lambda _: {"length_control": "yes"}, r"config\.length_control: true, false or null"),
        (_folder_without_config, r"config\.base_model: the folder '.*empty' has no config\.json"),
        (
            lambda _: {"judge": "reference:char_ratio?tie_margn=0.1"},
            r"config\.judge: .*unknown option 'tie_margn' \(did you mean 'tie_margin'\? "
            r"options of reference: tie_margin, max_tokens\)",
        ),
        (
            lambda _: {"judge": "pandalm:/no/such/model?batch_sise=2"},
            r"config\.judge: .*unknown option 'batch_sise' \(did you mean 'batch_size'\?",
        ),
        (lambda _: {"timeout": -5}, r"config\.timeout: expected seconds > 0 or null, got -5"),
        (lambda _: {"seed": "one"}, r"config\.seed: expected an integer >= 0, got 'one'"),
        (
            lambda _: {"baseline": {"learnig_rate": 1e-3}},
            r"config\.baseline: 'learnig_rate' is not a searched hyperparameter \(did you mean "
            r"'learning_rate'\?\)",
        ),
        (
            lambda _: {"baseline": {"epochs": 3}},
            r"config\.baseline: 'epochs' .* every trial takes search_space\.epochs",
        ),
        (
            lambda _: {"baseline": {"optimizer": "adafactor"}},
            r"config\.baseline\.optimizer: 'adafactor' is not among search_space\.optimizer "
            r"\[adamw, sgd\]",
        ),
    ],
    ids=[
        "broken-json-line-3",
        "empty-instruction",
        "misspelt-judge-kind",
        "unknown-metric",
        "missing-judge-model",
        "sqlite-folder-missing",
        "unsupported-url",
        "unreadable-model-config",
        "template-field",
        "max-length-beyond-context",
        "length-control-not-a-boolean",
        "model-folder-without-config-json",
        "judge-option-typo",
        "judge-option-typo-of-a-model-judge",
        "negative-timeout",
        "seed-not-an-integer",
        "baseline-key-typo",
        "baseline-key-not-searched",
        "baseline-choice-not-searched",
    ],
)
def test_dry_run_refuses_what_the_real_run_would_fail_on(
    write_config, tmp_path, capsys, change, message
):
    code, _out, err = _dry_run(write_config(**change(tmp_path)), capsys)
    line = _one_line_error(code, err)
    assert line.startswith(f"optuna-pandalm tune: error: {tmp_path / 'config.yaml'}: ")
    assert re.search(message, line), line
    assert not (tmp_path / "no").exists() and not (tmp_path / "tune.db").exists()


def test_a_prompt_longer_than_the_context_is_refused_with_the_numbers(
    write_config, short_context_model, capsys
):
    """The demo's model (128 tokens) under Alpaca's template: every answer would be noise."""
    path = write_config(base_model=short_context_model, max_length=128, max_new_tokens=8)
    line = _one_line_error(*_dry_run(path, capsys)[::2])
    assert re.search(
        r"config\.max_new_tokens: .*\(prompt 2 of .*prompts\.jsonl\) is 2\d\d tok", line
    )
    assert "more than the model's context of 128 tokens (max_position_embeddings" in line
    assert "template 'alpaca'" in line


def test_a_short_template_string_from_yaml_fits_the_same_model(
    write_config, short_context_model, capsys
):
    template = "### Instruction:\n{instruction}\n### Input:\n{input}\n### Response:\n"
    path = write_config(
        base_model=short_context_model, max_length=128, max_new_tokens=8, template=template
    )
    code, out, err = _dry_run(path, capsys)
    assert code == 0, err
    assert "context 128 tokens, longest eval prompt 6" in out  # 6x tokens + 8 new <= 128
    assert TuneConfig.from_file(path).template == template


def test_relative_storage_and_output_dir_are_relative_to_the_config_file(
    write_config, tmp_path, monkeypatch
):
    monkeypatch.chdir(ROOT)
    config = TuneConfig.from_file(write_config())
    assert config.storage == f"sqlite:///{tmp_path / 'tune.db'}"
    assert config.output_dir == str(tmp_path / "runs")
    absolute = TuneConfig.from_file(write_config(storage="sqlite:////srv/hpo.db"))
    assert absolute.storage == "sqlite:////srv/hpo.db"


def _other_study(url: str) -> None:
    Arena(url, "optuna-pandalm", ReferenceJudge("exact"), [Prompt("Other.", reference="x")])


def test_a_study_on_other_prompts_is_refused_by_the_dry_run_and_the_run(
    write_config, tmp_path, capsys
):
    path = write_config()
    _other_study(f"sqlite:///{tmp_path / 'tune.db'}")
    for extra in (["--dry-run"], []):
        code = main(["tune", str(path), *extra])
        line = _one_line_error(code, capsys.readouterr().err)
        assert "config.storage: study 'optuna-pandalm' in" in line
        assert "already uses prompt set" in line


def test_a_config_with_another_length_control_than_the_studys_is_refused_before_training(
    write_config, tmp_path, capsys
):
    path = write_config(length_control=False)
    prompts = load_prompts(tmp_path / "prompts.jsonl")
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    Arena(url, "optuna-pandalm", ReferenceJudge("char_ratio"), prompts, length_control=True)
    for extra in (["--dry-run"], []):
        code = main(["tune", str(path), *extra])
        line = _one_line_error(code, capsys.readouterr().err)
        assert "config.storage: study 'optuna-pandalm' in" in line
        assert "uses length_control=True, not False" in line
    assert not (tmp_path / "runs").exists()  # nothing trained


@pytest.mark.parametrize(
    ("storage", "message"),
    [("nosuchdb://x", "unsupported storage URL"), (None, "already uses prompt set")],
    ids=["bad-url", "prompt-set-mismatch"],
)
def test_demo_storage_errors_are_one_line(
    tmp_path, tiny_llama_path, monkeypatch, capsys, storage, message
):
    from optuna_pandalm.demo import run

    monkeypatch.setattr(run, "pretrained_base", lambda **_: Path(tiny_llama_path))
    if storage is None:
        storage = f"sqlite:///{tmp_path / 'demo.db'}"
        _other_study(storage)
    code = main(
        ["demo", "--storage", storage, "--study-name", "optuna-pandalm", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("[demo]")]
    assert code == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_tune_warns_when_every_game_is_a_tie(write_config, tmp_path):
    """Exact match on an untrained model: every answer is wrong, every game a tie."""
    path = write_config(judge="reference:exact", max_new_tokens=2)
    done = subprocess.run(
        [sys.executable, "-m", "optuna_pandalm.commands.cli", "tune", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warning: all " in done.stderr and " were ties" in done.stderr
    assert (tmp_path / "runs" / "report.html").is_file()  # output_dir beside the config


def _training_trial(database: Path) -> bool:
    """A RUNNING trial whose objective has begun (it records its ``hp_`` attributes first):
    a trial that is only RUNNING may still be inside Optuna's ``ask``."""
    if not database.is_file():
        return False
    try:
        with sqlite3.connect(database) as connection:
            query = (
                "SELECT 1 FROM trials JOIN trial_user_attributes USING (trial_id) "
                "WHERE state='RUNNING' AND key LIKE 'hp_%'"
            )
            return bool(connection.execute(query).fetchall())
    except sqlite3.Error:
        return False


def _interrupt(command: list[str], ready, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``command``, send SIGINT once ``ready()`` holds, and wait for it to exit."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def test_ctrl_c_in_tune_exits_130_in_one_line_and_marks_the_trial(write_config, tmp_path):
    import optuna

    # Many epochs: the trial is still training when the signal comes.
    path = write_config(
        search_space={"learning_rate": [1e-4, 1e-2], "epochs": 100, "method": ["full"]}
    )
    done = _interrupt(
        [sys.executable, "-m", "optuna_pandalm.commands.cli", "tune", str(path)],
        lambda: _training_trial(tmp_path / "tune.db"),
    )
    assert done.returncode == 130, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("optuna-pandalm tune: interrupted")
    study = optuna.load_study(study_name="optuna-pandalm", storage=f"sqlite:///{tmp_path}/tune.db")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert "interrupted" in trial.user_attrs["pandalm_error"]


def test_ctrl_c_in_demo_exits_130_in_one_line(tmp_path):
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "OPTUNA_PANDALM_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "optuna_pandalm.commands.cli", "demo", "--out", str(tmp_path)]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stderr=stderr, text=True, preexec_fn=default_sigint
        )
        deadline = time.monotonic() + 300
        while "preparing the base model" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # inside the pre-training
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    err = log.read_text()
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("optuna-pandalm demo: interrupted")


def test_probing_a_storage_creates_nothing_and_finds_an_existing_study(shared_storage_url):
    from optuna_pandalm.store import Store, StoreError

    assert Store.probe(shared_storage_url) is None  # reachable and new
    assert Store.probe(shared_storage_url) is None  # ... still: nothing was created
    _other_study(shared_storage_url)
    store = Store.probe(shared_storage_url)
    assert store is not None and store.read_only
    assert store.arena_settings("optuna-pandalm") is not None
    store.close()
    with pytest.raises(StoreError, match="cannot open storage"):
        Store.probe("postgresql://nobody@127.0.0.1:1/none")


# --- issue 29: wasted runs and silent acceptance ------------------------------------------


def test_dry_run_refuses_a_reference_judge_on_prompts_without_references(
    write_config, tmp_path, capsys
):
    """Found before training, not after a whole trial and three retries."""
    records = [{k: v for k, v in p.items() if k != "output"} for p in PROMPTS]
    (tmp_path / "bare.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    line = _one_line_error(*_dry_run(write_config(eval_prompts="bare.jsonl"), capsys)[::2])
    assert "config.judge: judge 'reference:char_ratio' compares answers with each prompt's" in line
    assert f"3 of the 3 prompts in {tmp_path / 'bare.jsonl'} have none (prompt 1 first)" in line


class _CountingReferenceJudge(ReferenceJudge):
    """A reference judge that counts the calls it gets."""

    calls = 0

    def judge(self, requests):
        self.calls += 1
        return super().judge(requests)


def test_a_judge_that_can_never_answer_is_asked_once_not_retried(tmp_path):
    judge = _CountingReferenceJudge("char_ratio")
    prompts = [Prompt(p["instruction"], p["input"]) for p in PROMPTS]  # no references
    arena = Arena(f"sqlite:///{tmp_path / 'db.sqlite'}", "s", judge, prompts, judge_backoff=0)
    arena.evaluate(0, 1, ["abc", "cba", "abc"])  # the first player: nobody to play
    with pytest.raises(
        JudgeFailedError,
        match=r"cannot answer 3 of 3 requests, and retrying cannot change that: "
        r"ReferenceJudge needs a reference",
    ):
        arena.evaluate(1, 1, ["abd", "cbd", "abd"])
    assert judge.calls == 1


def _objective_failing(error: Exception):
    """A stand-in for ``make_objective``: the trial samples, then the judge fails."""

    def make(config, arena, **_):
        def objective(trial):
            config.search_space.suggest(trial)
            raise error

        return objective

    return make


def test_a_judge_that_failed_for_good_ends_tune_in_one_line(
    write_config, tmp_path, capsys, monkeypatch
):
    import optuna

    from optuna_pandalm.training import tuning

    failure = JudgeFailedError("judge 'x' cannot answer 3 of 3 requests")
    monkeypatch.setattr(tuning, "make_objective", _objective_failing(failure))
    code = main(["tune", str(write_config())])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "Trial 0 failed" not in err, err
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith(
            "the judge failed; the trial is marked FAIL (its pandalm_error says why): judge 'x' "
            "cannot answer 3 of 3 requests"
        )
    )
    study = optuna.load_study(study_name="optuna-pandalm", storage=f"sqlite:///{tmp_path}/tune.db")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n-trials", "0"], "--n-trials: expected an integer >= 1 (the study's total), got 0"),
        (
            ["--n-trials", "-1", "--dry-run"],
            "--n-trials: expected an integer >= 1 (the study's total), got -1",
        ),
        (["--timeout", "0"], "--timeout: expected seconds > 0, got 0.0"),
        (["--timeout", "nan", "--dry-run"], "--timeout: expected seconds > 0, got nan"),
    ],
    ids=["zero-trials", "negative-trials-dry-run", "zero-timeout", "nan-timeout"],
)
def test_tune_refuses_options_that_can_run_nothing(write_config, tmp_path, capsys, extra, message):
    code = main(["tune", str(write_config()), *extra])
    line = _one_line_error(code, capsys.readouterr().err)
    assert line == f"optuna-pandalm tune: error: {message}"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "tune.db").exists()


def test_tune_on_a_finished_study_says_so_and_changes_nothing(write_config, tmp_path, capsys):
    import optuna

    url = f"sqlite:///{tmp_path / 'tune.db'}"
    path = write_config()  # n_trials: 2
    Arena(
        url,
        "optuna-pandalm",
        ReferenceJudge("char_ratio"),
        load_prompts(tmp_path / "prompts.jsonl"),
    )
    study = optuna.create_study(study_name="optuna-pandalm", storage=url, direction="maximize")
    for value in (0.0, 1.0):
        study.add_trial(optuna.trial.create_trial(value=value))
    code = main(["tune", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == (
        f"study 'optuna-pandalm' in {url} already has 2 finished trials, n_trials is 2: "
        "nothing to run; to add trials pass --n-trials 3 or more (a total) or raise n_trials "
        "in the config"
    )
    assert not (tmp_path / "runs").exists()  # no training, no report rewritten


def test_search_space_defaults_in_the_docs_are_the_codes():
    from optuna_pandalm.training.tuning import SearchSpace

    text = (ROOT / "docs" / "tune.md").read_text()
    section = text[text.index("## Search-space defaults") :]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]*)` \|$", section, flags=re.MULTILINE)
    assert dict(rows) == SearchSpace.default_values()


def test_dry_run_names_the_search_space_defaults_it_uses(write_config, capsys):
    code, out, err = _dry_run(write_config(), capsys)  # learning_rate, epochs, method given
    assert code == 0, err
    assert out.splitlines()[0] == (
        "search_space defaults (keys not in the config, docs/tune.md): optimizer "
        "[adamw, sgd], scheduler [cosine, linear], warmup_ratio [0.0, 0.1], batch_size [8], "
        "weight_decay 0.0"
    )  # method [full]: LoRA's keys do not apply


def test_dry_run_of_a_full_search_space_names_no_defaults(write_config, capsys):
    space = {
        "learning_rate": [1e-4, 1e-2],
        "epochs": 1,
        "optimizer": ["adamw"],
        "scheduler": ["linear"],
        "warmup_ratio": 0.0,
        "batch_size": [4],
        "weight_decay": 0.0,
        "method": ["full"],
    }
    code, out, err = _dry_run(write_config(search_space=space), capsys)
    assert code == 0, err
    assert "defaults" not in out


def test_a_baseline_learning_rate_outside_the_range_is_one_warning_in_our_words(
    write_config, tmp_path, capsys, monkeypatch
):
    """Allowed (a reference point, as the demo's Alpaca learning rate), said once, and
    Optuna's raw UserWarning is not shown."""
    import warnings

    from optuna_pandalm.training import tuning

    path = write_config(baseline={"learning_rate": 2e-5})  # the range is [1e-4, 1e-2]
    warning = (
        "warning: config.baseline.learning_rate 2e-05 is outside search_space.learning_rate "
        "[0.0001, 0.01]: trial 0 runs it as given, a reference point; the sampler searches "
        "the range"
    )
    code, _out, err = _dry_run(path, capsys)
    assert code == 0 and err.splitlines() == [warning], err
    monkeypatch.setattr(tuning, "make_objective", _objective_failing(JudgeFailedError("x")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["tune", str(path)])
    err = capsys.readouterr().err
    assert err.count(warning) == 1
    assert not [w for w in caught if "Fixed parameter" in str(w.message)]


def test_demo_refuses_fewer_than_one_trial(tmp_path, capsys):
    code = main(["demo", "--n-trials", "0", "--out", str(tmp_path / "out")])
    line = _one_line_error(code, capsys.readouterr().err)
    assert line == "optuna-pandalm demo: error: --n-trials: expected an integer >= 1, got 0"
    assert not (tmp_path / "out").exists()
