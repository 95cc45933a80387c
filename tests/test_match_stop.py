"""Specification of matches that stop when the decision is made (``JudgePruner(
stop_matches=True)``, ``optuna_pandalm/arena/_decision.py``): a new checkpoint's match
stops exactly when no outcome of its remaining prompts can change the pruner's sign test
or the incumbent, and then nothing the pruner or the arena decides differs from the full
match."""

from __future__ import annotations

import itertools

import optuna
import pytest

from optuna_pandalm import Arena, JudgePruner
from optuna_pandalm.arena._decision import incumbent_settled, loss_settled
from optuna_pandalm.statistics import sign_test
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response


def _every_outcome(wins: int, ties: int, losses: int, remaining: int, alpha: float) -> set[bool]:
    """The pruner's decision (a significant loss?) after every outcome of up to
    ``remaining`` more games (racing or invalid verdicts may end a match sooner)."""
    return {
        sign_test(wins + a, ties + b, losses + c, alternative="less") < alpha
        for a, b, c in itertools.product(range(remaining + 1), repeat=3)
        if a + b + c <= remaining
    }


@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_a_loss_is_settled_exactly_when_no_remaining_outcome_changes_the_sign_test(alpha):
    for wins, ties, losses, remaining in itertools.product(
        range(0, 13, 3), range(0, 5, 2), range(0, 13, 3), range(0, 7)
    ):
        decisions = _every_outcome(wins, ties, losses, remaining, alpha)
        expected = decisions.pop() if len(decisions) == 1 else None
        assert loss_settled(wins, ties, losses, remaining, alpha) == expected, (
            wins,
            ties,
            losses,
            remaining,
        )


def _arena(tmp_path, name: str, *, stop: bool) -> tuple[Arena, JudgePruner]:
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    judge = SimulatedJudge(seed=9, noise=0.0)
    arena = Arena(url, "s", judge, simulated_prompts(64), racing=False, seed=3)
    return arena, JudgePruner(arena, stop_matches=stop)


def _play(arena: Arena, curves: list[float]) -> dict[tuple[int, int], list[tuple[int, int, bool]]]:
    """Evaluate one checkpoint per quality in ``curves``; returns, per match, the games
    played after each batch, the prompts left, and whether, at that moment, no outcome of
    the remaining prompts could change the pruner's sign test nor the incumbent (checked by
    brute force and by refits with the remaining games all won, all tied and all lost)."""
    seen: dict[tuple[int, int], dict[int, tuple[int, bool]]] = {}

    def watch(m) -> None:
        if not m.games:
            return
        remaining = m.budget - m.games
        loss = _every_outcome(m.wins, m.ties, m.losses, remaining, 0.05)
        futures = [(remaining, 0, 0), (0, remaining, 0), (0, 0, remaining)]
        decided = len(loss) == 1 and incumbent_settled(arena, m.challenger, m.opponent, futures)
        seen.setdefault((m.challenger.trial, m.opponent.trial), {})[m.games] = (remaining, decided)

    arena.matches.observers.append(watch)
    for trial, quality in enumerate(curves):
        answers = [
            simulated_response(quality + 0.3 * (i % 5 - 2), text=f"{trial}-{i}") for i in range(64)
        ]
        arena.evaluate(trial, 1, answers)
    return {pair: [(g, *rest) for g, rest in sorted(b.items())] for pair, b in seen.items()}


def test_a_match_stops_exactly_when_no_remaining_outcome_can_change_the_decision(tmp_path):
    curves = [0.0, 2.5, 2.3]  # a clear winner, then a near-equal challenger of it
    stopped, stopping = _arena(tmp_path, "stop", stop=True)
    full, playing = _arena(tmp_path, "full", stop=False)
    stopped_batches, full_batches = _play(stopped, curves), _play(full, curves)
    assert stopped.judge_calls < full.judge_calls  # it saved calls ...
    # ... and decided everything the same: the pruner's verdict on each trial, the incumbent.
    for trial in range(len(curves)):
        assert (stopping.reason(trial) is None) == (playing.reason(trial) is None)
    assert stopped.incumbent().trial == full.incumbent().trial
    # Exactly when: each match ended at its first decided batch (min_games = 16 games
    # first), or with the prompts.
    for pair, batches in stopped_batches.items():
        *earlier, (_, remaining, decided) = batches
        assert decided or remaining == 0, pair
        assert not any(done for games, _, done in earlier if games >= 16), pair
    assert any(remaining for *_, (_, remaining, _) in stopped_batches.values())
    assert all(remaining == 0 for *_, (_, remaining, _) in full_batches.values())


def test_stopping_matches_refuses_rules_that_rest_on_every_score(tmp_path):
    arena, _ = _arena(tmp_path, "r", stop=False)
    with pytest.raises(ValueError, match="stop_matches needs evidence='games'"):
        JudgePruner(arena, stop_matches=True, rank_keep=0.25)
    with pytest.raises(ValueError, match="stop_risk must be in"):
        JudgePruner(arena, stop_matches=True, stop_risk=1.0)


def test_a_risky_stop_ends_an_even_match_sooner_than_the_exact_one(tmp_path):
    # 48-0-48 with 74 prompts left: 74 losses would make a significant loss (the exact stop
    # plays on), but at 10% risk the likely outcomes cannot.
    assert loss_settled(48, 0, 48, 74, 0.05) is None
    assert loss_settled(48, 0, 48, 74, 0.05, risk=0.1) is False


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
