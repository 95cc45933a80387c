"""Specification of prompt loading: formats, hashes and clear errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from optuna_pandalm import Prompt, PromptFormatError, load_prompts
from optuna_pandalm.prompts import prompt_set_hash

PANDALM = Path(__file__).resolve().parents[2] / "shared" / "data" / "pandalm"


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_alpaca_output_becomes_the_reference(tmp_path):
    records = [{"instruction": "Add 2 and 3.", "input": "", "output": "5"}]
    prompts = load_prompts(_write(tmp_path, "alpaca.json", json.dumps(records)))
    assert prompts == [Prompt("Add 2 and 3.", reference="5")]


def test_jsonl_with_ids_and_inputs(tmp_path):
    text = (
        '{"id": 7, "instruction": "Summarise.", "input": "Long text"}\n\n{"instruction": "Hi"}\n'
    )
    prompts = load_prompts(_write(tmp_path, "p.jsonl", text))
    assert prompts[0] == Prompt("Summarise.", input="Long text", id="7")
    assert prompts[1] == Prompt("Hi")


def test_pandalm_inference_set_has_one_blank_instruction_that_can_be_skipped(caplog):
    path = PANDALM / "testset-inference-v1.json"
    if not path.exists():
        pytest.skip("shared PandaLM data not present")
    with pytest.raises(PromptFormatError, match=r"line 807: field 'instruction' is empty"):
        load_prompts(path)
    prompts = load_prompts(path, on_invalid="skip")
    assert len(prompts) == 169
    assert prompts[0].instruction.startswith("Summarize a meeting")
    assert "line 807" in caplog.text


def test_jsonl_without_suffix_and_a_prompts_document_are_told_apart(tmp_path):
    lines = _write(tmp_path, "p.txt", '{"instruction": "A"}\n{"instruction": "B"}\n')
    document = _write(tmp_path, "d.json", '{\n  "prompts": [\n    {"instruction": "C"}\n  ]\n}\n')
    assert [p.instruction for p in load_prompts(lines)] == ["A", "B"]
    assert [p.instruction for p in load_prompts(document)] == ["C"]


def test_records_and_prompt_objects_are_accepted():
    prompts = load_prompts([Prompt("A"), {"instruction": "B", "reference": "b", "idx": 2}])
    assert prompts == [Prompt("A"), Prompt("B", reference="b", id="2")]


def test_hash_depends_on_content_only():
    assert Prompt("A", id="1").hash == Prompt("A", id="2").hash
    assert Prompt("A").hash != Prompt("A", input="x").hash
    assert Prompt("A").hash != Prompt("A", reference="x").hash
    one, two = [Prompt("A"), Prompt("B")], [Prompt("B"), Prompt("A")]
    assert prompt_set_hash(one) == prompt_set_hash([Prompt("A"), Prompt("B")])
    assert prompt_set_hash(one) != prompt_set_hash(two)


def test_hash_follows_the_documented_recipe():
    # Stored verdicts are keyed by these hashes: changing the recipe orphans every cache.
    content = json.dumps(["Say hi.", "", "hello"], ensure_ascii=False).encode("utf-8")
    assert Prompt("Say hi.", reference="hello").hash == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.json",
            '[\n{"instruction": "a"},\n{"instruction": }\n]',
            r"bad.json, line 3: invalid JSON",
        ),
        ("bad.jsonl", '{"instruction": "a"}\n{oops\n', r"bad.jsonl, line 2: invalid JSON"),
        (
            "m.json",
            '[\n{"instruction": "a"},\n{"input": "b"}\n]',
            r"m.json, line 3: field 'instruction' is missing",
        ),
        ("e.jsonl", '{"instruction": "  "}\n', r"e.jsonl, line 1: field 'instruction' is empty"),
        (
            "t.jsonl",
            '{"instruction": "a", "input": 3}\n',
            r"t.jsonl, line 1: field 'input' must be a string, got int",
        ),
        ("r.jsonl", '{"instruction": "a", "output": ["x"]}\n', r"field 'output' must be a string"),
        (
            "d.jsonl",
            '{"id": "x", "instruction": "a"}\n{"id": "x", "instruction": "b"}\n',
            r"d.jsonl, line 2: duplicate id 'x' \(first at .*line 1\)",
        ),
        (
            "both.jsonl",
            '{"instruction": "a", "reference": "r", "output": "o"}\n',
            r"both 'reference' and 'output'",
        ),
        ("empty.json", "[]", r"empty.json: the prompt set is empty"),
        ("blank.jsonl", "\n\n", r"blank.jsonl: the prompt set is empty"),
        ("obj.json", '{"instruction": "a"}', r"obj.json, line 1: expected a JSON list"),
        ("list.json", '["just a string"]', r"list.json, line 1: expected an object, got str"),
        ("tail.json", '[{"instruction": "a"}] trailing', r"tail.json, line 1: invalid JSON"),
    ],
)
def test_malformed_files_name_file_line_and_field(tmp_path, name, content, message):
    with pytest.raises(PromptFormatError, match=message):
        load_prompts(_write(tmp_path, name, content))


def test_non_utf8_file_names_the_line(tmp_path):
    path = _write(tmp_path, "latin1.jsonl", b'{"instruction": "ok"}\n{"instruction": "caf\xe9"}\n')
    with pytest.raises(PromptFormatError, match=r"latin1.jsonl, line 2: not valid UTF-8"):
        load_prompts(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(PromptFormatError, match=r"nowhere.json: cannot read prompt file"):
        load_prompts(tmp_path / "nowhere.json")


def test_records_in_memory_are_named_by_index():
    with pytest.raises(PromptFormatError, match=r"prompts, record 1: field 'instruction'"):
        load_prompts([{"instruction": "a"}, {"instruction": None}])


def test_a_single_mapping_is_not_a_prompt_set():
    with pytest.raises(PromptFormatError, match="path or a list"):
        load_prompts({"instruction": "a"})


def test_a_duplicate_prompt_is_refused_with_the_lines_of_both(tmp_path):
    lines = [
        {"instruction": "Add 2 and 3.", "output": "5"},
        {"instruction": "Name a colour."},
        {"instruction": "Add 2 and 3.", "output": "5"},
    ]
    path = _write(tmp_path, "p.jsonl", "\n".join(json.dumps(r) for r in lines))
    with pytest.raises(PromptFormatError, match=r"line 3: duplicate prompt.* line 1\b"):
        load_prompts(path)


def test_prompts_differing_in_input_or_reference_are_not_duplicates():
    records = [
        {"instruction": "Translate.", "input": "chat"},
        {"instruction": "Translate.", "input": "chien"},
        {"instruction": "Translate.", "input": "chien", "output": "dog"},
    ]
    assert len(load_prompts(records)) == 3
