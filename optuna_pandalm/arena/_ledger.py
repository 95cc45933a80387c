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
from optuna_pandalm.store import GameCounts, PlayerRecord, Store

__all__ = ["Ledger", "as_player"]


def as_player(record: PlayerRecord) -> Player:
    return Player(record.id, record.trial_number, record.step, record.name)


class Ledger:
    """Incremental reader of one arena's players and game counts."""

    def __init__(self, store: Store, arena_id: int, *, by_prompt: bool = False) -> None:
        self.store = store
        self.arena_id = arena_id
        self.by_prompt = by_prompt
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
                self.arena_id,
                by_prompt=self.by_prompt,
                max_game_id=max_game_id,
                min_game_id=last,
            )
            if total + int(delta.count.sum()) == n_games:
                counts = merge_counts(known, delta)
        if counts is None:
            counts = self.store.game_counts(
                self.arena_id, by_prompt=self.by_prompt, max_game_id=max_game_id
            )
        self._counts = (max_game_id, int(counts.count.sum()), counts)
        return counts


def merge_counts(known: GameCounts, delta: GameCounts) -> GameCounts:
    """Two sets of game counts as one, grouped and sorted by key like the store's."""
    if not len(delta.count):
        return known
    columns = [known.first, known.second, known.outcome]
    extra = [delta.first, delta.second, delta.outcome]
    if known.prompt_position is not None and delta.prompt_position is not None:
        columns.append(known.prompt_position)
        extra.append(delta.prompt_position)
    keys = np.concatenate(
        [np.column_stack(columns).reshape(-1, len(columns)), np.column_stack(extra)]
    )
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)

    def summed(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray:
        values = np.concatenate([_or_zeros(a, known), _or_zeros(b, delta)])
        return np.bincount(inverse.reshape(-1), values, minlength=len(unique)).astype(np.float64)

    return GameCounts(
        first=unique[:, 0],
        second=unique[:, 1],
        outcome=unique[:, 2],
        count=summed(known.count, delta.count),
        prompt_position=unique[:, 3] if len(columns) == 4 else None,
        human=summed(known.human, delta.human),
    )


def _or_zeros(values: np.ndarray | None, counts: GameCounts) -> np.ndarray:
    return np.zeros(len(counts.count)) if values is None else values
