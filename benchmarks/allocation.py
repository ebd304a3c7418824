"""Speed benchmark for exact scoring of ensemble-vote allocations (``callwise.pipelines.ensemble``).

Run from the repository root::

    python benchmarks/allocation.py [--data ../shared/data] [--queries 1000] [--seed 0] [--repeats 3]
                                    [--baseline-allocs 200] [--cases 1,2,3]

An ensemble-vote pipeline has L answerer slots, each one call to a model, then a plurality vote;
an allocation names the model of each slot. Every figure and ratio is measured in this one process
on real recorded data:

1. rational-cascades MMLU: ``mmlu-llama`` (5 models) and ``mmlu-qwen_oai`` (4 models) joined by
   prompt text (``join_by_prompt``) into 9 models per question, ``--queries`` questions drawn at
   random (seeded), encoded with ``EnsembleOutcomes.from_table(..., normalise="choice")``
   (references inferred from the answers graded correct). Then ``mean_scores`` on all
   9^5 = 59,049 5-slot allocations (best of ``--repeats`` runs). Goal: under 10 s.
2. The same data, all 9^3 = 729 3-slot allocations.
3. RouterBench ARC-Challenge (11 models, raw response text, all its questions): all
   11^5 = 161,051 5-slot allocations.

Baseline (written here, not the vectorised code): per allocation, ``voting.plurality`` on the
(Q, L) matrix of the slots' recorded raw answers (it normalises, encodes and votes), the winning
slot's answer graded against the same references, and the cost of the allocation's distinct
models summed; a Python loop over allocations. It runs on ``--baseline-allocs`` random
allocations of each case (all of them when there are fewer), its mean quality and cost are
checked against ``mean_scores`` (a mismatch stops the script, also under ``python -O``), and its
time per allocation is extrapolated linearly to every allocation. Ratio = baseline (extrapolated)
/ callwise best time. Peak memory of one ``mean_scores`` call is measured with ``tracemalloc``
(numpy reports its buffers to it) in a separate run, so it does not slow the timed ones; the
process's peak resident set size is printed at the end.

A summary table is printed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import fmt_s, print_summary, time_call  # noqa: E402

import callwise  # noqa: E402
from callwise.core.normalise import normalise_array  # noqa: E402
from callwise.io import load  # noqa: E402
from callwise.pipelines.ensemble import (  # noqa: E402
    EnsembleOutcomes,
    all_allocations,
    join_by_prompt,
)
from callwise.voting.engine import EMPTY_QUALITY, plurality  # noqa: E402

GOAL_S = 10.0
MMLU_TASKS = ("mmlu-llama", "mmlu-qwen_oai")
NORMALISE = "choice"


def check(ok: bool, what: str) -> None:
    if not ok:  # not `assert`: must hold under python -O too
        raise AssertionError(what)


def fmt_mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MB"


# --------------------------------------------------------------------------------------------
# the naive baseline


class Baseline:
    """Per-allocation Python loop: ``voting.plurality`` on the (Q, L) raw answers of the slots."""

    def __init__(self, raw: np.ndarray, cost: np.ndarray, references: np.ndarray | None) -> None:
        self.raw = raw  # (Q, M) raw recorded answers (sample 0)
        self.cost = cost  # (Q, M)
        norm = normalise_array(raw, NORMALISE)
        refs = np.full(raw.shape[0], None, dtype=object) if references is None else references
        # the grade of each (question, model) answer against the reference, looked up by the winner
        self.correct = np.array([[a is not None and a == r for a in row] for row, r in zip(norm.tolist(), refs.tolist())],
                                dtype=float)

    def mean_scores(self, allocs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Q = self.raw.shape[0]
        rows = np.arange(Q)
        mq = np.empty(len(allocs))
        mc = np.empty(len(allocs))
        for i, alloc in enumerate(allocs):
            win = plurality(self.raw[:, alloc], NORMALISE)  # winning slot per question, -1: all abstain
            model = alloc[np.maximum(win, 0)]
            quality = np.where(win >= 0, self.correct[rows, model], EMPTY_QUALITY)
            mq[i] = quality.mean()
            mc[i] = self.cost[:, np.unique(alloc)].sum(axis=1).mean()
        return mq, mc


# --------------------------------------------------------------------------------------------


def peak_memory(fn: object) -> float:
    """Peak bytes traced by ``tracemalloc`` during one call of ``fn`` (numpy buffers included)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()  # type: ignore[operator]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return float(peak - base)


def run_case(label: str, e: EnsembleOutcomes, raw: np.ndarray, L: int, args: argparse.Namespace,
             summary: list[tuple[str, str, str]], goals: list[tuple[str, str, str]] | None) -> None:
    M, Q = e.n_models, e.n_queries
    allocs = all_allocations(M, L)
    A = len(allocs)
    print(f"\n{label}: {M} models, {L} slots -> {A:,} allocations, {Q:,} questions ({A * Q:,} allocation x question votes)")
    t_cw, res = time_call(f"callwise mean_scores, {A:,} allocations", lambda: e.mean_scores(allocs), args.repeats)
    mq, mc = res  # type: ignore[misc]
    print(t_cw.line())
    peak = peak_memory(lambda: e.mean_scores(allocs))
    print(f"  peak traced memory of one mean_scores call: {fmt_mb(peak)}")

    rng = np.random.default_rng(args.seed + L)
    nb = min(args.baseline_allocs, A)
    pick = np.sort(rng.choice(A, nb, replace=False)) if nb < A else np.arange(A)
    base = Baseline(raw, e.cost, e.references)
    t_base, bres = time_call(f"baseline: plurality loop, {nb:,} allocations", lambda: base.mean_scores(allocs[pick]), 1)
    bq, bc = bres  # type: ignore[misc]
    print(t_base.line())
    dq = float(np.max(np.abs(bq - mq[pick])))
    dc = float(np.max(np.abs(bc - mc[pick]) / np.maximum(np.abs(mc[pick]), 1e-300)))
    print(f"  checked: {nb:,} allocations, max |mean quality diff| {dq:.1e}, max rel. mean cost diff {dc:.1e}")
    check(dq < 1e-6, f"{label}: mean quality of callwise and the baseline differ by {dq}")
    check(dc < 1e-9, f"{label}: mean cost of callwise and the baseline differ by {dc}")
    per = t_base.best / nb
    full = per * A
    ratio = full / t_cw.best
    print(f"  baseline: {fmt_s(per)} per allocation -> {fmt_s(full)} for all {A:,} "
          f"({'extrapolated' if nb < A else 'measured'}); speed-up {ratio:,.0f}x")
    best = int(np.lexsort((mc, -mq))[0])  # highest mean quality, then the cheapest of those
    names = ", ".join(e.models[m] for m in allocs[best])
    print(f"  best allocation (cheapest of the best): [{names}] mean quality {mq[best]:.4f}, mean cost ${mc[best]:.6f}; "
          f"best single model {max(mq[[np.ravel_multi_index((m,) * L, (M,) * L) for m in range(M)]]):.4f}")
    summary.append((f"{label}, {A:,} allocs x {Q:,} q", fmt_s(t_cw.best),
                    f"baseline {fmt_s(full)}{' (extrap.)' if nb < A else ''}: {ratio:,.0f}x; peak {fmt_mb(peak)}"))
    if goals is not None:
        v = "met" if t_cw.best < GOAL_S else "not met"
        print(f"  goal: under {GOAL_S:g} s: {v} ({fmt_s(t_cw.best)})")
        goals.append((f"goal: {A:,} allocations under {GOAL_S:g} s", v, fmt_s(t_cw.best)))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data"),
                   help="folder holding rational-cascades/ and routerbench-subset/ (default ../shared/data)")
    p.add_argument("--queries", type=int, default=1000, help="MMLU questions to score on (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the question and baseline samples (default 0)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each callwise timing, best reported (default 3)")
    p.add_argument("--baseline-allocs", type=int, default=200,
                   help="allocations the naive baseline runs on per case (default 200)")
    p.add_argument("--cases", default="1,2,3", help="which cases to run, comma-separated (default 1,2,3)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = {int(c) for c in args.cases.split(",") if c.strip()}
    summary: list[tuple[str, str, str]] = []
    goals: list[tuple[str, str, str]] = []
    t_start = time.perf_counter()
    print(f"callwise {callwise.__version__} | numpy {np.__version__} | Python {platform.python_version()} | "
          f"{platform.machine()} {os.cpu_count()} CPU(s) | {platform.processor() or platform.platform()}")
    print(f"callwise: best of {args.repeats} runs; baseline: 1 run; ratio = baseline (all allocations) / callwise")

    if cases & {1, 2}:
        t_load, table = time_call("load rational-cascades", lambda: load(args.data / "rational-cascades"), 1)
        t_join, joined = time_call(f"join_by_prompt {list(MMLU_TASKS)}",
                                   lambda: join_by_prompt(table, MMLU_TASKS), 1)  # type: ignore[arg-type]
        view = joined.dense()  # type: ignore[union-attr]
        rng = np.random.default_rng(args.seed)
        nq = min(args.queries, view.n_prompts)
        rows = np.sort(rng.choice(view.n_prompts, nq, replace=False))
        view = view.take(rows)
        t_enc, e = time_call(f"EnsembleOutcomes.from_table({nq} q, '{NORMALISE}')",
                             lambda: EnsembleOutcomes.from_table(view, normalise=NORMALISE), 1)
        print(f"\nMMLU (rational-cascades): {view.n_prompts:,} of {joined.dense().n_prompts:,} joined questions "  # type: ignore[union-attr]
              f"(seed {args.seed}), models {list(e.models)}")  # type: ignore[union-attr]
        for t in (t_load, t_join, t_enc):
            print(t.line())
        print(f"  references: {e.reference_stats}")  # type: ignore[union-attr]
        raw = view.answers[:, :, 0]  # type: ignore[index]
        if 1 in cases:
            run_case("[1] MMLU 5 slots", e, raw, 5, args, summary, goals)  # type: ignore[arg-type]
        if 2 in cases:
            run_case("[2] MMLU 3 slots", e, raw, 3, args, summary, None)  # type: ignore[arg-type]

    if 3 in cases:
        path = args.data / "routerbench-subset" / "arc_challenge_test.csv.gz"
        t_load, arc = time_call("load ARC-Challenge (drop_incomplete)", lambda: load(path, drop_incomplete=True), 1)
        t_enc, ea = time_call(f"EnsembleOutcomes.from_table(ARC, '{NORMALISE}')",
                              lambda: EnsembleOutcomes.from_table(arc, normalise=NORMALISE), 1)  # type: ignore[arg-type]
        print(f"\nARC-Challenge (routerbench-subset test file): {ea.n_queries} questions, "  # type: ignore[union-attr]
              f"{ea.n_models} models")  # type: ignore[union-attr]
        for t in (t_load, t_enc):
            print(t.line())
        print(f"  references: {ea.reference_stats}")  # type: ignore[union-attr]
        av = arc.dense(ea.models)  # type: ignore[union-attr]
        run_case("[3] ARC 5 slots", ea, av.answers[:, :, 0], 5, args, summary, None)  # type: ignore[arg-type, index]

    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"\nprocess peak resident set size: {ru / 1024:.0f} MB")
    print_summary("Summary (best times; ratio = baseline / callwise)", summary + goals)
    print(f"\ntotal wall time {fmt_s(time.perf_counter() - t_start)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
