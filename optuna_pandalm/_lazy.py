"""Lazy exports, as Optuna's: a package names its public objects without importing them.

The returned ``__getattr__`` imports the defining module on first access and caches the
object in the package's namespace, so ``import optuna_pandalm`` loads neither torch nor
the arena.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    namespace: MutableMapping[str, Any], exports: Mapping[str, str]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module path) on demand and
    keeps the object in ``namespace`` (the package's ``globals()``).

    Example:
        >>> namespace = {"__name__": "pkg"}
        >>> getattr_ = lazy_getattr(namespace, {"sqrt": "math"})
        >>> getattr_("sqrt")(9.0), "sqrt" in namespace
        (3.0, True)
        >>> getattr_("nothing")
        Traceback (most recent call last):
        ...
        AttributeError: module 'pkg' has no attribute 'nothing'
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
