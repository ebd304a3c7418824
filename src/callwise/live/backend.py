"""Live: a backend that calls real LLM endpoints, with the interface offline policies already use.

Every policy calls ``backend.call(model, queries)``; :class:`Live` answers it by sending one chat
completion per query — concurrently, through LiteLLM (any provider it knows, or any
OpenAI-compatible ``api_base``: vLLM, Ollama, llama.cpp's server, ``callwise replay-server``).
Per model (an :class:`Endpoint`) it enforces:

- a bound on concurrent requests, and rate limits in requests and tokens per minute (token
  buckets; the token estimate is corrected by the usage each response reports);
- a timeout per request; retries on retryable errors only (timeouts, connection errors, 408,
  409, 429 and 5xx), with exponential backoff and full jitter, honouring ``Retry-After``;
- a fallback to a declared next model when a model still fails (except on a 400-class error
  that is the request's own fault, which every model would refuse alike);
- a content-addressed response cache (:mod:`callwise.live.cache`) consulted before any
  call: a re-run costs nothing and reproduces the same answers; each response is committed the
  moment it arrives, so a run killed at any point loses no finished call. Identical requests
  in flight at once share one call.

Costs come from :mod:`callwise.live.prices` (the provider's dollar figure, else usage ×
price). When a policy's signal reads log-probabilities, ``logprobs=True`` asks every call for them
and a model that answers without them is an error naming it — never a silent zero margin.

API keys come from the environment (``api_key_env``) or an endpoints file; they are sent to the
provider only, scrubbed from every error message, and never written to results or the cache.

Policies are synchronous numpy code: :meth:`Live.call` runs the batch's requests on an event
loop of the backend's own (a daemon thread), so the same call works from a script, a CLI command
or a server's worker thread. The async primitive is :meth:`Live.acomplete`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.backend import Calls, Queries
from ..core.errors import CallwiseError, DataError
from .prices import LivePrices, PriceError

log = logging.getLogger("callwise.live")

TRANSPORTS = ("litellm", "http")
#: Statuses worth retrying: request timeout, conflict, rate limit, and server errors.
RETRYABLE_STATUS = frozenset({408, 409, 429})
#: Client errors that are the request's own fault: a fallback model would refuse them alike.
NO_FALLBACK_STATUS = frozenset({400, 413, 422})
ENDPOINT_KEYS = ("model", "api_base", "api_key_env", "api_key", "max_concurrency", "rpm", "tpm", "timeout",
                 "max_retries", "fallback", "params", "transport", "allowed_fails", "cooldown")


class ProviderError(CallwiseError):
    """A call failed for good (after its retries and fallbacks); the message names the model."""

    def __init__(self, message: str, *, model: str = "", status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Endpoint:
    """How to reach one model that policies call by ``name``.

    ``model`` is LiteLLM's id (``openai/gpt-4o-mini``, ``anthropic/...``, ``openai/NAME`` for an
    OpenAI-compatible ``api_base``); ``api_key_env`` names the environment variable with the key
    (or ``api_key`` holds it, from a config file: never logged, never printed). ``params`` are
    default generation settings (``temperature``, ``max_tokens``, ...). ``transport`` is
    ``litellm`` or ``http`` (a lean direct client for OpenAI-compatible bases only: see
    docs/live.md for when it matters).
    """

    name: str
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)
    max_concurrency: int = 32
    rpm: float | None = None
    tpm: float | None = None
    timeout: float = 60.0
    max_retries: int = 3
    fallback: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    transport: str = "litellm"
    #: circuit breaker (LiteLLM's router semantics for a lone deployment): after ``allowed_fails``
    #: failed attempts within a minute and no success in it, the endpoint cools down for ``cooldown``
    #: seconds: calls to it fail at once (its fallback answers) instead of waiting on a dead upstream
    allowed_fails: int = 3
    cooldown: float = 5.0

    def key(self) -> str | None:
        """The API key: given, or read from ``api_key_env`` (an unset variable is an error)."""
        if self.api_key is not None:
            return self.api_key
        if self.api_key_env:
            v = os.environ.get(self.api_key_env)
            if not v:
                raise ProviderError(f"model {self.name!r}: the environment variable {self.api_key_env} "
                                    "that holds its API key is not set", model=self.name)
            return v
        return None

    def check(self, where: str = "endpoint") -> None:
        """Settings are sane, or a DataError naming the model and the field."""
        def bad(fieldname: str, what: str) -> DataError:
            return DataError(f"model {self.name!r}: {fieldname} {what}", file=where, column=f"models.{self.name}.{fieldname}")
        if not isinstance(self.model, str) or not self.model:
            raise bad("model", f"must be LiteLLM's model id (e.g. openai/gpt-4o-mini), got {self.model!r}")
        if self.transport not in TRANSPORTS:
            raise bad("transport", f"must be one of {TRANSPORTS}, got {self.transport!r}")
        if self.transport == "http" and not self.api_base:
            raise bad("transport", "'http' needs an api_base (it speaks the OpenAI protocol only)")
        if isinstance(self.max_concurrency, bool) or not isinstance(self.max_concurrency, int) or self.max_concurrency < 1:
            raise bad("max_concurrency", f"must be a whole number >= 1, got {self.max_concurrency!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise bad("max_retries", f"must be a whole number >= 0, got {self.max_retries!r}")
        if isinstance(self.allowed_fails, bool) or not isinstance(self.allowed_fails, int) or self.allowed_fails < 1:
            raise bad("allowed_fails", f"must be a whole number >= 1, got {self.allowed_fails!r}")
        c = self.cooldown
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c < 0:
            raise bad("cooldown", f"must be a number of seconds >= 0, got {c!r}")
        for k in ("rpm", "tpm", "timeout"):
            v = getattr(self, k)
            if v is None and k != "timeout":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise bad(k, f"must be a number > 0, got {v!r}")
        if not isinstance(self.params, Mapping):
            raise bad("params", f"must be a mapping of generation settings, got {type(self.params).__name__}")


def endpoints_for_base(models: Sequence[str], api_base: str, *, api_key_env: str | None = "CALLWISE_UPSTREAM_API_KEY",
                       transport: str = "litellm", **settings: Any) -> dict[str, Endpoint]:
    """Every model behind one OpenAI-compatible base URL (``--api-base``), called by its own name.

    The key is read from ``api_key_env`` when that variable is set; a local server needs none.
    """
    env = api_key_env if api_key_env and os.environ.get(api_key_env) else None
    eps = {m: Endpoint(m, f"openai/{m}", api_base=api_base.rstrip("/"), api_key_env=env,
                       api_key=None if env else "none", transport=transport, **settings) for m in models}
    for ep in eps.values():
        ep.check("--api-base")
    return eps


def load_endpoints(path: str | Path) -> dict[str, Endpoint]:
    """Endpoints from a YAML/JSON file (``--endpoints``)::

        defaults: {timeout: 30, max_retries: 3, max_concurrency: 16}
        models:
          small: {model: openai/gpt-4o-mini, api_key_env: OPENAI_API_KEY, rpm: 500, fallback: small-backup}
          small-backup: {model: openai/gpt-4o-mini, api_base: http://localhost:8000/v1}
          large: {model: anthropic/claude-sonnet-4-5, api_key_env: ANTHROPIC_API_KEY, tpm: 200000}

    A LiteLLM proxy config (``model_list: [{model_name, litellm_params}]``, with
    ``router_settings`` / ``litellm_settings`` fallbacks, retries and timeouts) is read too: see
    :func:`from_litellm_config`. Every error names the file and the field.
    """
    path = Path(path)
    from ..core.files import read_text

    text = read_text(path, "an endpoints file (YAML: models -> settings)")
    try:
        import yaml

        data = yaml.safe_load(text)
    except Exception as e:
        raise DataError(f"unreadable endpoints file: {e}", file=str(path)) from None
    if isinstance(data, dict) and "model_list" in data:
        data = from_litellm_config(data, str(path))
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict) or not data["models"]:
        raise DataError("an endpoints file needs a non-empty 'models' mapping of model name -> settings",
                        file=str(path), column="models")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise DataError("'defaults' must be a mapping of endpoint settings", file=str(path), column="defaults")
    unknown_top = set(data) - {"models", "defaults"}
    if unknown_top:
        raise DataError(f"unknown top-level field(s) {sorted(unknown_top)}; expected 'models' and 'defaults'",
                        file=str(path))
    eps: dict[str, Endpoint] = {}
    for name, spec in data["models"].items():
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise DataError(f"settings of model {name!r} must be a mapping", file=str(path), column=f"models.{name}")
        merged = {**defaults, **spec}
        unknown = set(merged) - set(ENDPOINT_KEYS)
        if unknown:
            raise DataError(f"model {name!r}: unknown setting(s) {sorted(unknown)}; settings are {list(ENDPOINT_KEYS)}",
                            file=str(path), column=f"models.{name}")
        merged.setdefault("model", f"openai/{name}" if merged.get("api_base") else str(name))
        ep = Endpoint(str(name), **merged)
        ep.check(str(path))
        eps[str(name)] = ep
    for ep in eps.values():
        if ep.fallback is not None and ep.fallback not in eps:
            raise DataError(f"model {ep.name!r}: fallback {ep.fallback!r} is not a model of this file; models are "
                            f"{sorted(eps)}", file=str(path), column=f"models.{ep.name}.fallback")
    return eps


#: LiteLLM ``litellm_params`` that are endpoint settings here; the rest are sent with every call.
_LITELLM_ENDPOINT = {"model": "model", "api_base": "api_base", "rpm": "rpm", "tpm": "tpm", "timeout": "timeout",
                     "max_retries": "max_retries"}
#: LiteLLM ``router_settings`` that are endpoint defaults here.
_LITELLM_ROUTER = {"allowed_fails": "allowed_fails", "cooldown_time": "cooldown", "num_retries": "max_retries",
                   "timeout": "timeout"}


def from_litellm_config(data: Mapping[str, Any], where: str = "a LiteLLM config") -> dict[str, Any]:
    """A LiteLLM proxy config as an endpoints document (``models`` + ``defaults``).

    Each ``model_list`` entry becomes the endpoint ``model_name``; ``litellm_params.model``,
    ``api_base``, ``rpm``, ``tpm``, ``timeout`` and ``max_retries`` map to the endpoint's settings,
    ``api_key: os.environ/VAR`` to ``api_key_env: VAR`` (a literal key stays a key), and every other
    ``litellm_params`` entry (``api_version``, ``temperature``, ...) is sent with each call. The first
    fallback of ``router_settings.fallbacks`` (or ``litellm_settings.fallbacks``) is the endpoint's
    fallback; ``litellm_settings.num_retries`` and ``request_timeout`` are the defaults. LiteLLM
    load-balances several deployments under one ``model_name``; callwise calls one endpoint per
    name, so a repeated name is an error.
    """
    entries = data.get("model_list")
    if not isinstance(entries, list) or not entries:
        raise DataError("'model_list' must be a non-empty list of {model_name, litellm_params}", file=where,
                        column="model_list")
    ls = data.get("litellm_settings") or {}
    rs = data.get("router_settings") or {}
    if not isinstance(ls, dict) or not isinstance(rs, dict):
        raise DataError("'litellm_settings' and 'router_settings' must be mappings", file=where)
    defaults: dict[str, Any] = {v: rs[k] for k, v in _LITELLM_ROUTER.items() if rs.get(k) is not None}
    if ls.get("num_retries") is not None:
        defaults["max_retries"] = ls["num_retries"]
    if ls.get("request_timeout") is not None:
        defaults["timeout"] = ls["request_timeout"]
    fallbacks: dict[str, str] = {}
    for source, fb in (("router_settings.fallbacks", rs.get("fallbacks")), ("litellm_settings.fallbacks", ls.get("fallbacks"))):
        for item in fb or []:
            if not isinstance(item, dict):
                raise DataError(f"each of {source} must be {{model_name: [fallback, ...]}}, got {item!r}", file=where,
                                column=source)
            for k, v in item.items():
                first = v[0] if isinstance(v, list) and v else v
                if not isinstance(first, str):
                    raise DataError(f"{source}: the fallbacks of {k!r} must be model names, got {v!r}", file=where,
                                    column=source)
                fallbacks.setdefault(str(k), first)
    models: dict[str, Any] = {}
    for i, e in enumerate(entries):
        col = f"model_list[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("model_name"), str) or not e["model_name"]:
            raise DataError(f"{col} needs a 'model_name' (the name policies call)", file=where, column=col)
        name = e["model_name"]
        lp = e.get("litellm_params")
        if not isinstance(lp, dict) or not isinstance(lp.get("model"), str):
            raise DataError(f"{col} ({name!r}) needs 'litellm_params' with a 'model' (LiteLLM's id)", file=where,
                            column=f"{col}.litellm_params")
        if name in models:
            raise DataError(f"model_name {name!r} appears more than once: LiteLLM load-balances such deployments, "
                            "callwise calls one endpoint per name (keep one, or give each its own name)",
                            file=where, column=col)
        spec: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for k, v in {**{k: e[k] for k in ("rpm", "tpm") if k in e}, **lp}.items():
            if k in _LITELLM_ENDPOINT:
                spec[_LITELLM_ENDPOINT[k]] = v
            elif k == "api_key":
                if isinstance(v, str) and v.startswith("os.environ/"):
                    spec["api_key_env"] = v.split("/", 1)[1]
                else:
                    spec["api_key"] = v
            else:
                params[k] = v
        if params:
            spec["params"] = params
        if name in fallbacks:
            spec["fallback"] = fallbacks[name]
        models[name] = spec
    return {"models": models, "defaults": defaults}


@dataclass(frozen=True)
class Response:
    """One finished call: what came back, from which model, at what cost."""

    requested: str
    model: str  # the model that answered (another than ``requested`` after a fallback)
    content: str
    logprobs: Any
    usage: Mapping[str, Any]
    cost: float
    cost_source: str
    latency: float
    cached: bool
    quality: float = math.nan  # known only when the upstream reports it (callwise replay-server)
    attempts: int = 1
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def confidence(self) -> float:
        """The answer's log-probability: the sum of its tokens' logprobs (NaN without logprobs)."""
        content = self.logprobs.get("content") if isinstance(self.logprobs, Mapping) else None
        if not content:
            return math.nan
        return float(sum(float(t.get("logprob", math.nan)) for t in content))


class _Bucket:
    """A token bucket refilled at ``per_minute`` / 60 per second, holding at most one minute's worth."""

    def __init__(self, per_minute: float) -> None:
        self.capacity = float(per_minute)
        self.rate = float(per_minute) / 60.0
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, n: float) -> float:
        """Wait until ``n`` fits and take it; returns what was taken (at most a full bucket: a request
        bigger than a minute's worth waits for a full bucket)."""
        n = min(n, self.capacity)
        while True:
            self._refill()
            if self.level >= n:
                self.level -= n
                return n
            await asyncio.sleep((n - self.level) / self.rate)

    def adjust(self, delta: float) -> None:
        """Charge (or refund) the difference between what was taken and the request's real size;
        a refund never fills the bucket past its capacity."""
        self.level = min(self.capacity, self.level - delta)


class _Limits:
    """Per-endpoint concurrency bound and rate limits (created on the backend's loop).

    ``shared``: a limiter several backends share (a distributed job's one limiter,
    :mod:`callwise.live.distributed`): its ``buckets(ep)`` gives the (requests, tokens) buckets —
    objects with ``async take(n) -> float`` and ``adjust(delta)``, or None — used instead of this
    backend's own. The concurrency bound stays per backend.
    """

    def __init__(self, ep: Endpoint, shared: Any = None) -> None:
        self.sem = asyncio.Semaphore(ep.max_concurrency)
        if shared is not None:
            self.requests, self.tokens = shared.buckets(ep)
        else:
            self.requests = _Bucket(ep.rpm) if ep.rpm else None
            self.tokens = _Bucket(ep.tpm) if ep.tpm else None
        self.fails: list[float] = []  # when attempts failed (monotonic seconds, the last minute)
        self.last_ok = -math.inf  # when an attempt last succeeded
        self.cooling_until = 0.0

    def cooling(self) -> float:
        """Seconds of cooldown left (0: the endpoint takes calls)."""
        return max(self.cooling_until - time.monotonic(), 0.0)

    def succeeded(self) -> None:
        self.last_ok = time.monotonic()

    def failed(self, ep: Endpoint) -> bool:
        """Record a failed attempt; True when it opens the breaker: ``allowed_fails`` failures within the
        last minute and no success in it (a dead upstream, not a flaky one: LiteLLM cools a lone
        deployment down only when all its requests of the minute failed)."""
        now = time.monotonic()
        self.fails = [t for t in self.fails if now - t < 60.0] + [now]
        if len(self.fails) >= ep.allowed_fails and now - self.last_ok >= 60.0 and ep.cooldown > 0:
            self.cooling_until = now + ep.cooldown
            self.fails = []
            return True
        return False


class _Loop:
    """An event loop running in a daemon thread, for synchronous callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="callwise-live", daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        if threading.get_ident() == self.thread.ident:
            coro.close()
            raise ProviderError("Live.call() was called from the backend's own event loop; use await acomplete()")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        """Cancel what is still pending on the loop (LiteLLM leaves a logging worker), then stop it."""
        if not self.loop.is_running():
            return

        async def cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
        try:
            asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(timeout=5)
        except Exception:  # noqa: BLE001 - closing goes on regardless
            log.debug("pending tasks did not cancel cleanly", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


def _litellm() -> Any:
    """Import LiteLLM offline: its price map from the installed package, no telemetry."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        raise ProviderError("live calls need LiteLLM: pip install 'callwise[live]'") from None
    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def _status_of(e: BaseException) -> int | None:
    s = getattr(e, "status_code", None)
    if isinstance(s, int):
        return s
    resp = getattr(e, "response", None)
    s = getattr(resp, "status_code", None)
    return s if isinstance(s, int) else None


def _retry_after_header(headers: Any) -> float | None:
    """Seconds in a ``Retry-After`` header (None when absent or not a number)."""
    try:
        v = headers.get("retry-after") if headers is not None else None
        return float(v) if v is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _retry_after(e: BaseException) -> float | None:
    # LiteLLM keeps the upstream's headers in ``litellm_response_headers`` (its ``response`` is a stub without them)
    for headers in (getattr(e, "litellm_response_headers", None), getattr(getattr(e, "response", None), "headers", None)):
        v = _retry_after_header(headers)
        if v is not None:
            return v
    return None


def _scrub(msg: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            msg = msg.replace(s, "***")
    return msg


def _classify(e: BaseException, model: str, secrets: Sequence[str]) -> ProviderError:
    """A provider/transport exception as a ProviderError (retryable or not), secrets scrubbed."""
    if isinstance(e, ProviderError):
        return e
    status = _status_of(e)
    name = type(e).__name__
    chain = _chain(e)
    names = " ".join(type(x).__name__ for x in chain)
    text = " ".join(str(x) for x in chain).lower()
    timeout = any(isinstance(x, (asyncio.TimeoutError, TimeoutError)) for x in chain) or "Timeout" in names \
        or "timed out" in text
    refused = any(isinstance(x, ConnectionRefusedError) for x in chain) or "connection refused" in text \
        or "connecterror" in names.lower() or "all connection attempts failed" in text
    connection = refused or "Connection" in names or "RemoteProtocol" in names
    retryable = timeout or connection or status is None and "ServiceUnavailable" in name or (
        status is not None and (status in RETRYABLE_STATUS or status >= 500))
    msg = _scrub(str(e) or name, secrets)
    if len(msg) > 500:
        msg = msg[:500] + "..."
    # a transport failure says what happened, not the HTTP 500 some clients wrap it in
    if timeout:
        what = "timed out"
    elif refused:
        what = "could not connect (connection refused)"
        status = None
    elif connection:
        what = f"could not connect ({name})"
        status = None
    else:
        what = f"failed ({name}{'' if status is None else f', HTTP {status}'})"
    return ProviderError(f"model {model!r} {what}: {msg}", model=model, status=status, retryable=retryable,
                         retry_after=_retry_after(e))


def _chain(e: BaseException) -> list[BaseException]:
    """The exception and its causes and contexts (each once)."""
    out: list[BaseException] = []
    x: BaseException | None = e
    while x is not None and x not in out and len(out) < 10:
        out.append(x)
        x = x.__cause__ or x.__context__
    return out


def _approx_tokens(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> float:
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    return chars / 4.0 + float(params.get("max_tokens") or params.get("max_completion_tokens") or 0)


class Live:
    """A backend over live endpoints: ``call(model, queries)`` for policies, ``acomplete`` for servers.

    ``endpoints``: name -> :class:`Endpoint` (the names policies use). ``cache``: a
    :class:`~callwise.live.cache.ResponseCache`, a path, or None (no cache). ``prices``: a
    :class:`LivePrices` (default: LiteLLM's map). ``params``: default generation settings for
    every call (an endpoint's own ``params`` and a call's ``params`` override them). ``logprobs``:
    ask every call for log-probabilities (``top_logprobs`` alternatives each). Backoff:
    ``retry_base`` seconds doubled per attempt up to ``retry_cap``, with full jitter.
    """

    def __init__(self, endpoints: Mapping[str, Endpoint], *, cache: Any = None, prices: LivePrices | None = None,
                 params: Mapping[str, Any] | None = None, logprobs: bool = False, top_logprobs: int = 5,
                 retry_base: float = 0.5, retry_cap: float = 20.0, seed: int | None = None) -> None:
        if not endpoints:
            raise ProviderError("a live backend needs at least one model endpoint")
        self.endpoints = dict(endpoints)
        self.models = tuple(self.endpoints)
        for ep in self.endpoints.values():
            ep.check()
            if ep.fallback is not None and ep.fallback not in self.endpoints:
                raise ProviderError(f"model {ep.name!r} falls back to {ep.fallback!r}, which is not an endpoint; "
                                    f"endpoints are {sorted(self.endpoints)}", model=ep.name)
        if cache is not None and not hasattr(cache, "get"):
            from .cache import ResponseCache

            cache = ResponseCache(cache)
        self.cache = cache
        self.prices = prices if prices is not None else LivePrices()
        self._price = self.prices.check((n, ep.model) for n, ep in self.endpoints.items())
        self.params = dict(params or {})
        self.logprobs = bool(logprobs)
        self.top_logprobs = int(top_logprobs)
        self.retry_base, self.retry_cap = float(retry_base), float(retry_cap)
        self._rng = random.Random(seed)
        self._limits: dict[str, _Limits] = {}
        self._inflight: dict[str, asyncio.Future] = {}
        self._http: Any = None
        self._loop: _Loop | None = None
        self._loop_lock = threading.Lock()
        self._secrets: list[str] = []
        #: Send each query's id as ``x-callwise-prompt-id`` (the replay server matches on it); a
        #: server whose query ids are made up per request turns this off.
        self.send_ids = True
        #: A rate limiter shared with other backends (one per distributed job), or None: this backend's
        #: own token buckets (see :class:`_Limits`).
        self.rate_limiter: Any = None
        self.stats = {"calls": 0, "cache_hits": 0, "retries": 0, "fallbacks": 0, "cooled_down": 0, "spent": 0.0}

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the background loop and close clients (the cache is the caller's to close)."""
        if self._loop is not None:
            if self._http is not None:
                self._loop.run(self._http.aclose())
            self._loop.close()
            self._loop = None

    def warm(self) -> None:
        """Load now what the first call would load: LiteLLM (for endpoints that use it; importing it takes
        seconds) and the backend's event loop. A server calls this before it reports itself healthy."""
        if any(ep.transport != "http" for ep in self.endpoints.values()):
            _litellm()  # its package import loads acompletion's module and the provider handlers
        self._runner()

    def __enter__(self) -> "Live":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def with_logprobs(self, on: bool = True) -> "Live":
        """Ask (or stop asking) every call for log-probabilities (a policy's signal needs them)."""
        self.logprobs = bool(on)
        return self

    def price_source(self) -> dict[str, Any]:
        """Where prices come from and each model's resolved price (for results)."""
        return {**self.prices.describe(), "models": {n: {**vars(p), "from": src} for n, (p, src) in self._price.items()}}

    # -- one call --------------------------------------------------------------------------------------
    def request_params(self, model: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The generation settings a call to ``model`` sends (defaults < endpoint < call), logprobs added."""
        ep = self._endpoint(model)
        out = {**self.params, **ep.params, **(params or {})}
        if self.logprobs:
            out["logprobs"] = True
            out.setdefault("top_logprobs", self.top_logprobs)
        return out

    async def acomplete(self, model: str, messages: Sequence[Mapping[str, Any]], *,
                        params: Mapping[str, Any] | None = None, sample: int = 0,
                        prompt_id: str | None = None) -> Response:
        """One chat completion from ``model`` (cache first, then the endpoint with retries and fallbacks)."""
        gen = self.request_params(model, params)
        messages = [dict(m) for m in messages]
        key = None
        if self.cache is not None:
            from .cache import request_key

            key = request_key(model, messages, gen, sample)
            hit = self.cache.get(key)
            if hit is not None:
                self.stats["cache_hits"] += 1
                return self._response(model, hit.model, hit.response, hit.latency, cached=True,
                                      cost=(hit.cost, hit.cost_source), messages=messages, gen=gen)
            if key in self._inflight:
                return await asyncio.shield(self._inflight[key])
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        if key is not None:
            self._inflight[key] = fut
        try:
            resp = await self._with_fallbacks(model, messages, params, sample, prompt_id)
            if self.cache is not None and key is not None:
                self.cache.put(key, resp.model, {"model": model, "messages": messages, "params": gen, "sample": sample},
                               dict(resp.raw), resp.cost, resp.latency, resp.cost_source)
            fut.set_result(resp)
            return resp
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # mark retrieved: a shared failure is raised to every waiter, not logged as lost
            raise
        finally:
            if key is not None:
                self._inflight.pop(key, None)

    def _endpoint(self, model: str) -> Endpoint:
        try:
            return self.endpoints[model]
        except KeyError:
            raise ProviderError(f"no endpoint for model {model!r}; the live backend has {sorted(self.endpoints)}",
                                model=model) from None

    async def _with_fallbacks(self, model: str, messages: list[dict], params: Mapping[str, Any] | None, sample: int,
                              prompt_id: str | None) -> Response:
        """The model's answer, or its fallback's (each endpoint with its own defaults and retries)."""
        tried: list[str] = []
        name: str | None = model
        while name is not None and name not in tried:
            tried.append(name)
            ep = self._endpoint(name)
            try:
                resp = await self._with_retries(ep, messages, self.request_params(name, params), sample, prompt_id)
                return replace(resp, requested=model)
            except ProviderError as e:
                last = e
                if e.status in NO_FALLBACK_STATUS or ep.fallback is None:
                    break
                log.warning("falling back from %s to %s: %s", name, ep.fallback, e)
                self.stats["fallbacks"] += 1
                name = ep.fallback
        if len(tried) == 1:
            raise last
        raise ProviderError(f"{last} (tried {' -> '.join(tried)})", model=model, status=last.status)

    async def _with_retries(self, ep: Endpoint, messages: list[dict], gen: dict[str, Any], sample: int,
                            prompt_id: str | None) -> Response:
        limits = self._limits.get(ep.name)
        if limits is None:
            limits = self._limits[ep.name] = _Limits(ep, self.rate_limiter)
        attempt = 0
        while True:
            left = limits.cooling()
            if left > 0:
                self.stats["cooled_down"] += 1
                raise ProviderError(f"model {ep.name!r} is cooling down for {left:.1f}s after {ep.allowed_fails} failed "
                                    "attempts within a minute (circuit breaker)", model=ep.name)
            try:
                async with limits.sem:
                    est = _approx_tokens(messages, gen)
                    if limits.requests is not None:
                        await limits.requests.take(1)
                    if limits.tokens is not None:
                        est = await limits.tokens.take(est)  # a huge max_tokens takes a full bucket, no more
                    t0 = time.perf_counter()
                    raw = await self._send(ep, messages, gen, sample, prompt_id)
                    latency = time.perf_counter() - t0
                resp = self._response(ep.name, ep.name, raw, latency, cached=False, messages=messages, gen=gen,
                                      attempts=attempt + 1)
                if limits.tokens is not None:
                    total = resp.usage.get("total_tokens") if isinstance(resp.usage, Mapping) else None
                    if isinstance(total, (int, float)):
                        limits.tokens.adjust(float(total) - est)
                self.stats["calls"] += 1
                self.stats["spent"] += resp.cost
                limits.succeeded()
                return resp
            except Exception as e:  # noqa: BLE001 - every failure is classified, none is swallowed
                err = _classify(e, ep.name, self._secrets)
                opened = err.retryable and limits.failed(ep)
                if opened:
                    log.warning("%s cools down for %.1fs after %d failed attempts", ep.name, ep.cooldown,
                                ep.allowed_fails)
                if opened or not err.retryable or attempt >= ep.max_retries:
                    notes = ([f"after {attempt + 1} attempts"] if err.retryable and attempt else []) + (
                        [f"the endpoint now cools down for {ep.cooldown:g}s"] if opened else [])
                    if notes:
                        err = ProviderError(f"{err} ({'; '.join(notes)})", model=ep.name, status=err.status,
                                            retryable=True)
                    raise err from None
                delay = self._rng.uniform(0, min(self.retry_cap, self.retry_base * 2 ** attempt))
                if err.retry_after is not None:
                    delay = max(delay, min(err.retry_after, self.retry_cap))
                log.info("retrying %s in %.2fs (attempt %d): %s", ep.name, delay, attempt + 2, err)
                self.stats["retries"] += 1
                attempt += 1
                await asyncio.sleep(delay)

    async def _send(self, ep: Endpoint, messages: list[dict], gen: dict[str, Any], sample: int,
                    prompt_id: str | None) -> dict[str, Any]:
        key = ep.key()
        if key and key not in self._secrets:
            self._secrets.append(key)
        headers = {"x-callwise-sample": str(int(sample))}
        if prompt_id is not None:
            headers["x-callwise-prompt-id"] = str(prompt_id)
        if ep.transport == "http":
            return await self._send_http(ep, key, messages, gen, headers)
        litellm = _litellm()
        r = await litellm.acompletion(model=ep.model, messages=messages, api_base=ep.api_base, api_key=key,
                                      timeout=ep.timeout, max_retries=0, num_retries=0, extra_headers=headers, **gen)
        return r.model_dump()

    async def _send_http(self, ep: Endpoint, key: str | None, messages: list[dict], gen: dict[str, Any],
                         headers: dict[str, str]) -> dict[str, Any]:
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=256))
        if key:
            headers["authorization"] = f"Bearer {key}"
        model = ep.model.split("/", 1)[1] if ep.model.startswith("openai/") else ep.model
        r = await self._http.post(f"{ep.api_base}/chat/completions", json={"model": model, "messages": messages, **gen},
                                  headers=headers, timeout=ep.timeout)
        if r.status_code >= 400:
            try:
                msg = r.json()["error"]["message"]
            except Exception:  # noqa: BLE001 - a body that is not an OpenAI error is shown as text
                msg = r.text[:300]
            msg = _scrub(str(msg), self._secrets)  # an upstream may echo the key back (e.g. in a 401)
            raise ProviderError(f"model {ep.name!r} failed (HTTP {r.status_code}): {msg}", model=ep.name,
                                status=r.status_code,
                                retryable=r.status_code in RETRYABLE_STATUS or r.status_code >= 500,
                                retry_after=_retry_after_header(r.headers))
        return r.json()

    def _response(self, requested: str, model: str, raw: Mapping[str, Any], latency: float, *, cached: bool,
                  messages: list[dict], gen: Mapping[str, Any], cost: tuple[float, str] | None = None,
                  attempts: int = 1) -> Response:
        try:
            choice = raw["choices"][0]
            content = (choice.get("message") or {}).get("content") or ""
        except (KeyError, IndexError, TypeError):
            raise ProviderError(f"model {model!r} answered with no choices: not an OpenAI chat completion",
                                model=model) from None
        logprobs = choice.get("logprobs")
        if gen.get("logprobs") and not (isinstance(logprobs, Mapping) and logprobs.get("content")):
            raise ProviderError(f"model {model!r} returned no logprobs although they were requested; the policy's "
                                "confidence signal needs them: use a model or server that returns logprobs, or a "
                                "signal that does not (e.g. agreement)", model=model, status=400)
        usage = raw.get("usage") or {}
        if cost is None:
            prompt = "\n".join(str(m.get("content", "")) for m in messages)
            try:
                cost = self.prices.cost(self._price[model][0], usage, prompt, content, model)
            except PriceError as e:
                raise ProviderError(str(e), model=model, status=400) from None
        ext = raw.get("callwise")
        q = ext.get("quality") if isinstance(ext, Mapping) else None
        quality = float(q) if isinstance(q, (int, float)) and not isinstance(q, bool) else math.nan
        return Response(requested, model, content, logprobs, usage, float(cost[0]), cost[1], float(latency or 0.0),
                        cached, quality, attempts, raw)

    # -- batches -----------------------------------------------------------------------------------------
    def _runner(self) -> _Loop:
        """The backend's one event loop. Created under a lock: worker threads that make their first calls
        at once must not each start a loop (asyncio semaphores and HTTP clients belong to one loop; calls
        spread over several hung the server at 500 requests in flight)."""
        if self._loop is None:
            with self._loop_lock:
                if self._loop is None:
                    self._loop = _Loop()
        return self._loop

    async def acomplete_many(self, model: str, queries: Queries, sample: int = 0,
                             progress: Callable[[Response | BaseException], None] | None = None
                             ) -> list[Response | BaseException]:
        """Every query of the batch at once (the endpoint's limits pace them); failures are returned, not raised."""
        async def one(i: int) -> Response | BaseException:
            try:
                r: Response | BaseException = await self.acomplete(
                    model, _messages(queries, i), params=None if queries.params is None else queries.params[i],
                    sample=sample, prompt_id=str(queries.ids[i]) if self.send_ids else None)
            except Exception as e:  # noqa: BLE001 - returned to the caller, who reports them all
                r = e
            if progress is not None:
                progress(r)
            return r
        return list(await asyncio.gather(*(one(i) for i in range(len(queries)))))

    def complete_many(self, model: str, queries: Queries, sample: int = 0,
                      progress: Callable[[Response | BaseException], None] | None = None
                      ) -> list[Response | BaseException]:
        """Synchronous :meth:`acomplete_many` (runs on the backend's loop)."""
        return self._runner().run(self.acomplete_many(model, queries, sample, progress))

    def call(self, model: str, queries: Queries, sample: int = 0) -> Calls:
        """Call ``model`` once on every query, concurrently; the policy's view of the answers.

        Every finished response is cached even when others fail; then the first failure is raised
        (with how many failed), so a re-run resumes where this one stopped.
        """
        if model not in self.endpoints:
            raise ProviderError(f"no endpoint for model {model!r}; the live backend has {sorted(self.endpoints)}",
                                model=model)
        got = self.complete_many(model, queries, sample)
        return calls_from_responses(model, got)


def _messages(queries: Queries, i: int) -> list[dict[str, Any]]:
    if queries.messages is not None and queries.messages[i] is not None:
        return list(queries.messages[i])
    return [{"role": "user", "content": str(queries.prompts[i])}]


def calls_from_responses(model: str, got: Sequence[Response | BaseException]) -> Calls:
    """The :class:`Calls` of a batch of responses; the first failure is raised, naming how many failed."""
    failed = [r for r in got if isinstance(r, BaseException)]
    if failed:
        first = failed[0]
        if isinstance(first, ProviderError):
            raise ProviderError(f"{len(failed)} of {len(got)} calls to {model!r} failed; first: {first}",
                                model=model, status=first.status) from first
        raise first
    rs: list[Response] = list(got)  # type: ignore[arg-type]
    answers = np.array([r.content for r in rs], dtype=object)
    has_lp = any(r.logprobs for r in rs)
    conf = np.array([r.confidence for r in rs]) if has_lp else None
    return Calls(model, np.array([r.quality for r in rs], dtype=float), np.array([r.cost for r in rs], dtype=float),
                 answers, np.array([r.latency for r in rs], dtype=float), conf,
                 [r.logprobs for r in rs] if has_lp else None, responses=rs)
