"""The live backend over real HTTP on 127.0.0.1: the replay server and tiny scripted upstreams.

Covers both transports (LiteLLM and the lean ``http`` client), the response cache, retries,
fallbacks, logprobs, secret scrubbing, rate/concurrency limits, live prices and endpoint files.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import hashlib
import importlib.metadata
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Awaitable, Callable

import numpy as np
import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callwise import OutcomeTable
from callwise.core.backend import Queries
from callwise.core.errors import DataError
from callwise.core.prices import ModelPrice
from callwise.live.backend import (
    Endpoint,
    Live,
    ProviderError,
    _Bucket,
    endpoints_for_base,
    load_endpoints,
)
from callwise.live.cache import ResponseCache
from callwise.live.http_util import BackgroundServer
from callwise.live.prices import LivePrices, PriceError, litellm_price_map
from callwise.live.replay_server import build_replay_app

TRANSPORTS = ["litellm", "http"]
KEY = "sk-test-SECRET123"
PROMPTS = {"q1": "What is 2+2?", "q2": "Name a primary colour.", "q3": "Capital of France?"}
#: (model, prompt id) -> (answer, quality, cost, confidence)
ROWS = {
    ("A", "q1"): ("4", 1.0, 0.001, -0.1),
    ("A", "q2"): ("red", 1.0, 0.002, -0.7),
    ("A", "q3"): ("Lyon", 0.0, 0.003, -2.5),
    ("B", "q1"): ("four", 1.0, 0.01, -0.05),
    ("B", "q2"): ("blue", 1.0, 0.02, -0.2),
    ("B", "q3"): ("Paris", 1.0, 0.03, -0.01),
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Never touch the home cache nor read a real upstream key from the environment."""
    monkeypatch.setenv("CALLWISE_CACHE_DIR", str(tmp_path / "home-cache"))
    monkeypatch.delenv("CALLWISE_UPSTREAM_API_KEY", raising=False)


@pytest.fixture(scope="module")
def table() -> OutcomeTable:
    rows = [{"prompt_id": pid, "prompt": PROMPTS[pid], "model": m, "sample": 0, "answer": a, "quality": q,
             "cost": c, "input_tokens": 10, "output_tokens": 2, "confidence": lp}
            for (m, pid), (a, q, c, lp) in ROWS.items()]
    return OutcomeTable.from_frame(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def replay(table):
    """The replay server (no faults) behind a request counter."""
    app = Counting(build_replay_app(table))
    with BackgroundServer(app) as srv:
        app.url = srv.url
        yield app


def queries(ids=("q1", "q2", "q3")) -> Queries:
    ids = list(ids)
    return Queries(np.array(ids, dtype=object), np.array([PROMPTS.get(i, f"prompt {i}") for i in ids], dtype=object),
                   np.array(["qa"] * len(ids), dtype=object))


def recorded(model: str, ids=("q1", "q2", "q3"), col: int = 0) -> list:
    return [ROWS[(model, i)][col] for i in ids]


_OPEN: list[Live] = []


@pytest.fixture(autouse=True)
def _close_backends():
    """Stop every backend's event loop after its test (no loops left running at exit)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def live(endpoints: dict[str, Endpoint], **kw: Any) -> Live:
    kw.setdefault("prices", LivePrices(provider_only=True))
    kw.setdefault("retry_base", 0.01)
    kw.setdefault("cache", None)
    b = Live(endpoints, **kw)
    _OPEN.append(b)
    return b


def one(name: str, url: str, transport: str = "http", **settings: Any) -> dict[str, Endpoint]:
    """One endpoint ``name`` at ``url`` (no key)."""
    return endpoints_for_base([name], url, transport=transport, **settings)


class Counting:
    """An ASGI wrapper counting chat-completion requests (and the most in flight at once)."""

    def __init__(self, app: Any) -> None:
        self.app, self.n, self.active, self.max_active, self.url = app, 0, 0, 0, ""

    async def __call__(self, scope, receive, send) -> None:
        counted = scope["type"] == "http" and scope["path"].endswith("/chat/completions")
        if counted:
            self.n += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            await self.app(scope, receive, send)
        finally:
            if counted:
                self.active -= 1


def completion(content: str = "ok", *, cost: float | None = 0.001, usage: dict | None = None,
               logprobs: Any = None, model: str = "m") -> dict[str, Any]:
    u = dict(usage) if usage is not None else {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    if cost is not None:
        u["cost"] = cost
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                         "logprobs": logprobs}], "usage": u}


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "server_error" if status >= 500 else
                                   "invalid_request_error", "param": None, "code": None}},
                        status_code=status, headers=headers)


Behaviour = Callable[[int, dict, Request], Awaitable[Response]]


class Upstream(BackgroundServer):
    """A scripted OpenAI-compatible upstream on /v1/chat/completions: ``behave(n, body, request)``
    answers request number ``n`` (1-based). Records every body and header set; counts concurrency."""

    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.times: list[float] = []  # when each request arrived (perf_counter)

        async def chat(request: Request) -> Response:
            self.times.append(time.perf_counter())
            body = await request.json()
            self.bodies.append(body)
            self.headers.append(dict(request.headers))
            return await self.behave(len(self.bodies), body, request)

        self.counter = Counting(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]))
        super().__init__(self.counter)

    @property
    def n(self) -> int:
        return self.counter.n

    @property
    def base(self) -> str:
        return self.url + "/v1"


def ok_after(failures: int, status: int = 500, headers: dict | None = None) -> Behaviour:
    async def behave(n: int, body: dict, request: Request) -> Response:
        if n <= failures:
            return error(status, f"upstream hiccup {n}", headers)
        return JSONResponse(completion(f"answer after {n}"))
    return behave


def always(status: int, message: str) -> Behaviour:
    async def behave(n: int, body: dict, request: Request) -> Response:
        return error(status, message)
    return behave


# -- 1. calls over the replay server ----------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_call_over_the_replay_server(replay, transport):
    eps = endpoints_for_base(["A", "B"], replay.url + "/v1", transport=transport)
    with live(eps) as be:
        for model in ("A", "B"):
            c = be.call(model, queries())
            assert c.model == model
            assert list(c.answers) == recorded(model)
            assert c.cost == pytest.approx(recorded(model, col=2))
            assert list(c.quality) == recorded(model, col=1)
            assert c.latency is not None and np.all(c.latency > 0)
            assert c.confidence is None and c.logprobs is None  # not asked for
            assert [r.cost_source for r in c.responses] == ["provider"] * 3
            assert all(r.model == r.requested == model and not r.cached and r.attempts == 1 for r in c.responses)
            assert c.responses[0].usage["prompt_tokens"] == 10 and c.responses[0].usage["completion_tokens"] == 2
        assert be.stats["calls"] == 6 and be.stats["retries"] == 0
        assert be.stats["spent"] == pytest.approx(sum(v[2] for v in ROWS.values()))
        with pytest.raises(ProviderError, match=r"no endpoint for model 'C'; the live backend has \['A', 'B'\]"):
            be.call("C", queries())


def test_replay_server_with_an_api_key_gets_the_key(table):
    with BackgroundServer(build_replay_app(table, api_key=KEY)) as srv:
        eps = one("A", srv.url + "/v1")
        with live({"A": replace(eps["A"], api_key=KEY)}) as be:
            assert list(be.call("A", queries()).answers) == recorded("A")
        with live(one("A", srv.url + "/v1")) as be, pytest.raises(ProviderError) as e:
            be.call("A", queries(["q1"]))
    assert "HTTP 401" in str(e.value) and "'A'" in str(e.value) and e.value.status == 401


# -- 2. the response cache ----------------------------------------------------------------------


def test_cache_hits_make_no_upstream_request(replay, tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    eps = endpoints_for_base(["A", "B"], replay.url + "/v1", transport="http")
    start = replay.n
    with live(eps, cache=cache) as be:
        first = be.call("A", queries())
        assert replay.n == start + 3 and not any(r.cached for r in first.responses)
        again = be.call("A", queries())
        assert replay.n == start + 3  # nothing went upstream
        assert list(again.answers) == list(first.answers) == recorded("A")
        assert all(r.cached for r in again.responses)
        assert list(again.cost) == list(first.cost) and list(again.quality) == list(first.quality)
        assert [r.cost_source for r in again.responses] == ["provider"] * 3
        assert be.stats["cache_hits"] == 3 and be.stats["calls"] == 3
    # a new backend over the same file hits too; identical requests in flight at once share one call
    with live(eps, cache=cache) as be:
        assert all(r.cached for r in be.call("A", queries()).responses)
        dup = be.call("B", queries(["q2", "q2", "q2"]))
        assert replay.n == start + 4 and list(dup.answers) == ["blue"] * 3
    # a generation parameter is part of the key: temperature 0.7 misses
    with live(eps, cache=cache, params={"temperature": 0.7}) as be:
        warm = be.call("A", queries())
        assert replay.n == start + 7 and not any(r.cached for r in warm.responses)
        assert list(warm.answers) == recorded("A")
        assert all(r.cached for r in be.call("A", queries()).responses) and replay.n == start + 7
    assert len(cache) == 7
    cache.close()


# -- 3. retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retry_on_500_then_success(transport):
    with Upstream(ok_after(2, 500)) as up, live(one("m", up.base, transport, max_retries=3)) as be:
        c = be.call("m", queries(["q1"]))
        assert up.n == 3  # exactly 3 attempts: no hidden client-side retries
    assert list(c.answers) == ["answer after 3"]
    assert c.responses[0].attempts == 3 and be.stats["retries"] == 2 and be.stats["calls"] == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_400_is_not_retried(transport):
    with Upstream(always(400, "max_tokens is too large")) as up, live(one("m", up.base, transport)) as be:
        with pytest.raises(ProviderError) as e:
            be.call("m", queries(["q1"]))
        assert up.n == 1
    msg = str(e.value)
    assert msg.startswith("1 of 1 calls to 'm' failed; first: model 'm' failed (")
    assert "HTTP 400" in msg and "max_tokens is too large" in msg and "attempts" not in msg
    assert e.value.status == 400 and e.value.model == "m" and be.stats["retries"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_dead_upstream_says_connection_refused(transport):
    """Nothing listens on the port: the error says so, not 'InternalServerError, HTTP 500' (issue 20, defect 8)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    with live(one("m", f"http://127.0.0.1:{port}/v1", transport, max_retries=0)) as be:
        with pytest.raises(ProviderError) as e:
            be.call("m", queries(["q1"]))
    msg = str(e.value)
    assert "model 'm' could not connect (connection refused)" in msg, msg
    assert "HTTP 500" not in msg and e.value.status is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retries_exhausted(transport):
    with Upstream(always(503, "overloaded")) as up, live(one("m", up.base, transport, max_retries=2)) as be:
        with pytest.raises(ProviderError) as e:
            be.call("m", queries(["q1"]))
        assert up.n == 3
    msg = str(e.value)
    assert "model 'm' failed (" in msg and "HTTP 503" in msg and "overloaded" in msg
    assert msg.endswith("(after 3 attempts; the endpoint now cools down for 5s)")  # the 3rd failure opens the breaker
    assert e.value.status == 503 and be.stats["retries"] == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeout_is_retried_then_fails(transport):
    async def slow(n: int, body: dict, request: Request) -> Response:
        await asyncio.sleep(0.6)
        return JSONResponse(completion())

    with Upstream(slow) as up, live(one("m", up.base, transport, timeout=0.15, max_retries=1)) as be:
        with pytest.raises(ProviderError) as e:
            be.call("m", queries(["q1"]))
        assert up.n == 2
    msg = str(e.value)
    assert "model 'm' timed out" in msg and msg.endswith("(after 2 attempts)")
    assert e.value.model == "m" and be.stats["retries"] == 1
    # the client gave up after the timeout (0.15 s), long before the upstream's 0.6 s answer
    assert 0.14 <= up.times[1] - up.times[0] < 0.5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retry_after_is_honoured(transport):
    with Upstream(ok_after(1, 429, {"retry-after": "0.3"})) as up, live(one("m", up.base, transport)) as be:
        c = be.call("m", queries(["q1"]))
        assert up.n == 2
    assert list(c.answers) == ["answer after 2"] and be.stats["retries"] == 1
    assert up.times[1] - up.times[0] >= 0.3  # retry_base is 0.01: only Retry-After makes it wait this long


# -- 4. fallbacks ------------------------------------------------------------------------------


def test_a_dead_upstream_cools_down_and_its_fallback_answers_at_once(table):
    """Circuit breaker (LiteLLM's semantics): after allowed_fails failed attempts A cools down; calls skip
    it for the cooldown (no waiting on a dead upstream), then it is tried again."""
    app = Counting(build_replay_app(table, fail_rate={"A": 1.0}))
    with BackgroundServer(app) as srv:
        eps = endpoints_for_base(["A", "B"], srv.url + "/v1", transport="http", max_retries=5)
        eps["A"] = replace(eps["A"], fallback="B", allowed_fails=2, cooldown=0.5)
        with live(eps) as be:
            first = be.call("A", queries(["q1"]))
            assert app.n == 2 + 1  # two failed attempts open the breaker (not 6), then B
            t = time.perf_counter()
            for q in ("q2", "q3"):
                c = be.call("A", queries([q]))
                assert c.responses[0].model == "B"
            assert app.n == 3 + 2 and be.stats["cooled_down"] == 2  # A not contacted while cooling down
            assert time.perf_counter() - t < 0.4
            time.sleep(0.6)
            be.call("A", queries(["q1"]))
            assert app.n == 5 + 2 + 1  # cooled: A tried again (fails twice), then B
    assert first.responses[0].model == "B"
    with pytest.raises(DataError, match="allowed_fails must be a whole number >= 1"):
        replace(eps["A"], allowed_fails=0).check()


def test_a_flaky_upstream_does_not_cool_down():
    """Every other attempt fails, so each call succeeds on its retry: the minute has successes, and the
    breaker stays closed (LiteLLM cools a lone deployment down only when all its requests of the
    minute failed)."""
    async def flaky(n: int, body: dict, request: Request) -> Response:
        return error(500, "flaky") if n % 2 else JSONResponse(completion(f"answer {n}"))
    with Upstream(flaky) as up, live(one("m", up.base, "http", max_retries=1, allowed_fails=2)) as be:
        for q in ("q1", "q2", "q3", "q4"):
            assert be.call("m", queries([q])).answers[0].startswith("answer")
        assert up.n == 8 and be.stats["cooled_down"] == 0 and be._limits["m"].cooling() == 0


def test_fallback_answers_from_the_next_model(table, tmp_path):
    app = Counting(build_replay_app(table, fail_rate={"A": 1.0}))
    with BackgroundServer(app) as srv:
        eps = endpoints_for_base(["A", "B"], srv.url + "/v1", transport="http", max_retries=1)
        eps["A"] = replace(eps["A"], fallback="B", allowed_fails=100)  # no circuit breaker here: see below
        cache = ResponseCache(tmp_path / "c.sqlite")
        with live(eps, cache=cache) as be:
            c = be.call("A", queries())
            assert app.n == 3 * 2 + 3  # A: 2 attempts each, then B once each
            assert c.model == "A" and list(c.answers) == recorded("B")
            assert c.cost == pytest.approx(recorded("B", col=2)) and list(c.quality) == recorded("B", col=1)
            assert all(r.model == "B" and r.requested == "A" for r in c.responses)
            assert be.stats["fallbacks"] == 3 and be.stats["retries"] == 3
            # the fallback's answer is cached under the requested model
            again = be.call("A", queries())
            assert app.n == 9 and all(r.cached and r.model == "B" and r.requested == "A" for r in again.responses)
        cache.close()
        # both failing: the message says which models were tried
        eps_both = {**eps, "B": replace(eps["B"], fallback=None)}
        app2 = Counting(build_replay_app(table, fail_rate=1.0))
    with BackgroundServer(app2) as srv2:
        eps2 = {k: replace(v, api_base=srv2.url + "/v1", max_retries=0) for k, v in eps_both.items()}
        with live(eps2) as be, pytest.raises(ProviderError) as e:
            be.call("A", queries(["q1"]))
    msg = str(e.value)
    assert "model 'B' failed (HTTP 500): injected failure (fail_rate=1)" in msg and msg.endswith("(tried A -> B)")
    assert e.value.model == "A" and be.stats["fallbacks"] == 1


def test_a_400_does_not_fall_back():
    async def by_model(n: int, body: dict, request: Request) -> Response:
        if body["model"] == "A":
            return error(400, "the prompt is malformed")
        return JSONResponse(completion("from B"))

    with Upstream(by_model) as up:
        eps = endpoints_for_base(["A", "B"], up.base, transport="http")
        eps["A"] = replace(eps["A"], fallback="B")
        with live(eps) as be, pytest.raises(ProviderError) as e:
            be.call("A", queries(["q1"]))
        assert [b["model"] for b in up.bodies] == ["A"]  # B never called
    assert "model 'A' failed (HTTP 400): the prompt is malformed" in str(e.value) and "tried" not in str(e.value)
    assert be.stats["fallbacks"] == 0


def test_fallback_must_be_an_endpoint():
    eps = one("A", "http://127.0.0.1:9/v1")
    eps["A"] = replace(eps["A"], fallback="Z")
    with pytest.raises(ProviderError, match=r"model 'A' falls back to 'Z', which is not an endpoint; endpoints are "
                                            r"\['A'\]"):
        live(eps)
    with pytest.raises(ProviderError, match="a live backend needs at least one model endpoint"):
        live({})


# -- 5. logprobs -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logprobs_missing_is_an_error(transport):
    async def no_lp(n: int, body: dict, request: Request) -> Response:
        return JSONResponse(completion("yes", logprobs=None))

    with Upstream(no_lp) as up, live(one("m", up.base, transport), logprobs=True) as be:
        with pytest.raises(ProviderError) as e:
            be.call("m", queries(["q1"]))
        assert up.n == 1  # not retried: asking again would not bring logprobs
        assert up.bodies[0]["logprobs"] is True and up.bodies[0]["top_logprobs"] == 5
    msg = str(e.value)
    assert "model 'm' returned no logprobs although they were requested" in msg
    assert "use a model or server that returns logprobs" in msg


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logprobs_from_the_replay_server(replay, transport):
    with live(endpoints_for_base(["A", "B"], replay.url + "/v1", transport=transport)) as be:
        be.with_logprobs()
        c = be.call("B", queries())
    assert c.confidence is not None and c.confidence == pytest.approx(recorded("B", col=3))
    assert len(c.logprobs) == 3 and c.logprobs[0]["content"][0]["token"] == "four"


# -- 6. secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_key_is_scrubbed_from_errors_and_never_cached(tmp_path, transport):
    async def echo_401(n: int, body: dict, request: Request) -> Response:
        if body["messages"][-1]["content"] == PROMPTS["q1"]:
            return JSONResponse(completion("fine", cost=0.5))
        got = request.headers.get("authorization", "")[len("Bearer "):]
        return error(401, f"Incorrect API key provided: {got}. Find your key at example.com")

    cache = ResponseCache(tmp_path / "c.sqlite")
    with Upstream(echo_401) as up:
        ep = Endpoint("m", "openai/m", api_base=up.base, api_key=KEY, transport=transport)
        assert KEY not in repr(ep)
        with live({"m": ep}, cache=cache) as be:
            assert list(be.call("m", queries(["q1"])).answers) == ["fine"]
            with pytest.raises(ProviderError) as e:
                be.call("m", queries(["q2"]))
        assert up.n == 2 and all(h["authorization"] == f"Bearer {KEY}" for h in up.headers)  # the key was sent
    msg = str(e.value)
    assert KEY not in msg and "Incorrect API key provided: ***" in msg
    assert "HTTP 401" in msg and e.value.status == 401 and be.stats["retries"] == 0
    assert len(cache) == 1
    cache.close()
    files = list(tmp_path.glob("c.sqlite*"))
    assert files and not any(KEY.encode() in f.read_bytes() for f in files)


# -- 7. rate and concurrency limits -----------------------------------------------------------


def test_bucket_refills_at_its_rate():
    async def run() -> tuple[float, float]:
        b = _Bucket(60)  # capacity 60, refilled at 1 per second
        assert b.capacity == 60 and b.rate == 1.0
        t = time.perf_counter()
        for _ in range(60):
            await b.take(1)
        drained = time.perf_counter() - t
        t = time.perf_counter()
        await b.take(1)
        return drained, time.perf_counter() - t

    drained, waited = asyncio.run(run())
    assert drained < 0.1 and 0.9 <= waited < 1.3


def test_a_huge_max_tokens_does_not_disable_the_token_limit():
    """The estimate taken is clipped to a full bucket, and so is the refund (issue 20, defect 5: the
    refund of an unclipped estimate filled the bucket far past its capacity)."""
    async def run() -> tuple[float, float]:
        b = _Bucket(600)  # 600 tokens a minute: 10 a second
        taken = await b.take(1e9 + 50)  # max_tokens = 1e9
        b.adjust(50.0 - taken)  # the response used 50 tokens
        level = b.level
        t = time.perf_counter()
        await b.take(560)  # 550 are left: this one waits about a second
        return level, time.perf_counter() - t

    level, waited = asyncio.run(run())
    assert level <= 600 and level == pytest.approx(550, abs=1)
    assert 0.8 <= waited < 1.5


def test_rpm_sets_the_bucket(replay):
    with live(one("A", replay.url + "/v1", rpm=120)) as be:
        t = time.perf_counter()
        assert list(be.call("A", queries()).answers) == recorded("A")
        assert time.perf_counter() - t < 0.5  # a full bucket: no waiting
        bucket = be._limits["A"].requests
        assert bucket.capacity == 120 and bucket.rate == 2.0 and bucket.level < 120 - 2.5


def test_threads_that_call_at_once_share_one_event_loop(replay):
    """16 threads make a fresh backend's first calls at the same instant: one loop, every call answered
    (two threads could each start a loop; calls spread over two loops hung callwise serve)."""
    import threading

    def loops() -> int:
        return sum(t.name == "callwise-live" and t.is_alive() for t in threading.enumerate())

    before = loops()
    with live(one("A", replay.url + "/v1", "http")) as be:
        gate = threading.Barrier(16)

        def one_call(i: int) -> str:
            gate.wait()
            return be.call("A", queries([f"q{1 + i % 3}"])).answers[0]
        with cf.ThreadPoolExecutor(16) as ex:
            got = list(ex.map(one_call, range(16)))
        assert len(got) == 16 and loops() == before + 1


def test_max_concurrency_bounds_requests_in_flight():
    async def slow(n: int, body: dict, request: Request) -> Response:
        await asyncio.sleep(0.05)
        return JSONResponse(completion(body["messages"][-1]["content"]))

    ids = [f"p{i}" for i in range(8)]
    with Upstream(slow) as up, live(one("m", up.base, max_concurrency=2)) as be:
        t = time.perf_counter()
        c = be.call("m", queries(ids))
        took = time.perf_counter() - t
        assert up.n == 8 and up.counter.max_active == 2
    assert list(c.answers) == [f"prompt {i}" for i in ids] and took >= 4 * 0.05


# -- 8. costs ----------------------------------------------------------------------------------

USAGE = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
         "prompt_tokens_details": {"cached_tokens": 400}, "completion_tokens_details": {"reasoning_tokens": 100}}


def test_map_prices_from_usage_with_cached_and_reasoning_tokens():
    entry = litellm_price_map()[0]["gpt-4o-mini"]
    p_in, p_out = entry["input_cost_per_token"], entry["output_cost_per_token"]
    p_cached = entry["cache_read_input_token_cost"]
    assert "output_cost_per_reasoning_token" not in entry  # reasoning is charged as output
    prices = LivePrices()
    price, src = prices.price("gpt-4o-mini", "openai/gpt-4o-mini")
    assert src == "litellm:gpt-4o-mini"
    want = 600 * p_in + 400 * p_cached + 400 * p_out + 100 * p_out
    assert prices.cost(price, USAGE) == (pytest.approx(want), "usage")
    # the provider's own figure wins; no usage at all is estimated from the texts, and says so
    assert prices.cost(price, {**USAGE, "cost": 0.0123}) == (0.0123, "provider")
    est = prices.cost(price, None, "x" * 400, "y" * 40)
    assert est == (pytest.approx(100 * p_in + 10 * p_out), "estimated")


def test_live_prices_a_map_model_from_its_usage():
    async def usage_only(n: int, body: dict, request: Request) -> Response:
        cost = 0.25 if body["messages"][-1]["content"] == "with cost" else None
        return JSONResponse(completion("ok", cost=cost, usage=USAGE, model="gpt-4o-mini"))

    entry = litellm_price_map()[0]["gpt-4o-mini"]
    want = (600 * entry["input_cost_per_token"] + 400 * entry["cache_read_input_token_cost"]
            + 500 * entry["output_cost_per_token"])
    with Upstream(usage_only) as up, live(one("gpt-4o-mini", up.base), prices=LivePrices()) as be:
        c = be.call("gpt-4o-mini", queries(["q1"]))
        assert c.cost[0] == pytest.approx(want) and c.responses[0].cost_source == "usage"
        qs = Queries(np.array(["x"], dtype=object), np.array(["with cost"], dtype=object), np.array(["t"], dtype=object))
        c = be.call("gpt-4o-mini", qs)
        assert c.cost[0] == 0.25 and c.responses[0].cost_source == "provider"
        src = be.price_source()
    assert src["models"]["gpt-4o-mini"]["from"] == "litellm:gpt-4o-mini"
    assert src["models"]["gpt-4o-mini"]["input_per_1m"] == pytest.approx(entry["input_cost_per_token"] * 1e6)


def test_override_table_wins_over_the_map(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("source: test prices\nmodels:\n  m: {input: 1.0, output: 2.0, cached_input: 0.5}\n"
                    "  gpt-4o-mini: {input: 3.0, output: 4.0}\n")
    prices = LivePrices(path)
    price, src = prices.price("m", "openai/m")
    assert src == "override" and (price.input_per_1m, price.output_per_1m, price.cached_input_per_1m) == (1.0, 2.0, 0.5)
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 200}}
    assert prices.cost(price, usage) == (pytest.approx((800 * 1.0 + 200 * 0.5 + 100 * 2.0) / 1e6), "usage")
    mini, src = prices.price("gpt-4o-mini", "openai/gpt-4o-mini")
    assert src == "override" and mini.input_per_1m == 3.0  # not the map's 0.15
    d = prices.describe()
    assert d["overrides"] == {"path": str(path), "source": "test prices", "models": ["gpt-4o-mini", "m"]}
    # use_map=False: only the table
    with pytest.raises(PriceError, match="no price for model 'other' in the price table"):
        LivePrices(path, use_map=False).price("other")


def test_an_unknown_model_has_no_price_and_fails_at_start():
    with pytest.raises(PriceError) as e:
        LivePrices().price("mystery-model-7", "openai/mystery-model-7")
    msg = str(e.value)
    assert msg.startswith("no price for model 'mystery-model-7' (LiteLLM model 'openai/mystery-model-7') in "
                          "LiteLLM's price map (litellm ")
    assert "give its price in a price table (--prices FILE: models: {mystery-model-7: {input: " in msg
    eps = {**one("gpt-4o-mini", "http://127.0.0.1:9/v1"), **one("mystery-model-7", "http://127.0.0.1:9/v1")}
    with pytest.raises(PriceError) as e:
        Live(eps, cache=None)  # default prices: LiteLLM's map, no silent $0
    msg = str(e.value)
    assert msg.startswith("no price for model(s) ['mystery-model-7']: not in LiteLLM's price map")
    assert "give their prices in a price table" in msg and "callwise never assumes a price" in msg


def test_provider_only_needs_the_providers_cost():
    prices = LivePrices(provider_only=True)
    assert prices.price("anything") == (ModelPrice(), "provider-only")
    assert prices.cost(ModelPrice(), {"cost": 0.01}) == (0.01, "provider")
    with pytest.raises(PriceError, match="model 'm' answered without a dollar cost in its usage, and costs are taken "
                                         "from the provider only"):
        prices.cost(ModelPrice(), {"prompt_tokens": 3, "completion_tokens": 1}, model="m")

    async def no_cost(n: int, body: dict, request: Request) -> Response:
        return JSONResponse(completion(cost=None))

    with Upstream(no_cost) as up, live(one("m", up.base)) as be:
        with pytest.raises(ProviderError) as e:
            be.call("m", queries(["q1"]))
        assert up.n == 1
    assert "model 'm' answered without a dollar cost in its usage" in str(e.value)


def test_describe_records_the_litellm_version_and_sha256():
    d = LivePrices().describe()
    pm = d["price_map"]
    assert d["provider_only"] is False and pm["source"] == "litellm price map"
    assert pm["litellm_version"] == importlib.metadata.version("litellm")
    assert pm["sha256"] == hashlib.sha256(Path(pm["file"]).read_bytes()).hexdigest()
    assert pm["models"] == len(json.loads(Path(pm["file"]).read_bytes())) - 1  # without sample_spec
    assert LivePrices(provider_only=True).describe() == {"provider_only": True}


# -- 9. endpoint files -------------------------------------------------------------------------


def test_load_endpoints(write_file):
    path = write_file("endpoints.yaml", """
defaults: {timeout: 30, max_retries: 2, max_concurrency: 16}
models:
  small: {model: openai/gpt-4o-mini, api_key_env: TEST_OPENAI_KEY, rpm: 500, fallback: local}
  local: {api_base: "http://localhost:8000/v1", transport: http, max_concurrency: 4, params: {temperature: 0}}
  large: {model: anthropic/claude-sonnet-4-5, tpm: 200000, timeout: 90}
""")
    eps = load_endpoints(path)
    assert list(eps) == ["small", "local", "large"]
    s, loc, lg = eps["small"], eps["local"], eps["large"]
    assert (s.model, s.api_key_env, s.rpm, s.fallback, s.timeout, s.max_retries, s.max_concurrency) == (
        "openai/gpt-4o-mini", "TEST_OPENAI_KEY", 500, "local", 30, 2, 16)
    assert (loc.model, loc.api_base, loc.transport, loc.max_concurrency, dict(loc.params)) == (
        "openai/local", "http://localhost:8000/v1", "http", 4, {"temperature": 0})
    assert (lg.model, lg.tpm, lg.timeout, lg.transport, lg.fallback) == ("anthropic/claude-sonnet-4-5", 200000, 90,
                                                                         "litellm", None)


@pytest.mark.parametrize("models, message", [
    ("m: {model: openai/m, colour: red}",
     "model 'm': unknown setting(s) ['colour']; settings are ['model', 'api_base'"),
    ("m: {model: openai/m, fallback: nope}",
     "model 'm': fallback 'nope' is not a model of this file; models are ['m']"),
    ("m: {model: openai/m, transport: grpc}",
     "model 'm': transport must be one of ('litellm', 'http'), got 'grpc'"),
    ("m: {model: openai/m, transport: http}",
     "model 'm': transport 'http' needs an api_base (it speaks the OpenAI protocol only)"),
    ("m: {model: openai/m, max_concurrency: 0}",
     "model 'm': max_concurrency must be a whole number >= 1, got 0"),
    ("m: {model: openai/m, rpm: -5}", "model 'm': rpm must be a number > 0, got -5"),
    ("m: [1, 2]", "settings of model 'm' must be a mapping"),
])
def test_endpoint_file_errors(write_file, models, message):
    path = write_file("ep.yaml", "models:\n  " + models + "\n")
    with pytest.raises(DataError) as e:
        load_endpoints(path)
    assert message in str(e.value) and str(path) in str(e.value)


LITELLM_CONFIG = """
model_list:
  - model_name: small
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/TEST_OPENAI_KEY
      rpm: 500
      temperature: 0
  - model_name: large
    litellm_params: {model: azure/gpt-4o, api_base: "https://example.openai.azure.com", api_version: "2024-06-01",
                     api_key: sk-literal, timeout: 90}
    tpm: 200000
router_settings:
  fallbacks: [{small: [large]}]
litellm_settings: {num_retries: 2, request_timeout: 30}
"""


def test_a_litellm_proxy_config_is_an_endpoints_file(write_file):
    """The model_list a LiteLLM proxy already has, read as --endpoints (issue 20)."""
    eps = load_endpoints(write_file("config.yaml", LITELLM_CONFIG))
    s, lg = eps["small"], eps["large"]
    assert (s.model, s.api_key_env, s.api_key, s.rpm, s.fallback, s.max_retries, s.timeout, dict(s.params)) == (
        "openai/gpt-4o-mini", "TEST_OPENAI_KEY", None, 500, "large", 2, 30, {"temperature": 0})
    assert (lg.model, lg.api_base, lg.api_key, lg.tpm, lg.timeout, dict(lg.params)) == (
        "azure/gpt-4o", "https://example.openai.azure.com", "sk-literal", 200000, 90, {"api_version": "2024-06-01"})


@pytest.mark.parametrize("config, message", [
    ("model_list: []", "'model_list' must be a non-empty list"),
    ("model_list: [{litellm_params: {model: openai/x}}]", "model_list[0] needs a 'model_name'"),
    ("model_list: [{model_name: a}]", "model_list[0] ('a') needs 'litellm_params' with a 'model'"),
    ("model_list: [{model_name: a, litellm_params: {model: openai/x}}, {model_name: a, litellm_params: {model: openai/y}}]",
     "model_name 'a' appears more than once"),
    ("model_list: [{model_name: a, litellm_params: {model: openai/x}}]\nrouter_settings: {fallbacks: [{a: [b]}]}",
     "model 'a': fallback 'b' is not a model of this file"),
])
def test_litellm_config_errors(write_file, config, message):
    path = write_file("config.yaml", config + "\n")
    with pytest.raises(DataError) as e:
        load_endpoints(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_endpoint_file_without_models(write_file):
    with pytest.raises(DataError, match="an endpoints file needs a non-empty 'models' mapping"):
        load_endpoints(write_file("ep.yaml", "defaults: {timeout: 5}\n"))
    with pytest.raises(DataError, match=r"unknown top-level field\(s\) \['extra'\]"):
        load_endpoints(write_file("ep2.yaml", "models: {m: {model: openai/m}}\nextra: 1\n"))


def test_missing_key_variable(monkeypatch):
    monkeypatch.delenv("TEST_MISSING_KEY", raising=False)
    ep = Endpoint("m", "openai/m", api_key_env="TEST_MISSING_KEY")
    with pytest.raises(ProviderError) as e:
        ep.key()
    assert str(e.value) == ("model 'm': the environment variable TEST_MISSING_KEY that holds its API key is not set")
    assert e.value.model == "m"
    monkeypatch.setenv("TEST_MISSING_KEY", KEY)
    assert ep.key() == KEY and KEY not in repr(ep)
    # a call through a backend with the variable unset fails naming it, never sending a request
    monkeypatch.delenv("TEST_MISSING_KEY")
    with live({"m": replace(ep, api_base="http://127.0.0.1:9/v1", transport="http")}) as be, \
            pytest.raises(ProviderError, match="the environment variable TEST_MISSING_KEY that holds its API key"):
        be.call("m", queries(["q1"]))
    assert be.stats["calls"] == 0 and be.stats["retries"] == 0
