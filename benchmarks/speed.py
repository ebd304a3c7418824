"""Speed benchmark for callwise: the frontier math and ``callwise bench`` end to end.

Run from the repository root::

    python benchmarks/speed.py [--n 100000] [--seed 0] [--data ../shared/data/routerbench-subset]

Every figure and ratio is measured in this one process (subprocesses are timed from here too):

1. Hull + AIQ on ``n`` seeded uniform random points: ``frontier.ndch`` then ``frontier.aiq`` in
   both normalisations over [min cost, max cost]. Best and median of ``--repeats`` runs.
   Two adversarial point sets (every point a hull vertex; every point on the Pareto front but
   only the ends on the hull) are timed as well, since random points leave ~ln(n) Pareto points.
2. A baseline on the same points: an "all-chords" non-decreasing convex hull written here
   (O(n^2): the chord slope from every point to every later point, numpy row chunks). Its hull is
   checked against ``ndch`` at a grid of costs (and by AIQ), and the ratio baseline/callwise printed.
3. The goal check: hull + AIQ on 10^5 points under 1 s (printed, never fails the script).
4. ``callwise bench DATA --policy random-mix --out TMP`` (the fixed baselines only: single models,
   zero, oracle, random mix) as a subprocess (wall time), against the start-up baseline
   ``python -c "import callwise"``; plus, in process, ``callwise.load`` + ``split_outcomes`` +
   ``bench(n_boot=200)`` and the report steps the CLI adds, to show where the time goes.
   Goal: bench on the slice under 10 s. The full bench with routers is timed by
   ``benchmarks/routers.py``.

A summary table is printed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import callwise
from callwise.core import frontier as F

HULL_GOAL_S = 1.0
BENCH_GOAL_S = 10.0
GOAL_N = 100_000


# --------------------------------------------------------------------------------------------
# timing helpers


@dataclass(frozen=True)
class Timing:
    """Wall times (seconds) of repeated runs of one thing."""

    label: str
    runs: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def first(self) -> float:
        return self.runs[0]

    def line(self) -> str:
        many = len(self.runs) > 1
        return (f"  {self.label:<52} best {fmt_s(self.best):>9}  median {fmt_s(self.median):>9}"
                + (f"  first {fmt_s(self.first):>9}" if many else "")
                + f"  ({len(self.runs)} run{'s' if many else ''})")


def fmt_s(seconds: float) -> str:
    """Seconds in a readable unit."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def time_call(label: str, fn: Callable[[], object], repeats: int) -> tuple[Timing, object]:
    """Run ``fn`` ``repeats`` times under ``time.perf_counter``; return the timing and the last result."""
    runs: list[float] = []
    result: object = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return Timing(label, tuple(runs)), result


def print_summary(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """A (what, figure, note) table under ``title``, columns sized to their contents."""
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"\n{title}")
    print(f"  {'what':<{w0}}  {'figure':>{w1}}  note")
    print(f"  {'-' * w0}  {'-' * w1}  {'-' * 24}")
    for what, fig, note in rows:
        print(f"  {what:<{w0}}  {fig:>{w1}}  {note}")


def time_subprocess(label: str, cmd: Sequence[str], repeats: int) -> Timing:
    """Wall time of a subprocess (start to exit), output captured; fails loudly if it fails."""
    runs: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(list(cmd), capture_output=True, text=True)
        runs.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    return Timing(label, tuple(runs))


# --------------------------------------------------------------------------------------------
# 1. hull + AIQ with callwise


def random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points with cost and quality independently uniform on [0, 1), seeded."""
    rng = np.random.default_rng(seed)
    return rng.random(n), rng.random(n)


def hull_and_aiq(cost: np.ndarray, quality: np.ndarray) -> tuple[F.Curve, float, float]:
    """What is timed: ``ndch`` then AIQ in both normalisations over the points' cost range."""
    curve = F.ndch(cost, quality)
    c_min, c_max = float(cost.min()), float(cost.max())
    return curve, F.aiq(curve, c_min, c_max, "paper"), F.aiq(curve, c_min, c_max, "routerbench-code")


# --------------------------------------------------------------------------------------------
# 2. the all-chords baseline (O(n^2)), written here on purpose, not imported


def all_chords_hull(cost: np.ndarray, quality: np.ndarray, chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (cost, quality) of the non-decreasing convex hull by brute force over all chords.

    Sort by cost (ties: higher quality first). For every point i, compute the slope of the chord
    to every later point j and take as i's next vertex the later point of largest slope among
    those of higher quality (with distinct costs, "higher quality" is "slope > 0", so the argmax
    over all later points finds it when one exists). Rows are processed ``chunk`` at a time into
    preallocated (chunk, n) buffers, so memory stays at 2 * chunk * n floats. Then walk from the
    start (cheapest point, highest quality among the cheapest) along next-vertex pointers until
    no later point is better. That is n(n-1)/2 slopes: O(n^2) time.

    Collinear points may be kept as vertices (argmax takes the nearest on ties), unlike ``ndch``.
    Requires distinct costs (true of continuous random costs; checked).
    """
    order = np.lexsort((-quality, cost))
    c, q = cost[order], quality[order]
    n = len(c)
    if n > 1 and not np.all(np.diff(c) > 0):
        raise ValueError("the all-chords baseline needs distinct costs")
    nxt = np.full(n, -1, dtype=np.int64)
    buf_q = np.empty((chunk, n))
    buf_c = np.empty((chunk, n))
    # within a chunk of rows i0..i0+b, column k stands for point i0+k; mask k <= row (not later)
    not_later = np.tril(np.ones((chunk, chunk), dtype=bool))
    for i0 in range(0, n, chunk):
        i1 = min(i0 + chunk, n)
        b, m = i1 - i0, n - i0
        dq, slope = buf_q[:b, :m], buf_c[:b, :m]
        np.subtract(q[None, i0:], q[i0:i1, None], out=dq)
        np.subtract(c[None, i0:], c[i0:i1, None], out=slope)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(dq, slope, out=slope)
        k = min(b, m)
        slope[:, :k][not_later[:b, :k]] = -np.inf
        arg = np.argmax(slope, axis=1)
        best = slope[np.arange(b), arg]
        nxt[i0:i1] = np.where(best > 0, i0 + arg, -1)
    path = [0]
    while nxt[path[-1]] >= 0:
        path.append(int(nxt[path[-1]]))
    idx = np.asarray(path)
    return c[idx], q[idx]


def max_gap(curve: F.Curve, base_cost: np.ndarray, base_quality: np.ndarray, n_grid: int = 100_001) -> float:
    """Largest |difference| between the two hulls on a grid of costs over their common span."""
    lo = max(curve.cost[0], base_cost[0])
    hi = max(curve.cost[-1], base_cost[-1])
    grid = np.linspace(lo, hi, n_grid)
    return float(np.max(np.abs(np.interp(grid, curve.cost, curve.quality) - np.interp(grid, base_cost, base_quality))))


# --------------------------------------------------------------------------------------------
# 4. callwise bench on the RouterBench slice


def callwise_command() -> list[str]:
    """The ``callwise`` console script of this interpreter's environment."""
    here = Path(sys.executable).parent / ("callwise.exe" if os.name == "nt" else "callwise")
    if here.exists():
        return [str(here)]
    found = shutil.which("callwise")
    if found:
        return [found]
    return [sys.executable, "-m", "callwise.cli"]


def in_process_bench(data: Path, n_boot: int, repeats: int, out_dir: Path) -> list[Timing]:
    """Time the API calls ``callwise bench`` makes, and the report steps it adds, in this process."""
    from rich.console import Console

    from callwise.evaluation.report import print_tables, write_plots

    out_dir.mkdir(parents=True, exist_ok=True)  # write_plots expects an existing folder (the CLI makes it)
    t_load, table = time_call("callwise.load(DATA)", lambda: callwise.load(data), repeats)
    t_split, parts = time_call("callwise.split_outcomes(table)", lambda: callwise.split_outcomes(table), repeats)
    train, test, info = parts  # type: ignore[misc]
    t_bench, result = time_call(f"callwise.bench(train, test, policies=['random-mix'], n_boot={n_boot})",
                                lambda: callwise.bench(train, test, policies=["random-mix"], n_boot=n_boot,
                                                       split_info=info), repeats)
    t_tables, _ = time_call("report.print_tables (to a string)",
                            lambda: print_tables(result, Console(file=StringIO(), width=100)), repeats)  # type: ignore[arg-type]
    t_plots, _ = time_call("report.write_plots (PNG per task)", lambda: write_plots(result, out_dir), repeats)  # type: ignore[arg-type]
    return [t_load, t_split, t_bench, t_tables, t_plots]


# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=GOAL_N, help="random points for the hull benchmark (default 100000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random points (default 0)")
    p.add_argument("--data", type=Path, default=Path("../shared/data/routerbench-subset"),
                   help="recorded outcomes for the bench timing (default ../shared/data/routerbench-subset)")
    p.add_argument("--repeats", type=int, default=5, help="repeats of the in-process hull + AIQ timings (default 5)")
    p.add_argument("--bench-repeats", type=int, default=3,
                   help="repeats of the subprocess and in-process bench timings (default 3)")
    p.add_argument("--baseline-n", type=int, default=None,
                   help="run the O(n^2) baseline on the first BASELINE_N points only (default: all n; "
                        "~15 s for 10^5 on a 2.1 GHz Xeon core)")
    p.add_argument("--chunk", type=int, default=16, help="rows per chunk in the baseline (default 16)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for in-process bench (default 200)")
    p.add_argument("--skip-baseline", action="store_true", help="skip the O(n^2) baseline")
    p.add_argument("--skip-bench", action="store_true", help="skip the callwise bench timings")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    summary: list[tuple[str, str, str]] = []  # (what, figure, note)

    print(f"callwise {callwise.__version__} | numpy {np.__version__} | Python {platform.python_version()} | "
          f"{platform.machine()} {os.cpu_count()} CPU(s) | {platform.processor() or platform.platform()}")

    # ---- 1. hull + AIQ -------------------------------------------------------------------
    n = args.n
    cost, quality = random_points(n, args.seed)
    print(f"\n[1] hull + AIQ on n={n:,} uniform random points (seed {args.seed})")
    t_hull, curve = time_call("ndch only", lambda: F.ndch(cost, quality), args.repeats)
    t_all, res = time_call("ndch + aiq(paper) + aiq(routerbench-code)", lambda: hull_and_aiq(cost, quality),
                           args.repeats)
    curve, aiq_paper, aiq_code = res  # type: ignore[misc]
    print(t_hull.line())
    print(t_all.line())
    print(f"  hull vertices: {len(curve)}; AIQ paper {aiq_paper:.6f}, routerbench-code {aiq_code:.6f}")
    summary.append((f"ndch + 2x aiq, n={n:,} random", fmt_s(t_all.median), f"best {fmt_s(t_all.best)}"))

    # adversarial shapes: random points leave only ~ln(n) Pareto points for the Python monotone chain
    sorted_cost = np.sort(cost)
    shapes = {"every point a vertex (q = sqrt(c))": (sorted_cost, np.sqrt(sorted_cost)),
              "all on Pareto front, 2 vertices (q = c^2)": (sorted_cost, sorted_cost ** 2)}
    for label, (sc, sq) in shapes.items():
        t_shape, r = time_call(f"  {label}", lambda sc=sc, sq=sq: hull_and_aiq(sc, sq), args.repeats)
        print(t_shape.line() + f"  [{len(r[0])} vertices]")  # type: ignore[index]
        summary.append((f"ndch + 2x aiq, n={n:,} {label.split(' (')[0]}", fmt_s(t_shape.median),
                        f"best {fmt_s(t_shape.best)}"))

    # ---- 2. O(n^2) baseline --------------------------------------------------------------
    if not args.skip_baseline:
        bn = n if args.baseline_n is None else min(args.baseline_n, n)
        bc, bq = cost[:bn], quality[:bn]
        print(f"\n[2] all-chords baseline (O(n^2), {bn * (bn - 1) // 2:,} chord slopes) on the same "
              f"{'points' if bn == n else f'first {bn:,} points'}, chunk {args.chunk} rows")
        if bn == n:
            t_ref, ref = t_hull, curve
        else:
            t_ref, ref = time_call("ndch only (same subset)", lambda: F.ndch(bc, bq), args.repeats)
            print(t_ref.line())
        t_base, base = time_call("all-chords hull (1 run)", lambda: all_chords_hull(bc, bq, args.chunk), 1)
        base_c, base_q = base  # type: ignore[misc]
        print(t_base.line())
        gap = max_gap(ref, base_c, base_q)  # type: ignore[arg-type]
        c_min, c_max = float(bc.min()), float(bc.max())
        base_curve = F.Curve(base_c, base_q)
        aiq_gap = max(abs(F.aiq(base_curve, c_min, c_max, nm) - F.aiq(ref, c_min, c_max, nm))  # type: ignore[arg-type]
                      for nm in F.NORMALISATIONS)
        same_ends = np.allclose([base_c[0], base_q[0], base_c[-1], base_q[-1]],
                                [ref.cost[0], ref.quality[0], ref.cost[-1], ref.quality[-1]])  # type: ignore[union-attr]
        print(f"  vertices: baseline {len(base_c)}, ndch {len(ref)}; max |hull difference| on a 100,001-cost grid "  # type: ignore[arg-type]
              f"{gap:.3g}; max |AIQ difference| {aiq_gap:.3g}; same end points: {same_ends}")
        if not (same_ends and gap <= 1e-9 and aiq_gap <= 1e-9):  # not `assert`: must hold under python -O too
            raise AssertionError("the all-chords baseline and ndch disagree")
        print("  agreement: OK")
        ratio = t_base.best / t_ref.median
        ratio_all = t_base.best / t_all.median if bn == n else float("nan")
        print(f"  ratio baseline / ndch: {ratio:,.0f}x" +
              (f"; baseline / (ndch + 2x aiq): {ratio_all:,.0f}x" if bn == n else ""))
        summary.append((f"all-chords baseline hull, n={bn:,}", fmt_s(t_base.best), "1 run"))
        summary.append(("ratio baseline / ndch (median)", f"{ratio:,.0f}x", "same points, hulls agree"))

    # ---- 3. goal -------------------------------------------------------------------------
    met = t_all.median < HULL_GOAL_S
    print(f"\n[3] goal: hull + AIQ on 10^5 points under {HULL_GOAL_S:g} s: "
          + (f"{'MET' if met else 'NOT MET'} (median {fmt_s(t_all.median)} on n={n:,})" if n >= GOAL_N
             else f"not checked (n={n:,} < 10^5; median {fmt_s(t_all.median)})"))

    # ---- 4. callwise bench ---------------------------------------------------------------
    if not args.skip_bench:
        data = args.data
        print(f"\n[4] callwise bench on {data} ({args.bench_repeats} run(s) each)")
        if not data.exists():
            print(f"  {data} not found: skipped")
        else:
            t_py = time_subprocess("python -c pass (interpreter start)", [sys.executable, "-c", "pass"],
                                   args.bench_repeats)
            t_imp = time_subprocess('python -c "import callwise" (start-up)', [sys.executable, "-c", "import callwise"],
                                    args.bench_repeats)
            t_cli_imp = time_subprocess("CLI imports (callwise.cli, report, matplotlib)",
                                        [sys.executable, "-c",
                                         "import callwise.cli, callwise.evaluation.report, rich.progress, matplotlib.pyplot"],
                                        args.bench_repeats)
            with tempfile.TemporaryDirectory(prefix="callwise-speed-") as tmp:
                cmd = callwise_command() + ["bench", str(data), "--policy", "random-mix", "--out", str(Path(tmp) / "cli")]
                t_cli = time_subprocess("callwise bench DATA --policy random-mix --out TMP (subprocess)", cmd,
                                        args.bench_repeats)
                steps = in_process_bench(data, args.n_boot, args.bench_repeats, Path(tmp) / "api")
            for t in (t_py, t_imp, t_cli_imp, t_cli):
                print(t.line())
            print("  in process (where the time goes; 'first' is cold, as in a fresh CLI run):")
            for t in steps:
                print(t.line())
            api_total = sum(t.median for t in steps[:3])
            report_total = sum(t.median for t in steps[3:])
            cold = sum(t.first for t in steps)
            print(f"  load + split + bench (medians): {fmt_s(api_total)}; + tables + plots: "
                  f"{fmt_s(api_total + report_total)}; all five cold (first runs): {fmt_s(cold)}; "
                  f"+ CLI start-up: {fmt_s(cold + t_cli_imp.median)} (vs. the CLI's {fmt_s(t_cli.median)})")
            ratio_b = t_cli.median / t_imp.median
            print(f"  ratio bench / start-up (medians): {ratio_b:.1f}x")
            met_b = t_cli.median < BENCH_GOAL_S
            share = t_imp.median / t_cli.median
            share_cli = t_cli_imp.median / t_cli.median
            print(f"  goal: bench on the slice under {BENCH_GOAL_S:g} s: {'MET' if met_b else 'NOT MET'} "
                  f"(median {fmt_s(t_cli.median)}; import callwise is {share:.0%} of it, "
                  f"with the CLI's imports {share_cli:.0%})")
            summary += [
                ("python -c pass", fmt_s(t_py.median), f"best {fmt_s(t_py.best)}"),
                ("import callwise (start-up)", fmt_s(t_imp.median), f"best {fmt_s(t_imp.best)}"),
                ("import CLI + report + matplotlib", fmt_s(t_cli_imp.median), f"best {fmt_s(t_cli_imp.best)}"),
                ("callwise bench slice (CLI, --out)", fmt_s(t_cli.median), f"best {fmt_s(t_cli.best)}"),
            ] + [(f"  in process: {t.label.split(' (')[0]}", fmt_s(t.median), f"cold {fmt_s(t.first)}") for t in steps] + [
                ("ratio bench / start-up", f"{ratio_b:.1f}x", "medians"),
            ]
            goal_bench_line = (f"bench on slice < {BENCH_GOAL_S:g} s", "MET" if met_b else "NOT MET",
                               f"start-up {share:.0%} ({share_cli:.0%} w/ CLI imports)")

    # ---- summary -------------------------------------------------------------------------
    summary.append((f"goal: hull + AIQ, 10^5 points < {HULL_GOAL_S:g} s",
                    ("MET" if met else "NOT MET") if n >= GOAL_N else "n/a", f"n={n:,}"))
    if not args.skip_bench and args.data.exists():
        summary.append(goal_bench_line)
    print_summary("Summary (medians unless noted)", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
