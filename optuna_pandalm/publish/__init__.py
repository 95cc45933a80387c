"""Publishing: the standings where people look (Optuna Dashboard, figures, notes, report).

* ``callback``: :class:`PublishCallback`, the ``study.optimize`` callback that publishes
  after each finished trial (the only code here that writes to a study).
* ``dashboard``: the compact leaderboard and the figure published to a study.
* ``visualization``: plotly figures, each a data step and a drawing step.
* ``trial_notes``: a finished trial's Dashboard note (Markdown, every text escaped).
* ``report``: the self-contained HTML report.

Reads the arena's public, immutable values (:class:`~optuna_pandalm.arena.Standings`,
game examples); imports nothing of the Optuna wing, training, review or commands. Every
module here imports plotly or optuna-dashboard only inside the functions that draw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna_pandalm._lazy import lazy_getattr

_EXPORTS = {"PublishCallback": "optuna_pandalm.publish.callback"}

__all__ = ["PublishCallback"]

if TYPE_CHECKING:
    from optuna_pandalm.publish.callback import PublishCallback


__getattr__ = lazy_getattr(globals(), _EXPORTS)
