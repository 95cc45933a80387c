"""Specification of how ties are read: games between identical answers, what a score means
when most games are ties, and one order and one P(best) whoever asks (issue 29)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from optuna_pandalm import Arena, fit_bradley_terry
from optuna_pandalm.judges import JudgeRequest, PairwiseJudge, Verdict
from optuna_pandalm.prompts import Prompt

N = 20
PROMPTS = [Prompt(f"Task {i}.") for i in range(N)]
_RANK = {"good": 2, "mid": 1, "same": 1, "bad": 0}


class GradeJudge(PairwiseJudge):
    """Prefers the answer with the better grade (its first word: good > mid = same > bad);
    equal grades tie. Counts the requests it is asked."""

    name = "grade"

    def __init__(self) -> None:
        self.asked = 0

    def judge(self, requests: list[JudgeRequest]) -> list[Verdict]:  # type: ignore[override]
        self.asked += len(requests)
        verdicts = []
        for request in requests:
            one, two = (_RANK[r.split()[0]] for r in (request.response_1, request.response_2))
            verdicts.append(Verdict(0 if one == two else 1 if one > two else 2))
        return verdicts


def _answers(grades: str, tag: str) -> list[str]:
    """One answer per prompt: ``grades`` of g(ood), m(id), s(ame as mid), b(ad)."""
    word = {"g": "good", "m": "mid", "s": "same", "b": "bad"}
    return [f"{word[g]} answer {tag} {i}" for i, g in enumerate(grades)]


# The checkpoint's record against the baseline: 12 wins, 2 ties, 6 losses.
CHECKPOINT = "g" * 12 + "s" * 2 + "b" * 6


def _arena(url: str = "sqlite://") -> tuple[Arena, GradeJudge]:
    judge = GradeJudge()
    arena = Arena(
        url,
        "ties",
        judge,
        PROMPTS,
        seed=0,
        racing=False,
        baseline=("base", _answers("m" * N, "base")),
    )
    return arena, judge


def test_a_checkpoints_identical_later_steps_do_not_move_its_score():
    """The demo's case: a checkpoint's later steps answer exactly as it does; the 60 games
    they play (each its 20 prompts against the incumbent), all ties, moved its score from
    0.84 to 2.20 (tie strength 6.9 -> 27.4)."""
    arena, _ = _arena()
    checkpoint = arena.evaluate(0, 1, _answers(CHECKPOINT, "c")).player
    before = arena.standings()
    for step in (2, 3, 4):
        assert arena.evaluate(0, step, _answers(CHECKPOINT, "c")).ties == N
    after = arena.standings()
    assert after.score(checkpoint) == pytest.approx(before.score(checkpoint), abs=1e-9)
    assert after.result.tie_strength == pytest.approx(before.result.tie_strength, abs=1e-9)
    assert after.record(checkpoint) == before.record(checkpoint) == (12, 2, 6)
    assert after.identical is not None and int(after.identical.sum()) == 2 * 3 * N


def test_identical_answers_elsewhere_do_not_move_other_players_scores():
    arena, _ = _arena()
    a = arena.evaluate(0, 1, _answers(CHECKPOINT, "a")).player
    b = arena.evaluate(1, 1, _answers("g" * 8 + "m" * 8 + "b" * 4, "b")).player
    arena.play(b, a, kind="extra")
    before = arena.standings()
    # Two new trials answer exactly as the leader does: they play it and each other.
    twins = [arena.evaluate(trial, 1, _answers(CHECKPOINT, "a")).player for trial in (2, 3)]
    arena.play(twins[1], twins[0], kind="extra")
    after = arena.standings()
    for player in before.players:
        assert after.score(player) == pytest.approx(before.score(player), abs=1e-9)
    assert after.identical is not None and int(after.identical.sum()) == 2 * 3 * N
    rows = {row.player_id: row for row in after.leaderboard()}
    assert rows[twins[0].id].identical == 2 * N and rows[twins[0].id].games == 0
    assert rows[b.id].identical == 0


def test_the_judge_is_not_asked_about_identical_answers():
    arena, judge = _arena()
    first = arena.evaluate(0, 1, _answers(CHECKPOINT, "c")).player
    asked = judge.asked
    result = arena.evaluate(0, 2, _answers(CHECKPOINT, "c"))  # plays the first: identical
    second = result.player
    assert result.opponent == first and (result.wins, result.ties, result.losses) == (0, N, 0)
    assert judge.asked == asked
    # Stored: the pair does not play those prompts again, and the records show the ties.
    assert arena.match_record(second, first) == (0, N, 0)
    assert arena.play(second, first, kind="extra").ties == 0


# --- what a score means -------------------------------------------------------------------------
def test_score_meaning_says_decisive_games_and_the_tie_share_from_the_fit():
    arena, _ = _arena()
    arena.evaluate(0, 1, _answers(CHECKPOINT, "c"))
    standings = arena.standings()
    nu = standings.result.tie_strength
    sentence = standings.score_meaning()
    assert "73% of the decisive games" in sentence
    assert f"nu = {nu:.3g}" in sentence
    assert f"{nu / (2 + nu):.0%} of games between equal scores are ties" in sentence


def test_report_cli_and_trial_notes_say_the_same_meaning(tmp_path, capsys):
    import optuna

    from optuna_pandalm.commands.cli import main
    from optuna_pandalm.publish.report import render_report
    from optuna_pandalm.publish.trial_notes import trial_note

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    arena, _ = _arena(url)
    arena.evaluate(0, 1, _answers(CHECKPOINT, "c"))
    sentence = arena.standings().score_meaning()
    study = optuna.create_study(study_name="ties", storage=url)
    study.tell(study.ask(), 0.0)
    assert sentence in render_report(arena, study)
    assert "73% of prompts" not in render_report(arena, study)
    assert sentence in trial_note(arena, 0, score=0.5)
    args = ["--storage", url, "--study-name", "ties"]
    assert main(["leaderboard", *args]) == 0
    assert sentence in capsys.readouterr().out
    assert main(["leaderboard", *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score_meaning"] == sentence


# --- one order, one P(best) ---------------------------------------------------------------------
def _tied(url: str) -> Arena:
    """Three checkpoints with the same answers, each judged against the baseline: the
    same verdicts (the cache), the same record, tied scores."""
    arena, _ = _arena(url)
    for trial in range(3):
        player = arena.evaluate(trial, 1, _answers(CHECKPOINT, "c")).player
        if arena.baseline is not None and player.id != arena.players()[1].id:
            arena.play(player, arena.baseline, kind="extra")
    arena.evaluate(3, 1, _answers("g" * 10 + "m" * 6 + "b" * 4, "d"))
    return arena


def test_tied_players_are_ordered_and_given_p_best_alike_whoever_asks(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    writer = _tied(url)  # its standings are warm-started fit after fit
    mine = [(r.player_id, r.p_best) for r in writer.leaderboard()]
    reader = [(r.player_id, r.p_best) for r in Arena.load(url, "ties").leaderboard()]
    scores = sorted(r.score for r in writer.leaderboard())
    assert any(abs(x - y) < 1e-6 for x, y in itertools.pairwise(scores))  # ties
    assert [p for p, _ in mine] == [p for p, _ in reader]
    assert [q for _, q in mine] == [q for _, q in reader]


def test_p_best_does_not_depend_on_how_the_fit_was_started():
    """Symmetric players (the same record against the same opponent): a warm-started fit
    and a fresh one agree to 1e-14, and so must their P(best) with the same seed."""
    first, second, outcome = [], [], []
    for player in (1, 2, 3):
        for result in [1] * 6 + [2] * 4 + [0] * 2:
            first.append(player), second.append(0), outcome.append(result)
            first.append(0), second.append(player), outcome.append(3 - result if result else 0)
    f, s, o = (np.array(x) for x in (first, second, outcome))
    fresh = fit_bradley_terry(f, s, o)
    warm = fit_bradley_terry(f, s, o, init=fit_bradley_terry(f[:40], s[:40], o[:40], n_players=4))
    assert np.allclose(fresh.scores, warm.scores, atol=1e-12)
    assert fresh.p_best(4000, seed=0).tolist() == warm.p_best(4000, seed=0).tolist()


def test_one_rank_key_orders_scores_equal_to_6_decimals_by_player_id():
    from optuna_pandalm.arena import rank_key

    ranked = sorted([(1.0 + 1e-12, 7), (1.0, 3), (1.5, 9)], key=lambda x: rank_key(*x))
    assert ranked == [(1.5, 9), (1.0, 3), (1.0 + 1e-12, 7)]
