"""The ledger: a study's stored players and game counts, read incrementally.

A fit needs every player and the counts of every game. Reading them all again at each
fit costs O(games) per checkpoint; the ledger adds what was stored since the previous
read, and reads everything afresh when the totals say a row with a smaller id committed
late (another worker's transaction), so what it returns is always exactly the rows up to
the ids asked for.
"""

from __future__ import annotations

import numpy as np

from optuna_pandalm.arena._players import Player
from optuna_pandalm.store import ArenaStore, GameCounts, PlayerRecord

__all__ = ["Ledger", "as_player"]


def as_player(record: PlayerRecord) -> Player:
    return Player(record.id, record.trial_number, record.step, record.name)


class Ledger:
    """Incremental reader of one arena's players and game counts."""

    def __init__(
        self,
        store: ArenaStore,
        arena_id: int,
        *,
        by_prompt: bool = False,
        by_length: bool = False,
        by_annotator: bool = True,
    ) -> None:
        self.store = store
        self.arena_id = arena_id
        self.keys = {"by_prompt": by_prompt, "by_length": by_length, "by_annotator": by_annotator}
        # (largest player id, players) last listed and (largest game id, games, counts) last
        # counted.
        self._players: tuple[int, list[Player]] | None = None
        self._counts: tuple[int, int, GameCounts] | None = None

    def players(self, max_player_id: int, n_players: int) -> list[Player]:
        """Players with ids up to ``max_player_id``; ``n_players`` is how many the store
        counted (a mismatch means a late commit: all listed afresh)."""
        if self._players is not None and self._players[0] <= max_player_id:
            last, known = self._players
            records = self.store.players(self.arena_id, min_id=last, max_id=max_player_id)
            if len(known) + len(records) == n_players:
                listed = known + [as_player(r) for r in records]
                self._players = (max_player_id, listed)
                return list(listed)
        listed = [as_player(r) for r in self.store.players(self.arena_id, max_id=max_player_id)]
        self._players = (max_player_id, listed)
        return list(listed)

    def counts(self, max_game_id: int, n_games: int) -> GameCounts:
        """Game counts up to ``max_game_id``; ``n_games`` is how many the store counted."""
        counts = None
        if self._counts is not None and self._counts[0] <= max_game_id:
            last, total, known = self._counts
            delta = self.store.game_counts(
                self.arena_id, **self.keys, max_game_id=max_game_id, min_game_id=last
            )
            if total + int(delta.count.sum()) == n_games:
                counts = merge_counts(known, delta)
        if counts is None:
            counts = self.store.game_counts(self.arena_id, **self.keys, max_game_id=max_game_id)
        self._counts = (max_game_id, int(counts.count.sum()), counts)
        return counts


_KEYS = ("prompt_position", "first_length", "second_length", "identical")


def merge_counts(known: GameCounts, delta: GameCounts) -> GameCounts:
    """Two sets of game counts as one, grouped and sorted by key like the store's."""
    if not len(delta.count):
        return known
    optional = [k for k in _KEYS if getattr(known, k) is not None]
    names = None
    if known.annotator is not None and delta.annotator is not None:
        names = np.array(sorted(set(known.annotator) | set(delta.annotator)), dtype=object)

    def key_columns(counts: GameCounts) -> np.ndarray:
        columns = [counts.first, counts.second, counts.outcome]
        columns += [getattr(counts, k) for k in optional]
        if names is not None and counts.annotator is not None:
            columns.append(_codes(counts.annotator, names))
        return np.column_stack(columns).reshape(-1, len(columns)).astype(np.int64)

    keys = np.concatenate([key_columns(known), key_columns(delta)])
    unique, inverse = _unique_rows(keys)
    count = np.bincount(
        inverse.reshape(-1), np.concatenate([known.count, delta.count]), minlength=len(unique)
    )
    fields: dict[str, np.ndarray] = {k: unique[:, 3 + i] for i, k in enumerate(optional)}
    if "identical" in fields:
        fields["identical"] = fields["identical"].astype(bool)
    return GameCounts(
        first=unique[:, 0],
        second=unique[:, 1],
        outcome=unique[:, 2],
        count=count.astype(np.float64),
        annotator=None if names is None else names[unique[:, -1]],
        **fields,
    )


def _codes(annotator: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Each row's index in the sorted ``names``: one comparison per name (few, long) is
    cheaper than a binary search comparing Python strings row by row."""
    codes = np.zeros(len(annotator), dtype=np.int64)
    for code, name in enumerate(names[1:], start=1):
        codes[annotator == name] = code
    return codes


def _unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, axis=0, return_inverse=True)`` for non-negative integer columns:
    the same rows in the same (lexicographic) order, through one int64 key per row when
    the columns' ranges fit in 63 bits (a row-wise unique sorts structured rows, the
    ledger's biggest cost at thousands of players)."""
    if not len(keys):
        return np.unique(keys, axis=0, return_inverse=True)
    sizes = keys.max(axis=0).astype(np.int64) + 1
    if keys.min() < 0 or float(np.prod(sizes.astype(np.float64))) >= 2.0**62:
        return np.unique(keys, axis=0, return_inverse=True)
    combined = np.zeros(len(keys), dtype=np.int64)
    for column, size in zip(keys.T, sizes, strict=True):
        combined = combined * size + column  # mixed radix: lexicographic order kept
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    return keys[first], inverse.reshape(-1)
