"""SQL storage of prompt sets, players, generations, verdicts and games.

This package is the only code that writes SQL. Its parts, one concept each:

* ``_engine``: the SQLAlchemy engine, read-only or not.
* ``_outage``: what a database failure means; riding out outages with bounded backoff.
* ``_schema``: the ``pandalm_`` tables, the schema version and the migrations, the lock.
* ``_verdict_cache``: the cross-study verdict cache (:class:`VerdictKey`,
  :class:`StoredVerdict`).
* ``_arena_tables``: prompt sets, arenas, players, generations, matches and games.
* ``_audit``: read-only queries for reports and ``check`` (reasons, examples, integrity).
* ``_optuna_heartbeats``: Optuna's trial heartbeats, read for ``check``.
* ``_optuna_tables``: the columns of Optuna's tables read here; Optuna's rows are never
  written here (a finished trial stays as Optuna left it).
* ``_store``: :class:`Store`, which opens a database and offers both.
"""

from __future__ import annotations

from optuna_pandalm.errors import PromptSetMismatchError, StoreError
from optuna_pandalm.store._arena_tables import GameCounts, GameRecord, PlayerRecord
from optuna_pandalm.store._audit import VoteRecord
from optuna_pandalm.store._engine import mask_url
from optuna_pandalm.store._schema import HUMAN_PREFIX, JUDGE_ANNOTATOR, SCHEMA_VERSION
from optuna_pandalm.store._store import DEFAULT_OUTAGE_TIMEOUT_S, Store
from optuna_pandalm.store._texts import text_hash
from optuna_pandalm.store._verdict_cache import StoredVerdict, VerdictKey

__all__ = [
    "DEFAULT_OUTAGE_TIMEOUT_S",
    "HUMAN_PREFIX",
    "JUDGE_ANNOTATOR",
    "SCHEMA_VERSION",
    "GameCounts",
    "GameRecord",
    "PlayerRecord",
    "PromptSetMismatchError",
    "Store",
    "StoreError",
    "StoredVerdict",
    "VerdictKey",
    "VoteRecord",
    "mask_url",
    "text_hash",
]
