"""OptunaHub package: optuna-pandalm's judge-driven sampler wrapper (installed from PyPI)."""

from optuna_pandalm import Arena, BradleyTerrySampler

__all__ = ["Arena", "BradleyTerrySampler"]
