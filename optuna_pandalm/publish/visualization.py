"""Plotly figures of a judge-driven study, in the style of ``optuna.visualization``.

Each function takes an :class:`~optuna_pandalm.Arena` (and, where trial states or
hyperparameters matter, the Optuna study) and returns a ``plotly.graph_objects.Figure``.
Generated text never appears in figures except escaped in hover labels.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from optuna_pandalm.arena import Arena, LeaderboardRow

__all__ = [
    "plot_comparison_graph",
    "plot_leaderboard",
    "plot_learning_curves",
    "plot_score_slices",
    "plot_win_matrix",
]


BASELINE_COLOUR = "#d62728"
PLAYER_COLOUR = "#1f77b4"


def baseline_trials(study: Any) -> set[int]:
    """Numbers of the study's baseline trials (enqueued with the ``baseline`` attribute)."""
    from optuna_pandalm.attributes import BASELINE_ATTR

    if study is None:
        return set()
    return {t.number for t in study.get_trials(deepcopy=False) if t.user_attrs.get(BASELINE_ATTR)}


def plot_leaderboard(
    arena: Arena,
    *,
    top: int = 20,
    study: Any = None,
    rows: Sequence[LeaderboardRow] | None = None,
) -> go.Figure:
    """Score with its 95% interval per player, best on top; P(best) and games in the hover;
    baselines in red: fixed baseline players and, given the study, its baseline trials.
    ``rows``: leaderboard rows already computed (the arena's ``top`` rows when not given)."""
    import plotly.graph_objects as go

    rows = arena.leaderboard(top=top) if rows is None else rows
    baselines = baseline_trials(study)
    colours = [
        BASELINE_COLOUR if r.name is not None or r.trial in baselines else PLAYER_COLOUR
        for r in rows
    ]
    figure = go.Figure(
        go.Scatter(
            x=[r.score for r in rows],
            y=[r.label for r in rows],
            mode="markers",
            marker={"color": colours, "size": 9},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [r.ci_high - r.score for r in rows],
                "arrayminus": [r.score - r.ci_low for r in rows],
            },
            customdata=[[r.p_best, r.games, r.wins, r.ties, r.losses] for r in rows],
            hovertemplate="%{y}<br>score %{x:.3f}<br>P(best) %{customdata[0]:.3f}"
            "<br>%{customdata[2]}-%{customdata[3]}-%{customdata[4]} in %{customdata[1]} games"
            "<extra></extra>",
        )
    )
    figure.update_layout(
        title="Judge leaderboard (Bradley–Terry score, 95% interval)",
        xaxis_title="score (log-odds against the anchor)",
        yaxis={"autorange": "reversed"},
        height=max(300, 28 * len(rows) + 120),
    )
    return figure


def head_to_head(arena: Arena, top: int) -> tuple[list[LeaderboardRow], np.ndarray]:
    """The top rows and their ``(k, k, 3)`` head-to-head records (wins, ties, losses of
    row player against column player), from one standings."""
    standings = arena.standings()
    rows = standings.leaderboard(top=top)
    by_id = {p.id: p for p in standings.players}
    return rows, standings.pair_records([by_id[r.player_id] for r in rows])


def significant_wins(
    arena: Arena, *, top: int = 10, alpha: float = 0.05
) -> tuple[list[LeaderboardRow], list[tuple[int, int]]]:
    """The top rows and who beat whom significantly among them: ``(winner, loser)`` row
    indices, by a two-sided sign test with ties split at ``alpha`` (the data step of
    :func:`plot_comparison_graph` and of the report's drawing)."""
    from optuna_pandalm.statistics.sign_test import sign_test

    rows, records = head_to_head(arena, top)
    wins = []
    for a in range(len(rows)):
        for b in range(len(rows)):
            won, tied, lost = records[a, b]
            if a != b and won > lost and sign_test(won, tied, lost) < alpha:
                wins.append((a, b))
    return rows, wins


def learning_curves(
    arena: Arena, study: Any = None
) -> list[tuple[int, list[tuple[int, float]], bool]]:
    """``(trial, [(step, score), ...] by step, pruned)`` per trial with checkpoints, by trial
    number (the data step of :func:`plot_learning_curves`)."""
    import optuna

    states = {}
    if study is not None:
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    by_trial: dict[int, list[tuple[int, float]]] = {}
    for player, score in arena.scores().items():
        if player.trial is not None and player.step is not None:
            by_trial.setdefault(player.trial, []).append((player.step, score))
    pruned = optuna.trial.TrialState.PRUNED
    return [
        (trial, sorted(points), states.get(trial) == pruned)
        for trial, points in sorted(by_trial.items())
    ]


def score_slices(arena: Arena, study: Any) -> tuple[list[str], list[Any], dict[int, float]]:
    """The hyperparameter names, the trials with a checkpoint, and each one's best current
    score by trial number (the data step of :func:`plot_score_slices`)."""
    best: dict[int, float] = {}
    for player, score in arena.scores().items():
        if player.trial is not None:
            best[player.trial] = max(score, best.get(player.trial, -math.inf))
    trials = [t for t in study.get_trials(deepcopy=False) if t.number in best]
    return sorted({name for t in trials for name in t.params}), trials, best


def slice_axis(trials: list[Any], name: str) -> str:
    """How to draw a hyperparameter's axis: ``"category"`` (a value is not a number),
    ``"log"`` (log-sampled, or a positive range wider than 20x) or ``"linear"``."""
    values = [t.params[name] for t in trials]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "category"
    log = any(getattr(t.distributions.get(name), "log", False) for t in trials) or (
        min(values) > 0 and max(values) / min(values) > 20
    )
    return "log" if log and min(values) > 0 else "linear"


def plot_win_matrix(arena: Arena, *, top: int = 10) -> go.Figure:
    """Share of points (wins + half the ties) of each row player against each column player,
    among the top players; blank where they never met."""
    import plotly.graph_objects as go

    rows, records = head_to_head(arena, top)
    games = records.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(games > 0, (records[..., 0] + 0.5 * records[..., 1]) / games, np.nan)
    labels = [r.label for r in rows]
    text = [
        [
            f"{int(records[i, j, 0])}-{int(records[i, j, 1])}-{int(records[i, j, 2])}"
            if games[i, j]
            else ""
            for j in range(len(rows))
        ]
        for i in range(len(rows))
    ]
    figure = go.Figure(
        go.Heatmap(
            z=share,
            x=labels,
            y=labels,
            text=text,
            texttemplate="%{text}",
            zmin=0,
            zmax=1,
            colorscale="RdBu",
            colorbar={"title": "points share"},
            hovertemplate="%{y} vs %{x}<br>%{text} (W-T-L)<br>share %{z:.2f}<extra></extra>",
        )
    )
    figure.update_layout(title="Head-to-head records among the top players (row vs column)")
    figure.update_yaxes(autorange="reversed")
    return figure


def plot_comparison_graph(arena: Arena, *, top: int = 10, alpha: float = 0.05) -> go.Figure:
    """Who beat whom significantly (two-sided sign test with ties split, at ``alpha``), as a
    ranking graph with the leader on top, like PandaLM's Figure 7."""
    import plotly.graph_objects as go

    rows, wins = significant_wins(arena, top=top, alpha=alpha)
    figure = go.Figure()
    n = len(rows)
    x = [0.5 + 0.35 * math.sin(2.4 * i) for i in range(n)]  # spread nodes so arrows show
    y = [n - i for i in range(n)]
    for a, b in wins:
        figure.add_annotation(
            x=x[b],
            y=y[b],
            ax=x[a],
            ay=y[a],
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=3,
            arrowsize=1.4,
            arrowcolor="#555",
            opacity=0.8,
            standoff=10,  # stop before the loser's marker so the head shows
            startstandoff=8,
        )
    if n and not figure.layout.annotations:
        figure.add_annotation(
            x=0.5,
            y=1.0,
            xref="paper",
            yref="paper",
            yanchor="bottom",
            showarrow=False,
            text=f"No significant wins yet at alpha={alpha}: no pair's games are clear enough.",
            font={"size": 14, "color": "#555"},
        )
    figure.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers+text",
            text=[r.label for r in rows],
            textposition="middle right",
            marker={
                "size": 14,
                "color": [r.score for r in rows],
                "colorscale": "Viridis",
                "showscale": True,
            },
            hovertemplate="%{text}<br>score %{marker.color:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"Significant wins among the top players (arrow: winner to loser, alpha={alpha})",
        xaxis={"visible": False, "range": [-0.1, 1.6]},
        yaxis={"visible": False},
        height=max(350, 45 * n + 100),
    )
    return figure


def plot_learning_curves(arena: Arena, study: Any = None) -> go.Figure:
    """Judge score of each trial's checkpoints over training steps; pruned trials dashed."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for trial, points, pruned in learning_curves(arena, study):
        figure.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="lines+markers",
                name=f"trial {trial}" + (" (pruned)" if pruned else ""),
                line={"dash": "dash" if pruned else "solid"},
            )
        )
    figure.update_layout(
        title="Judge score over training (learning curves by judge)",
        xaxis_title="step",
        yaxis_title="score (log-odds against the anchor)",
    )
    return figure


def plot_score_slices(arena: Arena, study: Any) -> go.Figure:
    """The current score of each trial's best checkpoint against each hyperparameter."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names, trials, best = score_slices(arena, study)
    if not names:
        return go.Figure().update_layout(title="No hyperparameters to show")
    figure = make_subplots(rows=1, cols=len(names), shared_yaxes=True, subplot_titles=names)
    for column, name in enumerate(names, start=1):
        chosen = [t for t in trials if name in t.params]
        figure.add_trace(
            go.Scatter(
                x=[t.params[name] for t in chosen],
                y=[best[t.number] for t in chosen],
                mode="markers",
                text=[html.escape(f"trial {t.number}") for t in chosen],
                hovertemplate="%{text}<br>%{x}<br>score %{y:.3f}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=column,
        )
        figure.update_xaxes(**_slice_axis(chosen, name), row=1, col=column)
    figure.update_layout(
        title="Score of each trial's best checkpoint by hyperparameter", yaxis_title="score"
    )
    return figure


def _slice_axis(trials: list[Any], name: str) -> dict[str, Any]:
    """Axis settings that keep a narrow slice readable: a log axis with one tick per decade
    (``1e-4``) for a log-sampled or wide positive range, few ticks otherwise."""
    kind = slice_axis(trials, name)
    if kind == "category":
        return {"tickangle": -30}
    if kind == "log":
        return {"type": "log", "dtick": 1, "tickformat": ".0e"}
    return {"nticks": 4}
