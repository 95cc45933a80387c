"""Names of the study and trial attributes optuna-pandalm writes (Optuna user attributes).

One place, so the arena, the dashboard publisher, ``check`` and the CLI agree, and so the
presentation layer needs nothing of the arena at run time.
"""

from __future__ import annotations

__all__ = [
    "AGREEMENT_ATTR",
    "BASELINE_ATTR",
    "BEST_STEP_ATTR",
    "ERROR_ATTR",
    "LEADERBOARD_ATTR",
    "PRUNED_ATTR",
    "SCORE_ATTR",
    "SNAPSHOT_ATTR",
]

LEADERBOARD_ATTR = "pandalm_leaderboard"  # study: the top rows, for people
SNAPSHOT_ATTR = "pandalm_fit"  # study: the scores and the ids they were fitted on, for check
AGREEMENT_ATTR = "pandalm_judge_agreement"  # study: judge vs people on reviewed pairs
ERROR_ATTR = "pandalm_error"  # trial: why it failed (the judge, or Ctrl-C)
BEST_STEP_ATTR = "pandalm_best_step"  # trial: the step of its best checkpoint (refreshed)
SCORE_ATTR = "pandalm_score"  # trial: its best checkpoint's current score (refreshed)
PRUNED_ATTR = "pandalm_pruned"  # trial: which loss pruned it
BASELINE_ATTR = "baseline"  # trial: the enqueued Alpaca-defaults trial
