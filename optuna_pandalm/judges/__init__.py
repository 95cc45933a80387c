"""Pairwise judges: given an instruction and two responses, which is better.

Judges know nothing of Optuna, SQL or the arena; they turn :class:`JudgeRequest` objects into
:class:`Verdict` objects. Labels follow PandaLM: 0 = tie, 1 and 2 = that response.
"""

from __future__ import annotations

from optuna_pandalm.judges.base import JudgeRequest, PairwiseJudge, Verdict

__all__ = ["JudgeRequest", "PairwiseJudge", "Verdict"]
