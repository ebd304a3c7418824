"""Load benchmark for ``callwise serve``: success, latency, throughput, money and memory under faults.

Run from the repository root (needs ../shared/data; ``--redis`` needs a redis-server on the URL)::

    python benchmarks/serve_load.py [--requests 1000] [--in-flight 50,200,500] [--fail 0,0.1,0.5]
                                    [--redis redis://127.0.0.1:6379/0] [--memory-requests 10000]

Upstream: the replay server over rational-cascades' MMLU (5 llama models, recorded answers and
costs) with injected failures (``fail_rate``), no retries, the circuit breaker off (so every
injected failure is a failed request the accounting must survive), the lean ``http`` transport
(several LiteLLM clients on separate event loops in one process trip over LiteLLM's global
logging worker). Served: a kNN router and a
two-tier confidence cascade, requests split between them, each with distinct generation settings
(no response-cache hits), keys with a daily budget far above the spend (budget overshoot is
measured separately with a small budget). One instance, or with ``--redis`` two instances (two
servers in this process, each with its own backend, sharing only the Redis state) behind a
round-robin client. Printed per setting: success rate, p50/p99 latency, throughput, dollars spent
upstream vs charged to keys, and, with a budget of $0.01 on one key, how far the day's spend
passed it; then the server process's memory (RSS) before and after ``--memory-requests`` requests.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from livekit import LARGE, SMALL, live_for, prompts_of, split, task_table  # noqa: E402

from callwise.evaluation.fit import fit_policy  # noqa: E402
from callwise.live.http_util import BackgroundServer  # noqa: E402
from callwise.live.replay_server import build_replay_app  # noqa: E402
from callwise.live.server import KeyBudgets, PolicyServer  # noqa: E402
from callwise.live.state import open_store  # noqa: E402


def rss_mb() -> float:
    """This process's current resident memory (Linux /proc), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def drive(urls: list[str], prompts: list[str], n: int, in_flight: int, key_of) -> tuple[list, float]:
    sem = asyncio.Semaphore(in_flight)
    out: list = [None] * n
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=in_flight + 8)) as c:
        async def one(i: int) -> None:
            async with sem:
                body = {"model": "callwise/knn" if i % 2 else "callwise/casc", "seed": i,
                        "messages": [{"role": "user", "content": prompts[i % len(prompts)]}]}
                t = time.perf_counter()
                try:
                    r = await c.post(urls[i % len(urls)] + "/v1/chat/completions", json=body,
                                     headers={"authorization": f"Bearer {key_of(i)}"})
                    out[i] = (r.status_code, time.perf_counter() - t)
                except httpx.HTTPError as e:
                    out[i] = (type(e).__name__, time.perf_counter() - t)
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
    return out, time.perf_counter() - t0


def setting(world, fail: float, in_flight: int, n: int, redis: str | None, budget: float | None) -> dict:
    table, router, cascade, prompts = world
    keys = {"k1": 1e6, "k2": 1e6} if budget is None else {"k1": budget}
    store_spec = "memory" if redis is None else redis
    with BackgroundServer(build_replay_app(table, fail_rate=fail, seed=7)) as up:
        servers, apps = [], []
        for _ in range(1 if redis is None else 2):
            store = open_store(store_spec)
            backend = live_for(up.url, table.models(), None, max_retries=0, allowed_fails=10**9, transport="http")
            srv = PolicyServer({"knn": router, "casc": cascade}, backend,
                               keys=KeyBudgets(keys, store=store))
            servers.append(srv)
            apps.append(BackgroundServer(srv.app()))
        urls = [a.__enter__().url for a in apps]
        try:
            got, secs = asyncio.run(drive(urls, prompts, n, in_flight, (lambda i: f"k{1 + i % 2}") if budget is None
                                          else (lambda i: "k1")))
        finally:
            for a in apps:
                a.__exit__(None, None, None)
            for s in servers:
                s.backend.close()
    status = np.array([g[0] for g in got], dtype=object)
    lat = np.array([g[1] for g in got])
    ok = status == 200
    spent = sum(s.backend.stats["spent"] for s in servers)
    charged = sum(servers[0].keys.spent(k) for k in keys)  # one store: every instance sees the same spend
    res = {"fail": fail, "in_flight": in_flight, "requests": n, "instances": len(servers),
           "success": float(ok.mean()), "p50_ms": float(np.median(lat[ok]) * 1000) if ok.any() else None,
           "p99_ms": float(np.quantile(lat[ok], 0.99) * 1000) if ok.any() else None,
           "throughput": float(n / secs), "spent": spent, "charged": charged,
           "statuses": {str(k): int((status == k).sum()) for k in set(status.tolist())}}
    if budget is not None:
        res["budget"] = budget
        res["overshoot"] = max(charged - budget, 0.0)
    if redis is not None:
        r = open_store(redis)
        r._r.flushdb()  # type: ignore[attr-defined]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--in-flight", default="50,200,500")
    ap.add_argument("--fail", default="0,0.1,0.5")
    ap.add_argument("--redis", default=None)
    ap.add_argument("--memory-requests", type=int, default=10_000)
    a = ap.parse_args(argv)
    import logging

    for name in ("callwise.access", "callwise.live", "LiteLLM"):  # per-request lines would drown the tables
        logging.getLogger(name).setLevel(logging.CRITICAL)
    table = task_table(a.data)
    train, test = split(table)
    router = fit_policy(train, "knn", budget=0.0003, holdout=False, n_boot=10).policy
    cascade = fit_policy(train, "confidence-cascade", params={"models": [SMALL, LARGE]}, budget=0.0003,
                         holdout=False, n_boot=10).policy
    prompts = prompts_of(test, test.prompt_ids()[:100])
    world = (table, router, cascade, prompts)
    print("| instances | in flight | upstream failures | success | p50 ms | p99 ms | req/s | spent upstream $ "
          "| charged to keys $ | statuses |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for redis in ([None] + ([a.redis] if a.redis else [])):
        for f in (float(x) for x in a.fail.split(",")):
            for k in (int(x) for x in a.in_flight.split(",")):
                r = setting(world, f, k, a.requests, redis, None)
                print(f"| {r['instances']} | {k} | {f:.0%} | {r['success']:.1%} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} "
                      f"| {r['throughput']:.0f} | {r['spent']:.6f} | {r['charged']:.6f} | {r['statuses']} |")
                sys.stdout.flush()
    print("\nBudget overshoot: one key with a $0.01 daily budget, 1,000 requests")
    print("| instances | in flight | upstream failures | charged $ | overshoot $ | refused (429) |")
    print("|---|---|---|---|---|---|")
    for redis in ([None] + ([a.redis] if a.redis else [])):
        for k in (50, 500):
            r = setting(world, 0.0, k, 1000, redis, 0.01)
            print(f"| {r['instances']} | {k} | 0% | {r['charged']:.5f} | {r['overshoot']:.5f} "
                  f"| {r['statuses'].get('429', 0)} |")
    before = rss_mb()
    r = setting(world, 0.1, 200, a.memory_requests, None, None)
    after = rss_mb()
    print(f"\nMemory over {a.memory_requests:,} requests (200 in flight, 10% failures, one instance, servers and "
          f"upstream in this process): RSS {before:.0f} MB before, {after:.0f} MB after; success {r['success']:.1%}, "
          f"spent {r['spent']:.5f} vs charged {r['charged']:.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
