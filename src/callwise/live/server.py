"""``callwise serve``: fitted policies as an OpenAI-compatible chat endpoint.

A client talks to callwise as to any OpenAI-compatible server and names a *policy* as its model:
``callwise/<name>`` (the policy file's stem), or ``callwise/<name>@<value>`` to set the policy's
knob (λ of a router, the dollar budget of a cascade). The policy decides which models to call —
through the live backend (:mod:`callwise.live.backend`: LiteLLM, retries, fallbacks, cache,
prices) — and the answer comes back as a ``chat.completion`` (or its SSE stream) with

- the cost: ``usage.cost`` (dollars this request spent; cache hits are free) and the header
  ``x-callwise-cost``;
- which model answered and every call made: ``usage.callwise`` and the headers
  ``x-callwise-model`` / ``x-callwise-models``.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``.

- **Auth**: with API keys configured, a bearer token is required (401 otherwise).
- **Per-key budgets** (dollars per UTC day): past ``soft`` of the day's budget the key's policy
  is moved toward cheaper choices (:meth:`~callwise.core.policy.Policy.cheaper`, pressure
  rising from 0 at ``soft`` to 1 at the full budget); once the budget is spent, 429 with a clear
  message until midnight UTC. Requests in flight at the same time can overshoot by their own cost.
- **Multi-turn**: the policy sees the whole conversation (rendered as ``role: content`` lines);
  a conversation stays on the model that answered its previous turn unless the policy escalates
  to a dearer one (see :class:`~callwise.live.recording.Recording`).
- **Cascades** serve their offline thresholds with a :class:`~callwise.core.budget.BudgetLedger`
  per policy: the budget guard spends slack earned by earlier requests, as a stream would.
- **State** (:mod:`callwise.live.state`): key spend and holds, the cascades' ledgers and the
  conversations' floors live in one store — memory, SQLite (survives a restart) or Redis (shared
  by every instance behind a load balancer).
- **Errors**: invalid requests get OpenAI-style 4xx bodies naming the field; an upstream failure
  (after retries and fallbacks) answers 502 with the provider's message, keys scrubbed.

Streaming sends the chosen answer as SSE chunks once the policy has it: a cascade must see a whole
answer before it can decide to escalate, so callwise does not relay upstream tokens as they come.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..core.backend import Queries
from ..core.budget import BudgetLedger
from ..core.errors import CallwiseError, DataError, PolicyError
from ..core.policy import Policy, check_settings, policy_models
from .backend import Live, ProviderError
from .chat import RequestError, check_request, render
from .http_util import install_openai_errors, openai_error
from .observability import log_access
from .recording import Attempts, Recording
from .state import MemoryStore, SpendStore, StoredLedger

PREFIX = "callwise/"
#: Largest request body read (bytes): a bigger one is refused with 413 before it is read.
MAX_BODY = 4 * 1024 * 1024


@dataclass
class Served:
    """One policy the server offers, with the state it keeps across requests."""

    name: str
    policy: Policy
    ledger: BudgetLedger
    rank: dict[str, float]  # model -> mean cost (conversations never drop to a cheaper model)
    max_seen: float = 0.0  # the dearest request served so far (uncached dollars): a floor for reservations


@dataclass(frozen=True)
class Hold:
    """Dollars a request holds of its key's budget while it runs (see :meth:`KeyBudgets.reserve`)."""

    key: str | None
    day: str
    dollars: float


class KeyBudgets:
    """API keys and their daily dollar budgets (None: no budget), with spend per UTC day in a store.

    ``store`` (:mod:`callwise.live.state`): in memory by default; SQLite keeps spend across
    restarts; Redis shares spend and holds between instances.
    """

    def __init__(self, keys: Mapping[str, float | None] | None = None, *, soft: float = 0.5,
                 store: SpendStore | None = None) -> None:
        if not 0.0 <= soft < 1.0:
            raise DataError(f"the soft budget share must be in [0, 1), got {soft!r}", column="soft")
        for k, b in (keys or {}).items():
            if not isinstance(k, str) or not k:
                raise DataError("API keys must be non-empty strings", column="keys")
            if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b <= 0):
                raise DataError(f"a key's daily budget must be a number of dollars > 0, got {b!r}", column="budget")
        self.keys = dict(keys or {})
        self.soft = float(soft)
        self.store: SpendStore = store if store is not None else MemoryStore()

    @property
    def required(self) -> bool:
        return bool(self.keys)

    @staticmethod
    def today() -> str:
        return datetime.now(timezone.utc).strftime("%Y-%m-%d")

    def authenticate(self, header: str | None) -> str | None:
        """The key of a request (None when no keys are configured); 401 otherwise."""
        if not self.keys:
            return None
        token = header[7:].strip() if header and header[:7].lower() == "bearer " else None
        if token is None:
            raise RequestError(401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key",
                               type="authentication_error")
        if token not in self.keys:
            raise RequestError(401, "invalid API key", code="invalid_api_key", type="authentication_error")
        return token

    def spent(self, key: str | None) -> float:
        return self.store.spent(key or "", self.today())

    def pressure(self, key: str | None) -> float:
        """How far to move toward cheaper choices (0..1); 429 once the day's budget is spent."""
        budget = self.keys.get(key) if key is not None else None
        if budget is None:
            return 0.0
        spent = self.spent(key)
        if spent >= budget:
            raise RequestError(429, f"this API key has spent ${spent:.4f} of its ${budget:.4f} daily budget; "
                                    "it resets at 00:00 UTC", code="budget_exceeded", type="insufficient_quota")
        share = spent / budget
        return float(min(max((share - self.soft) / (1.0 - self.soft), 0.0), 1.0))

    def charge(self, key: str | None, dollars: float) -> None:
        if dollars:
            self.store.charge(key or "", self.today(), float(dollars))

    def reserve(self, key: str | None, dollars: float) -> Hold:
        """Hold ``dollars`` of the key's budget for a request about to run; 429 when spend and holds reach it.

        Admission compares what is spent *and held* with the budget (atomically in the store, across
        instances with Redis), so requests in flight together cannot each see the same unspent
        dollars: the day's spend can pass the budget by at most one request's cost beyond its hold.
        A key without a budget holds nothing.
        """
        day = self.today()
        budget = self.keys.get(key) if key is not None else None
        if budget is None:
            return Hold(None, day, 0.0)
        if not self.store.reserve(key, day, float(dollars), float(budget)):  # type: ignore[arg-type]
            spent, held = self.store.spent(key, day), self.store.held(key, day)  # type: ignore[arg-type]
            raise RequestError(429, f"this API key has spent ${spent:.4f} (and holds ${held:.4f} for requests in "
                                    f"flight) of its ${budget:.4f} daily budget; it resets at 00:00 UTC",
                               code="budget_exceeded", type="insufficient_quota")
        return Hold(key, day, float(dollars))

    def release(self, hold: Hold) -> None:
        """Give back a hold once its request is charged (or failed)."""
        if hold.key is not None:
            self.store.release(hold.key, hold.day, hold.dollars)

    def held(self, key: str | None) -> float:
        return self.store.held(key or "", self.today())

    @classmethod
    def load(cls, path: str | Path, *, soft: float = 0.5, store: SpendStore | None = None) -> "KeyBudgets":
        """Keys from YAML/JSON: ``keys: {KEY: {budget: 5.0}, OTHER: {}}`` (budget: dollars per day)."""
        from ..core.files import read_text

        path = Path(path)
        try:
            import yaml

            data = yaml.safe_load(read_text(path, "a keys file (YAML: keys -> budgets)"))
        except CallwiseError:
            raise
        except Exception as e:
            raise DataError(f"unreadable keys file: {e}", file=str(path)) from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), dict) or not data["keys"]:
            raise DataError("a keys file needs a non-empty 'keys' mapping of key -> {budget: dollars per day}",
                            file=str(path), column="keys")
        keys: dict[str, float | None] = {}
        for i, (k, v) in enumerate(data["keys"].items(), 1):
            v = v or {}
            if not isinstance(v, dict) or set(v) - {"budget"}:
                raise DataError(f"key #{i}: expected a mapping with an optional 'budget' (dollars per day)",
                                file=str(path), column=f"keys[{i}]")
            keys[str(k)] = v.get("budget")
        try:
            return cls(keys, soft=soft, store=store)
        except DataError as e:
            raise DataError(e.detail, file=str(path), column=e.column) from None


class Conversations:
    """Which model answered each conversation's last turn, kept in the server's state store.

    A conversation is named by a digest of its messages; the store keeps the most recent ones (in
    memory or SQLite) or each for a week after its last turn (Redis), so a conversation keeps its
    floor when its next turn reaches another instance or a restarted one.
    """

    def __init__(self, store: SpendStore | None = None, capacity: int | None = None) -> None:
        self.store: SpendStore = store if store is not None else MemoryStore()
        if capacity is not None and hasattr(self.store, "floors"):
            self.store.floors = int(capacity)  # type: ignore[attr-defined]

    @staticmethod
    def key(messages: Sequence[Mapping[str, Any]]) -> str:
        blob = json.dumps([[m.get("role"), m.get("content")] for m in messages], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def model_for(self, messages: Sequence[Mapping[str, Any]]) -> str | None:
        """The model that answered the conversation so far (the messages before the last one)."""
        if len(messages) < 2:
            return None
        return self.store.floor(self.key(messages[:-1]))

    def remember(self, messages: Sequence[Mapping[str, Any]], answer: str, model: str) -> None:
        self.store.floor_set(self.key([*messages, {"role": "assistant", "content": answer}]), model)


def _model_rank(policy: Policy, live: Live) -> dict[str, float]:
    """Each model's cost rank: the policy's mean training cost where it has one, else its list price."""
    rank: dict[str, float] = {}
    models, cost = getattr(policy, "models_", None), getattr(policy, "cost_", None)
    if models is not None and cost is not None and len(models) == len(np.atleast_1d(cost)):
        rank.update({m: float(c) for m, c in zip(models, np.atleast_1d(cost))})
    costs = getattr(policy, "costs_", None)
    if models is not None and costs is not None and not rank:
        try:
            rank.update({m: float(c) for m, c in zip(models, costs.predict(np.array([""], dtype=object))[0])})
        except Exception:  # noqa: BLE001 - fall back to list prices below
            pass
    for m, (price, _) in live._price.items():
        rank.setdefault(m, price.input_per_1m + price.output_per_1m + price.per_call * 1e3)
    return rank


class PolicyServer:
    """The state behind the app: policies by name, the live backend, keys and conversations."""

    def __init__(self, policies: Mapping[str, Policy], backend: Live, *, keys: KeyBudgets | None = None,
                 conversations: int = 100_000, max_batch: int = 64, workers: int = 4,
                 max_body: int = MAX_BODY, admin_key: str | None = None) -> None:
        if not policies:
            raise PolicyError("callwise serve needs at least one policy")
        missing = sorted({m for p in policies.values() for m in policy_models(p)} - set(backend.models))
        if missing:
            raise PolicyError(f"the policies call model(s) {missing} that have no endpoint; endpoints are "
                              f"{sorted(backend.models)}")
        # logprobs are asked for per policy, on its own calls (decide_batch): a router and a logprob
        # cascade share one backend, and the router's models need not return logprobs
        self.backend = backend
        backend.send_ids = False  # request ids are made up here: upstreams match on the prompt text
        self.keys = keys or KeyBudgets()
        self.served: dict[str, Served] = {}
        for n, p in policies.items():  # a cascade's budget ledger lives in the store, shared by instances
            ledger = StoredLedger(self.keys.store, n)
            self.served[n] = Served(n, _servable(p, ledger), ledger, _model_rank(p, backend))
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1024:
            raise DataError(f"the request body limit must be a whole number of bytes >= 1024, got {max_body!r}",
                            column="max_body")
        self.max_body = max_body
        if admin_key is not None and (not isinstance(admin_key, str) or not admin_key):
            raise DataError("the admin key must be a non-empty string", column="admin_key")
        self.admin_key = admin_key
        from .observability import Metrics

        self.metrics = Metrics()
        self.conversations = Conversations(self.keys.store, conversations)
        self.started = time.time()
        self.requests = 0
        self.batches = 0
        self._batcher = _Batcher(self._run_group, max_batch=max_batch, workers=workers)
        from threadpoolctl import threadpool_limits

        # Process-wide on purpose: concurrency comes from requests (worker threads deciding batches), and
        # BLAS threads per decision only contend with them (8 requests/s with 64 in flight without this).
        threadpool_limits(1)

    # -- one request -----------------------------------------------------------------------------
    def resolve(self, model: str) -> tuple[Served, Policy, dict[str, Any]]:
        """The policy a model string names, with its knob set; 404/400 otherwise."""
        name = model[len(PREFIX):] if model.startswith(PREFIX) else model
        name, _, knob = name.partition("@")
        served = self.served.get(name)
        if served is None:
            raise RequestError(404, f"the model {model!r} does not exist; this server serves "
                                    f"{[PREFIX + n for n in self.served]}", param="model", code="model_not_found")
        policy = served.policy
        setting: dict[str, Any] = {}
        if knob:
            if policy.knob is None:
                raise RequestError(400, f"policy {name!r} has no knob to set with '@{knob}'", param="model")
            try:
                value = float(knob)
                if not math.isfinite(value):
                    raise ValueError
            except ValueError:
                raise RequestError(400, f"the knob value in {model!r} must be a number, e.g. {PREFIX}{name}@0.002",
                                   param="model") from None
            if value < 0:
                raise RequestError(400, f"the knob value in {model!r} must be >= 0 (a policy's {policy.knob} is never "
                                        "negative)", param="model")
            try:
                policy = policy.at_knob(value)
                check_settings(policy)  # the setting a request asks for is valid before any call
            except PolicyError as e:
                raise RequestError(400, f"{model!r}: {e}", param="model") from None
            setting[policy.knob or "knob"] = value
        return served, policy, setting

    def decide_batch(self, served: Served, policy: Policy, items: Sequence[tuple[list[dict[str, Any]], dict[str, Any],
                     str | None]], floor: str | None, pressure: float, *, rids: Sequence[str] | None = None,
                     attempts: Attempts | None = None) -> list[dict[str, Any]]:
        """Run the policy once on a batch of conversations that share a policy setting, floor and pressure.

        Blocking (a worker thread calls it). Returns one result per conversation: the answer, the
        model that gave it, every call made for it, and what it cost. ``rids`` and ``attempts`` carry
        the batch's request ids and calls across re-decisions (see :meth:`_run_group`).
        """
        if pressure > 0:
            policy = policy.cheaper(pressure)
        rec = Recording(self.backend, floor=floor, rank=served.rank, logprobs=policy.needs_logprobs(),
                        top_logprobs=self.backend.top_logprobs, attempts=attempts)
        rids = list(rids) if rids is not None else [uuid.uuid4().hex for _ in items]
        q = Queries(_obj(rids), _obj([render(m) for m, _, _ in items]), _obj(["live"] * len(items)),
                    _obj([m for m, _, _ in items]), _obj([p for _, p, _ in items]))
        d = policy.decide(q, rec)
        where = [{rid: j for j, rid in enumerate(c.ids)} for c in rec.log]  # type: ignore[arg-type]
        out = []
        for i, (rid, (messages, _, key)) in enumerate(zip(rids, items)):
            answer = "" if d.answers is None or d.answers[i] is None else str(d.answers[i])
            asked = d.models[d.chosen[i]] if d.chosen[i] >= 0 else None
            calls, spent, nominal, usage = [], 0.0, 0.0, {"prompt_tokens": 0, "completion_tokens": 0}
            answered_by = None
            for c, pos in zip(rec.log, where):
                j = pos.get(rid)
                if j is None:
                    continue
                r = c.calls.responses[j] if c.calls.responses else None
                cost = float(c.calls.cost[j])
                cached = bool(r.cached) if r is not None else False
                if r is not None and attempts is not None:
                    if id(r) in attempts.charged:  # the same response reused twice in one decision
                        cost, cached = 0.0, True
                    attempts.charged.add(id(r))
                by = r.model if r is not None else c.sent_to
                calls.append({"model": c.requested, "served_by": by, "cost": cost, "cached": cached})
                nominal += cost
                spent += 0.0 if cached else cost
                for k in usage:
                    v = (r.usage or {}).get(k) if r is not None else None
                    usage[k] += int(v) if isinstance(v, (int, float)) else 0
                if c.requested == asked:
                    answered_by = by
            answered_by = answered_by or (calls[-1]["served_by"] if calls else None)
            self.keys.charge(key, spent)
            if answered_by is not None:
                self.conversations.remember(messages, answer, answered_by)
            out.append({"answer": answer, "answered_by": answered_by, "calls": calls, "cost": spent,
                        "cost_uncached": nominal, "usage": usage, "pressure": pressure})
        self.requests += len(items)
        self.batches += 1
        return out

    async def submit(self, served: Served, policy: Policy, setting: dict[str, Any], messages: list[dict[str, Any]],
                     params: dict[str, Any], key: str | None) -> dict[str, Any]:
        """Queue one conversation; requests that arrive together are decided in one batch (see :class:`_Batcher`)."""
        pressure = round(self.keys.pressure(key), 2)  # a spent budget is refused here, before any work
        hold = self.keys.reserve(key, max(request_cost_bound(policy, render(messages)), served.max_seen))
        try:
            floor = self.conversations.model_for(messages)
            group = (served.name, tuple(sorted(setting.items())), pressure, floor)
            out = await self._batcher.submit(group, (served, policy, floor, pressure), (messages, params, key))
        finally:
            self.keys.release(hold)
        served.max_seen = max(served.max_seen, float(out["cost_uncached"]))
        return {**out, "held": hold.dollars}

    def _run_group(self, head: tuple[Served, Policy, str | None, float], items: list[Any]) -> list[Any]:
        """Decide a batch; a failed upstream call fails only its own request.

        When a call fails, the requests whose calls failed get the error and the others are decided
        again at once, without them: every call already made in the batch is reused, not made again
        (:class:`~callwise.live.recording.Attempts`). Money stays accounted: a call made for a request
        that then failed, or made in an attempt the final decision did not use, is charged to the key
        of the request it was made for, so what is spent upstream equals what is charged to keys.
        """
        served, policy, floor, pressure = head
        rids = [uuid.uuid4().hex for _ in items]
        attempts = Attempts()
        out: list[Any] = [None] * len(items)
        alive = list(range(len(items)))
        while alive:
            try:
                got = self.decide_batch(served, policy, [items[i] for i in alive], floor, pressure,
                                        rids=[rids[i] for i in alive], attempts=attempts)
            except ProviderError as e:
                dead = [i for i in alive if rids[i] in attempts.failed]
                if not dead:  # a failure not tied to a request of this batch: every request gets it
                    dead = list(alive)
                for i in dead:
                    err = attempts.failed.get(rids[i], e)
                    out[i] = err if isinstance(err, CallwiseError) else ProviderError(str(err))
                alive = [i for i in alive if i not in dead]
                continue
            for i, r in zip(alive, got):
                out[i] = r
            break
        key_of = {rids[i]: items[i][2] for i in range(len(items))}
        for k, r in attempts.done.items():  # calls no final decision charged (failed requests, unused attempts)
            if id(r) not in attempts.charged and not r.cached:
                self.keys.charge(key_of[k[1]], float(r.cost))
                attempts.charged.add(id(r))
        return out

    # -- the app ----------------------------------------------------------------------------------------
    def app(self) -> FastAPI:
        """The FastAPI application."""
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> Any:
            # the transport loads before the server accepts a connection, so /health says ok only
            # once a request can be served without a multi-second import on its path
            await run_in_threadpool(self.backend.warm)
            yield

        app = FastAPI(title="callwise", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
        install_openai_errors(app)

        def fail(e: RequestError) -> Any:
            return openai_error(e.status, str(e), type=e.type, param=e.param, code=e.code)

        def is_admin(request: Request) -> bool:
            h = request.headers.get("authorization") or ""
            return self.admin_key is not None and h[:7].lower() == "bearer " and h[7:].strip() == self.admin_key

        @app.get("/health")
        async def health(request: Request) -> Any:
            """"ok" to anyone; the details (requests, uptime, upstream counters) to the admin key only."""
            if not is_admin(request):
                return {"status": "ok"}
            return {"status": "ok", "policies": len(self.served), "requests": self.requests,
                    "uptime_s": round(time.time() - self.started, 1), "backend": dict(self.backend.stats)}

        @app.get("/metrics")
        async def metrics(request: Request) -> Any:
            """Prometheus metrics; with an admin key configured, only for it."""
            if self.admin_key is not None and not is_admin(request):
                return openai_error(401, "the metrics need the admin key: send 'Authorization: Bearer <admin key>'",
                                    type="authentication_error", code="invalid_api_key")
            body, ctype = self.metrics.render()
            return Response(body, media_type=ctype)

        @app.get("/v1/models")
        async def models(request: Request) -> Any:
            try:
                self.keys.authenticate(request.headers.get("authorization"))
            except RequestError as e:
                return fail(e)
            data = [{"id": PREFIX + s.name, "object": "model", "created": int(self.started), "owned_by": "callwise",
                     "callwise": {"policy": s.policy.name, "family": s.policy.family, "knob": s.policy.knob,
                                  "models": policy_models(s.policy)}} for s in self.served.values()]
            return {"object": "list", "data": data}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            started, request_id = time.perf_counter(), uuid.uuid4().hex
            key: str | None = None
            name = "-"

            def done(resp: Any, status: int, kind: str | None = None, out: dict[str, Any] | None = None,
                     error: str | None = None) -> Any:
                self.metrics.observe(policy=name, status=status, seconds=time.perf_counter() - started, kind=kind,
                                     out=out, key=key)
                log_access(request_id, "/v1/chat/completions", status, started, policy=name, key=key, out=out,
                           error=error)
                resp.headers["x-request-id"] = request_id
                return resp

            try:
                key = self.keys.authenticate(request.headers.get("authorization"))
                body = parse_body(await read_body(request, self.max_body))
                model, messages, params, stream, include_usage = check_request(body)
                served, policy, setting = self.resolve(model)
                name = served.name
                out = await self.submit(served, policy, setting, messages, params, key)
            except RequestError as e:
                return done(fail(e), e.status, e.code or e.type, error=str(e))
            except ProviderError as e:
                return done(openai_error(502, f"upstream failure: {e}", type="upstream_error", code="upstream_failed"),
                            502, "upstream", error=str(e))
            except CallwiseError as e:
                return done(openai_error(500, f"the policy failed: {e}", type="server_error", code="policy_failed"),
                            500, "policy", error=str(e))
            usage = {**out["usage"], "total_tokens": out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"],
                     "cost": out["cost"],
                     "callwise": {"policy": served.policy.name, "setting": setting, "answered_by": out["answered_by"],
                                  "calls": out["calls"], "cost_uncached": out["cost_uncached"],
                                  "budget_pressure": out["pressure"], "budget_held": out.get("held", 0.0)}}
            headers = {"x-callwise-cost": f"{out['cost']:.10g}", "x-callwise-model": str(out["answered_by"]),
                       "x-callwise-models": ",".join(c["served_by"] for c in out["calls"])}
            rid, created = f"chatcmpl-cw-{uuid.uuid4().hex[:24]}", int(time.time())
            if not stream:
                return done(JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": model,
                                          "choices": [{"index": 0, "message": {"role": "assistant",
                                                                               "content": out["answer"]},
                                                       "finish_reason": "stop", "logprobs": None}],
                                          "usage": usage}, headers=headers), 200, out=out)
            return done(StreamingResponse(_sse(rid, created, model, out["answer"], usage if include_usage else None),
                                          media_type="text/event-stream", headers=headers), 200, out=out)

        return app


def request_cost_bound(policy: Policy, prompt: str) -> float:
    """What one request may cost, from the policy's fitted expected-cost model, for a key's hold.

    A cascade may call every model of its chain (each as many times as it samples): the sum of
    their expected costs for this prompt; a router calls one: the dearest. Twice that, since the
    expected cost of a call is not its maximum. Policies without a cost model hold nothing here;
    the server then holds the dearest request it has served (``Served.max_seen``).
    """
    inner = getattr(policy, "cascade_", None)  # route-then-escalate: its cascade's chain
    model = getattr(policy, "costs_", None) or getattr(inner, "costs_", None)
    if model is None or not hasattr(model, "predict"):
        return 0.0
    try:
        c = np.asarray(model.predict(np.array([prompt], dtype=object)), dtype=float)[0]
    except Exception:  # noqa: BLE001 - a hold is an estimate; max_seen still applies
        return 0.0
    chain = hasattr(policy, "reference_") or inner is not None
    return 2.0 * float(np.nansum(c) if chain else np.nanmax(c))


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or a 413 as soon as it passes ``limit`` bytes (by its Content-Length, else while reading)."""
    declared = request.headers.get("content-length")
    too_big = RequestError(413, f"the request body is larger than the server's limit of {limit:,} bytes",
                           code="request_too_large")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes) -> Any:
    """The JSON body, or a 400 that says what is wrong (invalid JSON, nested too deep, not valid Unicode)."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError(400, "the request body is not valid JSON") from None
    except RecursionError:
        raise RequestError(400, "the request body is nested too deeply") from None
    try:  # a lone surrogate ("\\ud800") parses, but no upstream can be sent it
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(400, "the request body holds a string that is not valid Unicode (a lone surrogate such as "
                                "\\ud800)") from None
    except RecursionError:
        raise RequestError(400, "the request body is nested too deeply") from None
    return body


class _Batcher:
    """Micro-batching: requests for the same policy setting that arrive while others are being decided wait
    in a queue and are decided together — one featurisation and one concurrent round of upstream calls
    per batch instead of one per request. Up to ``workers`` batches per group run at once (each in a
    worker thread); a lone request is decided at once, so sequential latency does not change."""

    def __init__(self, run: Any, *, max_batch: int = 64, workers: int = 4) -> None:
        self.run = run
        self.max_batch = max_batch
        self.workers = workers
        self._queues: dict[Any, asyncio.Queue] = {}
        self._tasks: dict[Any, list[asyncio.Task]] = {}

    async def submit(self, group: Any, head: Any, item: Any) -> Any:
        q = self._queues.get(group)
        if q is None:
            q = self._queues[group] = asyncio.Queue()
            self._tasks[group] = [asyncio.create_task(self._work(q)) for _ in range(self.workers)]
        fut = asyncio.get_running_loop().create_future()
        q.put_nowait((head, item, fut))
        res = await fut
        if isinstance(res, BaseException):
            raise res
        return res

    async def _work(self, q: asyncio.Queue) -> None:
        while True:
            head, item, fut = await q.get()
            batch = [(item, fut)]
            while len(batch) < self.max_batch and not q.empty():
                _, it, f = q.get_nowait()
                batch.append((it, f))
            try:
                results = await run_in_threadpool(self.run, head, [it for it, _ in batch])
            except BaseException as e:  # noqa: BLE001 - handed to every waiting request
                results = [e] * len(batch)
            for (_, f), r in zip(batch, results):
                if not f.done():
                    f.set_result(r)


def _sse(rid: str, created: int, model: str, answer: str, usage: dict[str, Any] | None):
    """The answer as OpenAI ``chat.completion.chunk`` server-sent events."""
    def chunk(delta: dict[str, Any], finish: str | None = None, choices: bool = True, **extra: Any) -> str:
        body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
    yield chunk({"role": "assistant", "content": ""})
    words = answer.split(" ")
    step = max(1, math.ceil(len(words) / 16))
    for i in range(0, len(words), step):
        piece = " ".join(words[i:i + step])
        yield chunk({"content": piece if i == 0 else " " + piece})
    yield chunk({}, "stop")
    if usage is not None:
        yield chunk({}, choices=False, usage=usage)
    yield "data: [DONE]\n\n"


def _obj(items: list[Any]) -> np.ndarray:
    a = np.empty(len(items), dtype=object)
    a[:] = items
    return a


def _servable(policy: Policy, ledger: BudgetLedger) -> Policy:
    """Cascades keep their budget across requests in a ledger (and serve their offline thresholds)."""
    with_ledger = getattr(policy, "with_ledger", None)
    return with_ledger(ledger) if with_ledger is not None else policy


def load_policies(paths: Sequence[str | Path]) -> dict[str, Policy]:
    """Policy files by name (each file's stem); two files with one stem is an error."""
    from ..core.policy_files import load_policy

    out: dict[str, Policy] = {}
    for p in paths:
        p = Path(p)
        name = p.stem
        if name in out:
            raise PolicyError(f"two policy files are named {name!r}; rename one (the name is the model clients ask for)")
        out[name] = load_policy(p)
    return out


def serve(app: Any, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run ``app`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
