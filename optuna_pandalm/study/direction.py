"""The one study direction the judge's scores make sense in: maximize, single-objective."""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna.study import StudyDirection

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["require_maximize"]


def require_maximize(study: Study, component: str) -> None:
    """Raise ``ValueError`` naming ``component`` unless ``study`` is single-objective maximize.

    A higher judge score is better, so the sampler and the pruner refuse any other study
    rather than optimise the scores the wrong way round.

    Example:
        >>> import optuna
        >>> from optuna_pandalm.study.direction import require_maximize
        >>> require_maximize(optuna.create_study(direction="maximize"), "JudgePruner")
        >>> require_maximize(optuna.create_study(), "JudgePruner")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: JudgePruner needs ...(direction='maximize')...; got directions ['MINIMIZE']
    """
    directions = study.directions
    if directions != [StudyDirection.MAXIMIZE]:
        raise ValueError(
            f"{component} needs a single-objective study with "
            "optuna.create_study(direction='maximize'): a higher judge score is better; "
            f"got directions {[d.name for d in directions]}"
        )
