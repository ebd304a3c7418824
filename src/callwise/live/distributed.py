"""Live runs on Ray: ``callwise collect`` / ``callwise run`` with ``--ray [ADDRESS]`` (docs/scale.md).

The prompts are split into shards of ``shard_size`` consecutive prompts; each shard is one Ray task
(retried by Ray when its worker dies: ``max_retries``) that builds its own :class:`Live` backend from
the driver's settings and runs the same code as the single-process path on its prompts
(:func:`callwise.live.runs.collect` / :func:`~callwise.live.runs.run_policy`'s row makers).

- **One rate limiter per job.** When any endpoint has ``rpm`` / ``tpm``, the driver starts one Ray
  actor holding every model's token buckets; each worker's backend reserves from it before each
  request (:class:`SharedLimits`), so the limits hold for the job as a whole, not per worker. The
  concurrency bound (``max_concurrency``) and the circuit breaker stay per worker.
- **Shards on disk, written by the driver.** Workers return their rows; the driver writes each
  finished shard as Parquet under the shards folder and records it in ``manifest.json`` (the job's
  fingerprint — a hash of the models, prompts, policy and settings —, and per shard its prompt range,
  row count and the files' SHA-256). A re-run of the same job skips the shards the manifest lists
  (whose files still match their hash); a manifest of a different job is refused with an error that
  names what differs. Workers need no shared filesystem.
- **The same table.** The driver grades and builds the table from every shard's rows with the
  single-process code, so it equals a single-process run's (rows, costs, answers; latencies are
  measured per call). A run's shards are whole chunks of the policy (its shard size is a multiple of
  256 prompts), so each decides the same chunks as one process; a policy that keeps a budget ledger
  across chunks (a budget-guarded cascade) gets the ledger the previous shard left — its shards'
  decisions then run one after another (a Ray dependency), each with its calls in flight at once.

Ray is imported only here, when a job asks for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import CallwiseError, DataError
from ..core.files import atomic_write, json_default
from ..core.policy import Policy
from .backend import Endpoint, Live
from .prices import LivePrices
from .prompts import Prompts

#: Prompts per shard by default: several policy chunks (256), small enough to lose little to a dead worker.
DEFAULT_SHARD_SIZE = 512
#: How often Ray re-runs a shard whose worker died (a failure of the call itself is not retried by Ray:
#: the backend retries calls, and an error that survives them is reported).
MAX_RETRIES = 3
MANIFEST = "manifest.json"
FORMAT = "callwise-shards"
FORMAT_VERSION = 1


# -- the shared rate limiter ---------------------------------------------------------------------------

class _Reservoir:
    """A token bucket that lends: a reservation always succeeds and says how long to wait before using
    it (the bucket may go into debt), so a caller waits locally, not inside the limiter. Refilled at
    ``per_minute`` / 60 per second, holding at most one minute's worth (as the local buckets)."""

    def __init__(self, per_minute: float) -> None:
        self.capacity = float(per_minute)
        self.rate = float(per_minute) / 60.0
        self.level = self.capacity
        self.stamp = time.monotonic()

    def reserve(self, n: float) -> tuple[float, float]:
        n = min(float(n), self.capacity)
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        self.level -= n
        return max(0.0, -self.level) / self.rate, n

    def adjust(self, delta: float) -> None:
        self.level = min(self.capacity, self.level - float(delta))


class RateLimiter:
    """The job's one rate limiter (run as a Ray actor): every model's request and token buckets."""

    def __init__(self, limits: dict[str, tuple[float | None, float | None]]) -> None:
        self._buckets: dict[tuple[str, str], _Reservoir] = {}
        for model, (rpm, tpm) in limits.items():
            if rpm:
                self._buckets[(model, "requests")] = _Reservoir(rpm)
            if tpm:
                self._buckets[(model, "tokens")] = _Reservoir(tpm)
        self.reserved: dict[str, float] = {}
        self.callers: dict[str, int] = {}

    def reserve(self, model: str, kind: str, n: float, caller: str = "") -> tuple[float, float]:
        """(seconds to wait, amount taken) for ``n`` of ``kind`` (requests | tokens) of ``model``."""
        key = f"{model}/{kind}"
        self.reserved[key] = self.reserved.get(key, 0.0) + float(n)
        self.callers[caller] = self.callers.get(caller, 0) + 1
        return self._buckets[(model, kind)].reserve(n)

    def adjust(self, model: str, kind: str, delta: float) -> None:
        self._buckets[(model, kind)].adjust(delta)

    def stats(self) -> dict[str, Any]:
        """What was reserved per model and kind, and how many reservations each caller (worker) made."""
        return {"reserved": dict(self.reserved), "callers": dict(self.callers), "pid": os.getpid()}


class _RemoteBucket:
    """A worker's view of one bucket of the job's limiter (what :class:`~callwise.live.backend._Limits` takes)."""

    def __init__(self, actor: Any, model: str, kind: str) -> None:
        self.actor, self.model, self.kind = actor, model, kind
        self.caller = f"{socket.gethostname()}:{os.getpid()}"

    async def take(self, n: float) -> float:
        ref = self.actor.reserve.remote(self.model, self.kind, n, self.caller)
        wait, taken = await asyncio.wrap_future(ref.future())
        if wait > 0:
            await asyncio.sleep(wait)
        return float(taken)

    def adjust(self, delta: float) -> None:
        self.actor.adjust.remote(self.model, self.kind, delta)


@dataclass(frozen=True)
class SharedLimits:
    """The job's limiter as a backend's ``rate_limiter``: each limited model's buckets live in ``actor``."""

    actor: Any
    limited: dict[str, tuple[bool, bool]]  # model -> (has rpm, has tpm)

    def buckets(self, ep: Endpoint) -> tuple[Any, Any]:
        rpm, tpm = self.limited.get(ep.name, (False, False))
        return (_RemoteBucket(self.actor, ep.name, "requests") if rpm else None,
                _RemoteBucket(self.actor, ep.name, "tokens") if tpm else None)


# -- the backend a worker builds -------------------------------------------------------------------------

@dataclass(frozen=True)
class BackendSpec:
    """What a worker needs to build the driver's :class:`Live` backend (keys resolved on the driver, so
    workers need no key variables; the cache is a path, opened on the worker's node)."""

    endpoints: dict[str, Endpoint]
    cache: str | None
    prices: LivePrices
    params: dict[str, Any] = field(default_factory=dict)
    logprobs: bool = False
    top_logprobs: int = 5
    retry_base: float = 0.5
    retry_cap: float = 20.0
    send_ids: bool = True

    @classmethod
    def of(cls, live: Live) -> "BackendSpec":
        eps = {n: replace(ep, api_key=ep.key(), api_key_env=None) if (ep.api_key or ep.api_key_env) else ep
               for n, ep in live.endpoints.items()}
        cache = getattr(live.cache, "path", None) if live.cache is not None else None
        if live.cache is not None and cache is None:
            raise DataError("a Ray job needs the response cache as a file path (each worker opens it on its node)")
        return cls(eps, None if cache is None else str(cache), live.prices, dict(live.params), live.logprobs,
                   live.top_logprobs, live.retry_base, live.retry_cap, live.send_ids)

    def build(self, limiter: Any = None) -> Live:
        live = Live(self.endpoints, cache=self.cache, prices=self.prices, params=self.params, logprobs=self.logprobs,
                    top_logprobs=self.top_logprobs, retry_base=self.retry_base, retry_cap=self.retry_cap)
        live.send_ids = self.send_ids
        live.rate_limiter = limiter
        return live

    def describe(self, live: Live) -> dict[str, Any]:
        """The settings that shape answers and costs (not keys, concurrency, timeouts or limits)."""
        return {"endpoints": {n: {"model": ep.model, "api_base": ep.api_base, "fallback": ep.fallback,
                                  "params": dict(ep.params)} for n, ep in sorted(self.endpoints.items())},
                "params": self.params, "logprobs": self.logprobs, "top_logprobs": self.top_logprobs,
                "send_ids": self.send_ids, "prices": live.price_source()}


# -- fingerprints and the manifest -------------------------------------------------------------------------

def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=json_default, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _prompts_digest(prompts: Prompts) -> str:
    q = prompts.queries
    cols = [q.ids, q.prompts, q.tasks, q.messages, q.params]
    return _digest([[None if c is None else c[i] for c in cols] for i in range(len(q))])


def _policy_digest(policy: Policy) -> str:
    h = hashlib.sha256()
    try:
        fitted, arrays = policy.to_state()
        h.update(_digest({"name": policy.name, "settings": policy.params(), "fitted": fitted}).encode())
        for k in sorted(arrays):
            a = np.ascontiguousarray(arrays[k])
            h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes() if a.dtype != object else json.dumps(a.tolist(), default=str).encode())
    except Exception:  # noqa: BLE001 - a policy without a state file: its name and settings
        h.update(_digest({"name": policy.name, "settings": policy.params()}).encode())
    return h.hexdigest()


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Manifest:
    """``manifest.json`` of a shards folder: the job and its finished shards (written atomically)."""

    def __init__(self, folder: Path, job: dict[str, Any]) -> None:
        self.folder = folder
        self.path = folder / MANIFEST
        self.job = job
        self.fingerprint = _digest(job)
        self.shards: dict[str, dict[str, Any]] = {}

    @classmethod
    def open(cls, folder: Path, job: dict[str, Any]) -> "Manifest":
        """The folder's manifest for ``job`` (a new one when there is none); a different job's is refused."""
        m = cls(folder, job)
        if not m.path.exists():
            if folder.exists() and any(folder.iterdir()):
                raise DataError(f"the shards folder holds files but no {MANIFEST}: not a callwise job's folder; "
                                "remove it or choose another output", file=str(folder))
            return m
        try:
            doc = json.loads(m.path.read_text())
            old_job, fp, shards = doc["job"], doc["fingerprint"], doc["shards"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"unreadable shard manifest ({e}); remove the folder to start the job afresh",
                            file=str(m.path)) from None
        if doc.get("format") != FORMAT:
            raise DataError(f"not a callwise shard manifest (format {doc.get('format')!r})", file=str(m.path))
        if fp != m.fingerprint:
            differ = sorted(k for k in set(old_job) | set(job) if old_job.get(k) != job.get(k)) or ["format"]
            raise DataError(f"these shards belong to a different job (fingerprint {fp[:12]}, this job's "
                            f"{m.fingerprint[:12]}; they differ in: {', '.join(differ)}); a re-run resumes only the "
                            "same job: remove the folder to start afresh, or write elsewhere", file=str(m.path))
        m.shards = dict(shards)
        return m

    def finished(self, sid: str) -> bool:
        """Whether shard ``sid`` is done: listed, and its files still match their hashes."""
        entry = self.shards.get(sid)
        if entry is None:
            return False
        for f in entry["files"].values():
            p = self.folder / f["file"]
            if not p.is_file() or _file_hash(p) != f["sha256"]:
                return False
        return True

    def add(self, sid: str, entry: dict[str, Any]) -> None:
        self.shards[sid] = entry
        self.save()

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": self.fingerprint, "job": self.job,
               "shards": dict(sorted(self.shards.items()))}
        text = json.dumps(doc, indent=1, default=json_default, allow_nan=False)
        atomic_write(self.path, lambda f: f.write(text.encode()))


# -- the shard task ------------------------------------------------------------------------------------------

def _shard_prompts(prompts: Prompts, start: int, stop: int) -> Prompts:
    idx = np.arange(start, stop)
    return Prompts(prompts.queries.take(idx), prompts.references[idx], prompts.path)


def run_shard(kind: str, spec: BackendSpec, work: dict[str, Any], prompts: Prompts, limiter: Any,
              ledger: list[float] | None = None) -> tuple[dict[str, Any], list[float] | None]:
    """One shard on a worker: build the backend, make the calls; (the rows and decisions, the budget
    ledger's state after the shard — (granted, spent, queries) — when the policy keeps one)."""
    from ..core.budget import BudgetLedger
    from .batches import _collect_rows, _policy_rows, _prepare_policy

    backend = spec.build(limiter)
    book = None
    try:
        if kind == "collect":
            rows = _collect_rows(work["models"], prompts, backend, samples=work["samples"], progress=None)
            extra: dict[str, Any] = {}
        else:
            book = BudgetLedger()
            if ledger is not None:  # where the previous shard left the job's budget
                book.granted, book.spent, book.queries = float(ledger[0]), float(ledger[1]), int(ledger[2])
            policy = _prepare_policy(work["policy"], prompts, backend, None, ledger=book)
            parts = _policy_rows(policy, prompts, backend, complete=work["complete"], chunk=work["chunk"],
                                 progress=None)
            rows = parts["rows"]
            extra = {"decisions": parts["decisions"], "aux": parts["aux"], "policy_spent": parts["policy_spent"],
                     "explored": parts["explored"]}
        stats = {k: backend.stats[k] for k in ("calls", "cache_hits", "retries", "fallbacks", "spent")}
    finally:
        backend.close()
        if backend.cache is not None:
            backend.cache.close()
    state = [book.granted, book.spent, book.queries] if book is not None and work.get("chained") else None
    out = {"rows": pd.DataFrame(rows), "stats": stats, "worker": f"{socket.gethostname()}:{os.getpid()}",
           "ledger": state, **extra}
    return out, state


# -- the driver ------------------------------------------------------------------------------------------------

def _shard_size(shard_size: int | None) -> int:
    size = DEFAULT_SHARD_SIZE if shard_size is None else shard_size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise DataError(f"the shard size must be a whole number of prompts >= 1, got {shard_size!r}",
                        column="shard_size")
    return int(size)


def _limiter(ray: Any, backend: Live, fingerprint: str) -> tuple[Any, Any]:
    """(the job's limiter actor, its :class:`SharedLimits`), or (None, None) when no model is limited."""
    limits = {n: (ep.rpm, ep.tpm) for n, ep in backend.endpoints.items() if ep.rpm or ep.tpm}
    if not limits:
        return None, None
    name = f"callwise-limiter-{fingerprint[:12]}-{uuid.uuid4().hex[:8]}"
    actor = ray.remote(num_cpus=0)(RateLimiter).options(name=name).remote(limits)
    return actor, SharedLimits(actor, {n: (bool(r), bool(t)) for n, (r, t) in limits.items()})


@dataclass
class ShardedRun:
    """What a sharded job did (beside its table): shards run and skipped, workers, the limiter's figures."""

    shards: int = 0
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    workers: dict[str, str] = field(default_factory=dict)
    limiter: dict[str, Any] | None = None
    folder: str = ""


def _run_job(kind: str, prompts: Prompts, backend: Live, work: dict[str, Any], job: dict[str, Any], *,
             shards: str | Path | None, address: str | None, shard_size: int, max_retries: int,
             units: Callable[[int], int], progress: Callable[[int], None] | None) -> tuple[list[dict[str, Any]], dict[str, Any], ShardedRun]:
    """Run the job's shards on Ray (skipping finished ones); every shard's result, in prompt order."""
    if shards is None:
        raise DataError("a Ray job needs a folder for its shards (shards=PATH; the CLI uses OUT.shards)")
    folder = Path(shards)
    n = len(prompts)
    bounds = [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]
    sids = [f"{i:05d}" for i in range(len(bounds))]
    spec = BackendSpec.of(backend)
    job = {**job, "kind": kind, "prompts": _prompts_digest(prompts), "n_prompts": n, "shard_size": shard_size,
           "backend": _digest(spec.describe(backend))}
    manifest = Manifest.open(folder, job)
    report = ShardedRun(shards=len(bounds), folder=str(folder))
    todo = {i for i, sid in enumerate(sids) if not manifest.finished(sid)}
    report.skipped = [sids[i] for i in range(len(sids)) if i not in todo]
    for i in range(len(sids)):
        if i not in todo and progress is not None:
            progress(units(bounds[i][1] - bounds[i][0]))
    spent = 0.0
    counts = {"retries": 0, "fallbacks": 0}
    if todo:
        from ..core.cluster import connect

        ray = connect(address)
        manifest.save()
        actor, limits = _limiter(ray, backend, manifest.fingerprint)
        task = ray.remote(num_returns=2)(run_shard)
        spec_ref, work_ref = ray.put(spec), ray.put(work)  # sent once, not with every shard
        pending: dict[Any, int] = {}
        # a policy that keeps its budget across chunks: each shard starts from the ledger the previous one
        # left (a Ray dependency: the shards' decisions run in order, their calls as in one process)
        ledger: Any = None
        for i in range(len(sids)):
            if i not in todo:
                ledger = manifest.shards[sids[i]].get("ledger")
                continue
            s, e = bounds[i]
            ref, ledger_ref = task.options(name=f"callwise-shard-{manifest.fingerprint[:8]}-{sids[i]}", num_cpus=1,
                                           max_retries=max_retries, retry_exceptions=False).remote(
                kind, spec_ref, work_ref, _shard_prompts(prompts, s, e), limits, ledger if work.get("chained") else None)
            ledger = ledger_ref
            pending[ref] = i
        first_error: tuple[str, BaseException] | None = None
        failed = 0
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(done[0])
                try:
                    out = ray.get(done[0])
                except Exception as e:  # noqa: BLE001 - classified below; other shards go on and are kept
                    failed += 1
                    first_error = first_error or (sids[i], _unwrap(ray, e, sids[i], max_retries))
                    continue
                _write_shard(manifest, sids[i], bounds[i], out)
                report.ran.append(sids[i])
                report.workers[sids[i]] = out["worker"]
                spent += float(out["stats"]["spent"])
                for k in counts:
                    counts[k] += int(out["stats"][k])
                if progress is not None:
                    progress(units(bounds[i][1] - bounds[i][0]))
            if actor is not None:
                report.limiter = ray.get(actor.stats.remote())
        finally:  # interrupted (or a write failed): stop what is still running; what finished is on disk
            for ref in pending:
                ray.cancel(ref, force=True)
            if actor is not None:
                ray.kill(actor)
        if first_error is not None:
            sid, err = first_error
            msg = (f"{failed} of {len(todo)} shards failed ({len(todo) - failed} finished and kept in "
                   f"{manifest.path}; a re-run of the same job resumes from there); first, shard {sid}: {err}")
            raise (type(err)(msg) if isinstance(err, CallwiseError) else CallwiseError(msg)) from err
    results = [_read_shard(manifest, sid) for sid in sids]
    return results, {"spent": spent, **counts}, report


def _unwrap(ray: Any, e: BaseException, sid: str, max_retries: int) -> BaseException:
    """The error a shard task ended with, as callwise reports it."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, CallwiseError):
        return cause
    if isinstance(e, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                      ray.exceptions.ObjectLostError)):
        return CallwiseError(f"shard {sid}: its worker died {max_retries + 1} times ({type(e).__name__})")
    return CallwiseError(f"shard {sid} failed: {type(cause or e).__name__}: {cause or e}")


def _write_shard(manifest: Manifest, sid: str, bounds: tuple[int, int], out: dict[str, Any]) -> None:
    files: dict[str, dict[str, Any]] = {}
    manifest.folder.mkdir(parents=True, exist_ok=True)
    frames = {"rows": out["rows"]}
    if "decisions" in out:
        frames["decisions"] = out["decisions"]
    for part, df in frames.items():
        name = f"shard-{sid}.{part}.parquet" if part != "rows" else f"shard-{sid}.parquet"
        path = manifest.folder / name
        atomic_write(path, lambda f, df=df: df.to_parquet(f, index=False))
        files[part] = {"file": name, "rows": int(len(df)), "sha256": _file_hash(path)}
    extra = {k: out[k] for k in ("aux", "policy_spent", "explored", "ledger") if k in out}
    manifest.add(sid, {"prompts": list(bounds), "rows": int(len(out["rows"])), "files": files,
                       "worker": out["worker"], "stats": out["stats"], **extra})


def _read_shard(manifest: Manifest, sid: str) -> dict[str, Any]:
    entry = manifest.shards[sid]
    out: dict[str, Any] = {"sid": sid, **{k: entry[k] for k in ("aux", "policy_spent", "explored") if k in entry}}
    for part, f in entry["files"].items():
        out[part] = pd.read_parquet(manifest.folder / f["file"])
    return out


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows back as the single-process path holds them (NaN-free None where a value is missing)."""
    recs = df.to_dict("records")
    for r in recs:
        for k in ("input_tokens", "output_tokens"):
            v = r.get(k)
            r[k] = None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
    return recs


def collect_sharded(models: Sequence[str], prompts: Prompts, backend: Live, *, shards: str | Path | None,
                    address: str | None = None, shard_size: int | None = None, samples: int = 1,
                    grader: str | None = None, logprobs: bool = False, max_retries: int = MAX_RETRIES,
                    progress: Callable[[int], None] | None = None) -> Any:
    """:func:`callwise.live.runs.collect` in shards on Ray (``address``: see :func:`callwise.core.cluster.connect`)."""
    from .batches import _check_collect, _collect_result

    models = list(models)
    _check_collect(models, prompts, backend, samples, grader)
    size = _shard_size(shard_size)
    if logprobs:
        backend.with_logprobs(True)
    work = {"models": models, "samples": samples}
    results, stats, report = _run_job("collect", prompts, backend, work, {"models": models, "samples": samples},
                                      shards=shards, address=address, shard_size=size, max_retries=max_retries,
                                      units=lambda k: k * len(models) * samples, progress=progress)
    rows = [r for res in results for r in _records(res["rows"])]
    result = _collect_result(models, prompts, backend, rows, samples=samples, grader=grader, spent=stats["spent"],
                             retries=stats["retries"], fallbacks=stats["fallbacks"])
    result.summary["ray"] = _report(report)
    return result


def run_policy_sharded(policy: Policy, prompts: Prompts, backend: Live, *, shards: str | Path | None,
                       address: str | None = None, shard_size: int | None = None, grader: str | None = None,
                       complete: bool = False, chunk: int | None = None, max_retries: int = MAX_RETRIES,
                       progress: Callable[[int], None] | None = None) -> Any:
    """:func:`callwise.live.runs.run_policy` in shards on Ray (each shard decided in chunks from its start)."""
    from .batches import CHUNK, _policy_result, _prepare_policy, keeps_ledger

    chunk = CHUNK if chunk is None else int(chunk)
    size = _shard_size(chunk * max(1, DEFAULT_SHARD_SIZE // chunk) if shard_size is None else shard_size)
    if size % chunk:
        raise DataError(f"a run's shard size must be a multiple of the policy's chunk ({chunk} prompts), so that "
                        f"each shard decides the same chunks as one process; got {size}", column="shard_size")
    prepared = _prepare_policy(policy, prompts, backend, grader)  # grader checked, logprobs asked for
    chained = keeps_ledger(policy)
    work = {"policy": policy, "complete": bool(complete), "chunk": chunk, "chained": chained}
    job = {"policy": _policy_digest(policy), "policy_name": policy.name, "complete": bool(complete), "chunk": chunk}
    results, stats, report = _run_job("run", prompts, backend, work, job, shards=shards, address=address,
                                      shard_size=size, max_retries=max_retries, units=lambda k: k, progress=progress)
    ran = set(report.ran)
    parts = {"rows": [r for res in results for r in _records(res["rows"])],
             "aux": [m for res in results for m in res.get("aux", [])],
             "decisions": pd.concat([res["decisions"] for res in results], ignore_index=True),
             # spent in this run: by the shards that ran now (a skipped shard spent before)
             "policy_spent": sum(float(res.get("policy_spent", 0.0)) for res in results if res["sid"] in ran),
             "explored": sum(float(res.get("explored", 0.0)) for res in results if res["sid"] in ran)}
    result = _policy_result(prepared, prompts, backend, parts, grader=grader, complete=complete, spent=stats["spent"],
                            retries=stats["retries"], fallbacks=stats["fallbacks"])
    result.summary["ray"] = _report(report)
    return result


def _report(r: ShardedRun) -> dict[str, Any]:
    return {"shards": r.shards, "ran": len(r.ran), "skipped": len(r.skipped), "folder": r.folder,
            "workers": sorted(set(r.workers.values())), "limiter": r.limiter}
