"""OptunaHub package: optuna-pandalm's judge-driven pruner (installed from PyPI)."""

from optuna_pandalm import Arena, JudgePruner

__all__ = ["Arena", "JudgePruner"]
