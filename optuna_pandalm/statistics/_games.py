"""The games as the fit trusts them: checked and canonicalised once, then counted per row.

``_canonical_input`` checks the per-game arrays (shapes, integer ids, ranges, finite values)
and turns them into an :class:`_Input`; ``_aggregate`` counts the games per distinct
(cluster, first, second, length, annotator) row and outcome (:class:`_Games`), and
``_merge_clusters`` drops the cluster key for the fit itself. The fit's cost then grows with
the rows, not with the games.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

_OUTCOMES = 3  # 0 tie, 1 first-shown won, 2 second-shown won

_Float = NDArray[np.float64]
_Int = NDArray[np.int64]


@dataclasses.dataclass(frozen=True)
class _Games:
    """Games aggregated per distinct (cluster, first, second, length, annotator) row."""

    first: _Int  # (rows,)
    second: _Int  # (rows,)
    counts: _Float  # (rows, 3): ties, first-shown won, second-shown won
    length: _Float | None  # (rows,)
    cluster: _Int | None  # (rows,) cluster codes
    n_players: int
    n_clusters: int
    annotator: _Int | None = None  # (rows,) annotator codes, 0 the reference
    n_annotators: int = 1


def _codes(values: NDArray[Any]) -> tuple[_Int, int]:
    uniques, inverse = np.unique(values, return_inverse=True)
    return inverse.astype(np.int64).ravel(), len(uniques)


def _group(columns: list[tuple[_Int, int]]) -> tuple[_Int, _Int]:
    """Group rows by several integer columns, each given with its number of values.

    Returns, for every row, its group code, and for every group the index of one member row.
    Columns are combined into one int64 key; when the key would overflow, the partial key
    is recoded to dense codes first.
    """
    key, size = columns[0]
    key = key.astype(np.int64)
    for values, cardinality in columns[1:]:
        if size * cardinality >= 2**62:
            key, size = _codes(key)
        key = key * cardinality + values
        size *= cardinality
    if size <= max(4 * len(key), 1 << 16):
        # Few possible keys: count them instead of sorting (faster; benchmarks/README.md).
        # Not many more keys than rows: counting a million keys (1,000 players) cost 5 ms
        # where sorting the 20,000 rows cost 0.9; either way the same groups, in key order.
        present = np.bincount(key, minlength=size) > 0
        code_of_key = np.cumsum(present) - 1
        inverse = code_of_key[key]
        member = np.empty(int(present.sum()), dtype=np.int64)
        member[inverse] = np.arange(len(key))
        return inverse, member
    # One unstable sort; np.unique(return_index=True) would use a slower stable one.
    order = np.argsort(key)
    ordered = key[order]
    starts = np.empty(len(key), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    inverse = np.empty(len(key), dtype=np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return inverse, order[starts]


@dataclasses.dataclass(frozen=True)
class _Input:
    """Games as every later step trusts them, checked and canonicalised once: one entry per
    game, ids, outcomes and codes as ``int64``, weights and lengths as finite ``float64``."""

    first: _Int
    second: _Int
    outcome: _Int  # 0 tie, 1 first-shown won, 2 second-shown won
    n_players: int
    weights: _Float | None
    length: _Float | None
    cluster: _Int | None  # dense cluster codes 0..n_clusters-1
    n_clusters: int
    annotator: _Int | None  # annotator codes; None with one annotator (the plain model)
    n_annotators: int


def _canonical_input(
    first: Any,
    second: Any,
    outcome: Any,
    *,
    n_players: int | None,
    weights: Any,
    length_diff: Any,
    clusters: Any,
    annotators: Any = None,
) -> _Input:
    """Check the per-game arrays (shapes, integer ids and codes, ranges, finite values) and
    canonicalise them into an :class:`_Input`; raises ``ValueError`` naming the array."""
    first_a = np.asarray(first)
    second_a = np.asarray(second)
    outcome_a = np.asarray(outcome)
    arrays = {"first": first_a, "second": second_a, "outcome": outcome_a}
    for name, optional in (("weights", weights), ("length_diff", length_diff)):
        if optional is not None:
            arrays[name] = np.asarray(optional, dtype=np.float64)
    if clusters is not None:
        arrays["clusters"] = np.asarray(clusters)
    if annotators is not None:
        arrays["annotators"] = np.asarray(annotators)
    n_games = len(first_a)
    for name, array in arrays.items():
        if array.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
        if len(array) != n_games:
            raise ValueError(f"{name} has {len(array)} entries but first has {n_games}")
    for name in [k for k in ("first", "second", "outcome", "annotators") if k in arrays]:
        array = arrays[name]
        fractional = n_games and not np.issubdtype(array.dtype, np.integer)
        if fractional and (not np.all(np.isfinite(array)) or np.any(array != np.round(array))):
            raise ValueError(f"{name} must hold integers")
        arrays[name] = array.astype(np.int64)
    first_a, second_a, outcome_a = arrays["first"], arrays["second"], arrays["outcome"]

    if n_games and (first_a.min() < 0 or second_a.min() < 0):
        raise ValueError("player ids must be >= 0")
    seen = int(max(first_a.max(), second_a.max())) + 1 if n_games else 0
    if n_players is None:
        n_players = seen
    elif n_players < seen:
        raise ValueError(f"n_players={n_players} but a game names player {seen - 1}")
    if np.any(first_a == second_a):
        game = int(np.flatnonzero(first_a == second_a)[0])
        raise ValueError(f"game {game} has player {first_a[game]} playing itself")
    if n_games and (outcome_a.min() < 0 or outcome_a.max() > 2):
        raise ValueError("outcome must be 0 (tie), 1 (first-shown won) or 2 (second-shown won)")

    weights_a = arrays.get("weights")
    if weights_a is not None and (not np.all(np.isfinite(weights_a)) or np.any(weights_a < 0)):
        raise ValueError("weights must be finite and >= 0")
    length_a = arrays.get("length_diff")
    if length_a is not None and not np.all(np.isfinite(length_a)):
        raise ValueError("length_diff must be finite")
    annotator_a = arrays.get("annotators")
    n_annotators = 1
    if annotator_a is not None and n_games:
        if annotator_a.min() < 0:
            raise ValueError("annotator codes must be >= 0")
        n_annotators = int(annotator_a.max()) + 1
    if n_annotators == 1:
        annotator_a = None  # one annotator: the plain model, whatever the codes say
    cluster_codes, n_clusters = None, 0
    if clusters is not None:
        cluster_codes, n_clusters = _codes(arrays["clusters"])
    return _Input(
        first=first_a,
        second=second_a,
        outcome=outcome_a,
        n_players=n_players,
        weights=weights_a,
        length=length_a,
        cluster=cluster_codes,
        n_clusters=n_clusters,
        annotator=annotator_a,
        n_annotators=n_annotators,
    )


def _aggregate(games: _Input) -> _Games:
    """Count the games per distinct (cluster, first, second, length, annotator) row and
    outcome: the fit's cost then grows with the rows, not with the games."""
    n_players = games.n_players
    columns = [(games.first, max(n_players, 1)), (games.second, max(n_players, 1))]
    if games.cluster is not None:
        columns.insert(0, (games.cluster, max(games.n_clusters, 1)))
    if games.length is not None:
        columns.append(_codes(games.length))
    if games.annotator is not None:
        columns.append((games.annotator, games.n_annotators))
    if len(games.first) == 0:
        rows = np.zeros(0, dtype=np.int64)
        return _Games(
            rows,
            rows,
            np.zeros((0, _OUTCOMES)),
            None if games.length is None else np.zeros(0),
            None if games.cluster is None else rows,
            n_players,
            games.n_clusters,
        )
    group, member = _group(columns)
    n_rows = len(member)
    counts = np.bincount(
        group * _OUTCOMES + games.outcome, weights=games.weights, minlength=n_rows * _OUTCOMES
    ).reshape(n_rows, _OUTCOMES)
    return _Games(
        first=games.first[member],
        second=games.second[member],
        counts=counts.astype(np.float64),
        length=None if games.length is None else games.length[member],
        cluster=None if games.cluster is None else games.cluster[member],
        n_players=n_players,
        n_clusters=games.n_clusters,
        annotator=None if games.annotator is None else games.annotator[member],
        n_annotators=games.n_annotators,
    )


def _merge_clusters(games: _Games) -> _Games:
    """The same games without the cluster key: fewer rows for the fit itself."""
    if games.cluster is None or len(games.first) == 0:
        return games
    n = max(games.n_players, 1)
    columns = [(games.first, n), (games.second, n)]
    if games.length is not None:
        columns.append(_codes(games.length))
    if games.annotator is not None:
        columns.append((games.annotator, games.n_annotators))
    group, member = _group(columns)
    counts = np.zeros((len(member), _OUTCOMES))
    np.add.at(counts, group, games.counts)
    return dataclasses.replace(
        games,
        first=games.first[member],
        second=games.second[member],
        counts=counts,
        length=None if games.length is None else games.length[member],
        cluster=None,
        annotator=None if games.annotator is None else games.annotator[member],
    )
