"""A self-contained HTML report of a judge-driven study.

One file, no network needed to open it: a summary, the leaderboard figure (plotly.js is
inlined), the leaderboard table, and the hyperparameters of the top trials. Every text
that came from a model or a judge is HTML-escaped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena

__all__ = ["render_report", "write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape("" if value is None else str(value))


def _params(by_number: dict[int, Any], trial: int | None) -> Any:
    return by_number[trial].params if trial in by_number else ""


def render_report(arena: Arena, study: Any) -> str:
    """The report as an HTML string."""
    import optuna

    from optuna_pandalm.dashboard import leaderboard_figure

    rows = arena.leaderboard()
    trials = study.trials
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    fit = arena.fit().result
    summary = [
        ("study", study.study_name),
        ("trials", len(trials)),
        ("pruned", pruned),
        ("players (checkpoints and baselines)", len(rows)),
        ("judge", arena.judge.name),
        ("judge calls this session", arena.judge_calls),
        ("cache hits this session", arena.cache_hits),
        ("position effect (log-odds to the first shown)", fit.position_effect),
        ("tie strength", fit.tie_strength),
    ]
    by_number = {t.number: t for t in trials}
    table = "".join(
        "<tr>"
        + "".join(
            f"<td>{_cell(v)}</td>"
            for v in (
                r.name or r.trial,
                r.step,
                r.score,
                f"[{r.ci_low:.2f}, {r.ci_high:.2f}]",
                r.p_best,
                f"{r.wins}-{r.ties}-{r.losses}",
            )
        )
        + f"<td class='text'>{_cell(_params(by_number, r.trial))}</td></tr>"
        for r in rows[:30]
    )
    figure = leaderboard_figure(arena).to_html(full_html=False, include_plotlyjs=True)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>optuna-pandalm: {html.escape(study.study_name)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Judge-driven study {html.escape(study.study_name)}</h1>"
        "<table>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in summary)
        + "</table>"
        f"<h2>Leaderboard</h2><div id='leaderboard-figure'>{figure}</div>"
        "<table><tr><th>trial</th><th>step</th><th>score</th><th>95% interval</th><th>P(best)</th>"
        f"<th>W-T-L</th><th>hyperparameters</th></tr>{table}</table>"
        "</body></html>"
    )


def write_report(arena: Arena, study: Any, path: str | Path) -> Path:
    """Write the report to ``path`` (folders are created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(arena, study), encoding="utf-8")
    return path
