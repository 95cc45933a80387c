"""Reading Optuna's trial heartbeats (its ``trial_heartbeats`` table), for ``check`` and for
the resumed worker that fails trials whose worker died before their first heartbeat."""

from __future__ import annotations

import datetime

import sqlalchemy as sa

from optuna_pandalm.store._database import Database
from optuna_pandalm.store._optuna_tables import heartbeats as _heartbeats
from optuna_pandalm.store._optuna_tables import studies as _studies
from optuna_pandalm.store._optuna_tables import trials as _trials
from optuna_pandalm.store._outage import database_operation

__all__ = ["OptunaHeartbeats"]


class OptunaHeartbeats(Database):
    """The store's view of Optuna's heartbeats, when the study lives in the same database."""

    @database_operation(writes=False)
    def heartbeat_ages(self, study_name: str) -> dict[int, float]:
        """Seconds since the last heartbeat of each trial of ``study_name`` that has one, by
        trial number, measured with the database's clock as Optuna does. Empty when the
        database holds no Optuna heartbeats (another database, or no heartbeat configured).

        Example:
            >>> from optuna_pandalm.store import Store
            >>> Store("sqlite://").heartbeat_ages("no-such-study")
            {}
        """
        with self.engine.connect() as connection:
            if not sa.inspect(connection).has_table(_heartbeats.name):
                return {}
            now = connection.execute(sa.select(sa.func.now())).scalar()
            if isinstance(now, str):  # SQLite's CURRENT_TIMESTAMP (UTC, as Optuna's)
                now = datetime.datetime.fromisoformat(now)
            assert isinstance(now, datetime.datetime)
            now = now.replace(tzinfo=None)
            rows = connection.execute(
                sa.select(_trials.c.number, _heartbeats.c.heartbeat)
                .join(_heartbeats, _heartbeats.c.trial_id == _trials.c.trial_id)
                .join(_studies, _studies.c.study_id == _trials.c.study_id)
                .where(_studies.c.study_name == study_name)
            ).all()
        return {int(number): (now - beat).total_seconds() for number, beat in rows}

    @database_operation(writes=False)
    def trials_without_heartbeat(self, study_name: str) -> list[int]:
        """Numbers of the RUNNING trials of ``study_name`` that never had a heartbeat,
        ascending. Empty when the database holds no Optuna heartbeats table (another
        database, or no worker ever had a heartbeat).

        Example:
            >>> from optuna_pandalm.store import Store
            >>> Store("sqlite://").trials_without_heartbeat("no-such-study")
            []
        """
        with self.engine.connect() as connection:
            if not sa.inspect(connection).has_table(_heartbeats.name):
                return []
            beat = sa.select(_heartbeats.c.trial_id).where(
                _heartbeats.c.trial_id == _trials.c.trial_id
            )
            rows = connection.execute(
                sa.select(_trials.c.number)
                .join(_studies, _studies.c.study_id == _trials.c.study_id)
                .where(_studies.c.study_name == study_name)
                .where(sa.cast(_trials.c.state, sa.String) == "RUNNING")  # an enum in PostgreSQL
                .where(~beat.exists())
                .order_by(_trials.c.number)
            ).all()
        return [int(number) for (number,) in rows]
