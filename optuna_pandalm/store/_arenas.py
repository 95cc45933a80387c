"""Prompt sets, and the arenas that bind a study to one with its scoring settings.

An arena is one study's: the prompt set its players answer and the settings that change its
scores (:data:`SCORING_DEFAULTS`), stored on first use so that every worker and reader of
the study uses the same ones.

Every write is one transaction of idempotent inserts (unique keys with ``ON CONFLICT DO
NOTHING``), so a write retried after a lost connection stores nothing twice; every method
rides out a database outage (see ``_outage``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import sqlalchemy as sa

from optuna_pandalm.errors import PromptSetMismatchError
from optuna_pandalm.store._database import Database
from optuna_pandalm.store._outage import database_operation
from optuna_pandalm.store._schema import arenas, prompt_sets, prompts_table
from optuna_pandalm.store._texts import storable

__all__ = ["SCORING_DEFAULTS", "Arenas", "refuse_other_settings"]

SCORING_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"position": "random", "length_control": False, "robust_errors": False}
)
"""The settings stored with a study's arena that change its scores, with a new study's
values: who is shown first (it decides whether the fit estimates an order effect), the
length term, and per-prompt clustered errors. Every worker and reader of a study uses the
stored ones."""

# Why a setting must be the study's, for the refusal.
_SAME = {
    "position": "every worker must show responses the same way",
    "length_control": "every worker and reader must fit the study's scores the same way",
    "robust_errors": "every worker and reader must fit the study's intervals the same way",
}


def refuse_other_settings(
    study_name: str, masked_url: str, stored: Mapping[str, Any], given: Mapping[str, Any]
) -> None:
    """Refuse a scoring setting given explicitly that differs from the study's stored one.

    ``None`` given means "the study's"; ``None`` stored means "not recorded" (an arena
    migrated from schema 2), which accepts any value.

    Raises:
        PromptSetMismatchError: naming the study, the storage and both values.

    Example:
        >>> refuse_other_settings("s", "sqlite://", {"position": "swap"}, {"position": None})
        >>> refuse_other_settings("s", "sqlite://", {"length_control": True},
        ...                       {"length_control": False})
        Traceback (most recent call last):
        ...
        optuna_pandalm.errors.PromptSetMismatchError: study 's' in 'sqlite://' uses \
length_control=True, not False; every worker and reader must fit the study's scores the same \
way (leave it unset to use the study's, or use another study name)
    """
    for name, value in given.items():
        if value is None or stored.get(name) is None or stored[name] == value:
            continue
        raise PromptSetMismatchError(
            f"study {study_name!r} in {masked_url!r} uses {name}={stored[name]!r}, "
            f"not {value!r}; {_SAME[name]} (leave it unset to use the study's, or use "
            "another study name)"
        )


class _PromptLike(Protocol):
    @property
    def instruction(self) -> str: ...
    @property
    def input(self) -> str: ...
    @property
    def reference(self) -> str | None: ...
    @property
    def id(self) -> str | None: ...
    @property
    def hash(self) -> str: ...


class Arenas(Database):
    """The store's prompt sets and arenas."""

    @database_operation(writes=True)
    def save_prompt_set(self, prompts: Sequence[_PromptLike]) -> int:
        """Store a prompt set (once per content hash) and return its id."""
        from optuna_pandalm.prompts import prompt_set_hash

        digest = prompt_set_hash(prompts)  # type: ignore[arg-type]
        now = time.time()
        with self._writer.begin() as connection:
            self._insert_ignore(
                connection,
                prompt_sets,
                [{"hash": digest, "n_prompts": len(prompts), "created_at": now}],
            )
            set_id = connection.execute(
                sa.select(prompt_sets.c.id).where(prompt_sets.c.hash == digest)
            ).scalar_one()
            self._insert_ignore(
                connection,
                prompts_table,
                [
                    {
                        "prompt_set_id": set_id,
                        "position": position,
                        "hash": prompt.hash,
                        "user_id": prompt.id,
                        "instruction": storable(prompt.instruction),
                        "input": storable(prompt.input),
                        "reference": None
                        if prompt.reference is None
                        else storable(prompt.reference),
                    }
                    for position, prompt in enumerate(prompts)
                ],
            )
        return int(set_id)

    @database_operation(writes=False)
    def prompt_set_hash(self, prompt_set_id: int) -> str:
        """The content hash of a stored prompt set."""
        with self.engine.connect() as connection:
            return str(
                connection.execute(
                    sa.select(prompt_sets.c.hash).where(prompt_sets.c.id == prompt_set_id)
                ).scalar_one()
            )

    @database_operation(writes=True)
    def bind_study(
        self,
        study_name: str,
        prompt_set_id: int,
        *,
        position: str | None = None,
        length_control: bool | None = None,
        robust_errors: bool | None = None,
    ) -> int:
        """Return the arena id of a study, binding it to the prompt set and the scoring
        settings on first use (``None``: the study's setting, or
        :data:`SCORING_DEFAULTS`' for a new study). A setting an arena migrated from schema
        2 has not recorded is recorded when given here.

        Raises:
            PromptSetMismatchError: the study already uses a different prompt set, or a
                setting given differs from the stored one.
        """
        given = {
            "position": position,
            "length_control": length_control,
            "robust_errors": robust_errors,
        }
        new = {k: SCORING_DEFAULTS[k] if v is None else v for k, v in given.items()}
        with self._writer.begin() as connection:
            self._insert_ignore(
                connection,
                arenas,
                [
                    {
                        "study_name": study_name,
                        "prompt_set_id": prompt_set_id,
                        **new,
                        "created_at": time.time(),
                    }
                ],
            )
            for name in ("length_control", "robust_errors"):
                if given[name] is not None:  # record it where schema 2 did not
                    connection.execute(
                        arenas.update()
                        .where(arenas.c.study_name == study_name, arenas.c[name].is_(None))
                        .values({name: given[name]})
                    )
            row = connection.execute(
                sa.select(
                    arenas.c.id,
                    arenas.c.prompt_set_id,
                    arenas.c.position,
                    arenas.c.length_control,
                    arenas.c.robust_errors,
                    prompt_sets.c.hash,
                    prompt_sets.c.n_prompts,
                )
                .join(prompt_sets, prompt_sets.c.id == arenas.c.prompt_set_id)
                .where(arenas.c.study_name == study_name)
            ).one()
        if row.prompt_set_id != prompt_set_id:
            raise PromptSetMismatchError(
                f"study {study_name!r} in {self.masked_url!r} already uses prompt set "
                f"{row.hash[:12]} ({row.n_prompts} prompts), "
                f"not {self.prompt_set_hash(prompt_set_id)[:12]}; "
                "use the same prompts or another study name"
            )
        refuse_other_settings(study_name, self.masked_url, dict(row._mapping), given)
        return int(row.id)

    @database_operation(writes=False)
    def arena_settings(self, study_name: str) -> dict[str, Any] | None:
        """``{"id", "prompt_set_id", "position", "length_control", "robust_errors"}`` of a
        study's arena, or ``None``. A scoring setting is ``None`` when not recorded (an
        arena migrated from schema 2): read it as :data:`SCORING_DEFAULTS`' value."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(
                    arenas.c.id, arenas.c.prompt_set_id, arenas.c.position, *self._arena_scoring()
                ).where(arenas.c.study_name == study_name)
            ).one_or_none()
        return None if row is None else dict(row._mapping)

    @database_operation(writes=False)
    def arena_id(self, study_name: str) -> int | None:
        """The arena id of a study, or ``None`` if it has none."""
        with self.engine.connect() as connection:
            value = connection.execute(
                sa.select(arenas.c.id).where(arenas.c.study_name == study_name)
            ).scalar_one_or_none()
        return None if value is None else int(value)

    @database_operation(writes=False)
    def study_prompts(self, study_name: str) -> list[dict[str, Any]]:
        """The prompts a study is bound to, in order (empty when the study has no arena)."""
        query = (
            sa.select(prompts_table)
            .join(arenas, arenas.c.prompt_set_id == prompts_table.c.prompt_set_id)
            .where(arenas.c.study_name == study_name)
            .order_by(prompts_table.c.position)
        )
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
