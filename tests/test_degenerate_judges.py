"""Specification of the degenerate-judge warning: judge-eval prints it, the arena logs it once
after a study's first verdicts, and ``check`` shows it, by one rule for every judge format."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from optuna_pandalm import Arena
from optuna_pandalm.commands.cli import main
from optuna_pandalm.judges import FORMATS, PairwiseJudge
from optuna_pandalm.judges.evaluation import judge_warnings, verdict_shares
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response
from tests.pandalm_data import RECORDED_7B

WATCHED = "optuna_pandalm.arena"


class Answers(PairwiseJudge):
    """Gives every request the same answer, read by one of the judge formats."""

    def __init__(self, format_name: str, text: str) -> None:
        self.format, self.text = FORMATS[format_name], text
        self.name = f"answers:{format_name}:{text}"

    def judge(self, requests):
        return [self.format.parse(self.text) for _ in requests]


class Longer(PairwiseJudge):
    """Picks the longer response, whichever position it is shown in (a tie when equal)."""

    name = "longer"

    def judge(self, requests):
        return [
            FORMATS["mtbench"].parse(
                "[[A]]"
                if len(r.response_1) > len(r.response_2)
                else "[[B]]"
                if len(r.response_2) > len(r.response_1)
                else "[[C]]"
            )
            for r in requests
        ]


ALWAYS_FIRST = ("prometheus2", "Feedback: the first is better. [RESULT] A")  # no ties
ALWAYS_TWO = ("pandalm", "2")
ALWAYS_TIE = ("mtbench", "[[C]]")


def _judge_eval(monkeypatch, capsys, judge: PairwiseJudge, *options: str) -> tuple[int, str, str]:
    monkeypatch.setattr("optuna_pandalm.judges.spec.judge_from_spec", lambda spec: judge)
    code = main(["judge-eval", "--data", "pandalm", "--judge", "stub", "--limit", "60", *options])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (ALWAYS_FIRST, "100% of its 60 valid verdicts say the response shown first wins"),
        (ALWAYS_TWO, "100% of its 60 valid verdicts say the response shown second wins"),
        (ALWAYS_TIE, "100% of its 60 valid verdicts say a tie"),
    ],
)
def test_judge_eval_warns_of_a_judge_giving_one_label_in_any_format(
    monkeypatch, capsys, answer, said
):
    code, out, _ = _judge_eval(monkeypatch, capsys, Answers(*answer))
    assert code == 0  # a warning, not an error
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, out
    assert f"judge answers:{answer[0]}:{answer[1]} is degenerate: {said}" in warnings[0]
    assert "use a larger judge model" in warnings[0]


def test_judge_eval_with_swap_warns_that_the_position_decides(monkeypatch, capsys):
    code, out, _ = _judge_eval(monkeypatch, capsys, Answers(*ALWAYS_FIRST), "--swap")
    assert code == 0
    assert "warning: judge answers:prometheus2:" in out
    assert (
        "follows the position, not the responses: its position consistency is 0.000 over 60" in out
    )


def test_judge_eval_json_has_the_shares_and_warnings_and_stderr_the_lines(monkeypatch, capsys):
    code, out, err = _judge_eval(monkeypatch, capsys, Answers(*ALWAYS_TWO), "--swap", "--json")
    metrics = json.loads(out)  # stdout stays one JSON document
    assert code == 0
    assert metrics["verdict_shares"] == {"first": 0.0, "second": 1.0, "tie": 0.0}
    assert metrics["n_valid_verdicts"] == metrics["n_verdicts"] == 120  # both orders
    assert len(metrics["warnings"]) == 2
    assert [f"warning: {w}" for w in metrics["warnings"]] == [
        line for line in err.splitlines() if line.startswith("warning:")
    ]


def test_judge_eval_warns_when_most_verdicts_are_invalid(monkeypatch, capsys):
    _, out, _ = _judge_eval(monkeypatch, capsys, Answers("arena_hard", "I cannot decide."))
    assert "mostly gives invalid verdicts: 60 of 60 (100%" in out


def test_judge_eval_gives_no_warning_for_a_judge_that_reads_the_responses(monkeypatch, capsys):
    code, out, _ = _judge_eval(monkeypatch, capsys, Longer(), "--swap")
    assert code == 0 and "verdicts as shown" in out
    assert "warning" not in out


def test_pandalm_7bs_recorded_verdicts_give_no_warning(capsys):
    assert main(["judge-eval", "--data", "pandalm", "--predictions", str(RECORDED_7B)]) == 0
    assert "warning" not in capsys.readouterr().out


def test_the_rule_thresholds_are_90_percent_of_one_label_and_consistency_one_half():
    assert judge_warnings(verdict_shares([1] * 9 + [2]))  # 90%: degenerate
    assert not judge_warnings(verdict_shares([1] * 89 + [2] * 11))
    assert judge_warnings({"position_consistency": 0.49, "n_swap_compared": 100})
    assert not judge_warnings({"position_consistency": 0.5, "n_swap_compared": 100})


def _study(folder, judge: PairwiseJudge, *, trials: int = 3, **options) -> Arena:
    folder.mkdir(parents=True, exist_ok=True)
    arena = Arena(
        f"sqlite:///{folder / 'study.db'}",
        "s",
        judge,
        simulated_prompts(30),
        racing=False,
        seed=1,
        **options,
    )
    for trial in range(trials):
        texts = [simulated_response(0.5 * trial, text=f"{trial}-{i}") for i in range(30)]
        arena.evaluate(trial, 1, texts)
    return arena


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("answer", [ALWAYS_FIRST, ALWAYS_TWO, ALWAYS_TIE])
def test_the_arena_warns_once_after_the_first_matches_of_a_degenerate_judge(
    tmp_path, caplog, answer
):
    with caplog.at_level(logging.WARNING, logger=WATCHED):
        _study(tmp_path, Answers(*answer), trials=4)  # 120 verdicts: checked once, at 46
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert (
        f"judge answers:{answer[0]}:{answer[1]} is degenerate: 100% of its 46 valid" in warnings[0]
    )


def test_the_arena_playing_both_orders_warns_of_a_judge_naming_one_position(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger=WATCHED):
        _study(tmp_path, Answers(*ALWAYS_FIRST), position="swap")
    (warning,) = _warnings(caplog)
    assert "100% of its 60 valid verdicts say the response shown first wins" in warning


@pytest.mark.parametrize("position", ["random", "swap"])
def test_the_arena_does_not_warn_of_a_sound_judge(tmp_path, caplog, position):
    # With swap, this judge's position consistency between these close checkpoints is
    # 0.30-0.53 by seed: the arena leaves consistency to judge-eval (see _judge_watch).
    with caplog.at_level(logging.WARNING, logger=WATCHED):
        for seed in range(3):
            judge = SimulatedJudge.pandalm_7b(seed=seed)
            _study(tmp_path / str(seed), judge, position=position)
    assert _warnings(caplog) == []


def test_with_the_challenger_always_first_the_shown_order_is_not_judged(tmp_path, caplog):
    # A challenger may well win every game: "first shown wins" is its record, not a bias.
    with caplog.at_level(logging.WARNING, logger=WATCHED):
        _study(tmp_path, Answers(*ALWAYS_FIRST), position="fixed")
    assert _warnings(caplog) == []


def test_check_shows_the_warning_of_a_degenerate_judge_and_exits_0(tmp_path, capsys):
    _study(tmp_path, Answers(*ALWAYS_TWO))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["check", "--storage", url, "--study-name", "s"]) == 0
    out = capsys.readouterr().out
    assert "warning: judge answers:pandalm:2 is degenerate: 100% of its 60 valid" in out
    assert out.rstrip().endswith("no problems found")


def test_check_says_nothing_of_a_sound_judge(tmp_path, capsys):
    _study(tmp_path, SimulatedJudge(seed=3))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["check", "--storage", url, "--study-name", "s"]) == 0
    assert "warning" not in capsys.readouterr().out


def test_identical_answer_ties_do_not_make_a_judge_look_degenerate():
    # 100 certain ties (two identical answers: the judge was not asked) and 12 judged games
    # split evenly: the judge said nothing degenerate.
    import numpy as np

    from optuna_pandalm.arena._judge_watch import stored_judge_warnings
    from optuna_pandalm.store import GameCounts

    counts = GameCounts(
        first=np.array([1, 1, 1, 1]),
        second=np.array([2, 2, 2, 2]),
        outcome=np.array([0, 1, 2, 0]),
        count=np.array([100.0, 5.0, 5.0, 2.0]),
        annotator=np.array(["j", "j", "j", "j"], dtype=object),
        identical=np.array([True, False, False, False]),
    )
    assert stored_judge_warnings(counts, position="random") == []
    judged_alike = dataclasses.replace(counts, identical=np.zeros(4, dtype=bool))
    assert stored_judge_warnings(judged_alike, position="random") != []
