"""Names of the study and trial attributes optuna-pandalm writes (Optuna user attributes).

One place, so the arena, the publishing callback, ``check`` and the CLI agree, and so the
presentation layer needs nothing of the arena at run time.
"""

from __future__ import annotations

__all__ = [
    "AGREEMENT_ATTR",
    "BASELINE_ATTR",
    "BEST_NOW_ATTR",
    "BEST_STEP_ATTR",
    "ERROR_ATTR",
    "LEADERBOARD_ATTR",
    "PRUNED_ATTR",
    "SCORE_ATTR",
    "SNAPSHOT_ATTR",
    "WORKER_ATTR",
]

LEADERBOARD_ATTR = "pandalm_leaderboard"  # study: the top rows, for people
SNAPSHOT_ATTR = "pandalm_fit"  # study: the scores and the ids they were fitted on, for check
AGREEMENT_ATTR = "pandalm_judge_agreement"  # study: judge vs people on reviewed pairs
BEST_NOW_ATTR = "pandalm_best_now"  # study: the leader now, beside Optuna's Best Trial card
ERROR_ATTR = "pandalm_error"  # trial: why it failed (the judge, or Ctrl-C)
# Trial attributes are set while the trial runs; Optuna freezes them with it, so they keep
# their meaning as of the trial's finish (current scores: the study's leaderboard).
BEST_STEP_ATTR = "pandalm_best_step"  # trial: the step of its best checkpoint at its finish
SCORE_ATTR = "pandalm_score"  # trial: that checkpoint's score at its finish (log-odds)
PRUNED_ATTR = "pandalm_pruned"  # trial: which loss pruned it
BASELINE_ATTR = "baseline"  # trial: the enqueued Alpaca-defaults trial
WORKER_ATTR = "pandalm_worker"  # trial: "host:pid" of the process judging it (for check)
