"""Speed benchmark for the vote engine (``callwise.voting``) and the scaling fit (``callwise.voting.scaling``).

Run from the repository root::

    python benchmarks/voting.py [--queries 10000] [--k 1000] [--categories 6] [--seed 0]
                                [--abstain 0.02] [--baseline-queries 200] [--repeats 3]

Every figure and ratio is measured in this one process, on synthetic recorded samples: per query
an answer distribution drawn from a Dirichlet over ``--categories`` answers (category 0 is the
right answer and gets concentration 3, the others 1, so both easy and hard queries occur),
``--k`` samples drawn from it as int16 codes, a fraction ``--abstain`` of them abstentions (-1).

1. The empirical vote curve: the accuracy of the plurality vote of the first K samples, for every
   K = 1..``--k``, over all queries: ``callwise.voting.engine.prefix_winners`` on the (Q, K) codes, then a
   quality lookup of each prefix's winner and the mean over queries. Best of ``--repeats`` runs.
   Goal: under 2 s for 10^4 queries x 1000 samples (PASS/FAIL printed; never fails the script).
2. Baseline in the same process: a per-query Python loop with a ``collections.Counter`` updated
   one sample at a time, the winner after each sample being ``most_common(1)`` (ties go to the
   answer seen first, as in callwise). It runs on the first ``--baseline-queries`` queries only;
   its time is scaled linearly to all queries (the loop is linear in queries). Its per-prefix
   winners and its curve on that subset must equal callwise's; the ratio is printed.
3. No goals, times only: ``callwise.voting.vote_curve`` (Monte Carlo expectation over draws with
   replacement, K = 1..100, 200 replicates) on 2,000 of the queries, and
   ``callwise.voting.scaling.fit_g`` on 10^4 synthetic per-query accuracy curves (binary-vote accuracies
   at the paper's K grid of queries with random per-call accuracies, plus noise).

A summary is printed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import fmt_s, print_summary, time_call  # noqa: E402

import callwise  # noqa: E402
from callwise.voting.engine import EMPTY_QUALITY, Samples, prefix_winners, vote_curve  # noqa: E402
from callwise.voting.scaling import FIT_KS, binary_vote_accuracy, fit_g, g_curves  # noqa: E402

CURVE_GOAL_S = 2.0
GOAL_QUERIES, GOAL_K = 10_000, 1000
MC_QUERIES, MC_KS, MC_REPS = 2_000, 100, 200
FIT_QUERIES = 10_000
#: Dirichlet concentration of the right answer (the wrong ones have 1): a mix of easy and hard queries.
RIGHT_CONCENTRATION = 3.0


# --------------------------------------------------------------------------------------------
# synthetic samples


def synthetic_codes(queries: int, k: int, categories: int, abstain: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes (Q, K) int16, value (Q, C)): K samples per query from a Dirichlet answer distribution.

    Category 0 is right (value 1), the others wrong (value 0); a fraction ``abstain`` of samples is
    -1. Sampled by inverse CDF, one block of queries at a time to bound memory.
    """
    rng = np.random.default_rng(seed)
    alpha = np.ones(categories)
    alpha[0] = RIGHT_CONCENTRATION
    p = rng.dirichlet(alpha, size=queries)
    cum = np.cumsum(p, axis=1)
    cum[:, -1] = 1.0
    codes = np.empty((queries, k), dtype=np.int16)
    step = max(1, 2_000_000 // max(k, 1))
    for a in range(0, queries, step):
        u = rng.random((min(step, queries - a), k))
        c = cum[a:a + step]
        codes[a:a + step] = (u[:, :, None] >= c[:, None, :-1]).sum(axis=2)
    if abstain > 0:
        codes[rng.random((queries, k)) < abstain] = -1
    value = np.zeros((queries, categories))
    value[:, 0] = 1.0
    return codes, value


def as_samples(codes: np.ndarray, value: np.ndarray) -> Samples:
    """The codes as :class:`callwise.voting.Samples` (every sample recorded, in order; cost 1e-4 each)."""
    Q, S = codes.shape
    rows = np.arange(Q)[:, None]
    quality = np.where(codes >= 0, value[rows, np.maximum(codes, 0)], EMPTY_QUALITY)
    return Samples(codes=codes, value=value, quality=quality, cost=np.full((Q, S), 1e-4),
                   n=np.full(Q, S, dtype=np.int64), order=np.broadcast_to(np.arange(S), (Q, S)).copy())


# --------------------------------------------------------------------------------------------
# 1. callwise and 2. the Counter baseline


def callwise_curve(codes: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(winners (Q, K), accuracy curve (K,)): the vote of every prefix of every query, then its mean quality."""
    win = prefix_winners(codes)
    rows = np.arange(codes.shape[0])[:, None]
    q = np.where(win >= 0, value[rows, np.maximum(win, 0)], EMPTY_QUALITY)
    return win, q.mean(axis=0)


def counter_curve(codes: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same with a per-query Python loop: a Counter updated sample by sample, ``most_common(1)`` after each.

    ``most_common(1)`` returns the first of the tied counts in insertion order, i.e. the answer
    seen first: callwise's tie rule. Abstentions (-1) cast no vote; no vote yet gives -1.
    """
    Q, K = codes.shape
    win = np.empty((Q, K), dtype=np.int64)
    for i, row in enumerate(codes.tolist()):
        counts: Counter[int] = Counter()
        out = win[i]
        leader = -1
        for t, c in enumerate(row):
            if c >= 0:
                counts[c] += 1
                leader = counts.most_common(1)[0][0]
            out[t] = leader
    rows = np.arange(Q)[:, None]
    q = np.where(win >= 0, value[rows, np.maximum(win, 0)], EMPTY_QUALITY)
    return win, q.mean(axis=0)


# --------------------------------------------------------------------------------------------
# 3. Monte Carlo vote curve and the scaling fit


def synthetic_fit_input(queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(acc (Q, len(FIT_KS)), easy (Q,)): binary-vote accuracies of random per-call accuracies, plus noise."""
    rng = np.random.default_rng(seed + 1)
    p = rng.beta(2.0, 2.0, size=queries)
    acc = binary_vote_accuracy(np.asarray(FIT_KS)[None, :], p[:, None])
    acc = np.clip(acc + rng.normal(0.0, 0.01, acc.shape), 0.0, 1.0)
    return acc, p > 0.5


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=GOAL_QUERIES, help="queries (default 10000)")
    p.add_argument("--k", type=int, default=GOAL_K, help="recorded samples per query = largest K (default 1000)")
    p.add_argument("--categories", type=int, default=6, help="distinct answers per query (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic samples (default 0)")
    p.add_argument("--abstain", type=float, default=0.02, help="share of abstaining samples, code -1 (default 0.02)")
    p.add_argument("--baseline-queries", type=int, default=200,
                   help="queries the Counter baseline runs on; its time is scaled to --queries (default 200)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of the callwise timings (default 3)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not 2 <= args.categories <= 32_000 or args.queries < 1 or args.k < 1:
        raise SystemExit("need --queries >= 1, --k >= 1 and 2 <= --categories <= 32000")
    summary: list[tuple[str, str, str]] = []  # (what, figure, note)
    print(f"callwise {callwise.__version__} | numpy {np.__version__} | Python {platform.python_version()} | "
          f"{platform.machine()} {os.cpu_count()} CPU(s) | {platform.processor() or platform.platform()}")

    Q, K = args.queries, args.k
    t0 = time.perf_counter()
    codes, value = synthetic_codes(Q, K, args.categories, args.abstain, args.seed)
    print(f"\nsynthetic samples: {Q:,} queries x {K:,} samples, {args.categories} answers (Dirichlet, answer 0 "
          f"right), {args.abstain:.0%} abstentions, seed {args.seed} (made in {fmt_s(time.perf_counter() - t0)})")

    # ---- 1. the empirical vote curve ---------------------------------------------------------
    print(f"\n[1] empirical vote curve, K = 1..{K:,}: prefix_winners on ({Q:,}, {K:,}) int16 + quality lookup")
    t_cw, res = time_call("prefix_winners + lookup + mean over queries", lambda: callwise_curve(codes, value),
                          args.repeats)
    win, curve = res  # type: ignore[misc]
    print(t_cw.line())
    show = [k for k in (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000) if k <= K]
    print("  accuracy at K: " + ", ".join(f"{k}: {curve[k - 1]:.4f}" for k in show))
    kb = int(np.argmax(curve)) + 1
    easy = mode_is_right(codes, args.categories)
    print(f"  best K {kb} (accuracy {curve[kb - 1]:.4f}); right answer is the mode of the {K:,} samples for "
          f"{easy:.1%} of queries (the limit as K grows)")
    goal_here = Q >= GOAL_QUERIES and K >= GOAL_K
    passed = t_cw.best < CURVE_GOAL_S
    verdict = ("PASS" if passed else "FAIL") if goal_here else "n/a"
    print(f"  goal: curve for 10^4 queries x 1000 samples under {CURVE_GOAL_S:g} s: {verdict} "
          f"(best {fmt_s(t_cw.best)} on {Q:,} x {K:,})")
    summary.append((f"vote curve K=1..{K:,}, {Q:,} queries", fmt_s(t_cw.best), f"best of {args.repeats}"))

    # ---- 2. the Counter baseline ---------------------------------------------------------------
    bq = min(args.baseline_queries, Q)
    print(f"\n[2] baseline: per-query Python loop, Counter updated per sample + most_common(1), on the first "
          f"{bq:,} queries (time scaled linearly to {Q:,})")
    sub = codes[:bq]
    t_base, bres = time_call(f"Counter loop, {bq:,} queries x {K:,} samples (1 run)", lambda: counter_curve(sub, value[:bq]),
                             1)
    b_win, b_curve = bres  # type: ignore[misc]
    t_sub, sres = time_call(f"callwise on the same {bq:,} queries", lambda: callwise_curve(sub, value[:bq]),
                            args.repeats)
    s_win, s_curve = sres  # type: ignore[misc]
    print(t_base.line())
    print(t_sub.line())
    same_win = bool(np.array_equal(b_win, s_win)) and bool(np.array_equal(s_win, win[:bq]))
    same_curve = bool(np.array_equal(b_curve, s_curve))
    print(f"  identical winners of every prefix: {same_win}; identical curves: {same_curve}")
    if not (same_win and same_curve):  # not `assert`: must hold under python -O too
        raise AssertionError("the Counter baseline and callwise.voting.engine.prefix_winners disagree")
    scaled = t_base.best * Q / bq
    ratio = scaled / t_cw.best
    ratio_sub = t_base.best / t_sub.best
    print(f"  baseline scaled to {Q:,} queries: {fmt_s(scaled)} (x{Q / bq:g}); ratio baseline / callwise: "
          f"{ratio:,.0f}x (on the {bq:,}-query subset itself: {ratio_sub:,.0f}x)")
    summary.append((f"Counter baseline, scaled to {Q:,} queries", fmt_s(scaled), f"measured on {bq:,}"))
    summary.append(("ratio baseline / callwise", f"{ratio:,.0f}x", "identical winners and curves"))

    # ---- 3. Monte Carlo vote curve and scaling fit ---------------------------------------------
    mq = min(MC_QUERIES, Q)
    mk = min(MC_KS, K)
    print(f"\n[3] no goal: vote_curve (with replacement, K = 1..{mk}, reps={MC_REPS}) on {mq:,} queries; "
          f"fit_g on {FIT_QUERIES:,} curves")
    s = as_samples(codes[:mq], value[:mq])
    t_mc, mc = time_call(f"vote_curve, {mq:,} queries, ks=1..{mk}, reps={MC_REPS}",
                         lambda: vote_curve(s, range(1, mk + 1), draws="with-replacement", reps=MC_REPS, seed=0),
                         args.repeats)
    mc_curve = np.asarray(mc).mean(axis=0)
    print(t_mc.line())
    print(f"  expected accuracy at K = 1, 10, {mk}: {mc_curve[0]:.4f}, {mc_curve[min(10, mk) - 1]:.4f}, "
          f"{mc_curve[-1]:.4f} (first-K empirical on the same queries: {s_curve_at(codes[:mq], value[:mq], mk)})")
    acc, easy = synthetic_fit_input(FIT_QUERIES, args.seed)
    t_fit, params = time_call(f"fit_g, {FIT_QUERIES:,} curves at K = {list(FIT_KS)}", lambda: fit_g(acc, easy),
                              args.repeats)
    rmse = float(np.sqrt(np.mean((g_curves(np.asarray(params), easy, FIT_KS) - acc) ** 2)))
    print(t_fit.line())
    print(f"  fit RMSE {rmse:.4f} (noise sd 0.01)")
    summary.append((f"vote_curve MC, {mq:,} q, K<={mk}, {MC_REPS} reps", fmt_s(t_mc.best), f"best of {args.repeats}"))
    summary.append((f"fit_g, {FIT_QUERIES:,} curves", fmt_s(t_fit.best), f"best of {args.repeats}, RMSE {rmse:.4f}"))

    # ---- summary -------------------------------------------------------------------------------
    summary.append((f"goal: vote curve 10^4 x 1000 < {CURVE_GOAL_S:g} s", verdict, f"{Q:,} x {K:,}"))
    print_summary("Summary (best times)", summary)
    return 0


def mode_is_right(codes: np.ndarray, categories: int) -> float:
    """Share of queries whose most frequent recorded answer is the right one (category 0; ties to the lowest code)."""
    Q = codes.shape[0]
    ok = codes >= 0
    rows = np.broadcast_to(np.arange(Q)[:, None], codes.shape)[ok]
    counts = np.bincount(rows * categories + codes[ok], minlength=Q * categories).reshape(Q, categories)
    return float(np.mean(np.argmax(counts, axis=1) == 0))


def s_curve_at(codes: np.ndarray, value: np.ndarray, k: int) -> str:
    """The first-K empirical accuracy at K = 1, 10, k, for comparison with the expectation."""
    _, c = callwise_curve(codes[:, :k], value)
    return f"{c[0]:.4f}, {c[min(10, k) - 1]:.4f}, {c[-1]:.4f}"


if __name__ == "__main__":
    sys.exit(main())
