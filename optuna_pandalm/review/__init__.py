"""People's votes on a study's checkpoints: the review page and imports.

* ``_tasks``: which pair and prompt to review next (the contenders first).
* ``_page``: the page's HTML, every text escaped.
* ``_server``: :class:`ReviewServer`, the stdlib HTTP server (loopback, access token, CSRF).
* ``_dashboard``: importing votes given in Optuna Dashboard's preferential UI.
* ``_command``: the ``optuna-pandalm review`` command.

Imported lazily, so the CLI's parser does not load the arena.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna_pandalm._lazy import lazy_getattr

_EXPORTS = {
    "TOKEN_ENV": "optuna_pandalm.review._server",
    "ReviewServer": "optuna_pandalm.review._server",
    "open_arena": "optuna_pandalm.review._server",
    "Task": "optuna_pandalm.review._tasks",
    "next_task": "optuna_pandalm.review._tasks",
    "DashboardImport": "optuna_pandalm.review._dashboard",
    "import_dashboard_votes": "optuna_pandalm.review._dashboard",
}

__all__ = [
    "TOKEN_ENV",
    "DashboardImport",
    "ReviewServer",
    "Task",
    "import_dashboard_votes",
    "next_task",
    "open_arena",
]

if TYPE_CHECKING:
    from optuna_pandalm.review._dashboard import DashboardImport, import_dashboard_votes
    from optuna_pandalm.review._server import TOKEN_ENV, ReviewServer, open_arena
    from optuna_pandalm.review._tasks import Task, next_task


__getattr__ = lazy_getattr(globals(), _EXPORTS)
