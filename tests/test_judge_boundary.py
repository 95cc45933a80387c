"""Specification of the judge boundary: what a judge failure means and what may be cached.

Only a real judge output (a parsed verdict, or the model's unparseable text) is cached. A
failure to answer is retried and never cached; a malformed verdict is a bug of the judge,
raised at once, never stored.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import threading
from collections.abc import Sequence

import numpy as np
import optuna
import pytest

from optuna_pandalm import Arena, RemoteJudge
from optuna_pandalm.arena import JudgeFailedError
from optuna_pandalm.judges.base import (
    InvalidVerdictError,
    JudgeRequest,
    JudgeUnavailableError,
    PairwiseJudge,
    Verdict,
    canonical_verdict,
)
from optuna_pandalm.testing import simulated_prompts, simulated_response

PROMPTS = simulated_prompts(8, seed=3)
WEAK = [simulated_response(0.2, text=f"weak {i}") for i in range(8)]
STRONG = [simulated_response(0.9, text=f"strong {i}") for i in range(8)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _PandaLMServer(http.server.ThreadingHTTPServer):
    """A completions server that always answers '1' in likelihood mode."""


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(
            {"choices": [{"text": "1", "logprobs": {"top_logprobs": [{"1": -0.1, "2": -3.0}]}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_judge_outage_is_not_cached_and_a_later_study_judges_afresh(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    port = _free_port()
    judge = RemoteJudge(
        f"http://127.0.0.1:{port}/v1", "pandalm", api_key_env=None, max_retries=0, timeout=1
    )
    down = Arena(url, "during-outage", judge, PROMPTS, seed=0, judge_retries=0)
    down.evaluate(0, 1, WEAK)
    with pytest.raises(JudgeFailedError, match=r"URLError|refused"):
        down.evaluate(1, 1, STRONG)
    assert down.standings().counts.count.sum() == 0

    server = _PandaLMServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        back = Arena(url, "after-outage", judge, PROMPTS, seed=0)
        back.evaluate(0, 1, WEAK)
        result = back.evaluate(1, 1, STRONG)
    finally:
        server.shutdown()
        server.server_close()
    assert back.cache_hits == 0
    assert result.judge_calls == result.games > 0


class _Flaky(PairwiseJudge):
    """Fails to answer ``failures`` times (raising ``error``), then answers 1."""

    name = "flaky"

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return [Verdict(1) for _ in requests]


@pytest.mark.parametrize(
    "error", [ConnectionError("refused"), TimeoutError("slow"), RuntimeError("CUDA OOM")]
)
def test_failures_to_answer_are_retried_then_judged(error):
    judge = _Flaky(2, error)
    arena = Arena("sqlite://", "s", judge, PROMPTS, seed=0, judge_backoff=0.0)
    arena.evaluate(0, 1, WEAK)
    result = arena.evaluate(1, 1, STRONG)
    assert judge.calls == 3 and result.games == 8 and result.invalid == 0


class _HalfAnswered(PairwiseJudge):
    """Answers the first half of its first batch, then fails; later calls all answer."""

    name = "half"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.seen.append(len(requests))
        if len(self.seen) == 1:
            half = len(requests) // 2
            raise JudgeUnavailableError("cut", completed={i: Verdict(1) for i in range(half)})
        return [Verdict(2) for _ in requests]


def test_what_a_failed_batch_did_answer_is_kept_and_only_the_rest_is_asked_again():
    judge = _HalfAnswered()
    arena = Arena("sqlite://", "s", judge, PROMPTS, seed=0, judge_backoff=0.0)
    arena.evaluate(0, 1, WEAK)
    result = arena.evaluate(1, 1, STRONG)
    assert judge.seen == [8, 4]
    assert result.judge_calls == 8 and result.games == 8


class _Returns(PairwiseJudge):
    def __init__(self, make, name: str = "custom") -> None:
        self.make = make
        self.name = name
        self.calls = 0

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.calls += 1
        return [self.make(i) for i in range(len(requests))]


def test_numpy_winners_are_stored_as_ints_and_a_replay_scores_the_same(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    winners = [1, 2, 0, 1, 1, 2, 0, 1]

    def make(i: int) -> Verdict:
        return Verdict(np.int64(winners[i]))

    first = Arena(url, "first", _Returns(make), PROMPTS, seed=0, racing=False)
    first.evaluate(0, 1, WEAK)
    played = first.evaluate(1, 1, STRONG)
    replay_judge = _Returns(make)
    replay = Arena(url, "replay", replay_judge, PROMPTS, seed=0, racing=False)
    replay.evaluate(0, 1, WEAK)
    replayed = replay.evaluate(1, 1, STRONG)
    assert replay_judge.calls == 0 and replay.cache_hits == 8
    assert (replayed.wins, replayed.ties, replayed.losses) == (
        played.wins,
        played.ties,
        played.losses,
    )
    assert played.ties == 2


@dataclasses.dataclass
class _DuckVerdict:
    winner: object
    probabilities: object = None
    reason: str = ""
    reference: str = ""
    raw: str = ""


def _mutated(winner: object) -> Verdict:
    verdict = Verdict(1)
    object.__setattr__(verdict, "winner", winner)
    return verdict


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _DuckVerdict(True), "winner must be 0, 1, 2 or None, got True"),
        (lambda: _mutated(7), "got 7"),
        (lambda: _mutated("1"), "got '1'"),
        (lambda: _DuckVerdict(1.0), "got 1.0"),
        (lambda: _DuckVerdict(1, probabilities=(float("nan"), 0.5, 0.5)), "finite"),
        (lambda: _DuckVerdict(1, probabilities=(-0.5, 1.0, 0.5)), "non-negative"),
        (lambda: object(), "needs a winner"),
    ],
)
def test_a_malformed_verdict_is_a_clear_error_naming_the_judge_and_request_not_retried(
    make, message
):
    def build(i: int) -> object:
        if i == 3:
            return make()
        return Verdict(1)

    judge = _Returns(build, name="my-judge")
    arena = Arena("sqlite://", "s", judge, PROMPTS, seed=0, judge_backoff=0.0)
    arena.evaluate(0, 1, WEAK)
    with pytest.raises(InvalidVerdictError, match=r"'my-judge'.*request 3") as raised:
        arena.evaluate(1, 1, STRONG)
    assert message in str(raised.value)
    assert judge.calls == 1  # a bug, not a transient failure: asked once
    assert arena.standings().counts.count.sum() == 0  # nothing stored


def test_the_wrong_number_of_verdicts_is_a_clear_error():
    class Short(PairwiseJudge):
        name = "short"

        def judge(self, requests):
            return [Verdict(1)] * (len(requests) - 1)

    arena = Arena("sqlite://", "s", Short(), PROMPTS, seed=0)
    arena.evaluate(0, 1, WEAK)
    with pytest.raises(InvalidVerdictError, match="'short' returned 7 verdicts for 8"):
        arena.evaluate(1, 1, STRONG)


def test_canonical_verdicts_are_plain_python_values():
    verdict = canonical_verdict(
        _DuckVerdict(np.int8(2), probabilities=np.array([0.1, 0.2, 0.7])), judge="j", index=0
    )
    assert type(verdict.winner) is int and verdict.winner == 2
    assert all(type(p) is float for p in verdict.probabilities)


def test_an_unparseable_answer_is_data_cached_as_an_invalid_verdict():
    judge = _Returns(lambda i: Verdict(None, raw="I cannot decide"))
    arena = Arena("sqlite://", "s", judge, PROMPTS, seed=0)
    arena.evaluate(0, 1, WEAK)
    first = arena.evaluate(1, 1, STRONG)
    assert first.invalid == 8 and first.games == 0 and judge.calls == 1
    again = Arena(arena.store, "another study", judge, PROMPTS, seed=0)
    again.evaluate(0, 1, WEAK)
    assert again.evaluate(1, 1, STRONG).invalid == 8
    assert judge.calls == 1 and again.cache_hits == 8


class _BrokenOnRetry(PairwiseJudge):
    """Answers request 0 then fails; on the retry (requests 1..7) returns a bad winner first."""

    name = "broken-on-retry"

    def __init__(self) -> None:
        self.calls = 0

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.calls += 1
        if self.calls == 1:
            raise JudgeUnavailableError("cut", completed={0: Verdict(1)})
        return [_DuckVerdict(7), *[Verdict(1)] * (len(requests) - 1)]  # type: ignore[list-item]


def test_a_malformed_verdict_on_a_retry_names_the_request_in_the_whole_batch():
    arena = Arena("sqlite://", "s", _BrokenOnRetry(), PROMPTS, seed=0, judge_backoff=0.0)
    arena.evaluate(0, 1, WEAK)
    with pytest.raises(InvalidVerdictError, match=r"for request 1: "):
        arena.evaluate(1, 1, STRONG)


class _MalformedOnce(PairwiseJudge):
    """Answers request 3 of its first call with a winner of 7; every other one well."""

    name = "malformed-once"

    def __init__(self) -> None:
        self.asked: list[int] = []  # requests per call

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.asked.append(len(requests))
        verdicts = [Verdict(1) for _ in requests]
        if len(self.asked) == 1:
            verdicts[3] = _DuckVerdict(7)  # type: ignore[call-overload]
        return verdicts


def test_a_malformed_verdict_keeps_the_well_formed_verdicts_of_its_call():
    judge = _MalformedOnce()
    arena = Arena("sqlite://", "s", judge, PROMPTS, seed=0, baseline=("base", WEAK))
    with pytest.raises(InvalidVerdictError, match="request 3"):
        arena.evaluate(0, 1, STRONG)
    arena.evaluate(0, 1, STRONG)  # the same match again: 7 verdicts come from the cache
    assert judge.asked == [8, 1] and arena.cache_hits == 7


def _live_trial() -> tuple[optuna.Study, optuna.Trial]:
    study = optuna.create_study(direction="maximize")
    return study, study.ask()


def test_a_malformed_verdict_is_recorded_on_the_trial():
    arena = Arena("sqlite://", "s", _MalformedOnce(), PROMPTS, seed=0, baseline=("b", WEAK))
    study, trial = _live_trial()
    with pytest.raises(InvalidVerdictError):
        arena.evaluate(trial, 1, STRONG)
    assert "request 3" in study.trials[0].user_attrs["pandalm_error"]


class _PrefersWeak(PairwiseJudge):
    """Prefers the response that says "weak"; raises once ``failing`` is set."""

    name = "prefers-weak"
    failing = False

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        if self.failing:
            raise RuntimeError("CUDA out of memory")
        return [Verdict(1 if "weak" in r.response_1 else 2) for r in requests]


def test_a_judge_failing_in_finalize_is_recorded_on_the_trial():
    judge = _PrefersWeak()
    arena = Arena(
        "sqlite://",
        "s",
        judge,
        PROMPTS,
        seed=0,
        batch_size=2,
        min_games=2,
        short_match=2,  # the strong challenger loses 0-2 and stops: 6 prompts left
        p_best_threshold=0.0,  # finalize plays its extra match
        judge_retries=0,
    )
    study = optuna.create_study(direction="maximize")
    weak, strong = study.ask(), study.ask()
    arena.evaluate(weak, 1, WEAK)
    arena.evaluate(strong, 1, STRONG)
    judge.failing = True
    with pytest.raises(JudgeFailedError, match="CUDA out of memory"):
        arena.finalize(weak)  # its extra match against the other trial fails
    assert "CUDA out of memory" in study.trials[0].user_attrs["pandalm_error"]
