"""optuna-pandalm: judge-driven hyperparameter search for LLM instruction tuning.

A local pairwise judge compares checkpoints' answers; a Bradley–Terry model turns the
preferences into scores; the scores drive an Optuna study.

Everything is imported lazily (as Optuna does) so that ``import optuna_pandalm`` stays fast
and never imports torch or transformers: a scheduler process that only needs the sampler,
the pruner or the statistics does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna_pandalm._lazy import lazy_getattr

__version__ = "0.1.0"

# Public name -> module that defines it.
_EXPORTS = {
    "fit_bradley_terry": "optuna_pandalm.statistics.bradley_terry",
    "BradleyTerryResult": "optuna_pandalm.statistics.bradley_terry",
    "Prompt": "optuna_pandalm.prompts",
    "load_prompts": "optuna_pandalm.prompts",
    "PromptFormatError": "optuna_pandalm.errors",
    "JudgeRequest": "optuna_pandalm.judges.base",
    "Verdict": "optuna_pandalm.judges.base",
    "PairwiseJudge": "optuna_pandalm.judges.base",
    "PandaLMJudge": "optuna_pandalm.judges.pandalm",
    "LocalJudge": "optuna_pandalm.judges.local",
    "RewardModelJudge": "optuna_pandalm.judges.reward",
    "ReferenceJudge": "optuna_pandalm.judges.reference",
    "RemoteJudge": "optuna_pandalm.judges.remote",
    "EnsembleJudge": "optuna_pandalm.judges.ensemble",
    "Store": "optuna_pandalm.store",
    "Arena": "optuna_pandalm.arena",
    "BradleyTerrySampler": "optuna_pandalm.study.sampler",
    "JudgePruner": "optuna_pandalm.study.pruner",
    "JudgeCallback": "optuna_pandalm.training.callback",
    "PublishCallback": "optuna_pandalm.publish.callback",
    "StoreError": "optuna_pandalm.errors",
    "PandaLMError": "optuna_pandalm.errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:
    from optuna_pandalm.arena import Arena
    from optuna_pandalm.errors import PandaLMError, PromptFormatError, StoreError
    from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict
    from optuna_pandalm.judges.ensemble import EnsembleJudge
    from optuna_pandalm.judges.local import LocalJudge
    from optuna_pandalm.judges.pandalm import PandaLMJudge
    from optuna_pandalm.judges.reference import ReferenceJudge
    from optuna_pandalm.judges.remote import RemoteJudge
    from optuna_pandalm.judges.reward import RewardModelJudge
    from optuna_pandalm.prompts import Prompt, load_prompts
    from optuna_pandalm.publish.callback import PublishCallback
    from optuna_pandalm.statistics.bradley_terry import BradleyTerryResult, fit_bradley_terry
    from optuna_pandalm.store import Store
    from optuna_pandalm.study.pruner import JudgePruner
    from optuna_pandalm.study.sampler import BradleyTerrySampler
    from optuna_pandalm.training.callback import JudgeCallback


__getattr__ = lazy_getattr(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return __all__
