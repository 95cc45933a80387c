"""The house's import rules (docs/architecture.md), checked by parsing every import.

Every ``import`` and ``from ... import`` counts: at module level, inside functions, and under
``TYPE_CHECKING``. A wing may import its own modules, the base modules and the public modules
of the wings its rule names (never another wing's ``_private`` module); nothing may form an
import cycle, however the import is written.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "optuna_pandalm"

# Top-level modules every wing may import: vocabulary, not machinery.
BASE = {"errors", "outcomes", "prompts", "attributes", "url_masking", "_lazy"}

# Wing -> the other wings it may import (besides itself and BASE). Lower wings first.
RULES: dict[str, set[str]] = {
    "base": set(),
    "statistics": set(),
    "judges": set(),
    "store": set(),
    "testing": {"judges", "statistics"},
    "arena": {"statistics", "judges", "store"},
    "publish": {"arena", "statistics"},
    "study": {"arena", "statistics", "store", "publish"},
    "training": {"arena", "statistics", "judges", "study", "publish"},
    "review": {"arena", "statistics", "store", "publish"},
    "demo": {"arena", "statistics", "judges", "store", "testing", "study", "publish", "training"},
    "commands": {
        *("arena", "statistics", "judges", "store", "testing", "study", "publish", "training"),
        *("review", "demo"),
    },
}


def _module_names(root: Path) -> dict[str, Path]:
    names = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _root_exports(root: Path) -> dict[str, str]:
    """The root package's lazy exports: public name -> defining module."""
    tree = ast.parse((root / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_EXPORTS":
            return dict(ast.literal_eval(node.value))
    return {}


def _imports(
    name: str, path: Path, modules: dict[str, Path], exports: dict[str, str]
) -> Iterator[str]:
    """Every optuna_pandalm module ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            found = []
            for alias in node.names:
                if source == "optuna_pandalm" and alias.name == "__version__":
                    continue  # a constant of the root package, not an import of its exports
                if f"{source}.{alias.name}" in modules:
                    found.append(f"{source}.{alias.name}")  # a submodule
                elif source == "optuna_pandalm" and alias.name in exports:
                    found.append(exports[alias.name])  # a lazy export: its defining module
                else:
                    found.append(source)
        else:
            continue
        for target in found:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("optuna_pandalm") and target != name:
                yield target


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = _module_names(root)
    exports = _root_exports(root)
    return {name: set(_imports(name, path, modules, exports)) for name, path in modules.items()}


def wing_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "facade"  # the root package: lazy exports only
    if parts[1] == "__main__":
        return "commands"
    if parts[1] in BASE:
        return "base"
    return parts[1]


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every import its wing's rule does not allow."""
    bad = []
    for importer, targets in sorted(graph.items()):
        wing = wing_of(importer)
        for target in sorted(targets):
            other = wing_of(target)
            if wing == "facade" or other in (wing, "base"):
                continue
            if other == "facade" or other not in RULES.get(wing, set()):
                bad.append(f"{importer} ({wing}) -> {target} ({other})")
            elif any(part.startswith("_") for part in target.split(".")[2:]):
                bad.append(f"{importer} ({wing}) -> {target} (a private module of {other})")
    return bad


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_module_belongs_to_a_known_wing():
    unknown = {wing_of(m) for m in import_graph(PACKAGE)} - {*RULES, "facade"}
    assert not unknown, f"modules outside the wings of docs/architecture.md: {unknown}"


def test_every_import_follows_its_wings_rule():
    assert forbidden_imports(import_graph(PACKAGE)) == []


def test_no_import_cycle_counting_every_import():
    assert import_cycles(import_graph(PACKAGE)) == []


def test_the_core_wings_import_no_publishing_review_or_command_code():
    graph = import_graph(PACKAGE)
    core = [m for m in graph if wing_of(m) in ("arena", "store", "judges", "statistics")]
    upward = {
        f"{m} -> {t}"
        for m in core
        for t in graph[m]
        if wing_of(t) in ("publish", "review", "commands", "study", "training", "demo")
    }
    assert core and not upward


@pytest.mark.parametrize(
    ("module", "line"),
    [
        # a function-local import, from the store up to publishing
        ("store/_texts.py", "def _f():\n    from optuna_pandalm.publish import report\n"),
        # a type-only import, from the arena up to the Optuna wing
        (
            "arena/_result.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from optuna_pandalm.study.pruner import JudgePruner\n",
        ),
        # a lazy export of the root package, from the statistics up to the arena
        ("statistics/sign_test.py", "def _f():\n    from optuna_pandalm import Arena\n"),
        # an allowed wing, but through its private module rather than its package
        ("publish/report.py", "def _f():\n    from optuna_pandalm.arena._ledger import Ledger\n"),
    ],
)
def test_the_rules_catch_a_forbidden_import(tmp_path, module, line):
    copy = tmp_path / "optuna_pandalm"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "data"))
    assert forbidden_imports(import_graph(copy)) == []
    with (copy / module).open("a") as file:
        file.write("\n\n" + line)
    assert forbidden_imports(import_graph(copy)) != []


def test_the_cycle_check_catches_a_cycle_through_a_function_local_import(tmp_path):
    copy = tmp_path / "optuna_pandalm"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "data"))
    # the arena's facade imports match play; match play importing the facade back closes it
    with (copy / "arena" / "_match_play.py").open("a") as file:
        file.write("\n\ndef _f():\n    from optuna_pandalm.arena._arena import Arena\n")
    assert any("optuna_pandalm.arena._arena" in c for c in import_cycles(import_graph(copy)))
