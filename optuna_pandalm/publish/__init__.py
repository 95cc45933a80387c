"""Publishing: the standings where people look (Optuna Dashboard, figures, notes, report).

* ``dashboard``: the compact leaderboard, the figure and the notes, written to a study.
* ``visualization``: plotly figures, each a data step and a drawing step.
* ``trial_notes``: a finished trial's Dashboard note (Markdown, every text escaped).
* ``report``: the self-contained HTML report.

Reads the arena's public, immutable values (:class:`~optuna_pandalm.arena.Standings`,
game examples); imports nothing of the Optuna wing, training, review or commands. Every
module here imports plotly or optuna-dashboard only inside the functions that draw.
"""
