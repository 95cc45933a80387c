"""``ArenaStore``: what the rest of the package asks of a store, as Optuna's ``BaseStorage``
is what its study asks of a storage.

The arena (match play, the ledger, votes, standings), ``study.check_study``, the review page
and the commands read and write through these methods only; :class:`Store` implements them
over SQL (which of its parts implements which group: see the package docstring). Opening a
database, probing it and migrating its schema are :class:`Store`'s own (the commands that do
so hold a :class:`Store`), as ``optuna storage upgrade`` is ``RDBStorage``'s, not
``BaseStorage``'s.

Every method commits on its own and is safe to retry; writes are idempotent (a second
identical write stores nothing). Ids are the store's integers; an ``arena_id`` is the one
:meth:`ArenaStore.bind_study` returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from optuna_pandalm.store._arenas import _PromptLike
from optuna_pandalm.store._audit import VoteRecord
from optuna_pandalm.store._games import GameCounts, GameRecord
from optuna_pandalm.store._players import PlayerRecord
from optuna_pandalm.store._verdict_cache import StoredVerdict, VerdictKey

__all__ = ["ArenaStore"]


@runtime_checkable
class ArenaStore(Protocol):
    """The store methods the package uses; :class:`Store` satisfies it.

    Example:
        >>> from optuna_pandalm.store import Store
        >>> isinstance(Store("sqlite://"), ArenaStore)
        True
    """

    # --- the store itself ----------------------------------------------------------------
    @property
    def masked_url(self) -> str:
        """The database URL with passwords and secret query values masked, for messages."""

    @property
    def read_only(self) -> bool:
        """Whether the store refuses every write (opened to read: reports, ``check``)."""

    def close(self) -> None:
        """Close the connections; the store can still be used (it reconnects)."""

    # --- the verdict cache (``_verdict_cache``) ------------------------------------------
    def find_verdicts(
        self, judge_name: str, keys: Iterable[VerdictKey]
    ) -> dict[VerdictKey, StoredVerdict]:
        """The judge's cached verdicts for ``keys``, with their ids; a key with no verdict
        is absent."""

    def save_verdicts(
        self, judge_name: str, items: Sequence[tuple[VerdictKey, StoredVerdict]]
    ) -> dict[VerdictKey, StoredVerdict]:
        """Store verdicts (the first stored for a key wins) and return, per key, the stored
        verdict with its id."""

    # --- prompt sets and arenas (``_arenas``) --------------------------------------------
    def save_prompt_set(self, prompts: Sequence[_PromptLike]) -> int:
        """Store a prompt set once per content hash; returns its id."""

    def prompt_set_hash(self, prompt_set_id: int) -> str:
        """The content hash of a stored prompt set."""

    def bind_study(
        self,
        study_name: str,
        prompt_set_id: int,
        *,
        position: str | None = None,
        length_control: bool | None = None,
        robust_errors: bool | None = None,
    ) -> int:
        """The arena id of a study, binding it to the prompt set and the scoring settings on
        first use (``None``: the study's, or the default for a new study); raises
        ``PromptSetMismatchError`` for another prompt set or another setting given."""

    def arena_settings(self, study_name: str) -> dict[str, Any] | None:
        """``{"id", "prompt_set_id", "position", "length_control", "robust_errors"}`` of a
        study's arena, or ``None``; a scoring setting not recorded (schema 2) is ``None``."""

    def study_prompts(self, study_name: str) -> list[dict[str, Any]]:
        """The prompts a study is bound to, in order (``instruction``, ``input``,
        ``reference``, ``user_id``); empty when the study has no arena."""

    # --- players and their responses (``_players``) -------------------------------------
    def player(
        self,
        arena_id: int,
        *,
        trial: int | None = None,
        step: int | None = None,
        name: str | None = None,
        generations: Sequence[str] | None = None,
    ) -> int:
        """Id of a checkpoint ``(trial, step)`` or a named baseline, created on first use
        with its ``generations`` in the same transaction."""

    def players(
        self,
        arena_id: int,
        *,
        trial_number: int | None = None,
        ids: Iterable[int] | None = None,
        min_id: int | None = None,
        max_id: int | None = None,
    ) -> list[PlayerRecord]:
        """Players in creation order: all, one trial's, those with ``ids``, or those with
        ``min_id < id <= max_id``."""

    def generations(self, player_id: int) -> list[str]:
        """A player's stored responses, in prompt order."""

    def generation_hashes(self, player_id: int) -> list[str]:
        """:func:`text_hash` of each of a player's responses as given, in prompt order."""

    # --- matches and games (``_games``) -------------------------------------------------
    def start_match(self, arena_id: int, player_a_id: int, player_b_id: int, *, kind: str) -> int:
        """Record a match (``kind``: why it was played); returns its id."""

    def save_games(self, arena_id: int, match_id: int, records: Sequence[GameRecord]) -> int:
        """Store games in one transaction, skipping a game already stored for the same two
        players (either order), prompt and annotator; returns how many were new."""

    def played_positions(self, arena_id: int, player_id: int, opponent_id: int) -> set[int]:
        """Prompt positions the judge already played the two on (either order)."""

    def game_counts(
        self,
        arena_id: int,
        *,
        by_prompt: bool = False,
        by_length: bool = False,
        by_annotator: bool = False,
        max_game_id: int | None = None,
        min_game_id: int | None = None,
    ) -> GameCounts:
        """Game counts per (first, second, outcome[, prompt][, lengths][, annotator],
        identical responses) for the games with ``min_game_id < id <= max_game_id``."""

    def version(self, arena_id: int) -> tuple[int, int, int, int]:
        """(games, largest game id, players, largest player id): changes whenever a game or
        a player is added, so fits are cached and reproduced on it."""

    def pair_record(self, arena_id: int, player_id: int, opponent_id: int) -> tuple[int, int, int]:
        """(wins, ties, losses) of ``player_id`` against ``opponent_id``, both orders."""

    def opponents(self, arena_id: int, player_id: int, *, kind: str | None = None) -> list[int]:
        """Players ``player_id`` was matched against as challenger, oldest first."""

    # --- reports and ``check`` (``_audit``) ----------------------------------------------
    def reasons(self, arena_id: int, player_id: int, *, limit: int = 3) -> list[tuple[int, str]]:
        """(prompt position, judge's reason) of a few of a player's games."""

    def votes(self, arena_id: int) -> list[VoteRecord]:
        """People's votes, oldest first, each with the judge's game on the same pair and
        prompt."""

    def verdict_counts(self, arena_id: int) -> dict[str, int]:
        """Games, the verdicts behind them and the invalid ones."""

    def judge_names(self, arena_id: int) -> list[str]:
        """The judges whose verdicts are behind the arena's judge games, sorted."""

    def game_details(
        self, arena_id: int, player_id: int, *, limit: int = 3
    ) -> list[dict[str, Any]]:
        """A few of a player's latest games with both responses, the outcome and the
        judge's reason and reference."""

    def integrity(self, arena_id: int, n_prompts: int) -> dict[str, list[str]]:
        """Problems in the stored data of one arena, by kind (empty lists when sound)."""

    def last_stored(self, arena_id: int, player_ids: Iterable[int]) -> dict[int, float]:
        """Per player, when it last had something stored (``_activity``: its creation, the
        matches it started as challenger, their games), in seconds since the epoch."""

    # --- Optuna's tables, read only (``_optuna_heartbeats``) -----------------------------
    def heartbeat_ages(self, study_name: str) -> dict[int, float]:
        """Seconds since each trial's last Optuna heartbeat, by trial number (database
        clock); empty when there are none."""

    def trials_without_heartbeat(self, study_name: str) -> list[int]:
        """RUNNING trials of the study that never had an Optuna heartbeat (their worker died
        before its first beat), by number; empty when the database has no heartbeats."""
