"""Speed benchmark for metric-aware aggregation (``callwise.aggregation``, ``callwise.aggregation.utilities``).

Run from the repository root::

    python benchmarks/aggregation.py [--seed 0] [--repeats 3] [--repeat-share 0.5]
                                     [--rouge-baseline-queries 500] [--mc-baseline-queries 200]
                                     [--cases 1,2,3,4]

Every figure and ratio is measured in this one process on seeded synthetic data made here; each
baseline is written in this script (not imported from callwise) and its results are checked
against callwise's before anything is timed (a mismatch stops the script, also under ``python -O``).

1. Numeric rules on 10,000 queries x 40 float samples (per query a centre drawn log-normally,
   samples = centre + Student-t noise, so every sample is a distinct float):
   ``callwise.aggregation.median(x)`` against ``[statistics.median(row) for row in x.tolist()]``
   (``np.median`` per row is timed too, for information: it is slower than ``statistics``, so the
   faster loop is the baseline), and ``quantile(x, 0.9, weights=w)`` (weights uniform on [0, 1))
   against a per-row Python loop that sorts the row and accumulates weights until 0.9 of the
   total. The public functions take any answers, so they build a :class:`SampleSet` (canonical
   strings, read back as numbers) first; that step and the rule on a prebuilt SampleSet are
   timed separately to show where the time goes.
2. MBR with SQuAD token F1 on 2,000 queries x 16 sampled texts of 5-40 tokens from a 50-word
   vocabulary (articles and punctuation included, which the SQuAD normalisation drops). Per
   query a base text; each later sample is, with probability ``--repeat-share``, a copy of an
   earlier sample, else the base with 0-4 random token edits (so some samples are identical).
   ``callwise.aggregation.mbr(samples, "token-f1")`` against a naive loop: per query, tokenise
   each sample once (``collections.Counter``), then every (candidate, sample) pair in Python,
   the candidate with the largest summed F1 (= mean) wins, first on ties (within 1e-12 relative,
   like callwise, since float sums in different orders differ in the last bits). Then the same
   ``mbr`` call through a shared, already filled ``UtilityCache`` (``mbr(..., cache=cache)``),
   and ``utility_matrices`` alone, to show the cache and where the time goes.
3. MBR with ROUGE-L on the first 500 of those queries against a naive Python LCS dynamic program
   over every pair (``--rouge-baseline-queries`` runs it on fewer and scales linearly).
4. Offline expected score: ``draw_predictions(ss, "median", 8, draws="with-replacement",
   reps=200)`` on 2,000 queries x 40 float samples (as in 1), and the expected absolute error of
   those predictions against each query's centre. Time and throughput (query x draw rows per
   second; ``from_numbers`` of the (Q, reps) predictions, which it includes, is timed alone too).
   Compared with a naive loop over queries and reps (``statistics.median`` of 8 indices
   drawn with ``random.Random``) on the first ``--mc-baseline-queries`` queries, its time scaled
   linearly to all queries (the draws differ, so only the expected errors are compared, within
   Monte Carlo noise).

Goals (checked and printed as MET / NOT MET; they never fail the script):
vectorised MBR token F1 at least 5x faster than the naive per-pair loop (case 2, ``mbr`` without
a shared cache); median at least 10x faster than the per-row loop (case 1, the public
``median`` on the float array). Ratios are baseline best time / callwise best time.

A summary table is printed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import string
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import fmt_s, print_summary, time_call  # noqa: E402

import callwise  # noqa: E402
from callwise.aggregation.combine import mbr, median, quantile  # noqa: E402
from callwise.aggregation.rules import SampleSet, draw_predictions, from_numbers
from callwise.aggregation.utilities import UtilityCache, get_utility, utility_matrices  # noqa: E402

MBR_GOAL_X = 5.0
MEDIAN_GOAL_X = 10.0
NUM_QUERIES, NUM_SAMPLES = 10_000, 40
TAU = 0.9
TEXT_QUERIES, TEXT_SAMPLES = 2_000, 16
MIN_TOKENS, MAX_TOKENS = 5, 40
ROUGE_QUERIES = 500
MC_QUERIES, MC_N, MC_REPS = 2_000, 8, 200
#: 50 words: 46 plain ones, three articles and one with punctuation (the SQuAD normalisation drops those).
VOCAB = ("the", "a", "an", "cat", "dog", "sat", "on", "mat", "river", "bank", "money", "paid", "interest", "rate",
         "year", "city", "paris", "london", "capital", "of", "france", "england", "is", "was", "in", "and", "to",
         "from", "by", "with", "red", "blue", "green", "large", "small", "number", "answer", "question", "model",
         "sample", "vote", "median", "token", "score", "high", "low", "first", "last", "one", "end.")


# --------------------------------------------------------------------------------------------
# synthetic data


def numeric_samples(queries: int, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x (Q, S) floats, centre (Q,)): per query a log-normal centre, samples = centre + scaled t(3) noise."""
    rng = np.random.default_rng(seed)
    centre = rng.lognormal(3.0, 1.5, queries)
    x = centre[:, None] + 0.1 * centre[:, None] * rng.standard_t(3, (queries, samples))
    return x, centre


def text_samples(queries: int, samples: int, repeat_share: float, seed: int) -> list[list[str]]:
    """Per query a base text of 5-40 words; each later sample copies an earlier one with probability
    ``repeat_share``, else it is the base with 0-4 random edits (replace, delete or insert a word)."""
    rng = np.random.default_rng(seed)
    V = len(VOCAB)
    out: list[list[str]] = []
    for _ in range(queries):
        base = [VOCAB[i] for i in rng.integers(0, V, int(rng.integers(MIN_TOKENS, MAX_TOKENS + 1)))]
        row: list[str] = []
        for s in range(samples):
            if s > 0 and rng.random() < repeat_share:
                row.append(row[int(rng.integers(0, s))])
                continue
            t = list(base)
            for _ in range(int(rng.integers(0, 5))):
                op, i = int(rng.integers(0, 3)), int(rng.integers(0, len(t)))
                if op == 0:
                    t[i] = VOCAB[int(rng.integers(0, V))]
                elif op == 1 and len(t) > MIN_TOKENS:
                    del t[i]
                elif op == 2 and len(t) < MAX_TOKENS:
                    t.insert(i, VOCAB[int(rng.integers(0, V))])
            row.append(" ".join(t))
        out.append(row)
    return out


# --------------------------------------------------------------------------------------------
# baselines, written here on purpose


def loop_median(x: np.ndarray) -> list[float]:
    return [statistics.median(row) for row in x.tolist()]


def loop_np_median(x: np.ndarray) -> list[float]:
    return [float(np.median(row)) for row in x]


def loop_quantile(x: np.ndarray, w: np.ndarray, tau: float) -> list[float]:
    """Per row: sort the values, accumulate their weights, the first value reaching tau of the total."""
    out = []
    for xs, ws in zip(x.tolist(), w.tolist()):
        order = sorted(range(len(xs)), key=xs.__getitem__)
        target = tau * sum(ws)
        acc = 0.0
        pick = xs[order[-1]]
        for i in order:
            acc += ws[i]
            if acc >= target:
                pick = xs[i]
                break
        out.append(pick)
    return out


_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def squad_tokens(text: str) -> list[str]:
    """SQuAD's normalize_answer, split: lower-case, drop punctuation, drop articles, split on whitespace."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()


def squad_f1(ca: Counter, la: int, cb: Counter, lb: int) -> float:
    """SQuAD token F1 from token Counters and lengths (both empty: 1; one empty: 0)."""
    if la == 0 or lb == 0:
        return float(la == lb)
    common = sum((ca & cb).values())
    if common == 0:
        return 0.0
    p, r = common / la, common / lb
    return 2 * p * r / (p + r)


def lcs(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length, the textbook dynamic program with two rows."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(ta: list[str], tb: list[str]) -> float:
    la, lb = len(ta), len(tb)
    if la == 0 or lb == 0:
        return float(la == lb)
    m = lcs(ta, tb)
    if m == 0:
        return 0.0
    p, r = m / la, m / lb
    return 2 * p * r / (p + r)


def _first_argmax(scores: list[float]) -> int:
    top = max(scores)
    tol = 1e-12 * max(abs(top), 1.0)
    return next(i for i, s in enumerate(scores) if s >= top - tol)


def naive_mbr_f1(texts: list[list[str]]) -> list[str]:
    """Per query, every (candidate, sample) pair in Python; the largest summed token F1 wins, first on ties."""
    out = []
    for row in texts:
        toks = [squad_tokens(s) for s in row]
        cs, ls = [Counter(t) for t in toks], [len(t) for t in toks]
        n = len(row)
        scores = [sum(squad_f1(cs[i], ls[i], cs[j], ls[j]) for j in range(n)) for i in range(n)]
        out.append(row[_first_argmax(scores)])
    return out


def naive_mbr_rouge(texts: list[list[str]]) -> list[str]:
    """The same with ROUGE-L F (LCS dynamic program per pair)."""
    out = []
    for row in texts:
        toks = [squad_tokens(s) for s in row]
        n = len(row)
        scores = [sum(rouge_l(toks[i], toks[j]) for j in range(n)) for i in range(n)]
        out.append(row[_first_argmax(scores)])
    return out


def naive_expected_mae(x: np.ndarray, centre: np.ndarray, n: int, reps: int, seed: int) -> tuple[np.ndarray, float]:
    """Per query and rep: n positions drawn with replacement, statistics.median; (Q, reps) predictions and
    the mean absolute error against the centres."""
    rnd = random.Random(seed)
    rows = x.tolist()
    S = x.shape[1]
    pred = np.empty((len(rows), reps))
    for q, row in enumerate(rows):
        for r in range(reps):
            pred[q, r] = statistics.median([row[rnd.randrange(S)] for _ in range(n)])
    return pred, float(np.mean(np.abs(pred - centre[:, None])))


def check(ok: bool, what: str) -> None:
    if not ok:  # not `assert`: must hold under python -O too
        raise AssertionError(what)


def verdict(ratio: float, goal: float) -> str:
    return "MET" if ratio >= goal else "NOT MET"


# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of the callwise timings (default 3)")
    p.add_argument("--baseline-repeats", type=int, default=1,
                   help="repeats of the Python-loop baselines of cases 2-4 (default 1; case 1's are cheap: --repeats)")
    p.add_argument("--repeat-share", type=float, default=0.5,
                   help="chance that a text sample copies an earlier one of its query (default 0.5)")
    p.add_argument("--rouge-baseline-queries", type=int, default=ROUGE_QUERIES,
                   help=f"queries the LCS baseline runs on, scaled to {ROUGE_QUERIES} (default {ROUGE_QUERIES})")
    p.add_argument("--mc-baseline-queries", type=int, default=200,
                   help=f"queries the Monte Carlo loop runs on, scaled to {MC_QUERIES:,} (default 200)")
    p.add_argument("--cases", default="1,2,3,4", help="which cases to run, comma-separated (default 1,2,3,4)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = {int(c) for c in args.cases.split(",") if c.strip()}
    R, BR = args.repeats, args.baseline_repeats
    summary: list[tuple[str, str, str]] = []  # (what, figure, note)
    goals: list[tuple[str, str, str]] = []
    t_start = time.perf_counter()
    print(f"callwise {callwise.__version__} | numpy {np.__version__} | Python {platform.python_version()} | "
          f"{platform.machine()} {os.cpu_count()} CPU(s) | {platform.processor() or platform.platform()}")
    print(f"callwise: best of {R} runs; baselines: best of {BR} run(s) unless noted; ratio = baseline / callwise")

    # ---- 1. median and weighted quantile ---------------------------------------------------------
    if 1 in cases:
        Q, S = NUM_QUERIES, NUM_SAMPLES
        x, _ = numeric_samples(Q, S, args.seed)
        w = np.random.default_rng(args.seed + 1).random((Q, S))
        print(f"\n[1] numeric rules on {Q:,} queries x {S} float samples (log-normal centres + t(3) noise, "
              f"all distinct; seed {args.seed})")
        ref_med = np.asarray(loop_median(x))
        got_med = median(x)
        check(np.allclose(got_med, ref_med, rtol=1e-8, atol=0.0), "median: callwise and statistics.median disagree")
        check(np.allclose(np.asarray(loop_np_median(x)), ref_med, rtol=1e-12, atol=0.0), "np.median disagrees")
        ref_q = np.asarray(loop_quantile(x, w, TAU))
        got_q = quantile(x, TAU, weights=w)
        check(np.allclose(got_q, ref_q, rtol=1e-8, atol=0.0), "weighted quantile: callwise and the loop disagree")
        print(f"  checked: median and weighted {TAU:g}-quantile agree with the loops on all {Q:,} queries "
              f"(max rel. diff {np.max(np.abs(got_med / ref_med - 1)):.1e}, {np.max(np.abs(got_q / ref_q - 1)):.1e}:"
              f" answers are canonical strings of 9 significant digits)")
        t_med, _ = time_call("callwise.aggregation.median(x)", lambda: median(x), R)
        t_med_ss, ss1 = time_call("  of which: SampleSet.from_samples(x, 'number')",
                                  lambda: SampleSet.from_samples(x, normalise="number"), 1)
        ss1 = ss1.usable_where("number")  # type: ignore[union-attr]
        t_med_rule, _ = time_call("  rule only: draw_predictions(ss, 'median')",
                                  lambda: draw_predictions(ss1, "median", draws="first"), R)
        t_loop, _ = time_call("baseline: statistics.median per row", lambda: loop_median(x), R)
        t_nploop, _ = time_call("(info) np.median per row", lambda: loop_np_median(x), 1)
        t_floor, _ = time_call("(info) np.median(x, axis=1), floats only", lambda: np.median(x, axis=1), R)
        for t in (t_med, t_med_ss, t_med_rule, t_loop, t_nploop, t_floor):
            print(t.line())
        r_med = t_loop.best / t_med.best
        r_rule = t_loop.best / t_med_rule.best
        print(f"  ratio loop / median(x): {r_med:.2f}x (callwise {1 / r_med:.0f}x slower); loop / rule on a prebuilt "
              f"SampleSet: {r_rule:.2f}x")
        t_q, _ = time_call(f"callwise.aggregation.quantile(x, {TAU:g}, weights=w)", lambda: quantile(x, TAU, weights=w), R)
        t_qloop, _ = time_call("baseline: per-row sort + accumulate weights", lambda: loop_quantile(x, w, TAU), R)
        print(t_q.line())
        print(t_qloop.line())
        r_q = t_qloop.best / t_q.best
        print(f"  ratio loop / quantile: {r_q:.2f}x")
        v = verdict(r_med, MEDIAN_GOAL_X)
        print(f"  goal: median >= {MEDIAN_GOAL_X:g}x faster than the per-row loop: {v} ({r_med:.2f}x)")
        summary += [(f"median, {Q:,} x {S}", fmt_s(t_med.best), f"loop {fmt_s(t_loop.best)}: {r_med:.2f}x"),
                    ("  median rule on prebuilt SampleSet", fmt_s(t_med_rule.best), f"{r_rule:.2f}x vs loop"),
                    (f"weighted quantile {TAU:g}, {Q:,} x {S}", fmt_s(t_q.best),
                     f"loop {fmt_s(t_qloop.best)}: {r_q:.2f}x")]
        goals.append((f"goal: median >= {MEDIAN_GOAL_X:g}x per-row loop", v, f"{r_med:.2f}x"))

    # ---- 2. MBR token F1 -------------------------------------------------------------------------
    if cases & {2, 3}:
        TQ, TS = TEXT_QUERIES, TEXT_SAMPLES
        texts = text_samples(TQ, TS, args.repeat_share, args.seed + 2)
        distinct = np.array([len(set(r)) for r in texts])
        ntok = np.array([len(s.split()) for r in texts for s in r])
        print(f"\ntexts: {TQ:,} queries x {TS} samples, {ntok.min()}-{ntok.max()} words (mean {ntok.mean():.1f}) from "
              f"{len(VOCAB)} words, repeat share {args.repeat_share:g}: {distinct.mean():.2f} distinct per query "
              f"(min {distinct.min()}, max {distinct.max()}); pairs: {TQ * TS * TS:,} sample pairs, "
              f"{int((distinct ** 2).sum()):,} distinct-answer pairs")
    if 2 in cases:
        print("\n[2] MBR, SQuAD token F1")
        t_naive, ref = time_call("baseline: per-pair Counter loop", lambda: naive_mbr_f1(texts), BR)
        got = mbr(texts, "token-f1")
        same = sum(a == b for a, b in zip(ref, got))  # type: ignore[arg-type]
        print(f"  checked: same pick for {same:,} / {TQ:,} queries")
        check(same == TQ, "MBR token F1: callwise and the naive loop pick different answers")
        t_mbr, _ = time_call("callwise.aggregation.mbr(texts, 'token-f1')", lambda: mbr(texts, "token-f1"), R)
        cache = UtilityCache()
        t_cold, got_c = time_call("mbr(..., cache=shared) 1st call (cold cache)",
                                  lambda: mbr(texts, "token-f1", cache=cache), 1)
        cold = (cache.hits, cache.misses)
        t_warm, got_w = time_call("mbr(..., cache=shared) again (warm cache)",
                                  lambda: mbr(texts, "token-f1", cache=cache), R)
        check(list(got_c) == list(got) and list(got_w) == list(got), "MBR with a shared cache picks differently")
        warm = (cache.hits - cold[0], cache.misses - cold[1])
        cands = [list(dict.fromkeys(r)) for r in texts]
        f1u = get_utility("token-f1")
        t_um, _ = time_call("  of which: utility_matrices(distinct, 'token-f1')",
                            lambda: utility_matrices(cands, f1u, UtilityCache()), R)
        for t in (t_naive, t_mbr, t_cold, t_warm, t_um):
            print(t.line())
        print(f"  cache: cold call {cold[0]:,} hits / {cold[1]:,} computed (pairs repeated across queries); "
              f"warm calls {warm[0]:,} hits / {warm[1]:,} computed; {len(cache):,} values stored")
        r_mbr = t_naive.best / t_mbr.best
        r_warm = t_naive.best / t_warm.best
        print(f"  ratio naive / mbr: {r_mbr:.1f}x; naive / mbr with a warm shared cache: {r_warm:.1f}x; "
              f"warm cache saves {1 - t_warm.best / t_mbr.best:.0%} of a call")
        v = verdict(r_mbr, MBR_GOAL_X)
        print(f"  goal: MBR token F1 >= {MBR_GOAL_X:g}x faster than the per-pair loop: {v} ({r_mbr:.1f}x)")
        summary += [(f"MBR token F1, {TQ:,} x {TS}", fmt_s(t_mbr.best), f"naive {fmt_s(t_naive.best)}: {r_mbr:.1f}x"),
                    ("  same, warm shared UtilityCache", fmt_s(t_warm.best), f"{r_warm:.1f}x vs naive")]
        goals.append((f"goal: MBR token F1 >= {MBR_GOAL_X:g}x per-pair loop", v, f"{r_mbr:.1f}x"))

    # ---- 3. MBR ROUGE-L --------------------------------------------------------------------------
    if 3 in cases:
        RQ = min(ROUGE_QUERIES, TEXT_QUERIES)
        bq = max(1, min(args.rouge_baseline_queries, RQ))
        sub = texts[:RQ]
        print(f"\n[3] MBR, ROUGE-L, first {RQ} queries x {TEXT_SAMPLES}; naive LCS loop on "
              f"{'all of them' if bq == RQ else f'the first {bq} (time scaled linearly)'}")
        t_rnaive, rref = time_call(f"baseline: per-pair LCS loop, {bq} queries", lambda: naive_mbr_rouge(sub[:bq]), BR)
        rgot = mbr(sub, "rouge-l")
        same = sum(a == b for a, b in zip(rref, rgot[:bq]))  # type: ignore[arg-type]
        print(f"  checked: same pick for {same:,} / {bq:,} queries")
        check(same == bq, "MBR ROUGE-L: callwise and the naive loop pick different answers")
        t_rmbr, _ = time_call("callwise.aggregation.mbr(texts, 'rouge-l')", lambda: mbr(sub, "rouge-l"), R)
        print(t_rnaive.line())
        print(t_rmbr.line())
        scaled = t_rnaive.best * RQ / bq
        r_rouge = scaled / t_rmbr.best
        print(f"  ratio naive / mbr: {r_rouge:.1f}x" + ("" if bq == RQ else f" (naive scaled to {RQ}: {fmt_s(scaled)})"))
        summary.append((f"MBR ROUGE-L, {RQ} x {TEXT_SAMPLES}", fmt_s(t_rmbr.best),
                        f"naive {fmt_s(scaled)}{'' if bq == RQ else ' (scaled)'}: {r_rouge:.1f}x"))

    # ---- 4. offline expected score ---------------------------------------------------------------
    if 4 in cases:
        MQ, S = MC_QUERIES, NUM_SAMPLES
        xm, centre = numeric_samples(MQ, S, args.seed + 3)
        print(f"\n[4] offline expected absolute error of the median of {MC_N} draws (with replacement, "
              f"{MC_REPS} reps) on {MQ:,} queries x {S} float samples")
        t_ss, ss4 = time_call("SampleSet.from_samples(x, 'number') (once)",
                              lambda: SampleSet.from_samples(xm, normalise="number"), 1)
        t_dp, pred = time_call(f"draw_predictions median, N={MC_N}, with-repl., reps={MC_REPS}",
                               lambda: draw_predictions(ss4, "median", MC_N, draws="with-replacement",  # type: ignore[arg-type]
                                                        reps=MC_REPS, seed=args.seed), R)
        nums = pred.numbers  # type: ignore[union-attr]
        check(nums.shape == (MQ, MC_REPS) and bool(np.isfinite(nums).all()), "draw_predictions: bad output")
        mae = float(np.mean(np.abs(nums - centre[:, None])))
        t_fn, _ = time_call("  of which: from_numbers of the predictions",
                            lambda: from_numbers(nums), 1)
        bq = max(1, min(args.mc_baseline_queries, MQ))
        t_mcl, res = time_call(f"baseline: loop over queries x reps, {bq} queries",
                               lambda: naive_expected_mae(xm[:bq], centre[:bq], MC_N, MC_REPS, args.seed), BR)
        _, mae_loop = res  # type: ignore[misc]
        mae_sub = float(np.mean(np.abs(nums[:bq] - centre[:bq, None])))
        for t in (t_ss, t_dp, t_fn, t_mcl):
            print(t.line())
        rows_per_s = MQ * MC_REPS / t_dp.best
        scaled = t_mcl.best * MQ / bq
        r_mc = scaled / t_dp.best
        # both estimate the same expectation with independent draws on the same queries: compare within the
        # Monte Carlo noise of the difference (within-query variance over reps; queries are common to both)
        err = np.abs(nums[:bq] - centre[:bq, None])
        se = float(np.sqrt(2.0 * err.var(axis=1, ddof=1).sum() / MC_REPS) / bq)
        print(f"  expected MAE at N={MC_N}: {mae:.4f} over {MQ:,} queries; on the first {bq}: callwise {mae_sub:.4f}, "
              f"loop {mae_loop:.4f} (|diff| {abs(mae_sub - mae_loop):.4f}, ~{se:.4f} Monte Carlo s.e.)")
        check(abs(mae_sub - mae_loop) < 6 * se + 1e-9, "expected MAE: callwise and the loop differ beyond MC noise")
        print(f"  throughput: {rows_per_s:,.0f} query x draw rows/s; loop scaled to {MQ:,} queries: {fmt_s(scaled)} "
              f"(x{MQ / bq:g}); ratio {r_mc:.1f}x")
        summary.append((f"draw_predictions median N={MC_N}, {MQ:,} q x {MC_REPS} reps", fmt_s(t_dp.best),
                        f"{rows_per_s:,.0f} rows/s; loop {fmt_s(scaled)} (scaled from {bq}): {r_mc:.1f}x"))

    # ---- summary ---------------------------------------------------------------------------------
    print_summary("Summary (best times; ratio = baseline / callwise)", summary + goals)
    print(f"\ntotal wall time {fmt_s(time.perf_counter() - t_start)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
