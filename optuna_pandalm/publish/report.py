"""A self-contained HTML report of a judge-driven study.

One file that opens without a network: a summary (best configuration, its score against the
baseline, trials, pruned, the judges behind the verdicts, invalid verdicts, position and tie
parameters), the figures of :mod:`optuna_pandalm.publish.visualization` drawn as static SVG
(no JavaScript: plotly.js inlined made a 12-trial report 4.9 MB), the leaderboard table, and
for each top trial a few prompts with both responses and the judge's reason and reference.
Every text that came from a model or a judge is HTML-escaped.

The page fits its window from 1280 px up: wide tables scroll inside their own box, text
cells wrap (long words too), records such as ``12-36-0`` never do.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna_pandalm.outcomes import FIRST_WON, TIE

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena

__all__ = ["render_report", "write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; padding: 0 1rem;
       max-width: 1500px; color: #222; }
table { border-collapse: collapse; }
.wide { overflow-x: auto; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; vertical-align: top; }
th { background: #f3f3f3; }
#leaderboard { font-size: 0.9rem; } #leaderboard td.text { white-space: normal; }
.nowrap { white-space: nowrap; }
.num { text-align: right; } .text { text-align: left; }
td.num { white-space: nowrap; }
td.text { white-space: pre-wrap; overflow-wrap: anywhere; }
table.summary { width: 100%; } table.summary th { width: 20rem; }
table.examples { table-layout: fixed; width: 100%; }
tr.baseline td:first-child { color: #d62728; font-weight: 600; }
.label { font-weight: 600; color: #555; }
.note { color: #555; max-width: 60rem; }
.params { display: flex; flex-wrap: wrap; gap: 0.2rem 1.2rem; white-space: normal; }
.params span { white-space: nowrap; }
svg.chart { display: block; width: 100%; max-width: 1100px; height: auto; margin: 1.5rem 0; }
"""


def _cell(value: Any) -> str:
    """A value as HTML text: floats with 3 significant digits, None empty, text escaped."""
    if isinstance(value, float):
        return f"{value:.3g}" if value and abs(value) < 1e-2 else f"{value:.3f}"
    return html.escape("" if value is None else str(value))


def _table(
    headers: Sequence[tuple[str, str]], rows: Sequence[tuple[str, Sequence[str]]], **attrs: str
) -> str:
    """A table whose header cells take their column's alignment (``num`` or ``text``);
    ``rows`` are ``(row class, cells of ready HTML)``."""
    head = "".join(
        # a long name such as learning_rate may break after its underscores
        f"<th class='{kind}'>{html.escape(title).replace('_', '_<wbr>')}</th>"
        for title, kind in headers
    )
    body = []
    for row in rows:
        row_class, cells = row
        tds = "".join(
            f"<td class='{kind}'>{cell}</td>"
            for (_, kind), cell in zip(headers, cells, strict=True)
        )
        body.append(f"<tr class='{row_class}'>{tds}</tr>")
    extra = "".join(f" {key}='{html.escape(value)}'" for key, value in attrs.items())
    return f"<table{extra}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figures(arena: Arena, study: Any) -> str:
    from optuna_pandalm.publish._svg_figures import report_figures

    return "".join(report_figures(arena, study))


def _parameters(params: dict[str, Any]) -> str:
    """Hyperparameters as ``name value`` items that wrap within their cell."""
    items = "".join(
        f"<span><span class='label'>{_cell(name)}</span> {_cell(value)}</span>"
        for name, value in params.items()
    )
    return f"<div class='params'>{items}</div>"


def _verdict(game: dict[str, Any], first: str, second: str) -> str:
    """The verdict in words, with who won by name."""
    outcome = game["outcome"]
    if outcome == TIE:
        return "tie"
    return f"{first if outcome == FIRST_WON else second} won"


def _examples(arena: Arena, rows: list[Any], n_trials: int = 3) -> str:
    players = {p.id: p for p in arena.standings().players}
    headers = [("prompt", "text"), ("shown first", "text"), ("shown second", "text")]
    headers.append(("judge", "text"))
    sections = []
    for row in [r for r in rows if r.trial is not None][:n_trials]:
        player = players[row.player_id]
        items = []
        for game in arena.game_examples(player, limit=3):
            prompt = arena.prompts[game["prompt_position"]]
            first = players[game["first_player_id"]].label
            second = players[game["second_player_id"]].label
            label = "<span class='label'>{}:</span> ".format
            items.append(
                (
                    "",
                    [
                        f"{label('instruction')}{_cell(prompt.instruction)}"
                        + (f"\n{label('input')}{_cell(prompt.input)}" if prompt.input else ""),
                        f"<b>{_cell(first)}</b>\n{_cell(game['first_text'][:1500])}",
                        f"<b>{_cell(second)}</b>\n{_cell(game['second_text'][:1500])}",
                        f"{label('verdict')}{_cell(_verdict(game, first, second))}"
                        f"\n{label('reason')}{_cell(game['reason'][:800]) or '(none)'}"
                        f"\n{label('reference')}{_cell(game['reference'][:400]) or '(none)'}",
                    ],
                )
            )
        sections.append(
            f"<h3>{_cell(player.label)}: score {row.score:+.3f}</h3>"
            + _table(headers, items, **{"class": "examples"})
        )
    return "".join(sections)


def _hyperparameters(trials: Sequence[Any]) -> list[str]:
    """The names of every hyperparameter sampled in the study, in a stable order."""
    return sorted({name for t in trials for name in t.params})


def _anchor(standings: Any, baseline_trials: set[int]) -> str:
    """Who the anchor is and what a score means, in one sentence."""
    anchor = standings.anchor
    if anchor is None:
        return "none yet (no player)"
    if anchor.name is not None:
        why = "the fixed baseline player"
    elif anchor.trial in baseline_trials:
        why = f"the first judged checkpoint of the baseline trial {anchor.trial}"
    else:
        why = "the first checkpoint judged (the study has no baseline)"
    return (
        f"{anchor.label}, {why}. Every score is the log-odds of beating it in a game "
        "that is not a tie (score 0 by definition: its interval is empty): "
        f"{standings.score_meaning()}"
    )


def render_report(arena: Arena, study: Any) -> str:
    """The report as an HTML string."""
    import optuna

    from optuna_pandalm.attributes import BASELINE_ATTR

    standings = arena.standings()
    rows = standings.leaderboard()
    trials = study.trials
    fit = standings.result
    counts = arena.verdict_counts()
    best = next((r for r in rows if r.trial is not None), None)
    by_number = {t.number: t for t in trials}
    baseline_trials = {t.number for t in trials if t.user_attrs.get(BASELINE_ATTR)}
    names = _hyperparameters(trials)
    anchor = standings.anchor
    best_params = by_number[best.trial].params if best and best.trial in by_number else {}
    summary = [
        ("study", _cell(study.study_name)),
        ("anchor", _cell(_anchor(standings, baseline_trials))),
        ("best checkpoint", _cell(f"trial {best.trial} step {best.step}" if best else "none")),
        (
            "its hyperparameters",
            _parameters(best_params) if best_params else "",
        ),
        (
            f"its score against the anchor ({anchor.label})" if anchor else "its score",
            _cell(f"{best.score:+.3f} [{best.ci_low:+.2f}, {best.ci_high:+.2f}]" if best else ""),
        ),
        ("trials", _cell(len(trials))),
        ("pruned", _cell(sum(t.state == optuna.trial.TrialState.PRUNED for t in trials))),
        ("checkpoints and baselines", _cell(len(rows))),
        ("judge", _cell(", ".join(arena.judge_names()) or "no verdicts yet")),
        ("games", _cell(counts["games"])),
        (
            "of them identical-answer ties (not asked of the judge, not fitted)",
            _cell(
                int(identical.sum()) // 2 if (identical := standings.identical) is not None else 0
            ),
        ),
        ("verdicts behind games (distinct judge calls)", _cell(counts["verdicts_in_games"])),
        ("invalid verdicts", _cell(counts["invalid_verdicts"])),
        ("position effect (log-odds for the first shown)", _cell(fit.position_effect)),
        ("tie strength (Davidson nu)", _cell(fit.tie_strength)),
        ("people's votes (see docs/review.md)", _cell(len(votes := arena.human_votes()))),
        ("judge and people", _cell(arena.judge_agreement(votes).summary())),
    ]
    length = standings.length_effect()
    if length is not None:
        summary.append(
            (
                "length effect (log-odds per unit of (a - b) / (a + b), 95% interval)",
                _cell(f"{length.estimate:+.3f} [{length.low:+.3f}, {length.high:+.3f}]"),
            )
        )
    for name, gamma in standings.reliability().items() if len(standings.annotators) > 1 else ():
        summary.append(
            (
                f"reliability of {name}",
                _cell(f"{gamma.estimate:.2f} [{gamma.low:.2f}, {gamma.high:.2f}]"),
            )
        )
    headers = [
        ("player", "text"),
        ("score", "num"),
        ("95% interval", "num"),
        ("P(best)", "num"),
        ("W-T-L", "num"),
        ("human votes", "num"),
        *[(name, "num") for name in names],
    ]
    table_rows = []
    for r in rows[:30]:
        is_anchor = anchor is not None and r.player_id == anchor.id
        params = by_number[r.trial].params if r.trial in by_number else {}
        baseline = r.name is not None or r.trial in baseline_trials
        # the label never breaks; "(baseline)" may go to a second line
        label = f"<span class='nowrap'>{_cell(r.label)}</span>" + (
            " (baseline)" if baseline and r.name is None else ""
        )
        table_rows.append(
            (
                "baseline" if baseline else "",
                [
                    label,
                    _cell(r.score),
                    "anchor" if is_anchor else _cell(f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]"),
                    _cell(r.p_best),
                    _cell(f"{r.wins}-{r.ties}-{r.losses}"),
                    _cell(r.human_votes),
                    *[_cell(params.get(name)) for name in names],
                ],
            )
        )
    title = html.escape(study.study_name)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>optuna-pandalm: {title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Judge-driven study {title}</h1><div class='wide'><table class='summary'>"
        + "".join(
            f"<tr><th class='text'>{html.escape(k)}</th><td class='text'>{v}</td></tr>"
            for k, v in summary
        )
        + "</table></div><h2>Figures</h2>"
        + _figures(arena, study)
        + "<h2>Leaderboard</h2><p class='note'>Baselines in red. Scores are log-odds against "
        "the anchor; P(best) is the chance of being the best player given the games.</p>"
        + f"<div class='wide'>{_table(headers, table_rows, id='leaderboard')}</div>"
        + "<h2>What the judge saw</h2>"
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
