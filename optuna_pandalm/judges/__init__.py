"""Pairwise judges: given an instruction and two responses, which is better.

Judges know nothing of Optuna, SQL or the arena; they turn :class:`JudgeRequest` objects into
:class:`Verdict` objects. Labels follow PandaLM: 0 = tie, 1 and 2 = that response. None of
these modules imports torch or transformers until a model is loaded.
"""

from __future__ import annotations

from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict
from optuna_pandalm.judges.ensemble import EnsembleJudge
from optuna_pandalm.judges.formats import FORMATS, JudgeFormat
from optuna_pandalm.judges.local import LocalJudge
from optuna_pandalm.judges.pandalm import PandaLMJudge, build_pandalm_prompt, parse_pandalm_output
from optuna_pandalm.judges.reference import ReferenceJudge
from optuna_pandalm.judges.remote import RemoteJudge
from optuna_pandalm.judges.reward import RewardModelJudge

__all__ = [
    "FORMATS",
    "EnsembleJudge",
    "JudgeFormat",
    "JudgeRequest",
    "LocalJudge",
    "PairwiseJudge",
    "PandaLMJudge",
    "ReferenceJudge",
    "RemoteJudge",
    "RewardModelJudge",
    "Verdict",
    "build_pandalm_prompt",
    "parse_pandalm_output",
]
