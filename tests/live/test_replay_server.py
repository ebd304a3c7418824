"""The replay server over real HTTP: the official openai client and httpx against a BackgroundServer."""

from __future__ import annotations

import json
import math
import re
import socket
import time

import httpx
import numpy as np
import openai
import pandas as pd
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from callwise import OutcomeTable
from callwise.core.errors import CallwiseError
from callwise.core.prices import estimate_tokens
from callwise.live.http_util import BackgroundServer, install_openai_errors
from callwise.live.replay_server import (
    NEG_INF_LOGPROB,
    ReplayOptionError,
    build_replay_app,
)

Q1 = "What is 2+2?"
Q2 = "Name a primary colour.\nOne word."
LONG = ("Two plus two is four.\n\nSo  the answer is 4. " * 8).strip()
NAN = float("nan")


def _table() -> OutcomeTable:
    """3 prompts x 2 models; q3 has the same text as q1; small has a 2nd sample on q1."""
    def row(pid, prompt, model, answer, quality, cost, tin, tout, conf, sample=0):
        return {"prompt_id": pid, "prompt": prompt, "model": model, "sample": sample, "answer": answer,
                "quality": quality, "cost": cost, "input_tokens": tin, "output_tokens": tout, "confidence": conf}

    rows = [
        row("q1", Q1, "small", "4", 1.0, 0.001, 12, 1, -0.1),
        row("q1", Q1, "small", "5", 0.0, 0.0011, 12, 1, -2.0, sample=1),
        row("q1", Q1, "large", LONG, 1.0, 0.02, 12, 90, -math.inf),
        row("q2", Q2, "small", "red", 1.0, 0.002, NAN, NAN, NAN),
        row("q2", Q2, "large", "blue", 0.5, 0.03, 20, 1, 0.5),
        row("q3", Q1, "small", "four (dup)", 1.0, 0.001, 12, 3, 1.0),
        row("q3", Q1, "large", None, 0.0, 0.02, 12, NAN, -0.5),
    ]
    return OutcomeTable.from_frame(pd.DataFrame(rows))


#: One HTTP client for the raw requests (creating a client per request costs tens of ms: TLS context setup).
http = httpx.Client(timeout=10, trust_env=False)


@pytest.fixture(scope="module", autouse=True)
def _close_http():
    yield
    http.close()


@pytest.fixture(scope="module")
def table() -> OutcomeTable:
    return _table()


@pytest.fixture(scope="module")
def url(table):
    with BackgroundServer(build_replay_app(table)) as srv:
        yield srv.url


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=10)


def ask(c: openai.OpenAI, model: str, prompt: str, **kw):
    return c.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], **kw)


def post(url: str, body, headers=None) -> httpx.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return http.post(url + "/v1/chat/completions", content=data,
                     headers={"content-type": "application/json", **(headers or {})})


# -- answers, usage, matching ----------------------------------------------------------------


def test_known_prompt_returns_the_recorded_row(url):
    with client(url) as c:
        r = ask(c, "small", Q1)
        again = ask(c, "small", Q1)
    assert r.object == "chat.completion" and r.model == "small"
    assert r.choices[0].message.content == "4" and r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == "stop" and r.choices[0].logprobs is None
    assert r.usage.prompt_tokens == 12 and r.usage.completion_tokens == 1 and r.usage.total_tokens == 13
    assert r.usage.model_extra["cost"] == pytest.approx(0.001)
    assert r.model_extra["callwise"] == {"prompt_id": "q1", "sample": 0, "quality": 1.0, "replay": True}
    assert r.id.startswith("chatcmpl-replay-") and r.id == again.id
    assert isinstance(r.created, int) and abs(r.created - time.time()) < 60


def test_missing_tokens_are_estimated_and_content_parts_are_joined(url):
    with client(url) as c:
        # content parts: the text parts are joined with "\n" (the image part is ignored); the LAST user message counts
        r = c.chat.completions.create(model="small", messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "an earlier question"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "user", "content": [{"type": "text", "text": "Name a primary colour."},
                                         {"type": "image_url", "image_url": {"url": "http://x/y.png"}},
                                         {"type": "text", "text": "One word."}]}])
    assert r.choices[0].message.content == "red"
    assert r.usage.prompt_tokens == int(estimate_tokens([Q2])[0])
    assert r.usage.completion_tokens == int(estimate_tokens(["red"])[0])
    assert r.model_extra["callwise"]["prompt_id"] == "q2"


def test_duplicate_prompt_text_takes_the_first_prompt_id_and_no_answer_is_empty(url):
    with client(url) as c:
        assert ask(c, "small", Q1).model_extra["callwise"]["prompt_id"] == "q1"  # q1 and q3 share the text
        r = ask(c, "large", Q1, extra_headers={"x-callwise-prompt-id": "q3"})
    assert r.choices[0].message.content == ""  # q3/large has no recorded answer
    assert r.usage.completion_tokens == 0
    assert r.model_extra["callwise"] == {"prompt_id": "q3", "sample": 0, "quality": 0.0, "replay": True}


def test_sample_and_prompt_id_headers(url):
    with client(url) as c:
        r = ask(c, "small", Q1, extra_headers={"x-callwise-sample": "1"})
        assert r.choices[0].message.content == "5"
        assert r.model_extra["callwise"] == {"prompt_id": "q1", "sample": 1, "quality": 0.0, "replay": True}
        assert ask(c, "small", Q1).id != r.id
        # the prompt-id header wins over the message text
        r = ask(c, "small", "whatever text", extra_headers={"x-callwise-prompt-id": "q3"})
        assert r.choices[0].message.content == "four (dup)"
        with pytest.raises(openai.NotFoundError) as e:
            ask(c, "small", Q1, extra_headers={"x-callwise-prompt-id": "zz"})
        assert e.value.code == "prompt_not_found"
        assert e.value.body["message"] == "no recorded outcome for prompt id 'zz' with model 'small', sample 0"
        with pytest.raises(openai.NotFoundError) as e:
            ask(c, "large", Q1, extra_headers={"x-callwise-sample": "7"})
        assert "model 'large', sample 7 and prompt 'What is 2+2?'" in e.value.body["message"]
        assert "(the table records samples 0..1)" in e.value.body["message"]
        with pytest.raises(openai.BadRequestError) as e:
            ask(c, "small", Q1, extra_headers={"x-callwise-sample": "abc"})
        assert e.value.body["message"] == "header 'x-callwise-sample' must be a non-negative integer, got 'abc'"
        assert e.value.param == "x-callwise-sample"


def test_unknown_prompt_and_unknown_model_are_404(url):
    long_prompt = "Unknown question " + "x" * 100
    with client(url) as c:
        with pytest.raises(openai.NotFoundError) as e:
            ask(c, "small", long_prompt)
        msg = e.value.body["message"]
        assert e.value.code == "prompt_not_found"
        assert msg.startswith(f"no recorded outcome for model 'small', sample 0 and prompt '{long_prompt[:60]}...'")
        assert long_prompt[:61] not in msg
        with pytest.raises(openai.NotFoundError) as e:
            ask(c, "gpt-9", Q1)
        assert e.value.code == "model_not_found" and e.value.param == "model"
        assert e.value.body["message"] == ("model 'gpt-9' is not in the replayed outcome table; "
                                           "known models: ['large', 'small']")


@pytest.mark.parametrize("body, message, param", [
    ({"model": "small"}, "missing required field 'messages'", "messages"),
    ({"model": "small", "messages": []}, "'messages' must be a non-empty list of messages", "messages"),
    ({"model": "small", "messages": "hi"}, "'messages' must be a non-empty list of messages", "messages"),
    ({"model": "small", "messages": [{"content": "hi"}]}, "'messages[0].role' is missing or not a string",
     "messages[0].role"),
    ({"model": "small", "messages": [{"role": "system", "content": "x"}, {"role": "user"}]},
     "'messages[1].content' is missing", "messages[1].content"),
    ({"model": "small", "messages": ["hi"]}, "'messages[0]' must be an object with 'role' and 'content'",
     "messages[0]"),
    ({"model": "small", "messages": [{"role": "user", "content": 5}]},
     "'messages[0].content' must be a string or a list of content parts, got int", "messages[0].content"),
    ({"model": "small", "messages": [{"role": "system", "content": "x"}]},
     "no message with role 'user' in 'messages'", "messages"),
    ({"messages": [{"role": "user", "content": Q1}]}, "missing required field 'model' (a string)", "model"),
    ({"model": "small", "messages": [{"role": "user", "content": Q1}], "stream": "yes"},
     "'stream' must be a boolean", "stream"),
    (b"{not json", "the request body is not valid JSON", None),
    ([1, 2], "the request body must be a JSON object", None),
])
def test_bad_requests_are_400_naming_the_field(url, body, message, param):
    r = post(url, body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["message"].startswith(message) and err["param"] == param
    assert err["type"] == "invalid_request_error"


def test_bad_messages_through_the_openai_client(url):
    with client(url) as c, pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="small", messages=[{"role": "user"}])
    assert e.value.body["message"] == "'messages[0].content' is missing"
    assert e.value.param == "messages[0].content"


def test_a_table_with_only_the_required_columns():
    bare = OutcomeTable.from_frame(pd.DataFrame({"prompt_id": ["a", "b"], "model": ["m", "m"],
                                                 "quality": [1.0, 0.0], "cost": [0.5, 0.25]}))
    with BackgroundServer(build_replay_app(bare)) as srv, client(srv.url) as c:
        r = ask(c, "m", "abcdefgh", logprobs=True, extra_headers={"x-callwise-prompt-id": "b"})
        assert r.choices[0].message.content == "" and r.choices[0].logprobs is None
        assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (2, 0)  # estimated from the request's text
        assert r.usage.model_extra["cost"] == 0.25 and r.model_extra["callwise"]["quality"] == 0.0
        with pytest.raises(openai.NotFoundError) as e:
            ask(c, "m", "abcdefgh")
    assert e.value.body["message"].endswith("the table has no prompt texts, so send the header "
                                            "'x-callwise-prompt-id'")


# -- logprobs --------------------------------------------------------------------------------


def test_logprobs_as_logprob(url):
    with client(url) as c:
        lp = ask(c, "small", Q1, logprobs=True).choices[0].logprobs.content
        assert len(lp) == 1 and lp[0].token == "4" and lp[0].logprob == pytest.approx(-0.1)
        assert [(t.token, t.logprob) for t in lp[0].top_logprobs] == [("4", pytest.approx(-0.1))]
        assert ask(c, "small", Q1, logprobs=True, top_logprobs=0).choices[0].logprobs.content[0].top_logprobs == []
        # -inf is sent as -9999.0 (JSON has no infinity)
        lp = ask(c, "large", Q1, logprobs=True).choices[0].logprobs.content[0]
        assert lp.logprob == NEG_INF_LOGPROB == -9999.0 and lp.token == LONG
        # no recorded confidence -> null
        assert ask(c, "small", Q2, logprobs=True).choices[0].logprobs is None
        with pytest.raises(openai.BadRequestError) as e:
            ask(c, "large", Q2, logprobs=True)
    msg = e.value.body["message"]
    assert "the table's confidence for this answer is 0.5 > 0, so it is not a log-probability" in msg
    assert "confidence_as='margin'" in msg and e.value.code == "confidence_not_logprob"


def test_logprobs_as_margin_and_no_cost(table):
    with BackgroundServer(build_replay_app(table, confidence_as="margin", report_cost=False)) as srv, \
            client(srv.url) as c:
        r = ask(c, "large", Q2, logprobs=True)
        assert "cost" not in (r.usage.model_extra or {})
        lp = r.choices[0].logprobs.content
        assert len(lp) == 1 and lp[0].token == "blue" and lp[0].logprob == pytest.approx(math.log(0.75))
        assert [(t.token, t.logprob) for t in lp[0].top_logprobs] == [
            ("blue", pytest.approx(math.log(0.75))), ("<alt>", pytest.approx(math.log(0.25)))]
        top1 = ask(c, "large", Q2, logprobs=True, top_logprobs=1).choices[0].logprobs.content[0].top_logprobs
        assert [t.token for t in top1] == ["blue"]
        # margin 1: the runner-up has probability 0 -> -9999.0; the token is the answer's first word
        lp = ask(c, "small", "x", logprobs=True, extra_headers={"x-callwise-prompt-id": "q3"}).choices[0].logprobs
        assert lp.content[0].token == "four" and lp.content[0].logprob == pytest.approx(0.0)
        assert lp.content[0].top_logprobs[1].logprob == NEG_INF_LOGPROB
        with pytest.raises(openai.BadRequestError) as e:
            ask(c, "small", Q1, logprobs=True)
    assert "the table's confidence for this answer is -0.1, outside [0, 1]" in e.value.body["message"]
    assert "confidence_as='logprob'" in e.value.body["message"] and e.value.code == "confidence_not_margin"


# -- streaming -------------------------------------------------------------------------------


def test_streaming_with_usage(url):
    with client(url) as c:
        chunks = list(ask(c, "large", Q1, stream=True, stream_options={"include_usage": True}, logprobs=True))
    content = [ch for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert "".join(ch.choices[0].delta.content for ch in content) == LONG
    assert 2 <= len(content) <= 16
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content[0].choices[0].logprobs.content[0].logprob == NEG_INF_LOGPROB
    final = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason][0]
    assert final.choices[0].finish_reason == "stop"
    assert final.model_extra["callwise"] == {"prompt_id": "q1", "sample": 0, "quality": 1.0, "replay": True}
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.prompt_tokens == 12 and usage.usage.completion_tokens == 90
    assert usage.usage.model_extra["cost"] == pytest.approx(0.02)
    assert all(ch.object == "chat.completion.chunk" and ch.id == chunks[0].id for ch in chunks)


def test_streaming_raw_sse_without_usage(url):
    with http.stream("POST", url + "/v1/chat/completions",
                     json={"model": "small", "messages": [{"role": "user", "content": Q1}], "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    objs = [json.loads(e[6:]) for e in events[:-1]]
    assert all(o["choices"] for o in objs)  # no usage chunk without include_usage
    assert "".join(o["choices"][0]["delta"].get("content", "") for o in objs) == "4"


# -- fault injection -------------------------------------------------------------------------


def test_fail_rate_one_answers_the_failure_status(table):
    app = build_replay_app(table, fail_rate=1.0)
    with BackgroundServer(app) as srv, client(srv.url) as c:
        with pytest.raises(openai.InternalServerError) as e:
            ask(c, "small", Q1)
        assert e.value.status_code == 500
        assert e.value.body == {"message": "injected failure (fail_rate=1)", "type": "server_error", "param": None,
                                "code": "injected_failure"}
        # client errors come first: an unknown model is still a 404
        with pytest.raises(openai.NotFoundError):
            ask(c, "nope", Q1)


def test_per_model_fail_rate_status_and_seeded_draws(table):
    app = build_replay_app(table, fail_rate={"large": 1.0}, fail_status=503)
    with BackgroundServer(app) as srv:
        assert post(srv.url, {"model": "small", "messages": [{"role": "user", "content": Q1}]}).status_code == 200
        r = post(srv.url, {"model": "large", "messages": [{"role": "user", "content": Q1}]})
        assert r.status_code == 503 and r.json()["error"]["message"] == "injected failure (fail_rate=1)"

    def outcomes() -> list[int]:
        with BackgroundServer(build_replay_app(table, fail_rate=0.5, seed=3)) as srv:
            return [post(srv.url, {"model": "small", "messages": [{"role": "user", "content": Q1}]}).status_code
                    for _ in range(16)]

    first = outcomes()
    assert first == outcomes() and set(first) == {200, 500}  # same seed, same failures


def test_per_model_latency_slows_that_model_only(table):
    app = build_replay_app(table, latency_ms={"large": 100.0}, jitter_ms=5.0)
    with BackgroundServer(app) as srv, client(srv.url) as c:
        def timed(model: str) -> float:
            t = time.perf_counter()
            ask(c, model, Q1)
            return time.perf_counter() - t

        timed("small")  # warm the connection
        slow = min(timed("large") for _ in range(2))
        fast = min(timed("small") for _ in range(3))
    assert slow >= 0.08
    assert fast < slow - 0.05


# -- auth, models, health, errors ------------------------------------------------------------


def test_api_key(table):
    with BackgroundServer(build_replay_app(table, api_key="s3cret")) as srv:
        with client(srv.url, "wrong") as c, pytest.raises(openai.AuthenticationError) as e:
            ask(c, "small", Q1)
        assert e.value.code == "invalid_api_key" and e.value.body["message"] == "incorrect API key provided"
        r = post(srv.url, {"model": "small", "messages": [{"role": "user", "content": Q1}]})
        assert r.status_code == 401 and "missing API key" in r.json()["error"]["message"]
        assert "s3cret" not in r.text and "s3cret" not in str(e.value.body)
        with client(srv.url, "s3cret") as c:
            assert ask(c, "small", Q1).choices[0].message.content == "4"
            assert [m.id for m in c.models.list()] == ["large", "small"]
        assert http.get(srv.url + "/v1/models").status_code == 401
        assert http.get(srv.url + "/health").status_code == 200  # health needs no key


def test_models_health_and_unknown_routes(url):
    with client(url) as c:
        models = c.models.list().data
        assert [(m.id, m.object, m.owned_by) for m in models] == [("large", "model", "callwise-replay"),
                                                                  ("small", "model", "callwise-replay")]
        assert c.models.retrieve("small").id == "small"
        with pytest.raises(openai.NotFoundError) as e:
            c.models.retrieve("gpt-9")
        assert e.value.code == "model_not_found"
    assert http.get(url + "/health").json() == {"status": "ok", "models": 2, "prompts": 3}
    r = http.get(url + "/v2/nothing")
    assert r.status_code == 404 and r.json()["error"] == {"message": "unknown route GET /v2/nothing",
                                                          "type": "invalid_request_error", "param": None,
                                                          "code": "not_found"}
    r = http.get(url + "/v1/chat/completions")
    assert r.status_code == 405
    assert r.json()["error"]["message"] == "method GET is not allowed on /v1/chat/completions"


@pytest.mark.parametrize("options, message", [
    ({"fail_rate": 1.5}, "fail_rate must be in [0, 1], got 1.5"),
    ({"fail_rate": {"small": -0.1}}, "fail_rate['small'] must be in [0, 1], got -0.1"),
    ({"latency_ms": -1}, "latency_ms must be >= 0, got -1"),
    ({"latency_ms": {"nope": 5}}, "latency_ms names model 'nope', which is not in the outcome table; "
                                  "its models are ['large', 'small']"),
    ({"fail_rate": {"gpt-9": 0.5}}, "fail_rate names model 'gpt-9', which is not in the outcome table"),
    ({"jitter_ms": float("nan")}, "jitter_ms must be >= 0, got nan"),
    ({"latency_ms": "fast"}, "latency_ms must be a number, got 'fast'"),
    ({"confidence_as": "prob"}, "confidence_as must be one of ['logprob', 'margin'], got 'prob'"),
    ({"fail_status": 200}, "fail_status must be an HTTP error status (4xx or 5xx), got 200"),
    ({"api_key": ""}, "api_key must be a non-empty string (or None for no authentication)"),
])
def test_option_validation(table, options, message):
    with pytest.raises(ReplayOptionError, match=re.escape(message)) as e:
        build_replay_app(table, **options)
    assert isinstance(e.value, CallwiseError)


# -- http_util on its own --------------------------------------------------------------------


class Item(BaseModel):
    name: str
    count: int


def test_install_openai_errors_on_validation_and_crashes():
    app = FastAPI()
    install_openai_errors(app)

    @app.post("/items")
    async def items(item: Item) -> dict:
        return {"ok": item.count}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("secret detail")

    with BackgroundServer(app, log_level="critical") as srv:
        r = http.post(srv.url + "/items", json={"name": "a", "count": "many"})
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["param"] == "count" and err["message"].startswith("invalid request: field 'count': ")
        r = http.get(srv.url + "/boom")
        assert r.status_code == 500 and "secret detail" not in r.text
        assert r.json()["error"] == {"message": "internal error in the server (see the server log)",
                                     "type": "server_error", "param": None, "code": None}


def test_background_server_reports_a_failed_start():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(RuntimeError, match="stopped before it started"):
            BackgroundServer(FastAPI(), port=port, log_level="critical").start()


# -- real data -------------------------------------------------------------------------------


@pytest.mark.slow
def test_replays_the_rational_cascades_data(shared_data):
    path = shared_data / "rational-cascades"
    if not path.is_dir():
        pytest.skip("rational-cascades data absent")
    from callwise.io import load

    t = load(path)
    f = t.frame
    first = ~f.duplicated(["model", "prompt", "sample"], keep="first")
    row = f[first & np.isfinite(f["confidence"]) & f["answer"].notna()].iloc[7]
    ninf = f[first & np.isneginf(f["confidence"])].iloc[0]
    with BackgroundServer(build_replay_app(t)) as srv, client(srv.url) as c:
        r = ask(c, row["model"], row["prompt"], logprobs=True)
        assert r.choices[0].message.content == row["answer"]
        assert r.usage.prompt_tokens == row["input_tokens"] and r.usage.completion_tokens == row["output_tokens"]
        assert r.usage.model_extra["cost"] == pytest.approx(row["cost"])
        assert r.choices[0].logprobs.content[0].logprob == pytest.approx(row["confidence"])
        assert r.model_extra["callwise"]["prompt_id"] == row["prompt_id"]
        assert r.model_extra["callwise"]["quality"] == row["quality"]
        r = ask(c, ninf["model"], "x", logprobs=True, extra_headers={"x-callwise-prompt-id": ninf["prompt_id"]})
        assert r.choices[0].logprobs.content[0].logprob == NEG_INF_LOGPROB
        assert http.get(srv.url + "/health").json() == {"status": "ok", "models": 9, "prompts": 9010}
