"""Speed benchmark for the vectorised cascade evaluation protocol (``callwise.cascades.protocol``).

Run from the repository root::

    python benchmarks/cascades.py [--data ../shared/data/rational-cascades] [--pairs N]
                                  [--baseline-pairs 2] [--repeat 3]

The protocol (METHODS.md section 2): for one (small, large) pair of one task, every method's
accuracy at 100 budgets, averaged over 3 random orders of the test stream, then the AUC. Goal (from
the issue): under 0.2 s per pair, and all pairs of both chains (80 on the rational-cascades data:
5 benchmarks x 2 chains, every cheaper-to-dearer pair) under 10 s. Everything is measured in this
one process:

1. Preparation, timed on its own and *not* part of the evaluation goal: for every pair, in the
   order ``callwise cascade --all-pairs`` runs them, the four scored policies are fitted exactly as
   ``evaluate_pair`` fits them (ConfidenceCascade, FrugalCascade, TwoTierRouter not-worse and
   adequate; the learned ones fit text classifiers with 5-fold out-of-fold calibration), their
   test scores computed (``_test_scores``) and their shares at the 100 budgets taken.
2. The vectorised evaluation on the prepared arrays: the ten ``simulate`` calls ``evaluate_pair``
   makes (streaming and offline modes of the four scored methods, random mixture, oracle), with
   the stream orders, offline positions and random-mixture draws they need, plus the AUC of each.
   Per-pair median of ``--repeat`` runs; mean and max over pairs, and the total. The hull + AIQ
   that ``evaluate_pair`` also computes per method is timed as a separate figure. Then each task's
   n-tier chain (``evaluate_chain``): fit and the per-stage share search are preparation; the
   three ``simulate`` calls + AUC are the timed evaluation. The replication is checked against
   ``evaluate_pair`` / ``evaluate_chain`` on one pair and one chain (the AUCs must be identical).
3. A sequential baseline in the same process: the streaming confidence cascade written the
   straightforward way, one query at a time with ``callwise.cascades.thresholds.StreamingThreshold``
   (running quantile by ``bisect`` + budget guard), for each budget and each stream order, on the
   ``--baseline-pairs`` pairs with the most test queries. Its guard reserves the *mean* recorded
   first-call cost for each query still to come (``reserve_per_query``), as a live stream would;
   the vectorised guard knows every query's recorded cost, so accuracies may differ slightly
   (max |difference| printed). A second sequential pass reserves the exact recorded costs still to
   come and must agree with the vectorised result. The ratio sequential / vectorised is for the
   same method (streaming confidence, one ``simulate`` call) on the same pairs.

A summary is printed at the end; the goals are reported, never enforced.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import callwise
from callwise.cascades.escalation import ConfidenceCascade, Escalation, tie_uniforms
from callwise.cascades.learned import FrugalCascade, TwoTierRouter
from callwise.cascades.protocol import (
    SCORED,
    Simulation,
    _result,
    _test_scores,
    auc,
    chain_by_cost,
    evaluate_chain,
    evaluate_pair,
    pairs_by_cost,
    simulate,
    simulate_paper,
    stream_orders,
)
from callwise.cascades.thresholds import (
    QuantileThreshold,
    StreamingThreshold,
    escalation_share,
    paper_share,
)
from callwise.core.hashing import query_uniforms
from callwise.core.replay import Replay
from callwise.core.split import split_outcomes

PAIR_GOAL_S = 0.2
ALL_PAIRS_GOAL_S = 10.0
N_BUDGETS, N_ORDERS, WARMUP, SEED = 100, 3, 20, 0


# --------------------------------------------------------------------------------------------
# preparation (fit; not part of the timed evaluation)


@dataclass
class Scored:
    """One fitted score-based method: what its two simulations need."""

    name: str
    scores: np.ndarray  # stage-0 score of every test query
    shares: np.ndarray  # (budgets x 1)
    reference: np.ndarray  # sorted out-of-fold training scores (offline quantiles)
    routing: bool


@dataclass
class PairInputs:
    task: str
    small: str
    large: str
    ids: np.ndarray
    q: np.ndarray  # (N x 2) recorded quality, small first
    c: np.ndarray  # (N x 2) recorded cost
    lo: float
    hi: float
    budgets: np.ndarray
    u: np.ndarray  # tie uniforms of the small model
    mean_s: float  # mean training costs (random mixture's share)
    mean_l: float
    acc_s: float = 0.0  # mean training accuracies (the paper's "L is better" and share fallback)
    acc_l: float = 0.0
    scored: list[Scored] = field(default_factory=list)
    fit_s: dict[str, float] = field(default_factory=dict)  # per method: fit(train)
    score_s: dict[str, float] = field(default_factory=dict)  # per method: test scores + shares

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def label(self) -> str:
        return f"{self.task}: {self.small} -> {self.large}"


def builders(small: str, large: str) -> dict[str, Callable[[], Escalation]]:
    """The four policies exactly as ``evaluate_pair`` builds them (signal recorded, default features)."""
    return {
        "confidence": lambda: ConfidenceCascade([small, large], signal="recorded", seed=SEED),
        "frugal": lambda: FrugalCascade([small, large], seed=SEED, features=None),
        "hybrid": lambda: TwoTierRouter([small, large], seed=SEED, features=None, target="not-worse"),
        "router": lambda: TwoTierRouter([small, large], seed=SEED, features=None, target="adequate"),
    }


def prepare_pair(task: str, train, test, small: str, large: str) -> PairInputs:
    replay = Replay(test.dense([small, large]))
    v = replay.view
    q, c = v.quality[:, :, 0].astype(float), v.cost[:, :, 0].astype(float)
    assert np.isfinite(q).all() and np.isfinite(c).all(), f"{task} {small} {large}: missing test outcomes"
    lo, hi = float(c[:, 0].mean()), float(c[:, 0].mean() + c[:, 1].mean())
    budgets = np.linspace(lo, hi, N_BUDGETS)
    tv = train.dense([small, large])
    p = PairInputs(task, small, large, v.prompt_ids, q, c, lo, hi, budgets, tie_uniforms(v.prompt_ids, small, SEED),
                   float(tv.cost[:, 0, 0].mean()), float(tv.cost[:, 1, 0].mean()),
                   float(tv.quality[:, 0, 0].mean()), float(tv.quality[:, 1, 0].mean()))
    make = builders(small, large)
    for name in SCORED:
        t0 = time.perf_counter()
        policy = make[name]().fit(train)
        t1 = time.perf_counter()
        scores = _test_scores(policy, replay)
        shares = policy.shares(budgets)
        t2 = time.perf_counter()
        assert policy.reference_ is not None
        p.scored.append(Scored(name, np.asarray(scores, float), shares, policy.reference_[0], policy.routing))
        p.fit_s[name], p.score_s[name] = t1 - t0, t2 - t1
    return p


@dataclass
class ChainInputs:
    task: str
    models: list[str]
    q: np.ndarray
    c: np.ndarray
    lo: float
    hi: float
    budgets: np.ndarray
    pos: np.ndarray  # (N x K-1) offline positions of each stage's confidence
    chain_shares: np.ndarray  # (budgets x K-1), searched on training data
    two_shares: np.ndarray  # (budgets x 1), first -> last model
    fit_s: float
    search_s: float  # chain.shares(budgets): the per-stage share search


def prepare_chain(task: str, train, test) -> ChainInputs:
    models = chain_by_cost(train)
    replay = Replay(test.dense(models))
    v = replay.view
    q, c = v.quality[:, :, 0].astype(float), v.cost[:, :, 0].astype(float)
    lo, hi = float(c[:, 0].mean()), float(c.mean(axis=0).sum())
    budgets = np.linspace(lo, hi, N_BUDGETS)
    t0 = time.perf_counter()
    chain = ConfidenceCascade(models, signal="recorded", seed=SEED).fit(train)
    two = ConfidenceCascade([models[0], models[-1]], signal="recorded", seed=SEED).fit(train)
    assert chain.reference_ is not None
    queries = replay.queries()
    pos = np.stack([QuantileThreshold(chain.reference_[k]).positions(
        chain._stage_scores(k, queries, replay.call(m, queries)), tie_uniforms(v.prompt_ids, m, SEED))
        for k, m in enumerate(models[:-1])], axis=1)
    two_shares = two.shares(budgets)
    t1 = time.perf_counter()
    chain_shares = chain.shares(budgets)
    t2 = time.perf_counter()
    return ChainInputs(task, models, q, c, lo, hi, budgets, pos, chain_shares, two_shares, t1 - t0, t2 - t1)


# --------------------------------------------------------------------------------------------
# the timed, vectorised evaluation


def evaluate_prepared(p: PairInputs, clock: dict[str, float] | None = None) -> dict[str, Simulation]:
    """Every simulation ``evaluate_pair`` runs, on prepared inputs; ``clock`` collects time per part."""
    tick = time.perf_counter
    clock = clock if clock is not None else defaultdict(float)
    t = tick()
    q, c, budgets = p.q, p.c, p.budgets
    orders = stream_orders(p.n, N_ORDERS, SEED)
    sims: dict[str, Simulation] = {}
    clock["orders"] += tick() - t
    for s in p.scored:
        t = tick()
        sims[s.name] = simulate(q, c, s.shares, budgets, orders, stream_scores=s.scores, u=p.u, routing=s.routing,
                                warmup=WARMUP)
        t2 = tick()
        pos = QuantileThreshold(s.reference).positions(s.scores, p.u)
        sims[f"{s.name}@offline"] = simulate(q, c, s.shares, budgets, orders, positions=pos, routing=s.routing)
        t3 = tick()
        clock["streaming"] += t2 - t
        clock["offline"] += t3 - t2
    t = tick()
    shares = escalation_share(budgets, p.mean_s, p.mean_l, routing=True)
    pos = query_uniforms(p.ids, SEED, salt="random-mix")
    sims["random"] = simulate(q, c, shares, budgets, orders, positions=pos, routing=True)
    t2 = tick()
    fixed = (q[:, 1] > q[:, 0])[:, None]
    sims["oracle"] = simulate(q, c, np.zeros((len(budgets), 1)), budgets, orders, fixed=fixed)
    t3 = tick()
    clock["random"] += t2 - t
    clock["oracle"] += t3 - t2
    return sims


def aucs(budgets: np.ndarray, sims: dict[str, Simulation]) -> dict[str, float]:
    return {name: auc(budgets, s.accuracy) for name, s in sims.items()}


def evaluate_chain_prepared(ch: ChainInputs) -> dict[str, float]:
    """The three simulations of ``evaluate_chain`` + AUC, on prepared inputs."""
    q, c, budgets = ch.q, ch.c, ch.budgets
    orders = stream_orders(len(q), N_ORDERS, SEED)
    sims = {"chain@offline": simulate(q, c, ch.chain_shares, budgets, orders, positions=ch.pos)}
    later_right = np.maximum.accumulate(q[:, ::-1], axis=1)[:, ::-1]
    fixed = q[:, :-1] < later_right[:, 1:]
    sims["oracle"] = simulate(q, c, np.zeros((len(budgets), len(ch.models) - 1)), budgets, orders, fixed=fixed)
    sims["two-tier@offline"] = simulate(q[:, [0, -1]], c[:, [0, -1]], ch.two_shares, budgets, orders,
                                        positions=ch.pos[:, :1])
    return aucs(budgets, sims)


# --------------------------------------------------------------------------------------------
# the sequential baseline


def sequential_streaming(p: PairInputs, s: Scored, *, exact_reserve: bool) -> np.ndarray:
    """Streaming two-tier cascade, one query at a time: accuracy per budget, mean over stream orders.

    ``exact_reserve``: the guard reserves the recorded first-call costs of the queries still to
    come (then it is the vectorised guard exactly); else ``reserve_per_query`` = their mean.
    """
    n = p.n
    acc = np.zeros(len(p.budgets))
    reserve = 0.0 if exact_reserve else float(p.c[:, 0].mean())
    for perm in stream_orders(n, N_ORDERS, SEED):
        score, u = s.scores[perm].tolist(), p.u[perm].tolist()
        c_s, c_l = p.c[perm, 0].tolist(), p.c[perm, 1].tolist()
        q_s, q_l = p.q[perm, 0].tolist(), p.q[perm, 1].tolist()
        to_come = (np.cumsum(p.c[perm, 0][::-1])[::-1] - p.c[perm, 0]).tolist()  # first costs after query i
        for j, (b, share) in enumerate(zip(p.budgets.tolist(), s.shares[:, 0].tolist())):
            st = StreamingThreshold(share, warmup=WARMUP, budget_total=b * n, horizon=n, reserve_per_query=reserve)
            total = 0.0
            for i in range(n):
                if exact_reserve:
                    st.budget_total = b * n - to_come[i]
                total += q_l[i] if st.step(score[i], u[i], c_s[i], c_l[i]) else q_s[i]
            acc[j] += total / n
    return acc / N_ORDERS


# --------------------------------------------------------------------------------------------
# output helpers


def fmt_s(x: float) -> str:
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"


def verdict(x: float, goal: float) -> str:
    return "ok" if x < goal else "MISSED"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/rational-cascades"))
    ap.add_argument("--pairs", type=int, default=None, help="evaluate only the first N pairs (default: all)")
    ap.add_argument("--baseline-pairs", type=int, default=2,
                    help="pairs (most test queries first) for the sequential baseline (default 2; 0 skips it)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each timed evaluation; median per pair (default 3)")
    args = ap.parse_args(argv)
    repeat = max(1, args.repeat)

    t0 = time.perf_counter()
    table = callwise.load(args.data)
    train, test, info = split_outcomes(table)
    t_load = time.perf_counter() - t0
    tasks = test.tasks()
    plan = [(t, pair) for t in tasks for pair in pairs_by_cost(train.for_task(t))]
    n_all = len(plan)
    if args.pairs is not None:
        plan = plan[:max(0, args.pairs)]
    print(f"data: {args.data} ({len(tasks)} tasks, {n_all} pairs; split {info['method']}); load + split "
          f"{fmt_s(t_load)}")
    print(f"protocol: {N_BUDGETS} budgets x {N_ORDERS} stream orders, warm-up {WARMUP}, seed {SEED}; "
          f"{len(plan)} pair(s) timed, {repeat} run(s) each")

    # ---- 1. preparation -----------------------------------------------------------------------
    print("\n[1] preparation (not in the evaluation goal): fit the 4 scored policies per pair as evaluate_pair "
          "does, test scores, shares")
    prepared: list[PairInputs] = []
    by_task_split = {t: (train.for_task(t), test.for_task(t)) for t in tasks}
    t0 = time.perf_counter()
    for task, (small, large) in plan:
        tr, te = by_task_split[task]
        prepared.append(prepare_pair(task, tr, te, small, large))
    t_prep = time.perf_counter() - t0
    fit_by = {m: sum(p.fit_s[m] for p in prepared) for m in SCORED}
    score_by = {m: sum(p.score_s[m] for p in prepared) for m in SCORED}
    t_fit, t_score = sum(fit_by.values()), sum(score_by.values())
    for m in SCORED:
        print(f"  {m:12s} fit {fmt_s(fit_by[m]):>9}   test scores + shares {fmt_s(score_by[m]):>9}")
    if prepared:
        print(f"  total: fit {fmt_s(t_fit)} ({fmt_s(t_fit / len(prepared))} per pair), test scores + shares "
              f"{fmt_s(t_score)}; whole preparation incl. data views {fmt_s(t_prep)}")

    # ---- 2. vectorised evaluation -----------------------------------------------------------------
    print("\n[2] vectorised evaluation: 10 simulate calls per pair (4 methods x streaming/offline, random, "
          "oracle) + AUC")
    per_pair = np.zeros((repeat, len(prepared)))
    clock: dict[str, float] = defaultdict(float)
    results: list[dict[str, float]] = []
    sims_last: list[dict[str, Simulation]] = []
    for r in range(repeat):
        clk: dict[str, float] = defaultdict(float)
        out, sims_all = [], []
        for j, p in enumerate(prepared):
            t0 = time.perf_counter()
            sims = evaluate_prepared(p, clk)
            t1 = time.perf_counter()
            out.append(aucs(p.budgets, sims))
            per_pair[r, j] = time.perf_counter() - t0
            clk["auc"] += time.perf_counter() - t1
            sims_all.append(sims)
        if r == 0:
            results, sims_last = out, sims_all
        else:
            assert out == results, "evaluation is not deterministic"
        for k, v in clk.items():
            clock[k] += v / repeat
    med = np.median(per_pair, axis=0) if len(prepared) else np.zeros(0)
    run_totals = per_pair.sum(axis=1)
    t_aiq = 0.0
    for p, sims in zip(prepared, sims_last):
        t0 = time.perf_counter()
        for name, s in sims.items():
            _result(name, p.budgets, s, p.lo, p.hi)
        t_aiq += time.perf_counter() - t0
    if len(prepared):
        print(f"  {'task':20s} {'N test':>7s} {'pairs':>6s} {'eval/pair mean':>15s} {'max':>9s} {'fit/pair':>10s}")
        for task in dict.fromkeys(p.task for p in prepared):
            idx = [j for j, p in enumerate(prepared) if p.task == task]
            fit_pp = np.mean([sum(prepared[j].fit_s.values()) for j in idx])
            print(f"  {task:20s} {prepared[idx[0]].n:7d} {len(idx):6d} {fmt_s(float(med[idx].mean())):>15s} "
                  f"{fmt_s(float(med[idx].max())):>9s} {fmt_s(float(fit_pp)):>10s}")
        tot = sum(clock.values())
        parts = ", ".join(f"{k} {100 * v / tot:.0f}%" for k, v in sorted(clock.items(), key=lambda kv: -kv[1]))
        print(f"  where the time goes (all pairs, mean of runs, {fmt_s(tot)}): {parts}")
        print(f"  per pair (median of {repeat}): mean {fmt_s(float(med.mean()))}, max {fmt_s(float(med.max()))} "
              f"({prepared[int(med.argmax())].label}); all {len(prepared)} pairs: median run "
              f"{fmt_s(float(np.median(run_totals)))}, best run {fmt_s(float(run_totals.min()))}")
        print(f"  hull + AIQ of every method (evaluate_pair's _result, separately): {fmt_s(t_aiq)} for all pairs, "
              f"{fmt_s(t_aiq / len(prepared))} per pair")

    # replication check against evaluate_pair on the largest pair
    if prepared:
        j = max(range(len(prepared)), key=lambda k: prepared[k].n)
        p = prepared[j]
        tr, te = by_task_split[p.task]
        t0 = time.perf_counter()
        ref = evaluate_pair(tr, te, p.small, p.large, protocol="extended")  # what [2] replicates
        t_ref = time.perf_counter() - t0
        diff = max(abs(ref.methods[m].auc - results[j][m]) for m in ref.methods)
        print(f"  check vs evaluate_pair ({p.label}, {len(ref.methods)} methods): max |AUC difference| {diff:.3g} "
              f"({'identical' if diff == 0 else 'DIFFERENT'}); evaluate_pair end to end (fit included) "
              f"{fmt_s(t_ref)}")

    # the paper's protocol: the authors' three-branch stream (one step per query, vectorised over budgets)
    if prepared:
        t_paper = np.zeros((repeat, len(prepared)))
        for r in range(repeat):
            for k, p in enumerate(prepared):
                b = np.linspace(float(p.c[:, 0].mean()), float(p.c[:, 1].mean()), N_BUDGETS)
                orders = stream_orders(p.n, N_ORDERS, SEED)
                t0 = time.perf_counter()
                for s in p.scored:
                    share = paper_share(b, p.mean_s, p.mean_l, p.acc_s, p.acc_l, routing=s.routing)
                    simulate_paper(p.q, p.c, s.scores, b, share, orders, (p.mean_s, p.mean_l),
                                   large_is_better=p.acc_l > p.acc_s, routing=s.routing, warmup=WARMUP)
                t_paper[r, k] = time.perf_counter() - t0
        per = t_paper.min(axis=0)
        print(f"\n  the paper's protocol (--range paper): the 4 streaming methods by the authors' three branches, "
              f"{fmt_s(float(per.mean()))} per pair (max {fmt_s(float(per.max()))}), {fmt_s(float(per.sum()))} for all "
              f"{len(prepared)} pairs; the largest stream has {max(p.n for p in prepared)} queries")

    # n-tier chains
    chains: list[ChainInputs] = []
    chain_tasks = [t for t in dict.fromkeys(p.task for p in prepared) if len(chain_by_cost(by_task_split[t][0])) >= 3]
    for task in chain_tasks:
        chains.append(prepare_chain(task, *by_task_split[task]))
    chain_times = np.zeros((repeat, len(chains)))
    chain_results: list[dict[str, float]] = []
    for r in range(repeat):
        for j, ch in enumerate(chains):
            t0 = time.perf_counter()
            res = evaluate_chain_prepared(ch)
            chain_times[r, j] = time.perf_counter() - t0
            if r == 0:
                chain_results.append(res)
    if chains:
        cmed = np.median(chain_times, axis=0)
        print("\n  n-tier chains (evaluate_chain: 3 simulate calls + AUC; fit and share search are preparation)")
        print(f"  {'task':20s} {'models':>6s} {'eval':>9s} {'fit':>9s} {'share search':>13s}")
        for ch, t in zip(chains, cmed):
            print(f"  {ch.task:20s} {len(ch.models):6d} {fmt_s(float(t)):>9s} {fmt_s(ch.fit_s):>9s} "
                  f"{fmt_s(ch.search_s):>13s}")
        print(f"  all {len(chains)} chains: eval {fmt_s(float(cmed.sum()))}, fit {fmt_s(sum(c.fit_s for c in chains))}, "
              f"share search {fmt_s(sum(c.search_s for c in chains))}")
        ch = chains[0]
        ref_c = evaluate_chain(by_task_split[ch.task][0], by_task_split[ch.task][1], ch.models, protocol="extended")
        diff = max(abs(ref_c.methods[m].auc - chain_results[0][m]) for m in ref_c.methods)
        print(f"  check vs evaluate_chain ({ch.task}): max |AUC difference| {diff:.3g} "
              f"({'identical' if diff == 0 else 'DIFFERENT'})")

    # ---- 3. sequential baseline ----------------------------------------------------------------------
    ratio = None
    if args.baseline_pairs > 0 and prepared:
        picks = sorted(range(len(prepared)), key=lambda k: -prepared[k].n)[:args.baseline_pairs]
        print(f"\n[3] sequential baseline: streaming confidence cascade, one query at a time with StreamingThreshold "
              f"({N_BUDGETS} budgets x {N_ORDERS} orders), on {len(picks)} pair(s)")
        print("    (sequential reference implementation; guard reserve = mean recorded S cost per query to come)")
        t_seq_sum = t_vec_sum = 0.0
        for j in picks:
            p = prepared[j]
            s = next(x for x in p.scored if x.name == "confidence")
            t0 = time.perf_counter()
            acc_seq = sequential_streaming(p, s, exact_reserve=False)
            t_seq = time.perf_counter() - t0
            t0 = time.perf_counter()
            acc_exact = sequential_streaming(p, s, exact_reserve=True)
            t_exact = time.perf_counter() - t0
            vec = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                sim = simulate(p.q, p.c, s.shares, p.budgets, stream_orders(p.n, N_ORDERS, SEED), stream_scores=s.scores,
                               u=p.u, routing=False, warmup=WARMUP)
                vec.append(time.perf_counter() - t0)
            t_vec = statistics.median(vec)
            d_mean = float(np.max(np.abs(acc_seq - sim.accuracy)))
            d_exact = float(np.max(np.abs(acc_exact - sim.accuracy)))
            n_diff = int(np.sum(np.abs(acc_seq - sim.accuracy) > 1e-12))
            print(f"  {p.label} (N={p.n}): sequential {fmt_s(t_seq)} (exact-reserve pass {fmt_s(t_exact)}), "
                  f"vectorised {fmt_s(t_vec)}: {t_seq / t_vec:.0f}x")
            print(f"    accuracy vs vectorised: mean-reserve guard max |diff| {d_mean:.3g} ({n_diff}/{N_BUDGETS} budgets "
                  f"differ), exact-reserve guard max |diff| {d_exact:.3g}")
            t_seq_sum += t_seq
            t_vec_sum += t_vec
        ratio = t_seq_sum / t_vec_sum
        print(f"  total: sequential {fmt_s(t_seq_sum)}, vectorised {fmt_s(t_vec_sum)}: {ratio:.0f}x")

    # ---- summary ------------------------------------------------------------------------------------------
    print("\nsummary")
    if prepared:
        total = float(np.median(run_totals))
        print(f"  vectorised evaluation: {fmt_s(float(med.mean()))} per pair (max {fmt_s(float(med.max()))}; goal < "
              f"{PAIR_GOAL_S} s: {verdict(float(med.max()), PAIR_GOAL_S)}), {fmt_s(total)} for all {len(prepared)} pairs "
              f"(goal < {ALL_PAIRS_GOAL_S:.0f} s: {verdict(total, ALL_PAIRS_GOAL_S)})")
        if len(prepared) < n_all:
            print(f"    ({len(prepared)} of {n_all} pairs timed; mean x {n_all} = {fmt_s(float(med.mean()) * n_all)})")
        print(f"  + hull/AIQ per method: {fmt_s(t_aiq / len(prepared))} per pair, {fmt_s(t_aiq)} in all")
        if chains:
            print(f"  n-tier chains: evaluation {fmt_s(float(np.median(chain_times, axis=0).sum()))} for "
                  f"{len(chains)} chains (fit {fmt_s(sum(c.fit_s for c in chains))}, share search "
                  f"{fmt_s(sum(c.search_s for c in chains))}, not timed as evaluation)")
        print(f"  fit of the policies (separate, not in the goal): {fmt_s(t_fit)} for {len(prepared)} pairs "
              f"({fmt_s(t_fit / len(prepared))} per pair); test scores + shares {fmt_s(t_score)}")
    if ratio is not None:
        print(f"  sequential per-query baseline / vectorised (streaming confidence, same pairs): {ratio:.0f}x")


if __name__ == "__main__":
    main()
