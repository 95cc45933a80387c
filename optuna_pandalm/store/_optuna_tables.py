"""Optuna's own tables, only the columns optuna-pandalm reads; never created or written by
us (Optuna's ``RDBStorage`` owns their schema and their rows)."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["heartbeats", "studies", "trials"]

_optuna = sa.MetaData()
studies = sa.Table(
    "studies",
    _optuna,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("study_name", sa.String(512)),
)
trials = sa.Table(
    "trials",
    _optuna,
    sa.Column("trial_id", sa.Integer, primary_key=True),
    sa.Column("number", sa.Integer),
    sa.Column("study_id", sa.Integer),
    sa.Column("state", sa.String(8)),
)
heartbeats = sa.Table(
    "trial_heartbeats",
    _optuna,
    sa.Column("trial_heartbeat_id", sa.Integer, primary_key=True),
    sa.Column("trial_id", sa.Integer),
    sa.Column("heartbeat", sa.DateTime),
)
