"""The arena: where checkpoints play matches, judged pairwise, and get Bradley–Terry scores.

One concept per module:

* ``_players``: :class:`Player`, the checkpoints and baselines of a study.
* ``_rules``: :class:`MatchRules`, the rules match play follows (shown order, seed,
  racing, batch size, retries), checked once.
* ``_match_play``: :class:`MatchPlay`, shown order, racing, the verdict cache, judge
  validation and retries; the only code that calls the judge.
* ``_judge_deadline``: the deadline on every judge call (``judge_timeout``): a hung judge
  fails its trial with :class:`~optuna_pandalm.errors.JudgeTimeoutError`.
* ``_judge_watch``: a degenerate judge, logged once after a study's first verdicts and
  shown by ``check``.
* ``_standings``: :class:`Standings`, the immutable scores every other layer reads.
* ``_ledger``: incremental reads of stored players and game counts for the fits.
* ``_votes``: people's votes beside the judge's games.
* ``_trial``: the Optuna trial glue (report, user attributes, ``TrialPruned``), the only
  code that touches a running trial. Publishing is ``optuna_pandalm.publish``'s, after
  the trial (:class:`~optuna_pandalm.PublishCallback`).
* ``_arena``: :class:`Arena`, the facade users call.

Every verdict goes through the store's cache, every game is committed as it is judged, and
every score is a pure function of the stored games, so all workers on one study agree.
"""

from __future__ import annotations

from optuna_pandalm.arena._arena import Arena, refuse_another_prompt_set
from optuna_pandalm.arena._match_play import (
    JudgeFailedError,
    MatchOutcome,
    MatchPlay,
    MatchProgress,
)
from optuna_pandalm.arena._players import Player
from optuna_pandalm.arena._result import EvaluationResult
from optuna_pandalm.arena._rules import MatchRules
from optuna_pandalm.arena._standings import (
    Effect,
    LeaderboardRow,
    Standings,
    length_feature,
    rank_key,
)
from optuna_pandalm.arena._votes import JudgeAgreement, annotator_name
from optuna_pandalm.statistics.sign_test import sign_test
from optuna_pandalm.store import HUMAN_PREFIX

__all__ = [
    "HUMAN_PREFIX",
    "Arena",
    "Effect",
    "EvaluationResult",
    "JudgeAgreement",
    "JudgeFailedError",
    "LeaderboardRow",
    "MatchOutcome",
    "MatchPlay",
    "MatchProgress",
    "MatchRules",
    "Player",
    "Standings",
    "annotator_name",
    "length_feature",
    "rank_key",
    "refuse_another_prompt_set",
    "sign_test",
]
