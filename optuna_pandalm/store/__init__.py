"""SQL storage of prompt sets, players, generations, verdicts and games.

This package is the only code that writes SQL. The rest of the package talks to it through
:class:`ArenaStore` (``_interface``), the methods it uses, which :class:`Store` implements;
only the commands that open, probe or migrate a database hold a :class:`Store` itself.

Its parts, one concept each:

* ``_engine``: the SQLAlchemy engine, read-only or not.
* ``_outage``: what a database failure means; riding out outages with bounded backoff.
* ``_schema``: the ``pandalm_`` tables, the schema version and the migrations, the lock.
* ``_texts``: text hashes.
* ``_counters``: each arena's game and player counters, updated in the transactions that
  store them, so ``version`` reads one row.
* ``_optuna_schema``: :func:`create_optuna_schema`, Optuna's schema made under the lock
  (by :func:`make_optuna_schema`, over one connection)
  (several processes starting at once on an empty database).
* ``_optuna_tables``: the columns of Optuna's tables read here; Optuna's rows are never
  written here (a finished trial stays as Optuna left it).
* ``_database``: what the mixins below share (the engine, idempotent inserts).
* ``_interface``: :class:`ArenaStore`, the named interface.
* ``_journal``: the local verdict journal: what a worker judged, on disk until the store
  has taken it, replayed by the next arena (:func:`replay_journals`).
* ``_store``: :class:`Store`, which opens a database (its schema version, Optuna's schema)
  and is the mixins below, each implementing one group of :class:`ArenaStore`:

  =========================  ==========================================================
  mixin (module)             methods of :class:`ArenaStore`
  =========================  ==========================================================
  ``VerdictCache``           the cross-study verdict cache: ``find_verdicts``,
  (``_verdict_cache``)       ``save_verdicts`` (:class:`VerdictKey`, :class:`StoredVerdict`)
  ``Arenas`` (``_arenas``)   prompt sets, and the arenas binding a study to one with its
                             scoring settings (:data:`SCORING_DEFAULTS`):
                             ``save_prompt_set``, ``prompt_set_hash``, ``bind_study``,
                             ``arena_settings``, ``study_prompts``
  ``Players``                players and their responses: ``player``, ``players``,
  (``_players``)             ``generations``, ``generation_hashes``
                             (:class:`PlayerRecord`)
  ``Games`` (``_games``)     matches and games, and the reads match play and the fits
                             make: ``start_match``, ``save_games``, ``played_positions``,
                             ``game_counts``, ``version``, ``pair_record``, ``opponents``
                             (:class:`GameRecord`, :class:`GameCounts`)
  ``Audit`` (``_audit``)     read-only queries for reports and ``check``: ``reasons``,
                             ``votes``, ``verdict_counts``, ``judge_names``,
                             ``game_details``, ``integrity``
  ``OptunaHeartbeats``       Optuna's trial heartbeats, read for ``check`` and resumed
  (``_optuna_heartbeats``)   workers: ``heartbeat_ages``, ``trials_without_heartbeat``
  ``Activity``               when each player last had something stored, for
  (``_activity``)            ``check``'s stalled workers: ``last_stored``
  ``Store`` (``_store``)     ``masked_url``, ``read_only``, ``close``
  =========================  ==========================================================
"""

from __future__ import annotations

from optuna_pandalm.errors import PromptSetMismatchError, StoreError
from optuna_pandalm.store._arenas import SCORING_DEFAULTS, refuse_other_settings
from optuna_pandalm.store._audit import VoteRecord
from optuna_pandalm.store._engine import mask_url, optuna_storage_arguments
from optuna_pandalm.store._games import GameCounts, GameRecord
from optuna_pandalm.store._interface import ArenaStore
from optuna_pandalm.store._journal import (
    JOURNAL_ENV,
    Journal,
    JournalReplay,
    journal_folder,
    journal_root,
    journals_enabled,
    pending_entries,
    replay_journals,
)
from optuna_pandalm.store._optuna_schema import create_optuna_schema, make_optuna_schema
from optuna_pandalm.store._outage import is_transient, ride_out, wait_out
from optuna_pandalm.store._players import PlayerRecord
from optuna_pandalm.store._schema import HUMAN_PREFIX, JUDGE_ANNOTATOR, SCHEMA_VERSION
from optuna_pandalm.store._store import DEFAULT_OUTAGE_TIMEOUT_S, Store
from optuna_pandalm.store._texts import text_hash
from optuna_pandalm.store._verdict_cache import StoredVerdict, VerdictKey

__all__ = [
    "DEFAULT_OUTAGE_TIMEOUT_S",
    "HUMAN_PREFIX",
    "JOURNAL_ENV",
    "JUDGE_ANNOTATOR",
    "SCHEMA_VERSION",
    "SCORING_DEFAULTS",
    "ArenaStore",
    "GameCounts",
    "GameRecord",
    "Journal",
    "JournalReplay",
    "PlayerRecord",
    "PromptSetMismatchError",
    "Store",
    "StoreError",
    "StoredVerdict",
    "VerdictKey",
    "VoteRecord",
    "create_optuna_schema",
    "is_transient",
    "journal_folder",
    "journal_root",
    "journals_enabled",
    "make_optuna_schema",
    "mask_url",
    "optuna_storage_arguments",
    "pending_entries",
    "refuse_other_settings",
    "replay_journals",
    "ride_out",
    "text_hash",
    "wait_out",
]
