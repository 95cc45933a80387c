"""The report's figures as static SVG: a few KB each, no JavaScript.

The report is read, printed and mailed; plotly.js inlined once made a 12-trial report
4.9 MB, 98% of it the library. These drawings show the same data as the plotly figures of
:mod:`optuna_pandalm.publish.visualization` (they share its data steps); each mark carries a
``<title>``, the browser's tooltip, in place of plotly's hover. Every SVG scales to the
page's width (``viewBox``, ``width: 100%``), so a figure never widens the page.

Every text is escaped: labels come from the store, names from the user's search space.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optuna_pandalm.publish import visualization as v

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena

__all__ = ["report_figures"]

_WIDTH = 760  # viewBox units; the SVG is drawn at the page's width
_LABELS = 150  # room for player labels on the left
_FONT = "font-family='system-ui, sans-serif' font-size='12'"
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728",
)  # fmt: skip


def _e(text: Any) -> str:
    return html.escape(str(text))


def _short(value: Any) -> str:
    """A hyperparameter value to 3 significant digits (a float), as it is otherwise."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _text(x: float, y: float, text: Any, extra: str = "") -> str:
    """A text element at ``(x, y)``; ``extra``: more attributes (anchor, size)."""
    return f"<text x='{x:.1f}' y='{y:.1f}'{' ' + extra if extra else ''}>{_e(text)}</text>"


def _svg(element_id: str, height: float, title: str, body: Sequence[str]) -> str:
    return (
        f"<svg id='{_e(element_id)}' class='chart' viewBox='0 0 {_WIDTH} {height:.0f}' "
        f"xmlns='http://www.w3.org/2000/svg' role='img' {_FONT}>"
        f"<text x='{_WIDTH / 2}' y='18' text-anchor='middle' font-size='15'>{_e(title)}</text>"
        + "".join(body)
        + "</svg>"
    )


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round ticks covering ``[low, high]`` (steps of 1, 2 or 5 times a power of ten)."""
    if not high > low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    return [t * step for t in range(first, math.floor(high / step + 1e-9) + 1)]


class _Scale:
    """Data to pixels on one axis, linear or log10, with a margin of 5% of the range."""

    def __init__(self, values: Sequence[float], start: float, end: float, *, log: bool = False):
        self.log = log
        data = [math.log10(x) for x in values] if log else list(values)
        low, high = (min(data), max(data)) if data else (0.0, 1.0)
        pad = (high - low) * 0.05 or 0.5
        self.low, self.high, self.start, self.end = low - pad, high + pad, start, end

    def __call__(self, value: float) -> float:
        x = math.log10(value) if self.log else value
        return self.start + (x - self.low) / (self.high - self.low) * (self.end - self.start)

    def ticks(self) -> list[tuple[float, str]]:
        if self.log:
            decades = range(math.ceil(self.low), math.floor(self.high) + 1)
            return [(10.0**d, f"1e{d}") for d in decades]
        return [(t, f"{t:g}") for t in _nice_ticks(self.low, self.high)]


def _x_axis(scale: _Scale, top: float, bottom: float, title: str) -> list[str]:
    """Vertical grid lines with their tick labels under ``bottom`` and the axis title."""
    parts = []
    for value, text in scale.ticks():
        x = scale(value)
        parts.append(
            f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{bottom}' stroke='#e5e5e5'/>"
            f"<text x='{x:.1f}' y='{bottom + 14}' text-anchor='middle'>{_e(text)}</text>"
        )
    middle = (scale.start + scale.end) / 2
    parts.append(
        f"<text x='{middle:.1f}' y='{bottom + 30}' text-anchor='middle'>{_e(title)}</text>"
    )
    return parts


def _y_axis(scale: _Scale, left: float, right: float, title: str) -> list[str]:
    """Horizontal grid lines with their tick labels left of ``left`` and the axis title."""
    parts = []
    for value, text in scale.ticks():
        y = scale(value)
        parts.append(
            f"<line x1='{left}' x2='{right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e5e5e5'/>"
            f"<text x='{left - 4}' y='{y + 4:.1f}' text-anchor='end'>{_e(text)}</text>"
        )
    middle = (scale.start + scale.end) / 2
    parts.append(
        f"<text transform='translate({left - 42},{middle:.1f}) rotate(-90)' "
        f"text-anchor='middle'>{_e(title)}</text>"
    )
    return parts


def _blend(stops: Sequence[tuple[float, tuple[int, int, int]]], t: float) -> str:
    """The colour at ``t`` (0..1) of a piecewise-linear colour scale."""
    t = min(max(t, 0.0), 1.0)
    for (t0, c0), (t1, c1) in itertools.pairwise(stops):
        if t <= t1:
            w = (t - t0) / (t1 - t0)
            return "#" + "".join(
                f"{round(a + (b - a) * w):02x}" for a, b in zip(c0, c1, strict=True)
            )
    return "#" + "".join(f"{c:02x}" for c in stops[-1][1])


_SHARE = ((0.0, (178, 24, 43)), (0.5, (247, 247, 247)), (1.0, (33, 102, 172)))  # lost..won
_SCORE = ((0.0, (68, 1, 84)), (0.5, (33, 145, 140)), (1.0, (253, 231, 37)))  # viridis-like


def leaderboard(arena: Arena, study: Any, *, top: int = 20) -> str:
    """Score with its 95% interval per player, leader on top, baselines in red."""
    standings = arena.standings()
    rows, anchor = standings.leaderboard(top=top), standings.anchor
    baselines = v.baseline_trials(study)
    height = 70 + 22 * max(len(rows), 1)
    scale = _Scale([r.ci_low for r in rows] + [r.ci_high for r in rows], _LABELS + 10, _WIDTH - 20)
    bottom = 30 + 22 * len(rows)
    body = _x_axis(scale, 28, bottom, "score (log-odds against the anchor)")
    for i, r in enumerate(rows):
        y = 40 + 22 * i
        colour = (
            v.BASELINE_COLOUR if r.name is not None or r.trial in baselines else v.PLAYER_COLOUR
        )
        interval = (
            "the anchor, 0 by definition"
            if anchor is not None and r.player_id == anchor.id
            else f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
        )
        tip = (
            f"{r.label}: score {r.score:+.3f} {interval}, "
            f"P(best) {r.p_best:.3f}, {r.wins}-{r.ties}-{r.losses} in {r.games} games"
        )
        body.append(
            f"<g class='row'><title>{_e(tip)}</title>"
            f"<text x='{_LABELS}' y='{y + 4}' text-anchor='end'>{_e(r.label)}</text>"
            f"<line x1='{scale(r.ci_low):.1f}' x2='{scale(r.ci_high):.1f}' y1='{y}' y2='{y}' "
            f"stroke='{colour}' stroke-width='2'/>"
            f"<circle cx='{scale(r.score):.1f}' cy='{y}' r='5' fill='{colour}'/></g>"
        )
    title = "Judge leaderboard (Bradley–Terry score, 95% interval)"
    return _svg("leaderboard-figure", height, title, body)


def win_matrix(arena: Arena, *, top: int = 10) -> str:
    """Head-to-head W-T-L among the top players, coloured by points share (wins + half
    the ties), blank where they never met."""
    rows, records = v.head_to_head(arena, top)
    n = max(len(rows), 1)
    cell = min(56, (_WIDTH - _LABELS - 20) / n)
    left, top_y = _LABELS + 10, 110
    body = []
    for i, row in enumerate(rows):
        y = top_y + i * cell
        body.append(_text(left - 6, y + cell / 2 + 4, row.label, "text-anchor='end'"))
        x = left + i * cell + cell / 2
        body.append(
            f"<text transform='translate({x:.1f},{top_y - 6}) rotate(-40)'>{_e(row.label)}</text>"
        )
        for j, column in enumerate(rows):
            wins, ties, losses = (int(c) for c in records[i, j])
            games = wins + ties + losses
            if not games:
                continue
            share = (wins + 0.5 * ties) / games
            x0 = left + j * cell
            tip = (
                f"{row.label} vs {column.label}: {wins}-{ties}-{losses} (W-T-L), share {share:.2f}"
            )
            body.append(
                f"<g><title>{_e(tip)}</title><rect x='{x0:.1f}' y='{y:.1f}' width='{cell:.1f}' "
                f"height='{cell:.1f}' fill='{_blend(_SHARE, share)}' stroke='#fff'/>"
                f"<text x='{x0 + cell / 2:.1f}' y='{y + cell / 2 + 4:.1f}' text-anchor='middle' "
                f"font-size='{min(12, cell / 4.5):.0f}'>{wins}-{ties}-{losses}</text></g>"
            )
    height = top_y + n * cell + 30
    body.append(
        f"<text x='{left}' y='{height - 10:.0f}'>colour: share of points of the row player "
        "(red lost, blue won); cells: wins-ties-losses</text>"
    )
    title = "Head-to-head records among the top players (row vs column)"
    return _svg("win-matrix-figure", height, title, body)


def comparison_graph(arena: Arena, *, top: int = 10, alpha: float = 0.05) -> str:
    """Who beat whom significantly (arrow from winner to loser), leader on top."""
    rows, wins = v.significant_wins(arena, top=top, alpha=alpha)
    n = len(rows)
    step = 40
    xs = [_WIDTH * (0.35 + 0.2 * math.sin(2.4 * i)) for i in range(n)]  # spread so arrows show
    ys = [50 + step * i for i in range(n)]
    scores = [r.score for r in rows]
    low, high = (min(scores), max(scores)) if scores else (0.0, 1.0)
    body = [
        "<defs><marker id='arrow-head' viewBox='0 0 10 10' refX='10' refY='5' "
        "markerWidth='7' markerHeight='7' orient='auto-start-reverse'>"
        "<path d='M0,0 L10,5 L0,10 z' fill='#555'/></marker></defs>"
    ]
    for a, b in wins:
        dx, dy = xs[b] - xs[a], ys[b] - ys[a]
        length = math.hypot(dx, dy) or 1.0
        ux, uy = dx / length, dy / length
        body.append(
            f"<line class='win' x1='{xs[a] + 9 * ux:.1f}' y1='{ys[a] + 9 * uy:.1f}' "
            f"x2='{xs[b] - 10 * ux:.1f}' y2='{ys[b] - 10 * uy:.1f}' stroke='#555' "
            f"stroke-opacity='0.8' marker-end='url(#arrow-head)'>"
            f"<title>{_e(rows[a].label)} beat {_e(rows[b].label)}</title></line>"
        )
    for i, r in enumerate(rows):
        colour = _blend(_SCORE, (r.score - low) / (high - low) if high > low else 1.0)
        body.append(
            f"<g><title>{_e(r.label)}: score {r.score:+.3f}</title>"
            f"<circle cx='{xs[i]:.1f}' cy='{ys[i]}' r='7' fill='{colour}' stroke='#333'/>"
            f"<text x='{xs[i] + 12:.1f}' y='{ys[i] + 4}'>{_e(r.label)} ({r.score:+.2f})</text></g>"
        )
    if n and not wins:
        body.append(
            f"<text x='{_WIDTH / 2}' y='38' text-anchor='middle' fill='#555'>No significant "
            f"wins yet at alpha={alpha}: no pair's games are clear enough.</text>"
        )
    title = f"Significant wins among the top players (arrow: winner to loser, alpha={alpha})"
    return _svg("comparison-graph-figure", 30 + step * max(n, 1) + 20, title, body)


def learning_curves(arena: Arena, study: Any) -> str:
    """Judge score over training steps per trial; pruned trials dashed."""
    curves = v.learning_curves(arena, study)
    legend_x = _WIDTH - 120
    x = _Scale([s for _, p, _ in curves for s, _ in p], 70, legend_x - 20)
    y = _Scale([c for _, p, _ in curves for _, c in p], 300, 36)
    body = _x_axis(x, 36, 300, "step") + _y_axis(y, 70, legend_x - 20, "score")
    for k, (trial, points, pruned) in enumerate(curves):
        colour = _PALETTE[k % len(_PALETTE)]
        dash = " stroke-dasharray='5,4'" if pruned else ""
        name = f"trial {trial}" + (" (pruned)" if pruned else "")
        line = " ".join(f"{x(s):.1f},{y(c):.1f}" for s, c in points)
        dots = "".join(
            f"<circle cx='{x(s):.1f}' cy='{y(c):.1f}' r='3' fill='{colour}'>"
            f"<title>{_e(name)} step {s}: {c:+.3f}</title></circle>"
            for s, c in points
        )
        ly = 40 + 16 * k
        body.append(
            f"<g class='curve'><polyline points='{line}' fill='none' stroke='{colour}'{dash}/>"
            f"{dots}<line x1='{legend_x}' x2='{legend_x + 20}' y1='{ly}' y2='{ly}' "
            f"stroke='{colour}'{dash}/>{_text(legend_x + 24, ly + 4, name)}</g>"
        )
    height = max(340, 50 + 16 * len(curves))
    return _svg(
        "learning-curves-figure", height, "Judge score over training (learning curves)", body
    )


def score_slices(arena: Arena, study: Any) -> str:
    """The current score of each trial's best checkpoint against each hyperparameter, one
    small panel per hyperparameter, three to a row, sharing the score axis."""
    names, trials, best = v.score_slices(arena, study)
    columns, panel_w, panel_h = 3, (_WIDTH - 70) / 3, 170
    score = list(best.values()) or [0.0]
    body = []
    for k, name in enumerate(names):
        chosen = [t for t in trials if name in t.params]
        left = 60 + (k % columns) * panel_w
        top = 40 + (k // columns) * (panel_h + 20)
        y = _Scale(score, top + panel_h - 40, top + 18)
        kind = v.slice_axis(chosen, name)
        values = [t.params[name] for t in chosen]
        if kind == "category":
            labels = sorted({str(value) for value in values})
            positions = {label: i for i, label in enumerate(labels)}
            x = _Scale(list(range(len(labels))), left + 10, left + panel_w - 20)
            xs = [x(positions[str(value)]) for value in values]
            ticks = [(x(i), label) for i, label in enumerate(labels)]
        else:
            x = _Scale(
                [float(value) for value in values],
                left + 10,
                left + panel_w - 20,
                log=kind == "log",
            )
            xs = [x(float(value)) for value in values]
            scale_ticks = (
                x.ticks() if kind == "log" else [(t, f"{t:.3g}") for t, _ in x.ticks()[::2]]
            )
            ticks = [(x(value), text) for value, text in scale_ticks]
        bottom = top + panel_h - 40
        body.append(
            f"<rect x='{left + 4:.1f}' y='{top + 14}' width='{panel_w - 18:.1f}' "
            f"height='{panel_h - 54}' fill='none' stroke='#ccc'/>"
            + _text(left + panel_w / 2, top + 10, name, "text-anchor='middle'")
        )
        body += [
            _text(tx, bottom + 14, text, "text-anchor='middle' font-size='10'")
            for tx, text in ticks
        ]
        if k % columns == 0:
            body += [
                _text(left, y(t) + 4, text, "text-anchor='end' font-size='10'")
                for t, text in y.ticks()
            ]
        body += [
            f"<circle cx='{cx:.1f}' cy='{y(best[t.number]):.1f}' r='4' fill='{v.PLAYER_COLOUR}'>"
            f"<title>trial {t.number}: {_e(name)} = {_e(_short(t.params[name]))}, score "
            f"{best[t.number]:+.3f}</title></circle>"
            for cx, t in zip(xs, chosen, strict=True)
        ]
    rows = max(1, math.ceil(len(names) / columns))
    title = "Score of each trial's best checkpoint by hyperparameter"
    if not names:
        title = "No hyperparameters to show"
    return _svg("slices-figure", 40 + rows * (panel_h + 20), title, body)


def report_figures(arena: Arena, study: Any) -> list[str]:
    """The report's five figures as SVG elements, in the report's order."""
    return [
        leaderboard(arena, study),
        win_matrix(arena),
        comparison_graph(arena),
        learning_curves(arena, study),
        score_slices(arena, study),
    ]
