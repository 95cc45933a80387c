"""The cross-study verdict cache: one verdict per judge, prompt and pair of responses.

A verdict is keyed by the judge's name and the hashes of the prompt and of the two responses
in shown order, not by study: any study meeting the same texts with the same judge reuses it.
The first verdict stored for a key wins; concurrent writers never store two.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from optuna_pandalm.outcomes import check_winner
from optuna_pandalm.store._database import Database, chunks
from optuna_pandalm.store._outage import database_operation
from optuna_pandalm.store._schema import JUDGE_NAME_LENGTH, verdicts
from optuna_pandalm.store._texts import storable

__all__ = ["StoredVerdict", "VerdictCache", "VerdictKey"]


@dataclasses.dataclass(frozen=True)
class VerdictKey:
    """What a cached verdict is keyed by (besides the judge's name): the prompt and the two
    responses, by hash, in shown order."""

    prompt_hash: str
    response_1_hash: str
    response_2_hash: str


@dataclasses.dataclass(frozen=True)
class StoredVerdict:
    """A verdict as stored: ``winner`` 0 tie, 1, 2, or ``None`` for invalid."""

    winner: int | None
    p_tie: float | None = None
    p_1: float | None = None
    p_2: float | None = None
    reason: str = ""
    reference: str = ""
    raw: str = ""
    latency_s: float | None = None
    id: int | None = None


def _key_lists(judge_name: str, keys: Sequence[VerdictKey]) -> sa.Select[Any]:
    """SQLite's lookup: one IN list per column walks the unique index (a row-value IN list
    is a full scan there); the few rows matching no asked key are dropped by the caller."""
    return sa.select(verdicts).where(
        verdicts.c.judge_name == judge_name,
        verdicts.c.prompt_hash.in_({k.prompt_hash for k in keys}),
        verdicts.c.response_1_hash.in_({k.response_1_hash for k in keys}),
        verdicts.c.response_2_hash.in_({k.response_2_hash for k in keys}),
    )


def _key_join(judge_name: str, keys: Sequence[VerdictKey]) -> sa.Select[Any]:
    """PostgreSQL's lookup: the keys as three arrays, unnested and joined on the unique
    index, one index probe per key.

    PostgreSQL 15 plans :func:`_key_lists` as a scan of every verdict of the judge (it
    costs three IN lists on one index as the product of their lengths), which made it the
    largest share of the server's time per evaluation at 3,000 players (27 ms a lookup,
    against 0.02 ms a key here).
    """
    asked = (
        sa.func.unnest(
            sa.bindparam("prompts", [k.prompt_hash for k in keys], type_=_HASHES),
            sa.bindparam("firsts", [k.response_1_hash for k in keys], type_=_HASHES),
            sa.bindparam("seconds", [k.response_2_hash for k in keys], type_=_HASHES),
        )
        .table_valued("prompt_hash", "response_1_hash", "response_2_hash")
        .render_derived()
    )
    return sa.select(verdicts).join(
        asked,
        sa.and_(
            verdicts.c.judge_name == judge_name,
            verdicts.c.prompt_hash == asked.c.prompt_hash,
            verdicts.c.response_1_hash == asked.c.response_1_hash,
            verdicts.c.response_2_hash == asked.c.response_2_hash,
        ),
    )


_HASHES = postgresql.ARRAY(sa.String)


class VerdictCache(Database):
    """The store's verdict cache (the ``pandalm_verdicts`` table)."""

    @database_operation(writes=False)
    def find_verdicts(
        self, judge_name: str, keys: Iterable[VerdictKey]
    ) -> dict[VerdictKey, StoredVerdict]:
        """Cached verdicts of a judge for the given keys (missing keys are absent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[VerdictKey, StoredVerdict] = {}
        with self.engine.connect() as connection:
            lookup = _key_join if connection.dialect.name == "postgresql" else _key_lists
            for chunk in chunks(wanted):
                rows = connection.execute(lookup(judge_name, chunk)).all()
                asked = set(chunk)
                for row in rows:
                    key = VerdictKey(row.prompt_hash, row.response_1_hash, row.response_2_hash)
                    if key not in asked:
                        continue
                    found[key] = StoredVerdict(
                        winner=row.winner,
                        p_tie=row.p_tie,
                        p_1=row.p_1,
                        p_2=row.p_2,
                        reason=row.reason,
                        reference=row.reference,
                        raw=row.raw,
                        latency_s=row.latency_s,
                        id=row.id,
                    )
        return found

    @database_operation(writes=True)
    def save_verdicts(
        self, judge_name: str, items: Sequence[tuple[VerdictKey, StoredVerdict]]
    ) -> dict[VerdictKey, StoredVerdict]:
        """Store verdicts (the first one stored for a key wins) and return, for each key, the
        stored verdict with its id.

        One transaction of ``ON CONFLICT DO NOTHING`` inserts, so retrying it after a lost
        connection stores nothing twice.

        Raises:
            ValueError: a winner outside {0, 1, 2, None} (nothing is written).
        """
        if len(judge_name) > JUDGE_NAME_LENGTH:
            raise ValueError(f"judge name longer than {JUDGE_NAME_LENGTH} characters")
        items = [(key, dataclasses.replace(v, winner=check_winner(v.winner))) for key, v in items]
        now = time.time()
        rows = [
            {
                "judge_name": judge_name,
                "prompt_hash": key.prompt_hash,
                "response_1_hash": key.response_1_hash,
                "response_2_hash": key.response_2_hash,
                "winner": verdict.winner,
                "p_tie": verdict.p_tie,
                "p_1": verdict.p_1,
                "p_2": verdict.p_2,
                "reason": storable(verdict.reason),
                "reference": storable(verdict.reference),
                "raw": storable(verdict.raw),
                "latency_s": verdict.latency_s,
                "created_at": now,
            }
            for key, verdict in items
        ]
        key_columns = [
            verdicts.c.prompt_hash,
            verdicts.c.response_1_hash,
            verdicts.c.response_2_hash,
        ]
        with self._writer.begin() as connection:
            new = self._insert_ignore_returning(
                connection, verdicts, rows, [verdicts.c.id, *key_columns]
            )
        ids = {VerdictKey(r.prompt_hash, r.response_1_hash, r.response_2_hash): r.id for r in new}
        stored: dict[VerdictKey, StoredVerdict] = {}
        for (key, verdict), row in zip(items, rows, strict=True):
            if key in ids and key not in stored:  # the first of repeated keys is the stored one
                stored[key] = dataclasses.replace(
                    verdict,
                    reason=str(row["reason"]),
                    reference=str(row["reference"]),
                    raw=str(row["raw"]),
                    id=ids[key],
                )
        # Keys another worker stored first: theirs is the verdict.
        others = [key for key, _ in items if key not in stored]
        if others:
            stored.update(self.find_verdicts(judge_name, others))
        return stored
