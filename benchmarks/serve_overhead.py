"""The policy server's own overhead on loopback, measured against calling the upstream directly.

Starts ``callwise replay-server`` (the upstream) and ``callwise serve`` (a fitted policy over it)
as separate processes, then from this process sends the same chat requests

- directly to the replay server (the baseline), and
- to callwise serve, which runs the policy and calls the replay server itself,

and prints latency percentiles one request at a time (added p50 / p99 = serve − direct) and
throughput with many requests in flight. Everything shares the machine's cores, as a real
deployment on one box would. No response cache (every request reaches the upstream).

    python benchmarks/serve_overhead.py [--policy knn|confidence-cascade] [--transport litellm|http]
                                       [--requests 400] [--concurrency 64] [--seconds 8]

Goals (issue 5): added p50 under 5 ms, at least 300 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "rational-cascades"
TASK = "mmlu-llama"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url}: not up after {timeout} s")


async def sequential(url: str, model: str, prompts: list[str], n: int) -> np.ndarray:
    async with httpx.AsyncClient(timeout=30) as c:
        lat = []
        for i in range(n + 20):
            body = {"model": model, "messages": [{"role": "user", "content": prompts[i % len(prompts)]}]}
            t = time.perf_counter()
            r = await c.post(url + "/v1/chat/completions", json=body)
            dt = time.perf_counter() - t
            r.raise_for_status()
            if i >= 20:  # warm-up excluded
                lat.append(dt)
        return np.array(lat) * 1e3


async def throughput(url: str, model: str, prompts: list[str], concurrency: int, seconds: float) -> tuple[float, int]:
    """Requests per second with ``concurrency`` in flight (aiohttp: a lighter client than httpx, so the
    load generator is less of the bottleneck on a 2-core box it shares with both servers)."""
    import aiohttp

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as c:
        done, errors = 0, 0
        stop = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal done, errors
            i = k
            while time.perf_counter() < stop:
                body = {"model": model, "messages": [{"role": "user", "content": prompts[i % len(prompts)]}]}
                async with c.post(url + "/v1/chat/completions", json=body) as r:
                    await r.read()
                    if r.status == 200:
                        done += 1
                    else:
                        errors += 1
                i += concurrency
        t = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        return done / (time.perf_counter() - t), errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", default="knn", choices=["knn", "confidence-cascade"])
    ap.add_argument("--transport", default="litellm", choices=["litellm", "http"])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()

    from callwise.core.policy_files import save_policy
    from callwise.evaluation.fit import fit_policy
    from callwise.io import load

    tmp = Path(tempfile.mkdtemp(prefix="callwise-bench-"))
    os.environ.setdefault("CALLWISE_CACHE_DIR", str(tmp / "features"))
    table = load(DATA).for_task(TASK)
    params = {"models": ["llama3.1-8b", "llama3.1-405b"]} if args.policy == "confidence-cascade" else {}
    policy = fit_policy(table, args.policy, params=params, budget=0.0003, holdout=False, n_boot=10).policy
    save_policy(policy, tmp / "policy.json")
    data = tmp / "task.parquet"
    from callwise.io import write_parquet

    write_parquet(table, data)
    first = table.frame.drop_duplicates("prompt_id")
    prompts = first[~first["prompt"].duplicated(keep=False)]["prompt"].tolist()[:300]
    model_direct = "llama3.1-8b"

    up_port, cw_port = free_port(), free_port()
    cli = [sys.executable, "-m", "callwise.cli"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    up = subprocess.Popen([*cli, "replay-server", str(data), "--port", str(up_port)], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cw = None
    try:
        up_url = f"http://127.0.0.1:{up_port}"
        wait_up(up_url, up)
        cw = subprocess.Popen([*cli, "serve", str(tmp / "policy.json"), "--port", str(cw_port), "--api-base",
                               up_url + "/v1", "--provider-costs", "--no-cache", "--transport", args.transport,
                               "--concurrency", "256"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cw_url = f"http://127.0.0.1:{cw_port}"
        wait_up(cw_url, cw)
        direct = asyncio.run(sequential(up_url, model_direct, prompts, args.requests))
        served = asyncio.run(sequential(cw_url, "callwise/policy", prompts, args.requests))
        rps_direct, err_d = asyncio.run(throughput(up_url, model_direct, prompts, args.concurrency, args.seconds))
        rps_served, err_s = asyncio.run(throughput(cw_url, "callwise/policy", prompts, args.concurrency, args.seconds))
    finally:
        for p in (cw, up):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()

    pct = lambda a, q: float(np.percentile(a, q))  # noqa: E731
    out = {
        "policy": args.policy, "transport": args.transport, "cores": os.cpu_count(), "requests": args.requests,
        "direct_ms": {"p50": pct(direct, 50), "p99": pct(direct, 99)},
        "served_ms": {"p50": pct(served, 50), "p99": pct(served, 99)},
        "added_ms": {"p50": pct(served, 50) - pct(direct, 50), "p99": pct(served, 99) - pct(direct, 99)},
        "throughput_rps": {"direct": rps_direct, "served": rps_served, "served/direct": rps_served / rps_direct,
                           "concurrency": args.concurrency, "seconds": args.seconds,
                           "errors": {"direct": err_d, "served": err_s}},
        "goals": {"added_p50_under_5ms": pct(served, 50) - pct(direct, 50) < 5.0, "at_least_300_rps": rps_served >= 300},
    }
    print(f"policy {args.policy}, transport {args.transport}, {os.cpu_count()} cores, {args.requests} sequential requests")
    print(f"  direct to replay-server : p50 {out['direct_ms']['p50']:.2f} ms  p99 {out['direct_ms']['p99']:.2f} ms")
    print(f"  through callwise serve  : p50 {out['served_ms']['p50']:.2f} ms  p99 {out['served_ms']['p99']:.2f} ms")
    print(f"  added by callwise       : p50 {out['added_ms']['p50']:.2f} ms  p99 {out['added_ms']['p99']:.2f} ms"
          f"  (goal p50 < 5 ms: {'met' if out['goals']['added_p50_under_5ms'] else 'NOT met'})")
    print(f"  throughput ({args.concurrency} in flight, {args.seconds:.0f} s): direct {rps_direct:.0f} req/s, "
          f"served {rps_served:.0f} req/s ({rps_served / rps_direct:.2f}x direct; goal >= 300: "
          f"{'met' if out['goals']['at_least_300_rps'] else 'NOT met'}); errors {err_d}/{err_s}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
