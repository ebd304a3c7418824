"""Load benchmark for ``callwise serve``: success, latency, throughput, money and memory under faults.

Run from the repository root (needs ../shared/data; ``--redis`` needs a redis-server on that URL)::

    python benchmarks/serve_load.py [--requests 1000] [--in-flight 50,200,500] [--fail 0,0.1,0.5]
                                    [--redis redis://127.0.0.1:6379/0] [--memory-requests 10000]

Three kinds of process, as in production: ``callwise replay-server`` (rational-cascades' MMLU, 5
llama models, recorded answers and costs; ``--fail-rate`` injects upstream failures),
``callwise serve`` (a kNN router and a two-tier confidence cascade; default retries, timeouts and
circuit breaker; state in SQLite, or with ``--redis`` two instances on one Redis), and this
script as the client (httpx, ``--in-flight`` requests at once, round-robin over the instances,
each request with distinct settings so the response cache never answers). Per setting: success
rate, p50/p99 latency of the answered requests, throughput, dollars spent upstream (the
instances' own counters, ``/health`` with the admin key) against dollars charged to keys (read
from the state store), and the statuses. Then budget overshoot (one key with a $0.01 daily
budget, 1,000 requests) and the serve process's memory (RSS) before and after
``--memory-requests`` requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from livekit import LARGE, SMALL, free_port, prompts_of, split, task_table  # noqa: E402

from callwise.core.policy_files import save_policy  # noqa: E402
from callwise.evaluation.fit import fit_policy  # noqa: E402
from callwise.io import write_parquet  # noqa: E402
from callwise.live.server import KeyBudgets  # noqa: E402
from callwise.live.state import open_store  # noqa: E402

ADMIN = "bench-admin"


def wait_up(url: str, proc: subprocess.Popen, headers: dict | None = None) -> None:
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(url, timeout=1, headers=headers).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up in 90 s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Stack:
    """A replay upstream and one or two callwise serve instances, as subprocesses."""

    def __init__(self, base: Path, fail: float, state: str, instances: int, keys: dict[str, float]) -> None:
        cli = [sys.executable, "-m", "callwise.cli"]
        up_port = free_port()
        self.procs = [subprocess.Popen([*cli, "replay-server", str(base / "table.parquet"), "--port", str(up_port),
                                        "--fail-rate", str(fail), "--seed", "7"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)]
        wait_up(f"http://127.0.0.1:{up_port}/health", self.procs[0])
        kf = base / "keys.yaml"
        kf.write_text("keys:\n" + "".join(f"  {k}: {{budget: {b}}}\n" for k, b in keys.items()))
        self.urls = []
        for _ in range(instances):
            port = free_port()
            p = subprocess.Popen([*cli, "serve", str(base / "knn.json"), str(base / "casc.json"), "--port", str(port),
                                  "--api-base", f"http://127.0.0.1:{up_port}/v1", "--provider-costs", "--no-cache",
                                  "--transport", "http", "--keys", str(kf), "--state", state, "--admin-key", ADMIN,
                                  "--log-level", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env={**os.environ})
            self.procs.append(p)
            self.urls.append(f"http://127.0.0.1:{port}")
            wait_up(self.urls[-1] + "/health", p)

    def spent_upstream(self) -> float:
        return sum(httpx.get(u + "/health", headers={"authorization": f"Bearer {ADMIN}"}, timeout=30)
                   .json()["backend"]["spent"] for u in self.urls)

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=20)


async def drive(urls: list[str], prompts: list[str], n: int, in_flight: int, key_of) -> tuple[list, float]:
    sem = asyncio.Semaphore(in_flight)
    out: list = [None] * n
    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=in_flight + 8)) as c:
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


def run(base: Path, prompts: list[str], *, fail: float, in_flight: int, n: int, redis: str | None,
        budget: float | None = None, memory: bool = False) -> dict:
    keys = {"k1": 1e6, "k2": 1e6} if budget is None else {"k1": budget}
    if redis is None:
        state = f"sqlite:///{base / f'state-{time.time_ns()}.sqlite'}"
    else:
        state = redis
        open_store(redis)._r.flushdb()  # type: ignore[attr-defined]
    stack = Stack(base, fail, state, 1 if redis is None else 2, keys)
    try:
        before = [rss_mb(p.pid) for p in stack.procs[1:]]
        key_of = (lambda i: f"k{1 + i % 2}") if budget is None else (lambda i: "k1")
        got, secs = asyncio.run(drive(stack.urls, prompts, n, in_flight, key_of))
        after = [rss_mb(p.pid) for p in stack.procs[1:]]
        spent = stack.spent_upstream()
    finally:
        stack.close()
    store = open_store(state)
    charged = sum(KeyBudgets(keys, store=store).spent(k) for k in keys)
    status = np.array([g[0] for g in got], dtype=object)
    lat = np.array([g[1] for g in got])
    ok = status == 200
    return {"instances": len(stack.urls), "fail": fail, "in_flight": in_flight, "n": n,
            "success": float(ok.mean()), "p50": float(np.median(lat[ok]) * 1000) if ok.any() else float("nan"),
            "p99": float(np.quantile(lat[ok], 0.99) * 1000) if ok.any() else float("nan"),
            "rps": n / secs, "spent": spent, "charged": charged,
            "statuses": {str(k): int((status == k).sum()) for k in sorted(set(status.tolist()), key=str)},
            "rss_before": before, "rss_after": after, "budget": budget}


def setup(data: Path, prefix: str) -> tuple[Path, list[str]]:
    """A temporary folder with the MMLU table (table.parquet), a fitted kNN router (knn.json) and a
    two-tier confidence cascade (casc.json); and 100 test prompts to send."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    table = task_table(data)
    write_parquet(table, base / "table.parquet")
    train, test = split(table)
    save_policy(fit_policy(train, "knn", budget=0.0003, holdout=False, n_boot=10).policy, base / "knn.json")
    save_policy(fit_policy(train, "confidence-cascade", params={"models": [SMALL, LARGE]}, budget=0.0003,
                           holdout=False, n_boot=10).policy, base / "casc.json")
    return base, prompts_of(test, test.prompt_ids()[:100])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--in-flight", default="50,200,500")
    ap.add_argument("--fail", default="0,0.1,0.5")
    ap.add_argument("--redis", default=None)
    ap.add_argument("--memory-requests", type=int, default=10_000)
    ap.add_argument("--memory-only", action="store_true", help="Only the memory run (for each configuration)")
    a = ap.parse_args(argv)
    # a SIGTERM unwinds like an error, so every Stack's finally stops its servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base, prompts = setup(a.data, "callwise-load-")
    configs = [None] + ([a.redis] if a.redis else [])
    if not a.memory_only:
        print("| instances | in flight | upstream failures | success | p50 ms | p99 ms | req/s | spent upstream $ "
              "| charged to keys $ | statuses |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for redis in configs:
            for f in (float(x) for x in a.fail.split(",")):
                for k in (int(x) for x in a.in_flight.split(",")):
                    r = run(base, prompts, fail=f, in_flight=k, n=a.requests, redis=redis)
                    print(f"| {r['instances']} | {k} | {f:.0%} | {r['success']:.1%} | {r['p50']:.0f} | {r['p99']:.0f} "
                          f"| {r['rps']:.0f} | {r['spent']:.6f} | {r['charged']:.6f} | {r['statuses']} |")
                    sys.stdout.flush()
        print("\nBudget overshoot: one key with a $0.01 daily budget, 1,000 requests, no upstream failures\n")
        print("| instances | in flight | charged $ | overshoot $ | answered | refused (429) |")
        print("|---|---|---|---|---|---|")
        for redis in configs:
            for k in (50, 500):
                r = run(base, prompts, fail=0.0, in_flight=k, n=1000, redis=redis, budget=0.01)
                print(f"| {r['instances']} | {k} | {r['charged']:.5f} | {max(r['charged'] - 0.01, 0):.5f} "
                      f"| {r['statuses'].get('200', 0)} | {r['statuses'].get('429', 0)} |")
                sys.stdout.flush()
    for redis in configs:
        r = run(base, prompts, fail=0.1, in_flight=200, n=a.memory_requests, redis=redis, memory=True)
        print(f"\nMemory over {a.memory_requests:,} requests ({r['instances']} instance(s), 200 in flight, 10% upstream "
              f"failures): RSS per instance {', '.join(f'{b:.0f} MB' for b in r['rss_before'])} after start, "
              f"{', '.join(f'{x:.0f} MB' for x in r['rss_after'])} after; success {r['success']:.1%}, {r['rps']:.0f} req/s, "
              f"spent {r['spent']:.5f} vs charged {r['charged']:.5f}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
