"""Time and peak memory of callwise on RouterBench-sized tables (issue 22's yardstick).

Run from the repository root (needs ../shared/data)::

    python benchmarks/scale_tables.py [--sizes 1,4] [--commands info,bench-fixed] [--keep DIR]

For each size (1× = RouterBench's 36,861 prompts × 11 models = 405,471 outcomes) the script writes
a synthetic long table to Parquet: prompts of real length (texts of the RouterBench slice, each
made unique by a suffix), 11 models, the slice's 3 tasks, and each prompt's quality, cost and
answer per model copied from a random prompt of the slice on the same task (so the models keep
their real strengths and prices). Then it runs each command as a subprocess under
``/usr/bin/time -v`` and prints wall time and peak resident memory, with the ratio of the largest
size to 1× (linear growth is a ratio equal to the size ratio).

Commands: ``info`` (load and summarise), ``bench-fixed`` (bench with the fixed policies only:
single models, zero router, oracle, random-mix; 20 bootstrap rounds), ``bench-routers`` (bench
with the five routers; minutes at 1×), ``bench-routers-j2`` (the same with ``--jobs 2``), ``bench-all`` (bench with every registered policy),
``plan`` (``--budget`` at the slice's median cost), ``plan-linear`` (the same plan over the single
models, the zero router and the linear router, 2 folds). Besides wall time the table gives CPU time
(user + system), which other processes on the machine inflate much less.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PROMPTS_1X = 36_861

COMMANDS = {
    "info": ["info", "{data}"],
    "bench-fixed": ["bench", "{data}", "--policy", "random-mix", "--bootstrap", "20"],
    "bench-routers": ["bench", "{data}", "--policy", "knn", "--policy", "linear", "--policy", "mlp",
                      "--policy", "mf", "--policy", "svm", "--bootstrap", "20"],
    "bench-all": ["bench", "{data}", "--bootstrap", "20"],
    "plan": ["plan", "{data}", "--budget", "0.002", "--out", "{out}"],
    # the plan's own machinery (cross-fitting, selection under the budget bound, the test report)
    # with one learned family, for its growth from 1x to 4x in minutes rather than an hour
    "plan-linear": ["plan", "{data}", "--budget", "0.002", "--candidate", "single,zero,linear", "--folds", "2",
                    "--out", "{out}"],
}
# the routers' bench on two local worker processes (this machine's cores)
COMMANDS["bench-routers-j2"] = COMMANDS["bench-routers"] + ["--jobs", "2"]


def synthetic(shared: Path, size: float, path: Path, seed: int = 0) -> int:
    """Write a table of ``size`` × RouterBench's prompt count to ``path``; return its number of outcomes."""
    from callwise.io import load

    t = load(shared / "routerbench-subset")
    f = t.frame[t.frame["sample"] == 0]
    models = t.models()
    wide = {c: f.pivot_table(index="prompt_id", columns="model", values=c, aggfunc="first") for c in ("quality", "cost")}
    answers = f.pivot(index="prompt_id", columns="model", values="answer")
    first = f.drop_duplicates("prompt_id").set_index("prompt_id")
    ids = wide["quality"].index.to_numpy()
    rng = np.random.default_rng(seed)
    n = int(round(PROMPTS_1X * size))
    src = rng.integers(0, len(ids), n)  # each synthetic prompt copies one real prompt's outcomes
    pid = np.array([f"p{i:07d}" for i in range(n)], dtype=object)
    texts = first.loc[ids[src], "prompt"].to_numpy(dtype=object)
    texts = np.array([f"{txt}\n[{i}]" for i, txt in enumerate(texts)], dtype=object)
    tasks = first.loc[ids[src], "task"].to_numpy(dtype=object)
    split = np.where(rng.random(n) < 0.7, "train", "test").astype(object)
    m = len(models)
    cols = {
        "prompt_id": np.repeat(pid, m), "task": np.repeat(tasks, m), "prompt": np.repeat(texts, m),
        "model": np.tile(np.array(models, dtype=object), n), "sample": np.zeros(n * m, dtype=np.int64),
        "quality": wide["quality"].to_numpy()[src].ravel(), "cost": wide["cost"].to_numpy()[src].ravel(),
        "answer": answers.to_numpy(dtype=object)[src].ravel(), "split": np.repeat(split, m),
    }
    table = pa.table({k: pa.array(v) for k, v in cols.items()})
    pq.write_table(table, path, use_dictionary=["task", "model", "split", "answer"], compression="zstd")
    return n * m


def measure(args: list[str]) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS in GB, exit code, CPU seconds: user + system) of ``callwise ARGS`` under
    /usr/bin/time -v. On a machine other processes load, wall time inflates and CPU time much less."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "callwise.cli", "--quiet", *args],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", r.stderr))
    if r.returncode != 0:
        print(r.stderr[-2000:], file=sys.stderr)
    return wall, (int(m.group(1)) / 2**20 if m else float("nan")), r.returncode, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--sizes", default="1,4")
    ap.add_argument("--commands", default="info,bench-fixed")
    ap.add_argument("--keep", type=Path, default=None, help="Write the tables here (default: a temporary folder)")
    a = ap.parse_args(argv)
    base = a.keep or Path(tempfile.mkdtemp(prefix="callwise-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    sizes = [float(x) for x in a.sizes.split(",")]
    commands = a.commands.split(",")
    rows: dict[tuple[str, float], tuple[float, float, int, float]] = {}
    print("| size | outcomes | Parquet MB | command | wall s | CPU s | peak RSS GB | exit |\n"
          "|---|---|---|---|---|---|---|---|")
    for size in sizes:
        path = base / f"routerbench-{size:g}x.parquet"
        n = synthetic(a.data, size, path)
        mb = path.stat().st_size / 2**20
        for c in commands:
            args = [x.format(data=path, out=base / f"out-{c}-{size:g}x") for x in COMMANDS[c]]
            rows[(c, size)] = measure(args)
            wall, rss, rc, cpu = rows[(c, size)]
            print(f"| {size:g}× | {n:,} | {mb:.0f} | {c} | {wall:.1f} | {cpu:.1f} | {rss:.2f} | {rc} |")
            sys.stdout.flush()
    if len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        print(f"\nGrowth from {lo:g}× to {hi:g}× (linear: {hi / lo:g}×):\n")
        for c in commands:
            (w0, r0, _, _), (w1, r1, _, _) = rows[(c, lo)], rows[(c, hi)]
            print(f"- {c}: time {w1 / w0:.2f}×, peak memory {r1 / r0:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
