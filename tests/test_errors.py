"""Every exception optuna-pandalm raises on purpose lives in ``optuna_pandalm.errors`` under
:class:`PandaLMError`, keeps the built-in its callers catch, and is still importable from
the module that raised it before."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
from pathlib import Path

import pytest

import optuna_pandalm
from optuna_pandalm import errors
from optuna_pandalm.errors import PandaLMError

PACKAGE = Path(optuna_pandalm.__file__).parent
_EXCEPTION_SUFFIXES = ("Error", "Exception", "Warning")


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def exception_classes(root: Path) -> dict[str, list[str]]:
    """``module path -> exception classes it defines``, found by parsing every module.

    A class is an exception when one of its bases is a built-in exception, is named like one
    (``...Error``, ``...Exception``, ``...Warning``), or is an exception class of the package.
    """
    classes = []  # (file, class name, base names)
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [_base_name(base) for base in node.bases]
                classes.append((path.relative_to(root).as_posix(), node.name, bases))

    def exception_name(name: str, known: set[str]) -> bool:
        value = getattr(builtins, name, None)
        builtin = isinstance(value, type) and issubclass(value, BaseException)
        return builtin or name in known or name.endswith(_EXCEPTION_SUFFIXES)

    names: set[str] = set()
    while True:  # until no class joins: a subclass of a subclass counts too
        found = {
            name
            for _, name, bases in classes
            if any(exception_name(base, names) for base in bases)
        }
        if found == names:
            break
        names = found
    defined: dict[str, list[str]] = {}
    for path, name, _ in classes:
        if name in names:
            defined.setdefault(path, []).append(name)
    return defined


def test_every_exception_class_is_defined_in_the_errors_module():
    defined = exception_classes(PACKAGE)
    elsewhere = {path: names for path, names in defined.items() if path != "errors.py"}
    assert elsewhere == {}, "define exceptions in optuna_pandalm/errors.py and re-export them"
    assert set(defined["errors.py"]) == set(errors.__all__)


def test_the_finder_sees_an_exception_defined_outside_the_errors_module(tmp_path):
    (tmp_path / "errors.py").write_text("class PandaLMError(Exception): ...\n")
    (tmp_path / "store.py").write_text(
        "class FooError(Exception): ...\n"
        "class _Quiet(FooError): ...\n"
        "class Other(RuntimeError): ...\n"
        "class NotAnError: ...\n"
    )
    found = exception_classes(tmp_path)
    assert sorted(found["store.py"]) == ["FooError", "Other", "_Quiet"]


@pytest.mark.parametrize("name", errors.__all__)
def test_every_exception_derives_from_the_root(name):
    cls = getattr(errors, name)
    assert inspect.isclass(cls) and issubclass(cls, PandaLMError)
    assert cls.__doc__ and cls.__doc__.strip()


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("PromptFormatError", ValueError),
        ("ConfigError", ValueError),
        ("EvaluationInputError", ValueError),
        ("InvalidVerdictError", ValueError),
        ("InvalidVerdictError", TypeError),  # its base before the root: callers may catch it
        ("JudgeUnavailableError", RuntimeError),
        ("JudgeFailedError", RuntimeError),
        ("StoreError", RuntimeError),
        ("TrainingDivergedError", RuntimeError),
    ],
)
def test_exceptions_keep_the_builtin_callers_catch(name, builtin):
    assert issubclass(getattr(errors, name), builtin)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("optuna_pandalm", "PandaLMError"),
        ("optuna_pandalm", "PromptFormatError"),
        ("optuna_pandalm", "StoreError"),
        ("optuna_pandalm.prompts", "PromptFormatError"),
        ("optuna_pandalm.store", "StoreError"),
        ("optuna_pandalm.store", "PromptSetMismatchError"),
        ("optuna_pandalm.judges.base", "InvalidVerdictError"),
        ("optuna_pandalm.judges.base", "JudgeUnavailableError"),
        ("optuna_pandalm.judges.remote", "RemoteJudgeError"),
        ("optuna_pandalm.judges.evaluation", "EvaluationInputError"),
        ("optuna_pandalm.arena", "JudgeFailedError"),
        ("optuna_pandalm.training.tuning", "ConfigError"),
    ],
)
def test_exceptions_are_importable_where_they_were_raised_before(module, name):
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_the_root_exception_is_public():
    assert "PandaLMError" in optuna_pandalm.__all__
    assert optuna_pandalm.PandaLMError is PandaLMError
