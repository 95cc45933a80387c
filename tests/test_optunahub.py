"""The OptunaHub packages in optunahub/: loaded with the real optunahub, as the registry
loads them, and their examples run (on CPU, with the simulated judge)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import optuna
import optunahub
import pytest
import yaml

import optuna_pandalm

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "optunahub"
PACKAGES = {
    "samplers/pandalm_bradley_terry": ("sampler", "BradleyTerrySampler"),
    "pruners/pandalm_judge": ("pruner", "JudgePruner"),
}


@pytest.mark.parametrize("package", PACKAGES)
def test_package_loads_with_optunahub_and_re_exports_ours(package):
    module = optunahub.load_local_module(package, registry_root=str(REGISTRY))
    name = PACKAGES[package][1]
    assert getattr(module, name) is getattr(optuna_pandalm, name)
    assert module.Arena is optuna_pandalm.Arena


@pytest.mark.parametrize("package", PACKAGES)
def test_package_has_the_files_and_front_matter_the_registry_requires(package):
    folder = REGISTRY / package
    readme = (folder / "README.md").read_text(encoding="utf-8")
    _, header, body = readme.split("---\n", 2)
    front = yaml.safe_load(header)
    assert set(front) == {"author", "title", "description", "tags", "optuna_versions", "license"}
    assert front["license"] == "MIT License"
    assert PACKAGES[package][0] in front["tags"]
    assert all(isinstance(v, str) for v in front["optuna_versions"])
    for section in ("## Abstract", "## Class or Function Names", "## Installation"):
        assert section in body
    assert "## Example" in body and "## Others" in body
    assert (folder / "LICENSE").read_text().startswith("MIT License")
    project = re.search(r'^name = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)[1]
    assert (folder / "requirements.txt").read_text().split()[0].startswith(project)


@pytest.mark.parametrize("package", PACKAGES)
def test_example_runs_on_cpu_with_the_simulated_judge(package, monkeypatch, capsys):
    loaded = []

    def load_module(package: str, **_: object):
        loaded.append(package)
        return optunahub.load_local_module(package, registry_root=str(REGISTRY))

    monkeypatch.setattr(optunahub, "load_module", load_module)  # the registry, from this repo
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runpy.run_path(str(REGISTRY / package / "example.py"), run_name="__main__")
    assert loaded == [package]
    assert "best trial" in capsys.readouterr().out
