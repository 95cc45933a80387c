"""The Optuna wing: what a study sees of the arena.

* ``sampler``: :class:`BradleyTerrySampler`, any Optuna sampler shown *current* scores.
* ``pruner``: :class:`JudgePruner`, prunes on significant losses to the incumbent.
* ``judged_study``: creating or resuming a judge-driven study, and ``optimize`` with the
  publishing callback.
* ``optuna_storage``: :class:`OutageTolerantStorage`, Optuna's RDB storage riding outages.
* ``grpc_proxy``: :class:`OutageTolerantGrpcStorageProxy`, Optuna's gRPC client riding a
  restart of its proxy.
* ``_patience``: the wrapper both put around each storage call.
* ``direction``: the one direction judge scores make sense in.
* ``check``: :func:`check_study`, the arena's integrity against its Optuna study.

Imports the arena, the statistics, the store (outage rules) and ``publish``; never
training, review or command code.
"""

from __future__ import annotations

from optuna_pandalm.study.check import check_study
from optuna_pandalm.study.pruner import JudgePruner
from optuna_pandalm.study.sampler import BradleyTerrySampler

__all__ = ["BradleyTerrySampler", "JudgePruner", "check_study"]
