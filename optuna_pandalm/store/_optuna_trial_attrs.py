"""Refreshing our user attributes of finished Optuna trials (its ``trial_user_attributes``).

Optuna refuses to change a finished trial through its API, and rightly for its value. But
scores move as games are added, and users read them in the dashboard's trial table: so
the few attributes optuna-pandalm owns (``pandalm_*``) are rewritten here, in the study's
own database, and nothing else of Optuna's is touched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from optuna_pandalm.store._database import Database
from optuna_pandalm.store._optuna_tables import studies as _studies
from optuna_pandalm.store._optuna_tables import trial_user_attributes as _user_attrs
from optuna_pandalm.store._optuna_tables import trials as _trials
from optuna_pandalm.store._outage import database_operation

__all__ = ["OptunaTrialAttributes"]

_FINISHED = ("COMPLETE", "PRUNED", "FAIL")
OWNED_PREFIX = "pandalm_"


class OptunaTrialAttributes(Database):
    """The store's writer of ``pandalm_*`` user attributes on finished Optuna trials."""

    @database_operation(writes=True)
    def refresh_trial_attrs(self, study_name: str, values: Mapping[int, Mapping[str, Any]]) -> int:
        """Set user attributes (JSON values, keys starting ``pandalm_``) of the finished
        trials of ``study_name`` in this database, by trial number; running trials and
        numbers the study does not have are skipped (a live trial sets its own through
        Optuna). Returns how many trials were written; 0 when this database holds no
        Optuna study of that name (the arena lives apart from the study).

        Example:
            >>> from optuna_pandalm.store import Store
            >>> Store("sqlite://").refresh_trial_attrs("no-such-study", {0: {"pandalm_x": 1}})
            0
        """
        for attrs in values.values():
            for key in attrs:
                if not key.startswith(OWNED_PREFIX):
                    raise ValueError(f"{key!r}: only pandalm_* attributes are refreshed")
        with self._writer.begin() as connection:
            if not sa.inspect(connection).has_table(_user_attrs.name):
                return 0
            trial_ids = dict(
                connection.execute(
                    sa.select(_trials.c.number, _trials.c.trial_id)
                    .join(_studies, _studies.c.study_id == _trials.c.study_id)
                    .where(
                        _studies.c.study_name == study_name,
                        sa.cast(_trials.c.state, sa.String).in_(_FINISHED),  # an enum on PG
                        _trials.c.number.in_(list(values)),
                    )
                ).all()
            )
            rows = [
                {"trial_id": trial_ids[number], "key": key, "value_json": json.dumps(value)}
                for number, attrs in values.items()
                if number in trial_ids
                for key, value in attrs.items()
            ]
            if rows:
                self._upsert(connection, rows)
        return len(trial_ids)

    def _upsert(self, connection: sa.Connection, rows: list[dict[str, Any]]) -> None:
        dialect = connection.dialect.name
        if dialect in ("postgresql", "sqlite"):
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
            statement = insert(_user_attrs)
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[_user_attrs.c.trial_id, _user_attrs.c.key],
                    set_={"value_json": statement.excluded.value_json},
                ),
                rows,
            )
            return
        for row in rows:  # pragma: no cover - other databases: update, else insert
            key = (_user_attrs.c.trial_id == row["trial_id"]) & (_user_attrs.c.key == row["key"])
            updated = connection.execute(
                _user_attrs.update().where(key).values(value_json=row["value_json"])
            )
            if not updated.rowcount:
                connection.execute(_user_attrs.insert(), row)
