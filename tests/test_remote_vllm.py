"""RemoteJudge's likelihood mode against loopback fakes of vLLM's completions API.

A real vLLM server needs a GPU and a 7B model, so these servers fake it (the only fakes in
this file): a toy tokenizer in which "Tie" is two tokens ("T", "ie"), a planted next-token
distribution, and the request fields of vLLM's ``/v1/completions`` and ``/tokenize``
(``logprob_token_ids``, ``logprobs``, ``return_tokens_as_token_ids``, token-id prompts) as
vLLM's own protocol defines them. Three servers: a new vLLM that honours
``logprob_token_ids``, an old one that rejects it with HTTP 400, and one that ignores it.
"""

from __future__ import annotations

import http.server
import json
import math
import threading
from collections.abc import Iterator

import pytest

from optuna_pandalm import JudgeRequest, RemoteJudge

BOS = 1
IE = 5000  # "ie": the one merged token, so "Tie" is ("T", "ie")


def toy_tokenize(text: str, *, special: bool) -> list[int]:
    ids, position = ([BOS] if special else []), 0
    while position < len(text):
        if text.startswith("ie", position):
            ids.append(IE)
            position += 2
        else:
            ids.append(1000 + ord(text[position]))
            position += 1
    return ids


class ToyTokenizer:
    """The served model's tokenizer, as a local tokenizer object (``tokenizer=``)."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": toy_tokenize(text, special=add_special_tokens)}


TAIL = toy_tokenize("### Evaluation:\n", special=False)
ONE, TWO, T = (toy_tokenize(c, special=False)[0] for c in "12T")
FILLER = [1000 + ord(c) for c in "abc"]

# After the prompt: P(1) = 0.30, P(2) = 0.10, P(T) = 0.40, the rest on filler; after "T",
# P(ie) = 0.5. So P(Tie) = 0.20 and the labels renormalise to (tie, 1, 2) = (1/3, 1/2, 1/6):
# response 1 wins. Scoring "Tie" by its first token alone would make it a tie (0.40 / 0.80).
AFTER_PROMPT = {T: 0.40, ONE: 0.30, TWO: 0.10, FILLER[0]: 0.12, FILLER[1]: 0.05, FILLER[2]: 0.03}
AFTER_T = {IE: 0.5, FILLER[0]: 0.3, FILLER[1]: 0.2}


def next_token(context: list[int]) -> dict[int, float]:
    if context[-len(TAIL) :] == TAIL:
        return AFTER_PROMPT
    if context[-len(TAIL) - 1 : -1] == TAIL and context[-1] == T:
        return AFTER_T
    raise AssertionError(f"the judge asked about an unexpected context ending {context[-5:]}")


class _JsonHandler(http.server.BaseHTTPRequestHandler):
    """A fake server's request handler: quiet, answering JSON."""

    def log_message(self, *args):
        pass

    def reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture
def vllm(request) -> Iterator[dict]:
    """A fake vLLM: ``request.param`` is "new" (honours logprob_token_ids), "old" (rejects
    it with HTTP 400, as servers that predate it and forbid unknown fields) or "ignoring"
    (accepts and ignores it)."""
    variant = request.param
    state: dict = {"completions": [], "tokenize": 0, "rejected": 0}

    class Handler(_JsonHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/tokenize":
                state["tokenize"] += 1
                tokens = toy_tokenize(body["prompt"], special=body.get("add_special_tokens", True))
                self.reply(200, {"tokens": tokens, "count": len(tokens), "max_model_len": 4096})
                return
            assert self.path == "/v1/completions", self.path
            state["completions"].append(body)
            wanted = body.get("logprob_token_ids")
            if wanted is not None and variant == "old":
                state["rejected"] += 1
                self.reply(400, {"error": {"message": "extra fields not permitted"}})
                return
            prompt = body["prompt"]
            context = prompt if isinstance(prompt, list) else toy_tokenize(prompt, special=True)
            probabilities = next_token(context)
            ranked = sorted(probabilities, key=probabilities.get, reverse=True)
            sampled = ranked[0]
            if wanted is not None and variant == "new":
                chosen = [sampled, *wanted]
            else:  # top k, plus the sampled token, as in the OpenAI API
                chosen = ranked[: max(int(body["logprobs"]), 1)]
            as_ids = body.get("return_tokens_as_token_ids")
            top = {
                (f"token_id:{t}" if as_ids else chr(t - 1000)): math.log(probabilities[t])
                if t in probabilities
                else -9999.0
                for t in chosen
            }
            self.reply(200, {"choices": [{"text": "", "logprobs": {"top_logprobs": [top]}}]})

    httpd = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield state
    httpd.shutdown()
    httpd.server_close()


REQUESTS = [JudgeRequest("Add 2 and 3.", "5", f"{k}") for k in range(3)]


@pytest.mark.parametrize("vllm", ["new"], indirect=True)
def test_new_vllm_gives_exact_label_probabilities_with_two_token_tie(vllm):
    judge = RemoteJudge(vllm["url"], "pandalm-7b", api_key_env=None)
    verdicts = judge.judge(REQUESTS)
    for verdict in verdicts:
        assert verdict.winner == 1
        assert verdict.probabilities == pytest.approx((1 / 3, 1 / 2, 1 / 6))
    assert judge.exact_label_logprobs is True
    asked = [(b["logprob_token_ids"], b["prompt"]) for b in vllm["completions"]]
    firsts = [prompt for wanted, prompt in asked if wanted == sorted([ONE, TWO, T])]
    seconds = [prompt for wanted, prompt in asked if wanted == [IE]]
    assert len(firsts) == len(seconds) == 3 and len(asked) == 6
    assert vllm["tokenize"] == 4 + 3  # the labels once, then each prompt
    assert all(prompt[-1] == T for prompt in seconds)
    assert all(prompt[0] == BOS for prompt in firsts)  # token ids keep the server's BOS
    assert all(b["logprobs"] == 1 for b in vllm["completions"])


@pytest.mark.parametrize("vllm", ["old", "ignoring"], indirect=True)
def test_server_without_logprob_token_ids_falls_back_to_top_logprobs(vllm):
    judge = RemoteJudge(vllm["url"], "pandalm-7b", api_key_env=None, top_logprobs=4)
    verdicts = judge.judge(REQUESTS)
    # The top 4 after the prompt hold T, 1 and 2; after "T", "ie" is first: exact again.
    assert [v.probabilities for v in verdicts] == [pytest.approx((1 / 3, 1 / 2, 1 / 6))] * 3
    assert judge.exact_label_logprobs is False
    asked_exact = [b for b in vllm["completions"] if "logprob_token_ids" in b]
    assert len(asked_exact) <= judge.max_concurrency  # found out once, not per request


@pytest.mark.parametrize("vllm", ["old"], indirect=True)
def test_a_label_outside_the_top_k_gets_no_probability_and_the_rest_renormalise(vllm):
    judge = RemoteJudge(vllm["url"], "pandalm-7b", api_key_env=None, top_logprobs=2)
    verdict = judge.judge(REQUESTS[:1])[0]
    # Top 2 after the prompt: T (0.40) and 1 (0.30); "2" is outside. P(Tie) = 0.40 * 0.5.
    assert verdict.probabilities == pytest.approx((0.4, 0.6, 0.0))
    assert verdict.winner == 1 and "2 outside the top k" in verdict.raw


@pytest.mark.parametrize("vllm", ["new"], indirect=True)
def test_a_local_tokenizer_replaces_the_servers_tokenize(vllm):
    judge = RemoteJudge(vllm["url"], "pandalm-7b", api_key_env=None, tokenizer=ToyTokenizer())
    verdict = judge.judge(REQUESTS[:1])[0]
    assert verdict.probabilities == pytest.approx((1 / 3, 1 / 2, 1 / 6))
    assert vllm["tokenize"] == 0
    assert judge.label_tokens() == ((T, IE), (ONE,), (TWO,))


@pytest.mark.parametrize("vllm", ["new", "old"], indirect=True)
def test_never_relies_on_constrained_decoding(vllm):
    RemoteJudge(vllm["url"], "pandalm-7b", api_key_env=None).judge(REQUESTS[:1])
    for body in vllm["completions"]:
        assert not {"guided_choice", "structured_outputs", "response_format"} & set(body)


# --- a chat format (MT-Bench) ------------------------------------------------------------------
def toy_chat(messages: list[dict]) -> str:
    """The served model's chat template, with the generation prompt."""
    return "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"


class ToyChatTokenizer(ToyTokenizer):
    """The served model's tokenizer with its chat template, as a local tokenizer object."""

    bos_token = None

    def apply_chat_template(self, messages, *, add_generation_prompt, tokenize):
        assert add_generation_prompt and not tokenize
        return toy_chat(messages)


OPEN = toy_tokenize("[[", special=False)
A, B, C = (toy_tokenize(c, special=False)[0] for c in "ABC")
# After "[[": P(A) = 0.5, P(B) = 0.3, P(C) = 0.1 (the tie): (tie, 1, 2) = (1, 5, 3) / 9.
AFTER_OPEN = {A: 0.5, B: 0.3, C: 0.1, FILLER[0]: 0.1}


@pytest.fixture
def chat_vllm() -> Iterator[dict]:
    """A fake vLLM serving a chat model: ``/tokenize`` with messages (vLLM's
    TokenizeChatRequest) or a prompt, ``/v1/completions`` honouring ``logprob_token_ids`` for
    token-id prompts, and ``/v1/chat/completions``."""
    state: dict = {"completions": [], "tokenize": [], "chat": []}

    class Handler(_JsonHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/tokenize":
                state["tokenize"].append(body)
                if "messages" in body:
                    assert body["add_generation_prompt"] is True
                    tokens = [BOS, *toy_tokenize(toy_chat(body["messages"]), special=False)]
                else:
                    tokens = toy_tokenize(body["prompt"], special=body["add_special_tokens"])
                self.reply(200, {"tokens": tokens, "count": len(tokens), "max_model_len": 4096})
                return
            if self.path == "/v1/chat/completions":
                state["chat"].append(body)
                content = "B names the sum wrongly. [[A]]"
                message = {"role": "assistant", "content": content}
                self.reply(200, {"choices": [{"message": message}]})
                return
            assert self.path == "/v1/completions", self.path
            state["completions"].append(body)
            context = body["prompt"]
            assert isinstance(context, list) and context[-len(OPEN) :] == OPEN
            top = {f"token_id:{t}": math.log(AFTER_OPEN[t]) for t in body["logprob_token_ids"]}
            self.reply(200, {"choices": [{"text": "", "logprobs": {"top_logprobs": [top]}}]})

    httpd = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_a_chat_format_generates_through_chat_completions_with_its_messages(chat_vllm):
    from optuna_pandalm.judges import FORMATS

    judge = RemoteJudge(
        chat_vllm["url"], "critic", format="mtbench", mode="generate", api_key_env=None
    )
    verdict = judge.judge(REQUESTS[:1])[0]
    assert verdict.winner == 1 and verdict.reason == "B names the sum wrongly."
    (body,) = chat_vllm["chat"]
    assert body["messages"] == FORMATS["mtbench"].messages(REQUESTS[0])
    assert body["max_tokens"] == 2048 and body["temperature"] == 0.0
    assert chat_vllm["completions"] == []


@pytest.mark.parametrize("local", [False, True], ids=["server-tokenize", "local-tokenizer"])
def test_a_chat_format_scores_its_labels_after_the_chat_prompt_and_answer_prefix(chat_vllm, local):
    from optuna_pandalm.judges import FORMATS

    tokenizer = ToyChatTokenizer() if local else None
    judge = RemoteJudge(
        chat_vllm["url"], "critic", format="mtbench", api_key_env=None, tokenizer=tokenizer
    )
    verdict = judge.judge(REQUESTS[:1])[0]
    assert verdict.probabilities == pytest.approx((1 / 9, 5 / 9, 3 / 9))
    assert verdict.winner == 1
    assert judge.label_tokens() == ((C,), (A,), (B,))
    (body,) = chat_vllm["completions"]
    rendered = toy_chat(FORMATS["mtbench"].messages(REQUESTS[0]))
    # The chat prompt's tokens (one BOS), then "[[": the label is the next token.
    assert body["prompt"] == [BOS, *toy_tokenize(rendered, special=False), *OPEN]
    assert body["logprob_token_ids"] == sorted([A, B, C])
    asked_messages = [b for b in chat_vllm["tokenize"] if "messages" in b]
    assert len(asked_messages) == (0 if local else 1)
    assert all(b["messages"] == FORMATS["mtbench"].messages(REQUESTS[0]) for b in asked_messages)
