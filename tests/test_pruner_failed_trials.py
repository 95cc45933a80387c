"""Specification: a FAILED trial's checkpoints never prune another trial (JudgePruner), and
the arena does not pick them as a new checkpoint's opponent."""

from __future__ import annotations

import optuna
import pytest

from optuna_pandalm import Arena, JudgePruner, JudgeRequest, Verdict
from optuna_pandalm.judges import PairwiseJudge
from optuna_pandalm.testing import simulated_prompts

PROMPTS = simulated_prompts(8)
FAIL = optuna.trial.TrialState.FAIL


def _answers(quality: int) -> list[str]:
    return [f"an answer of quality {quality} to prompt {i}" for i in range(len(PROMPTS))]


class _BetterWins(PairwiseJudge):
    """The answer of higher quality wins, always."""

    name = "better-wins"

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:
        def quality(text: str) -> int:
            return int(text.split("quality ")[1].split()[0])

        return [
            Verdict(1 if quality(r.response_1) > quality(r.response_2) else 2) for r in requests
        ]


@pytest.fixture
def study_and_arena():
    arena = Arena("sqlite://", "s", _BetterWins(), PROMPTS, seed=0, batch_size=8, min_games=8)
    study = optuna.create_study(direction="maximize", pruner=JudgePruner(arena))
    medium = study.ask()
    arena.evaluate(medium, 1, _answers(5))
    study.tell(medium, arena.finalize(medium))
    return study, arena


def test_a_new_checkpoint_does_not_play_a_failed_trials_checkpoint(study_and_arena):
    study, arena = study_and_arena
    strong = study.ask()
    arena.evaluate(strong, 1, _answers(9))  # the incumbent from now on
    study.tell(strong, state=FAIL)
    challenger = study.ask()
    result = arena.evaluate(challenger, 1, _answers(6))
    assert arena.incumbent().trial == strong.number  # its scores stay: real verdicts
    assert result.opponent.trial == 0  # the best checkpoint of a trial that did not fail
    assert not challenger.should_prune()


def test_a_loss_to_a_trial_that_failed_later_no_longer_prunes(study_and_arena):
    study, arena = study_and_arena
    strong = study.ask()
    arena.evaluate(strong, 1, _answers(9))
    challenger = study.ask()
    result = arena.evaluate(challenger, 1, _answers(6))
    assert result.opponent.trial == strong.number and result.losses == 8
    assert challenger.should_prune()  # a loss to a RUNNING trial's checkpoint counts
    study.tell(strong, state=FAIL)
    assert not challenger.should_prune()
    assert study.pruner.reason(challenger.number, study=study) is None
