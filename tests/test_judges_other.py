"""Specification of the reference, reward-model, remote and ensemble judges."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from optuna_pandalm import Arena, JudgeRequest, RemoteJudge, Verdict
from optuna_pandalm.arena import JudgeFailedError
from optuna_pandalm.judges import EnsembleJudge, PairwiseJudge, ReferenceJudge, RewardModelJudge
from optuna_pandalm.judges.base import JudgeUnavailableError
from optuna_pandalm.judges.reference import exact_match, rouge_l, token_f1
from optuna_pandalm.judges.spec import check_spec, judge_from_spec
from optuna_pandalm.testing import simulated_prompts


# --- reference ---------------------------------------------------------------------------------
def test_reference_metrics():
    assert rouge_l("a b c d", "a b c d") == 1.0
    assert rouge_l("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(5 / 6)
    assert token_f1("cat sat", "cat sat down") == pytest.approx(0.8)
    assert exact_match("The answer!", "answer") == 1.0
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


@pytest.mark.parametrize("metric", ["rouge_l", "token_f1", "exact"])
def test_reference_judge_prefers_the_closer_response_and_is_order_symmetric(metric):
    judge = ReferenceJudge(metric)
    forward = judge.judge([JudgeRequest("Add 2 and 3.", "5", "six", reference="5")])[0]
    backward = judge.judge([JudgeRequest("Add 2 and 3.", "six", "5", reference="5")])[0]
    assert (forward.winner, backward.winner) == (1, 2)


def test_reference_judge_ties_within_the_margin():
    judge = ReferenceJudge("token_f1", tie_margin=0.2)
    verdict = judge.judge([JudgeRequest("Q", "a b c", "a b d", reference="a b c d")])[0]
    assert verdict.winner == 0 and "token_f1" in verdict.reason


def test_reference_judge_requires_a_reference():
    with pytest.raises(ValueError, match=r"needs a reference answer.*'Name a colour\.'"):
        ReferenceJudge().judge([JudgeRequest("Name a colour.", "red", "blue")])


def test_reference_judge_bounds_cost_on_huge_responses():
    judge = ReferenceJudge("rouge_l", max_tokens=200)
    start = time.perf_counter()
    verdict = judge.judge([JudgeRequest("Q", "word " * 200_000, "x", reference="word " * 50)])[0]
    assert verdict.winner == 1 and time.perf_counter() - start < 5


# --- reward model ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reward_path(tmp_path_factory) -> str:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from optuna_pandalm.demo.tiny_model import char_tokenizer

    tokenizer = char_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("reward")
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_reward_judge_probabilities_mirror_when_the_order_is_swapped(reward_path):
    judge = RewardModelJudge(reward_path, device="cpu", batch_size=3)
    forward, backward = judge.judge(
        [JudgeRequest("Q", "first answer", "second"), JudgeRequest("Q", "second", "first answer")]
    )
    assert sum(forward.probabilities) == pytest.approx(1.0)
    assert forward.probabilities[1] == pytest.approx(backward.probabilities[2], abs=1e-5)
    assert {forward.winner, backward.winner} == {1, 2}


def test_reward_judge_tie_margin(reward_path):
    judge = RewardModelJudge(reward_path, device="cpu", tie_margin=1e9)
    assert judge.judge([JudgeRequest("Q", "a", "b")])[0].winner == 0


# --- remote -------------------------------------------------------------------------------------
class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture
def server() -> Iterator[dict]:
    """An OpenAI-compatible completions server on loopback, scripted per test; it has no
    ``/tokenize``, so likelihood mode reads the first token's alternatives."""
    state: dict = {"script": [], "calls": 0, "headers": [], "bodies": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self.path.endswith("/completions"):  # a server without vLLM's /tokenize
                self.send_error(404)
                return
            state["calls"] += 1
            state["headers"].append(dict(self.headers))
            state["bodies"].append(body)
            action = state["script"].pop(0) if state["script"] else state["default"]
            if action == "hang":
                time.sleep(3)
                return
            status, payload = action
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(json.dumps(payload).encode())

    httpd = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    state["default"] = (200, _logprobs({"1": -0.2, "2": -2.0, "T": -3.0, "hello": -1.0}))
    yield state
    httpd.shutdown()
    httpd.server_close()


def _logprobs(top: dict) -> dict:
    return {"choices": [{"text": "1", "logprobs": {"top_logprobs": [top]}}]}


def test_remote_likelihood_normalises_label_probabilities(server):
    judge = RemoteJudge(server["url"], "pandalm-7b", api_key_env=None)
    verdict = judge.judge([JudgeRequest("Q", "a", "b")])[0]
    assert verdict.winner == 1
    assert sum(verdict.probabilities) == pytest.approx(1.0)
    body = server["bodies"][0]
    assert body["max_tokens"] == 1 and body["logprobs"] == 20
    assert body["prompt"].endswith("### Evaluation:\n")


def test_remote_generate_mode_parses_text(server):
    server["default"] = (
        200,
        {"choices": [{"text": "Tie\n\n### Reason: same\n\n### Reference: x"}]},
    )
    judge = RemoteJudge(server["url"], "m", mode="generate", api_key_env=None)
    verdict = judge.judge([JudgeRequest("Q", "a", "b")])[0]
    assert verdict.winner == 0 and verdict.reason == "same"


def test_remote_retries_429_then_succeeds(server):
    server["script"] = [(429, {"error": "slow down"}), (503, {"error": "busy"})]
    judge = RemoteJudge(server["url"], "m", api_key_env=None, backoff=0.01)
    verdict = judge.judge([JudgeRequest("Q", "a", "b")])[0]
    assert verdict.winner == 1 and server["calls"] == 3


def test_remote_client_errors_are_not_retried_and_raise_not_an_invalid_verdict(server):
    server["default"] = (400, {"error": "bad"})
    judge = RemoteJudge(server["url"], "m", api_key_env=None, backoff=0.01)
    with pytest.raises(JudgeUnavailableError, match="HTTP 400"):
        judge.judge([JudgeRequest("Q", "a", "b")])
    assert server["calls"] == 1


def test_remote_server_that_never_answers_raises_without_hanging(server):
    server["default"] = "hang"
    judge = RemoteJudge(
        server["url"], "m", api_key_env=None, timeout=0.3, max_retries=1, backoff=0.01
    )
    start = time.perf_counter()
    with pytest.raises(JudgeUnavailableError, match="2 of 2 requests failed"):
        judge.judge([JudgeRequest("Q", "a", "b"), JudgeRequest("Q", "c", "d")])
    assert time.perf_counter() - start < 3


def test_remote_unreachable_server_is_a_failure_to_answer_not_a_verdict():
    judge = RemoteJudge(
        "http://127.0.0.1:9/v1", "m", api_key_env=None, max_retries=1, backoff=0.01, timeout=1
    )
    with pytest.raises(JudgeUnavailableError, match=r"127\.0\.0\.1:9"):
        judge.judge([JudgeRequest("Q", "a", "b")])


def test_remote_batch_cut_short_keeps_the_answers_it_got(server):
    server["script"] = [(200, _logprobs({"1": -0.1})), (400, {"error": "bad"})]
    judge = RemoteJudge(server["url"], "m", api_key_env=None, max_concurrency=1, backoff=0.01)
    with pytest.raises(JudgeUnavailableError) as failure:
        judge.judge([JudgeRequest("Q", "a", "b"), JudgeRequest("Q", "c", "d")])
    assert list(failure.value.completed) == [0]
    assert failure.value.completed[0].winner == 1


def test_an_arena_fails_at_once_when_the_server_refuses_and_keeps_what_it_answered(
    server, tmp_path
):
    """HTTP 401 (a wrong key) is asked once, not once per retry: the trial fails at once
    with JudgeFailedError naming the refusal, and the verdict answered before it is kept."""
    server["default"] = (401, {"error": "invalid api key"})
    judge = RemoteJudge(server["url"], "m", api_key_env=None, max_concurrency=1, backoff=0.01)
    prompts = simulated_prompts(4)
    arena = Arena(
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        "refused",
        judge,
        prompts,
        racing=False,
        judge_backoff=0.01,
    )
    arena.evaluate(0, 1, [f"first {i}" for i in range(4)])  # no opponent yet: no judge call
    assert server["calls"] == 0
    server["script"] = [(200, _logprobs({"1": -0.1}))]
    with pytest.raises(JudgeFailedError, match=r"refused on .* retrying cannot change that.*401"):
        arena.evaluate(1, 1, [f"second {i}" for i in range(4)])
    prompts_sent = [body["prompt"] for body in server["bodies"]]
    assert len(prompts_sent) >= 2 and len(set(prompts_sent)) == len(prompts_sent)
    with arena.store.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT winner FROM pandalm_verdicts")).all()
    assert [row.winner for row in stored] == [1]


def test_remote_reply_without_labels_is_invalid(server):
    server["default"] = (200, _logprobs({"hello": -0.1, "world": -2.0}))
    verdict = RemoteJudge(server["url"], "m", api_key_env=None).judge(
        [JudgeRequest("Q", "a", "b")]
    )[0]
    assert verdict.winner is None and "no label" in verdict.raw


def test_remote_api_key_comes_from_the_environment_and_never_reaches_logs(
    server, monkeypatch, caplog
):
    monkeypatch.setenv("JUDGE_KEY", "sk-very-secret")
    server["script"] = [(500, {"error": "x"})]
    judge = RemoteJudge(server["url"], "m", api_key_env="JUDGE_KEY", backoff=0.01)
    with caplog.at_level(logging.DEBUG):
        judge.judge([JudgeRequest("Q", "a", "b")])
    assert server["headers"][0]["Authorization"] == "Bearer sk-very-secret"
    assert "sk-very-secret" not in caplog.text
    assert "sk-very-secret" not in repr(judge) and "sk-very-secret" not in judge.name


def test_remote_concurrency_is_bounded(server):
    judge = RemoteJudge(server["url"], "m", api_key_env=None, max_concurrency=2)
    verdicts = judge.judge([JudgeRequest("Q", str(i), "b") for i in range(10)])
    assert len(verdicts) == 10 and server["calls"] == 10


def test_remote_url_credentials_are_masked_in_the_name():
    judge = RemoteJudge("http://user:pw@127.0.0.1:8000/v1", "m")
    assert "pw" not in judge.name


# --- ensemble and specs ------------------------------------------------------------------------
class _Fixed(PairwiseJudge):
    def __init__(self, name: str, verdict: Verdict):
        self.name, self.verdict = name, verdict

    def judge(self, requests):
        return [self.verdict for _ in requests]


def test_ensemble_majority_and_mean():
    one = _Fixed("a", Verdict(1, probabilities=(0.1, 0.6, 0.3)))
    two = _Fixed("b", Verdict(2, probabilities=(0.1, 0.2, 0.7)))
    bad = _Fixed("c", Verdict(None, raw="garbage"))
    request = [JudgeRequest("Q", "x", "y")]
    assert EnsembleJudge([one, two], method="majority").judge(request)[0].winner == 0
    assert EnsembleJudge([one, one, two], method="majority").judge(request)[0].winner == 1
    mean = EnsembleJudge([one, two, bad]).judge(request)[0]
    assert mean.winner == 2 and mean.probabilities == pytest.approx((0.1, 0.4, 0.5))
    assert EnsembleJudge([bad]).judge(request)[0].winner is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rouge", "expected KIND:TARGET"),
        ("nope:x", "unknown kind 'nope'"),
        ("reference:rouge_l?tie_margin=abc", "wrong type"),
        ("remote:http://127.0.0.1:1/v1", "need \\?model=NAME"),
        ("reference:rouge_l?colour=red", "colour"),
    ],
)
def test_bad_judge_specs_fail_clearly(spec, message):
    with pytest.raises(ValueError, match=message):
        judge_from_spec(spec)


def test_specs_build_each_kind(tiny_llama_path):
    assert isinstance(judge_from_spec("reference:exact"), ReferenceJudge)
    assert judge_from_spec(f"pandalm:{tiny_llama_path}?device=cpu&batch_size=2").batch_size == 2
    assert judge_from_spec("remote:http://127.0.0.1:1/v1?model=m&mode=generate").mode == "generate"


def test_local_specs_build_a_local_judge_in_the_named_format(tiny_llama_path):
    from optuna_pandalm import LocalJudge

    judge = judge_from_spec(
        f"local:{tiny_llama_path}?format=judgelm&mode=generate&max_new_tokens=4&device=cpu"
    )
    assert isinstance(judge, LocalJudge) and judge.format.name == "judgelm"
    assert judge.name.startswith("local:judgelm:") and judge.generation["max_new_tokens"] == 4
    assert check_spec(f"local:{tiny_llama_path}?format=prometheus2&mode=likelihood")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("local:/m?format=prometheus", r"unknown judge format 'prometheus' \(did you mean "),
        ("local:/m?format=judgelm", r"'judgelm' has no likelihood labels.*mode='generate'"),
        ("remote:http://h:1/v1?model=m&format=judgelm", r"no likelihood labels"),
        ("remote:http://h:1/v1?model=m&format=mtbnch", r"did you mean 'mtbench'"),
        ("local:/m?format=mtbench&colour=red", r"'colour'"),
    ],
)
def test_local_and_remote_specs_check_the_format_without_loading_anything(spec, message):
    with pytest.raises(ValueError, match=rf"judge spec '.*': .*{message}"):
        check_spec(spec)
    with pytest.raises(ValueError, match=message):
        judge_from_spec(spec)


def test_remote_specs_take_a_format_named_in_the_judge_name():
    judge = judge_from_spec("remote:http://127.0.0.1:1/v1?model=m&format=mtbench&mode=generate")
    assert judge.format.name == "mtbench"
    assert (
        judge.name == "remote:http://127.0.0.1:1/v1:m:format=mtbench:mode=generate,max_tokens=2048"
    )
    pandalm = judge_from_spec("remote:http://127.0.0.1:1/v1?model=m&mode=generate")
    assert pandalm.name == "remote:http://127.0.0.1:1/v1:m:mode=generate,max_tokens=512"
