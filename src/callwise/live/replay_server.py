"""The replay server: an OpenAI-compatible chat endpoint that answers from an outcome table.

It lets the live path (a policy calling models over HTTP through an OpenAI client) be tested and
benchmarked end to end with no real LLM: each request is matched to a recorded row of the table
and answered with that row's answer, token counts, dollar cost and confidence.

Matching a request to a row (all lookups are O(1) dict hits, built once at startup):

- model: the request's ``model``, matched exactly against the table's models;
- sample: the integer header ``x-callwise-sample`` (default 0);
- prompt: the header ``x-callwise-prompt-id`` when present; otherwise the text of the LAST message
  whose role is ``user`` (a string, or the ``text`` parts of a content list joined with ``"\\n"``),
  matched exactly against the table's ``prompt`` column. When several prompt ids share the same
  text, the first one in table order (the canonical order: task, prompt_id, model, sample) wins.

The response is a standard ``chat.completion`` (or ``chat.completion.chunk`` SSE stream) with
``usage.cost`` in dollars (as providers such as OpenRouter report it) and an extension object
``"callwise": {"prompt_id", "sample", "quality", "replay": true}`` so a client can check the
recorded quality. With ``logprobs: true`` the recorded confidence is rendered as logprobs: JSON has
no infinity, so a log-probability of ``-inf`` (or a margin of exactly 1, whose runner-up has
probability 0) is sent as :data:`NEG_INF_LOGPROB` (-9999.0).

Fault injection (``latency_ms``, ``jitter_ms``, ``fail_rate``) simulates slow and failing
upstreams: each matched request first sleeps, then fails with probability ``fail_rate``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import re
import time
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from starlette.responses import Response, StreamingResponse

from ..core.errors import CallwiseError
from ..core.outcomes import OutcomeTable
from ..core.prices import estimate_tokens
from .http_util import install_openai_errors, openai_error

__all__ = ["NEG_INF_LOGPROB", "ReplayOptionError", "build_replay_app", "serve_replay"]

#: The logprob sent for a probability of 0 (log = -inf), since JSON has no infinity.
NEG_INF_LOGPROB = -9999.0
#: The most content deltas a streamed answer is split into (words are grouped to stay under it).
MAX_STREAM_CHUNKS = 16
CONFIDENCE_MODES = ("logprob", "margin")
SAMPLE_HEADER = "x-callwise-sample"
PROMPT_ID_HEADER = "x-callwise-prompt-id"
_WORD_BOUNDARY = re.compile(r"(?<=\s)(?=\S)")


class ReplayOptionError(CallwiseError, ValueError):
    """A replay-server option is invalid (a rate outside [0, 1], an unknown model, ...)."""


# --------------------------------------------------------------------------------------------
# option validation


def _check_number(name: str, value: Any, lo: float, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ReplayOptionError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < lo or (hi is not None and v > hi):
        rng = f"in [{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
        raise ReplayOptionError(f"{name} must be {rng}, got {value!r}")
    return v


def _per_model(name: str, value: Any, models: list[str], lo: float, hi: float | None) -> float | dict[str, float]:
    """A global number, or a {model: number} dict whose keys must be models of the table."""
    if isinstance(value, Mapping):
        known = set(models)
        out: dict[str, float] = {}
        for m, v in value.items():
            if m not in known:
                raise ReplayOptionError(f"{name} names model {m!r}, which is not in the outcome table; "
                                        f"its models are {models}")
            out[m] = _check_number(f"{name}[{m!r}]", v, lo, hi)
        return out
    return _check_number(name, value, lo, hi)


# --------------------------------------------------------------------------------------------
# the table, indexed once


class _Index:
    """Column arrays of the table plus the two O(1) lookup dicts, built vectorised at startup."""

    def __init__(self, table: OutcomeTable) -> None:
        f = table.frame
        n = len(f)
        self.models: list[str] = table.models()
        self.n_prompts = int(f["prompt_id"].nunique())
        self.max_sample = int(f["sample"].max()) if n else 0
        self.has_prompt = "prompt" in f.columns and bool(f["prompt"].notna().any())
        self.prompt_ids = f["prompt_id"].to_numpy(dtype=object)
        model_col = f["model"].to_numpy(dtype=object)
        samples = f["sample"].to_numpy(dtype=np.int64).tolist()
        rows = range(n)
        # (prompt_id, model, sample) is the table's key: unique by construction
        self.by_id: dict[tuple[str, str, int], int] = dict(zip(zip(self.prompt_ids, model_col, samples), rows))
        self.prompts = f["prompt"].to_numpy(dtype=object) if "prompt" in f.columns else np.full(n, None, object)
        self.by_text: dict[tuple[str, str, int], int] = {}
        if self.has_prompt:
            has = np.flatnonzero(f["prompt"].notna().to_numpy())[::-1]  # reversed: the FIRST row in table order wins
            keys = zip(model_col[has], self.prompts[has], np.asarray(samples, dtype=np.int64)[has].tolist())
            self.by_text = dict(zip(keys, has.tolist()))
        self.answers = f["answer"].to_numpy(dtype=object) if "answer" in f.columns else np.full(n, None, object)
        self.quality = f["quality"].to_numpy(dtype=float)
        self.cost = f["cost"].to_numpy(dtype=float)
        self.confidence = f["confidence"].to_numpy(dtype=float) if "confidence" in f.columns else None
        # token counts: recorded where present, else estimated from the recorded text; NaN (estimate
        # from the request's text at request time) where neither exists
        self.input_tokens = self._tokens(f, "input_tokens", self.prompts, missing_text_counts_zero=False)
        self.output_tokens = self._tokens(f, "output_tokens", self.answers, missing_text_counts_zero=True)

    @staticmethod
    def _tokens(f: pd.DataFrame, col: str, texts: np.ndarray, *, missing_text_counts_zero: bool) -> np.ndarray:
        """Recorded counts of ``col``; where not recorded, estimated from ``texts``. A missing text
        (no answer recorded) counts 0 when ``missing_text_counts_zero``, else stays NaN."""
        if col in f.columns:
            out = pd.to_numeric(f[col], errors="coerce").astype(float).to_numpy(dtype=float, na_value=np.nan)
        else:
            out = np.full(len(f), np.nan)
        fill = np.isnan(out)
        if not missing_text_counts_zero:
            fill &= np.array([isinstance(t, str) for t in texts], dtype=bool)
        if fill.any():
            out = out.copy()
            out[fill] = estimate_tokens(texts[fill])
        return out


# --------------------------------------------------------------------------------------------
# request helpers


class _BadRequest(Exception):
    """A client error found while reading the request; turned into an OpenAI error response."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> Response:
        return openai_error(self.status, self.message, param=self.param, code=self.code)


def _content_text(content: Any, where: str) -> str:
    """A message's text: the string, or the ``text`` parts of a content list joined with newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                raise _BadRequest(400, f"'{where}[{j}]' must be a content part object like "
                                       '{"type": "text", "text": "..."}', f"{where}[{j}]")
            if part.get("type") == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise _BadRequest(400, f"'{where}[{j}].text' must be a string", f"{where}[{j}].text")
                texts.append(text)
        return "\n".join(texts)
    raise _BadRequest(400, f"'{where}' must be a string or a list of content parts, got {type(content).__name__}",
                      where)


def _last_user_text(messages: Any) -> str | None:
    """Validate ``messages`` and return the last user message's text (None when there is none)."""
    if messages is None:
        raise _BadRequest(400, "missing required field 'messages'", "messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest(400, "'messages' must be a non-empty list of messages", "messages")
    last_user = None
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _BadRequest(400, f"'messages[{i}]' must be an object with 'role' and 'content'", f"messages[{i}]")
        role = msg.get("role")
        if not isinstance(role, str) or not role:
            raise _BadRequest(400, f"'messages[{i}].role' is missing or not a string", f"messages[{i}].role")
        if "content" not in msg:
            raise _BadRequest(400, f"'messages[{i}].content' is missing", f"messages[{i}].content")
        if role == "user":
            last_user = i
    if last_user is None:
        return None
    return _content_text(messages[last_user]["content"], f"messages[{last_user}].content")


def _sample_of(request: Request) -> int:
    raw = request.headers.get(SAMPLE_HEADER)
    if raw is None:
        return 0
    try:
        s = int(raw.strip())
    except ValueError:
        raise _BadRequest(400, f"header {SAMPLE_HEADER!r} must be a non-negative integer, got {raw[:40]!r}",
                          SAMPLE_HEADER) from None
    if s < 0:
        raise _BadRequest(400, f"header {SAMPLE_HEADER!r} must be a non-negative integer, got {s}", SAMPLE_HEADER)
    return s


def _lp(x: float) -> float:
    """A JSON-safe logprob: -inf becomes NEG_INF_LOGPROB."""
    return NEG_INF_LOGPROB if x == -math.inf else float(x)


def _num(x: Any) -> float | None:
    """A JSON-safe number: NaN becomes null."""
    v = float(x)
    return None if math.isnan(v) else v


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _split_stream(answer: str) -> list[str]:
    """The answer cut at word boundaries into at most MAX_STREAM_CHUNKS pieces that join back exactly."""
    if not answer:
        return []
    words = _WORD_BOUNDARY.split(answer)
    per = -(-len(words) // MAX_STREAM_CHUNKS)
    return ["".join(words[i:i + per]) for i in range(0, len(words), per)]


# --------------------------------------------------------------------------------------------
# the app


def build_replay_app(
    table: OutcomeTable,
    *,
    latency_ms: float | dict[str, float] = 0.0,
    jitter_ms: float = 0.0,
    fail_rate: float | dict[str, float] = 0.0,
    fail_status: int = 500,
    seed: int = 0,
    report_cost: bool = True,
    confidence_as: str = "logprob",
    api_key: str | None = None,
) -> FastAPI:
    """An OpenAI-compatible FastAPI app that answers chat completions from ``table``.

    Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models`` (and ``/v1/models/{model}``),
    ``GET /health`` (no auth). Options:

    - ``latency_ms``: sleep before answering, global or per model (models absent from the dict: 0);
      ``jitter_ms`` adds a uniform extra delay in [0, jitter_ms].
    - ``fail_rate``: probability (global or per model) of answering ``fail_status`` with an OpenAI
      error body instead; decided after the sleep, from a numpy Generator seeded with ``seed``.
    - ``report_cost``: put the recorded dollar cost in ``usage.cost``.
    - ``confidence_as``: how to render the table's ``confidence`` as logprobs: ``"logprob"`` (a
      log-probability of the answer, <= 0) or ``"margin"`` (a first-token top-1 minus top-2
      probability margin in [0, 1]).
    - ``api_key``: when set, ``/v1/*`` requires ``Authorization: Bearer <api_key>``.

    Raises :class:`ReplayOptionError` on an invalid option.
    """
    if not isinstance(table, OutcomeTable):
        raise ReplayOptionError(f"table must be an OutcomeTable, got {type(table).__name__}")
    models = table.models()
    latency = _per_model("latency_ms", latency_ms, models, 0.0, None)
    jitter = _check_number("jitter_ms", jitter_ms, 0.0)
    rate = _per_model("fail_rate", fail_rate, models, 0.0, 1.0)
    if isinstance(fail_status, bool) or not isinstance(fail_status, (int, np.integer)) or not 400 <= fail_status <= 599:
        raise ReplayOptionError(f"fail_status must be an HTTP error status (4xx or 5xx), got {fail_status!r}")
    fail_status = int(fail_status)
    if confidence_as not in CONFIDENCE_MODES:
        raise ReplayOptionError(f"confidence_as must be one of {list(CONFIDENCE_MODES)}, got {confidence_as!r}")
    if api_key is not None and (not isinstance(api_key, str) or not api_key):
        raise ReplayOptionError("api_key must be a non-empty string (or None for no authentication)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ReplayOptionError(f"seed must be an integer, got {seed!r}")

    ix = _Index(table)
    model_set = frozenset(models)
    rng = np.random.default_rng(int(seed))
    started = int(time.time())
    expected_auth = f"Bearer {api_key}".encode() if api_key else None

    app = FastAPI(title="callwise replay server", docs_url=None, redoc_url=None, openapi_url=None)
    install_openai_errors(app)
    app.state.replay_index = ix

    def model_entry(m: str) -> dict[str, Any]:
        return {"id": m, "object": "model", "created": started, "owned_by": "callwise-replay"}

    models_body = _dumps({"object": "list", "data": [model_entry(m) for m in models]})
    health_body = _dumps({"status": "ok", "models": len(models), "prompts": ix.n_prompts})

    def check_auth(request: Request) -> Response | None:
        if expected_auth is None:
            return None
        got = request.headers.get("authorization")
        if not got:
            return openai_error(401, "missing API key: send the header 'Authorization: Bearer <key>'",
                                code="invalid_api_key")
        if not hmac.compare_digest(got.strip().encode(), expected_auth):
            return openai_error(401, "incorrect API key provided", code="invalid_api_key")
        return None

    def unknown_model(model: str) -> Response:
        few = models[:8]
        more = f" (and {len(models) - len(few)} more)" if len(models) > len(few) else ""
        return openai_error(404, f"model {model!r} is not in the replayed outcome table; known models: "
                                 f"{few}{more}", param="model", code="model_not_found")

    def logprobs_of(i: int, answer: str, top_n: int | None) -> dict[str, Any] | None:
        """The recorded confidence rendered as an OpenAI logprobs object (None when not recorded)."""
        if ix.confidence is None:
            return None
        c = float(ix.confidence[i])
        if math.isnan(c):
            return None
        if confidence_as == "logprob":
            if c > 0:
                raise _BadRequest(400, f"the table's confidence for this answer is {c:g} > 0, so it is not a "
                                       "log-probability; start the replay server with confidence_as='margin' "
                                       "if the confidence is a top-1 minus top-2 probability margin",
                                  "logprobs", "confidence_not_logprob")
            lp = _lp(c)
            token = answer
            alts = [{"token": answer, "logprob": lp, "bytes": None}]
        else:
            if not 0.0 <= c <= 1.0:
                raise _BadRequest(400, f"the table's confidence for this answer is {c:g}, outside [0, 1], so it is "
                                       "not a top-1 minus top-2 probability margin; start the replay server with "
                                       "confidence_as='logprob' if the confidence is a log-probability",
                                  "logprobs", "confidence_not_margin")
            words = answer.split(maxsplit=1)
            token = words[0] if words else answer
            p1, p2 = (1.0 + c) / 2.0, (1.0 - c) / 2.0
            lp = math.log(p1)
            alts = [{"token": token, "logprob": lp, "bytes": None},
                    {"token": "<alt>", "logprob": math.log(p2) if p2 > 0 else NEG_INF_LOGPROB, "bytes": None}]
        if top_n is not None:
            alts = alts[:top_n]
        return {"content": [{"token": token, "logprob": lp, "bytes": None, "top_logprobs": alts}]}

    def _sample_hint(sample: int) -> str:
        return f" (the table records samples 0..{ix.max_sample})" if sample > ix.max_sample else ""

    @app.get("/health")
    async def health() -> Response:
        """Liveness: ``{"status": "ok", "models": n, "prompts": n}`` (no auth)."""
        return Response(health_body, media_type="application/json")

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        """The table's models in OpenAI's list format."""
        denied = check_auth(request)
        return denied or Response(models_body, media_type="application/json")

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str, request: Request) -> Response:
        """One model of the table (404 ``model_not_found`` otherwise)."""
        denied = check_auth(request)
        if denied:
            return denied
        return Response(_dumps(model_entry(model)), media_type="application/json") if model in model_set \
            else unknown_model(model)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """Answer a chat completion with the recorded row it matches (see the module docstring)."""
        denied = check_auth(request)
        if denied:
            return denied
        try:
            try:
                body = await request.json()
            except (ValueError, UnicodeDecodeError):
                raise _BadRequest(400, "the request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise _BadRequest(400, "the request body must be a JSON object")
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise _BadRequest(400, "missing required field 'model' (a string)", "model")
            text = _last_user_text(body.get("messages"))
            stream = body.get("stream") or False
            if not isinstance(stream, bool):
                raise _BadRequest(400, "'stream' must be a boolean", "stream")
            want_lp = body.get("logprobs") or False
            if not isinstance(want_lp, bool):
                raise _BadRequest(400, "'logprobs' must be a boolean", "logprobs")
            top_n = body.get("top_logprobs")
            if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 0):
                raise _BadRequest(400, "'top_logprobs' must be a non-negative integer", "top_logprobs")
            sample = _sample_of(request)
            if model not in model_set:
                return unknown_model(model)
            pid = request.headers.get(PROMPT_ID_HEADER)
            if pid is not None:
                i = ix.by_id.get((pid, model, sample))
                if i is None:
                    raise _BadRequest(404, f"no recorded outcome for prompt id {pid[:80]!r} with model {model!r}, "
                                           f"sample {sample}{_sample_hint(sample)}", PROMPT_ID_HEADER,
                                      "prompt_not_found")
            else:
                if text is None:
                    raise _BadRequest(400, "no message with role 'user' in 'messages': the replay server matches "
                                           "the last user message to the table's prompts (or send the header "
                                           f"{PROMPT_ID_HEADER!r})", "messages")
                i = ix.by_text.get((model, text, sample))
                if i is None:
                    short = text[:60] + ("..." if len(text) > 60 else "")
                    hint = ("" if ix.has_prompt else "; the table has no prompt texts, so send the header "
                            f"{PROMPT_ID_HEADER!r}")
                    raise _BadRequest(404, f"no recorded outcome for model {model!r}, sample {sample} and prompt "
                                           f"{short!r} (the last user message must equal a recorded prompt exactly)"
                                           f"{_sample_hint(sample)}{hint}", "messages", "prompt_not_found")
            answer = ix.answers[i]
            answer = answer if isinstance(answer, str) else ""
            lp_obj = logprobs_of(i, answer, top_n) if want_lp else None
        except _BadRequest as e:
            return e.response()

        delay = latency.get(model, 0.0) if isinstance(latency, dict) else latency
        if jitter:
            delay += float(rng.random()) * jitter
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)
        r = rate.get(model, 0.0) if isinstance(rate, dict) else rate
        if r > 0 and (r >= 1.0 or float(rng.random()) < r):
            return openai_error(fail_status, f"injected failure (fail_rate={r:g})", type="server_error",
                                code="injected_failure")

        prompt_id = str(ix.prompt_ids[i])
        pt = float(ix.input_tokens[i])
        if math.isnan(pt):
            pt = float(estimate_tokens([text or ""])[0])
        ct = float(ix.output_tokens[i])
        usage: dict[str, Any] = {"prompt_tokens": int(pt), "completion_tokens": int(ct),
                                 "total_tokens": int(pt) + int(ct)}
        if report_cost:
            usage["cost"] = _num(ix.cost[i])
        ext = {"prompt_id": prompt_id, "sample": sample, "quality": _num(ix.quality[i]), "replay": True}
        cid = "chatcmpl-replay-" + hashlib.blake2b(f"{prompt_id}/{model}/{sample}".encode(),
                                                   digest_size=6).hexdigest()
        created = int(time.time())
        if not stream:
            return Response(_dumps({
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                             "finish_reason": "stop", "logprobs": lp_obj}],
                "usage": usage, "callwise": ext,
            }), media_type="application/json")
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        events = _stream_events(cid, created, model, answer, lp_obj, usage if include_usage else None, ext)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    return app


def _stream_events(cid: str, created: int, model: str, answer: str, lp_obj: dict[str, Any] | None,
                   usage: dict[str, Any] | None, ext: dict[str, Any]) -> Iterator[bytes]:
    """SSE events of a streamed answer: role, content deltas, finish (+ callwise), usage, [DONE].

    The logprobs object (when requested) rides on the first content delta (on the finish chunk
    when the answer is empty).
    """
    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None,
              extra: dict[str, Any] | None = None) -> bytes:
        obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                               "choices": [{"index": 0, "delta": delta, "logprobs": logprobs,
                                            "finish_reason": finish}]}
        if extra:
            obj.update(extra)
        return b"data: " + _dumps(obj) + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    pieces = _split_stream(answer)
    for k, piece in enumerate(pieces):
        yield chunk({"content": piece}, logprobs=lp_obj if k == 0 else None)
    yield chunk({}, "stop", logprobs=lp_obj if not pieces else None, extra={"callwise": ext})
    if usage is not None:
        yield b"data: " + _dumps({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                  "choices": [], "usage": usage}) + b"\n\n"
    yield b"data: [DONE]\n\n"


def serve_replay(
    table: OutcomeTable,
    host: str = "127.0.0.1",
    port: int = 8100,
    *,
    log_level: str = "info",
    **options: Any,
) -> None:
    """Serve :func:`build_replay_app` ``(table, **options)`` with uvicorn on ``host:port`` (blocks).

    ``options`` are those of :func:`build_replay_app`; they are validated before the server starts.
    The access log is off (it costs more than answering a request).
    """
    import uvicorn

    app = build_replay_app(table, **options)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
