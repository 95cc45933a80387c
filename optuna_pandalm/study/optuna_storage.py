"""Optuna's RDB storage that rides out a database outage instead of killing the worker.

With plain ``RDBStorage``, a PostgreSQL restart of a few seconds kills every worker: the
objective's ``trial.report`` raises, Optuna then fails to mark the trial FAIL, and the
process dies with the trial left RUNNING. :class:`OutageTolerantStorage` retries Optuna's
storage calls through transient failures (refused or dropped connections, a server shutting
down or starting up) for up to ``outage_timeout`` seconds, with the same classification and
backoff as our own store, so a worker waits for the database and the study goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage
from sqlalchemy import exc as sa_exc

from optuna_pandalm.store import (
    DEFAULT_OUTAGE_TIMEOUT_S,
    StoreError,
    create_optuna_schema,
    is_transient,
    make_optuna_schema,
    mask_url,
    optuna_storage_arguments,
    ride_out,
)
from optuna_pandalm.study._patience import patient

__all__ = ["OutageTolerantStorage"]

# Every storage call a worker makes: the public ones, and the private ones that Optuna's
# ``_CachedStorage`` (which ``create_study`` wraps around an RDB storage) calls on its
# backend instead (``study.ask``, ``trial.suggest_*``, ``study.trials``,
# ``study.best_trial``). Writes are safe to repeat (attributes, params and
# intermediate values are upserts; a state change that landed before the connection dropped
# is recognised below), except ``create_new_trial``, whose repeat after a commit that
# landed unseen would leave one extra trial RUNNING: rare, and ``check`` reports it.
_CALLS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "_create_new_trial",
    "set_trial_param",
    "_set_trial_param",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
    "_get_trials",
    "get_n_trials",
    "get_best_trial",
    "_get_best_trial_id",
    "get_trial_params",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "record_heartbeat",
    "_get_stale_trial_ids",
)


def _database_error(error: BaseException) -> sa_exc.DBAPIError | None:
    """The DBAPI error behind an Optuna storage error, if any."""
    while error is not None:
        if isinstance(error, sa_exc.DBAPIError):
            return error
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return None


def _transient(error: Exception) -> Exception | None:
    """The transient database error inside a failed Optuna storage call, for
    :func:`~optuna_pandalm.store.ride_out` to wait out; ``None`` for any other failure."""
    if isinstance(error, sa_exc.SQLAlchemyError | optuna.exceptions.StorageInternalError):
        database = _database_error(error)
        if database is not None and is_transient(database):
            return database
    return None


def _ride(storage: OutageTolerantStorage, name: str, call: Callable[[], Any]) -> Any:
    try:
        return ride_out(
            f"Optuna's {name}",
            call,
            masked_url=storage.masked_url,
            outage_timeout=storage.outage_timeout,
        )
    except StoreError as error:
        raise optuna.exceptions.StorageInternalError(str(error)) from None


class OutageTolerantStorage(RDBStorage):
    """``optuna.storages.RDBStorage`` whose calls wait out a database outage.

    On PostgreSQL its pool keeps one connection (a second thread, Optuna's heartbeat,
    borrows one for the moment it needs it), named ``optuna-pandalm:optuna`` in
    ``pg_stat_activity``; a URL ending in ``?prepare_threshold=none`` turns off psycopg 3's
    prepared statements, for PgBouncer in transaction mode (see ``docs/distributed.md``).
    ``engine_kwargs`` given here override those choices.

    Takes every ``RDBStorage`` argument (heartbeat included) plus ``outage_timeout``: how
    long, in seconds, one call keeps retrying a database that refuses or drops connections
    before it gives up with ``optuna.exceptions.StorageInternalError`` naming the cause;
    the default is our store's (``DEFAULT_OUTAGE_TIMEOUT_S``, 120 s), so a worker's two
    storages give up on the same outage together.

    Every call a study makes waits, also those that Optuna's ``_CachedStorage`` (which
    ``create_study`` puts around it) sends to the private methods behind ``study.ask``,
    ``trial.suggest_*``, ``study.trials`` and ``study.best_trial``. Optuna's schema is
    created under the lock of :class:`~optuna_pandalm.Store`, so workers starting at once
    on an empty database do not collide.

    Example:
        >>> import optuna
        >>> storage = OutageTolerantStorage("sqlite://", outage_timeout=60)
        >>> study = optuna.create_study(storage=storage)
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        >>> len(study.trials)
        2
    """

    def __init__(
        self,
        url: str,
        engine_kwargs: dict[str, Any] | None = None,
        skip_compatibility_check: bool = False,
        *,
        outage_timeout: float = DEFAULT_OUTAGE_TIMEOUT_S,
        skip_table_creation: bool = False,
        **kwargs: Any,
    ):
        self.outage_timeout = outage_timeout
        self.masked_url = mask_url(url)
        # One kept connection per process, named, and ?prepare_threshold=none honoured (for
        # PgBouncer), as our store's; the caller's engine_kwargs win.
        optuna_url, engine_kwargs = optuna_storage_arguments(url, engine_kwargs)
        sqlite = optuna_url.startswith("sqlite")
        memory = sqlite and sa.make_url(optuna_url).database in (None, "", ":memory:")
        if not skip_table_creation and not memory:
            # Optuna would create its schema in __init__, without a lock: under ours, so that
            # workers started at once on an empty database (and their arenas) do not collide.
            create_optuna_schema(url, lambda: make_optuna_schema(optuna_url, engine_kwargs))
        if sqlite:  # one process at a time writes: Optuna checks (or makes) its schema
            super().__init__(
                optuna_url,
                engine_kwargs,
                skip_compatibility_check=skip_compatibility_check,
                skip_table_creation=skip_table_creation,
                **kwargs,
            )
            return
        # Opened on a made schema, and its version checked below rather than by
        # RDBStorage.__init__, which holds one connection while it asks for a second: a worker
        # (this storage beside its arena's store) keeps to two connections at start-up too.
        super().__init__(
            optuna_url,
            engine_kwargs,
            skip_compatibility_check=True,
            skip_table_creation=True,
            **kwargs,
        )
        if not skip_compatibility_check:
            self._check_schema_version()

    def _check_schema_version(self) -> None:
        """Refuse a schema of another Optuna version, as ``RDBStorage`` does (``RuntimeError``),
        one connection at a time."""
        current, head = self.get_current_version(), self.get_head_version()
        if current == head:
            return
        advice = (
            "run `optuna storage upgrade --storage URL`"
            if current in self.get_all_versions()
            else "upgrade optuna (`pip install -U optuna`)"
        )
        raise RuntimeError(
            f"the Optuna schema of {self.masked_url!r} (version {current}) does not fit "
            f"optuna {optuna.__version__} (version {head}): {advice}"
        )


for _name in _CALLS:
    setattr(
        OutageTolerantStorage,
        _name,
        patient(_name, getattr(RDBStorage, _name), _ride, reveal=_transient),
    )
del _name
