"""A self-contained HTML report of a judge-driven study.

One file that opens without a network: a summary (best configuration, its score against the
baseline, trials, pruned, verdicts, invalid verdicts, position and tie parameters), the
figures of :mod:`optuna_pandalm.visualization` (plotly.js inlined once), the leaderboard
table, and for each top trial a few prompts with both responses and the judge's reason and
reference. Every text that came from a model or a judge is HTML-escaped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena

__all__ = ["render_report", "write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.text { text-align: left; white-space: pre-wrap; max-width: 28rem; }
.figure { margin: 1.5rem 0; }
"""
_OUTCOME = {0: "tie", 1: "first shown won", 2: "second shown won"}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape("" if value is None else str(value))


def _figures(arena: Arena, study: Any) -> str:
    from optuna_pandalm import visualization as v

    figures = [
        ("leaderboard-figure", v.plot_leaderboard(arena)),
        ("win-matrix-figure", v.plot_win_matrix(arena)),
        ("comparison-graph-figure", v.plot_comparison_graph(arena)),
        ("learning-curves-figure", v.plot_learning_curves(arena, study)),
        ("slices-figure", v.plot_score_slices(arena, study)),
    ]
    parts = []
    for index, (element_id, figure) in enumerate(figures):
        body = figure.to_html(full_html=False, include_plotlyjs=index == 0, div_id=element_id)
        parts.append(f"<div class='figure'>{body}</div>")
    return "".join(parts)


def _examples(arena: Arena, rows: list[Any], n_trials: int = 3) -> str:
    players = {p.id: p for p in arena.standings().players}
    sections = []
    for row in [r for r in rows if r.trial is not None][:n_trials]:
        player = players[row.player_id]
        items = []
        for game in arena.game_examples(player, limit=3):
            prompt = arena.prompts[game["prompt_position"]]
            first = players[game["first_player_id"]].label
            second = players[game["second_player_id"]].label
            cells = [
                f"{_cell(prompt.instruction)}\n{_cell(prompt.input)}",
                f"<b>{_cell(first)}</b>\n{_cell(game['first_text'][:1500])}",
                f"<b>{_cell(second)}</b>\n{_cell(game['second_text'][:1500])}",
                f"{_cell(_OUTCOME[game['outcome']])}\n{_cell(game['reason'][:800])}"
                f"\n{_cell(game['reference'][:400])}",
            ]
            items.append("<tr>" + "".join(f"<td class='text'>{c}</td>" for c in cells) + "</tr>")
        sections.append(
            f"<h3>{_cell(player.label)}: score {row.score:+.3f}</h3><table>"
            "<tr><th>prompt</th><th>shown first</th><th>shown second</th><th>verdict, reason, "
            f"reference</th></tr>{''.join(items)}</table>"
        )
    return "".join(sections)


def _params(by_number: dict[int, Any], trial: int | None) -> Any:
    return by_number[trial].params if trial in by_number else ""


def render_report(arena: Arena, study: Any) -> str:
    """The report as an HTML string."""
    import optuna

    standings = arena.standings()
    rows = standings.leaderboard()
    trials = study.trials
    fit = standings.result
    counts = arena.verdict_counts()
    best = next((r for r in rows if r.trial is not None), None)
    baseline = next((r for r in rows if r.name is not None), None)
    by_number = {t.number: t for t in trials}
    summary = [
        ("study", study.study_name),
        ("best checkpoint", f"trial {best.trial} step {best.step}" if best else "none yet"),
        (
            "its hyperparameters",
            by_number[best.trial].params if best and best.trial in by_number else "",
        ),
        (
            "its score against " + (f"baseline {baseline.name}" if baseline else "the anchor"),
            f"{best.score:+.3f} [{best.ci_low:+.2f}, {best.ci_high:+.2f}]" if best else "",
        ),
        ("trials", len(trials)),
        ("pruned", sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)),
        ("checkpoints and baselines", len(rows)),
        ("judge", arena.judge.name),
        ("games", counts["games"]),
        ("verdicts behind games (distinct judge calls)", counts["verdicts_in_games"]),
        ("invalid verdicts", counts["invalid_verdicts"]),
        ("position effect (log-odds for the first shown)", fit.position_effect),
        ("tie strength (Davidson nu)", fit.tie_strength),
        ("people's votes (see docs/review.md)", len(votes := arena.human_votes())),
        ("judge and people", arena.judge_agreement(votes).summary()),
    ]
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
                r.human_votes,
            )
        )
        + f"<td class='text'>{_cell(_params(by_number, r.trial))}</td></tr>"
        for r in rows[:30]
    )
    title = html.escape(study.study_name)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>optuna-pandalm: {title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Judge-driven study {title}</h1><table>"
        + "".join(
            f"<tr><th>{html.escape(k)}</th><td class='text'>{_cell(v)}</td></tr>"
            for k, v in summary
        )
        + "</table><h2>Figures</h2>"
        + _figures(arena, study)
        + "<h2>Leaderboard</h2><table><tr><th>trial</th><th>step</th><th>score</th>"
        "<th>95% interval</th><th>P(best)</th><th>W-T-L</th><th>human votes</th>"
        "<th>hyperparameters</th></tr>"
        + table
        + "</table><h2>What the judge saw</h2>"
        + _examples(arena, rows)
        + "</body></html>"
    )


def write_report(arena: Arena, study: Any, path: str | Path) -> Path:
    """Write the report to ``path`` and return the path.

    Raises:
        FileNotFoundError: the folder of ``path`` does not exist (it is not created: a
            mistyped path must not leave folders behind).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"no such folder for the report: {path.parent}")
    path.write_text(render_report(arena, study), encoding="utf-8")
    return path
