"""Where ``callwise serve``'s memory goes over many requests: RSS per checkpoint and a tracemalloc diff.

Run from the repository root (needs ../shared/data)::

    python benchmarks/serve_memory.py [--requests 10000] [--every 2000] [--in-flight 200] [--fail 0.1]

The replay upstream runs as a subprocess (``callwise replay-server``, ``--fail-rate``); the policy
server (a kNN router and a two-tier confidence cascade, state in SQLite, as ``serve_load.py``
starts it) runs in this process so that tracemalloc sees its allocations; the client (httpx,
``--in-flight`` at once, each request with its own seed so the response cache never answers) runs
here too. After a warm-up of ``--every`` requests the trace starts; the script prints RSS and the
traced total at each checkpoint, then the 15 allocation sites (grouped by file and line, 8 frames)
that grew most from the first checkpoint to the last — which says whether the growth is a leak
(a site growing with every request) or a cache filling up to its bound.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import ADMIN, drive, free_port, rss_mb, setup, wait_up  # noqa: E402

from callwise.cli import build_server  # noqa: E402
from callwise.live.http_util import BackgroundServer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=2_000)
    ap.add_argument("--in-flight", type=int, default=200)
    ap.add_argument("--fail", type=float, default=0.1)
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    import os

    base, prompts = setup(a.data, "callwise-mem-")
    up_port = free_port()
    up = subprocess.Popen([sys.executable, "-m", "callwise.cli", "replay-server", str(base / "table.parquet"),
                           "--port", str(up_port), "--fail-rate", str(a.fail), "--seed", "7"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_up(f"http://127.0.0.1:{up_port}/health", up)
        srv = build_server([base / "knn.json", base / "casc.json"], ["k1", "k2"], None, None, 0.5,
                           f"http://127.0.0.1:{up_port}/v1", None, None, True, None, True, transport="http",
                           admin_key=ADMIN, state=f"sqlite:///{base / 'state.sqlite'}")
        pid = os.getpid()
        with BackgroundServer(srv.app()) as s:
            def batch(start: int) -> None:
                shifted = prompts[start % len(prompts):] + prompts[:start % len(prompts)]
                asyncio.run(drive([s.url], shifted, a.every, a.in_flight, lambda i: f"k{1 + i % 2}"))

            batch(0)  # warm-up: imports, first connections, the pools' steady state
            gc.collect()
            tracemalloc.start(8)
            first = tracemalloc.take_snapshot()
            print(f"| requests | RSS MB | traced MB |\n|---|---|---|\n| {a.every:,} (trace starts) | "
                  f"{rss_mb(pid):.0f} | {tracemalloc.get_traced_memory()[0] / 2**20:.1f} |")
            done = a.every
            while done < a.requests:
                batch(done)
                done += a.every
                gc.collect()
                print(f"| {done:,} | {rss_mb(pid):.0f} | {tracemalloc.get_traced_memory()[0] / 2**20:.1f} |")
                sys.stdout.flush()
            last = tracemalloc.take_snapshot()
        srv.backend.close()
    finally:
        up.terminate()
        up.wait(timeout=20)
    keep = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    diff = last.filter_traces(keep).compare_to(first.filter_traces(keep), "traceback")
    grown = sum(d.size_diff for d in diff)
    print(f"\ntraced growth from {a.every:,} to {done:,} requests: {grown / 2**20:+.2f} MB; top sites:\n")
    for d in diff[:15]:
        frames = [f"{Path(f.filename).name}:{f.lineno}" for f in d.traceback[:4]]
        print(f"- {d.size_diff / 2**10:+9.1f} KiB in {d.count_diff:+7d} blocks  {' <- '.join(frames)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
