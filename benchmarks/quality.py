"""Held-out quality of the routers on the shared datasets, as markdown tables (docs/results.md).

Run from the repository root::

    python benchmarks/quality.py [--shared ../shared/data] [--bootstrap 200] > /tmp/quality.md

For each dataset it runs ``callwise.bench`` (train on the training split, test once on the test
split; the data's own split where it has one, else a seeded 70/30 split per task) and prints, per
task, the zero router's and the oracle's test AIQ, every router's test AIQ with its 95% bootstrap
CI and the share of the zero-to-oracle gap it closes, and whether the best predictive router
reaches the zero router. Two-model data also gets RouteLLM's APGR / CPT(50%) / CPT(80%). Then
budget calibration: a router calibrated on training data to a dollar budget, and its held-out
mean cost and quality with CIs.

Datasets: routerbench-subset (3 tasks, 11 models), rational-cascades (10 chains, real costs),
routellm-evals (GSM8K, MMLU, MT-Bench; costs estimated from docs/examples/routellm_prices.yaml).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import callwise
from callwise.evaluation.fit import fit_policy

ROUTERS = ["knn", "linear", "mlp", "svm", "mf", "threshold"]
PREDICTIVE = ["knn", "linear", "mlp", "mf"]


def _ci(e: dict) -> str:
    lo, hi = e["aiq_ci"].get("paper", [np.nan, np.nan])
    return f"{e['aiq']['paper']:.4f} [{lo:.3f}, {hi:.3f}]"


def bench_tables(name: str, table: callwise.OutcomeTable, n_boot: int, seed: int, features: str = "tfidf") -> None:
    train, test, info = callwise.split_outcomes(table, seed=seed)
    t0 = time.perf_counter()
    if features == "tfidf":
        res = callwise.bench(train, test, policies=[*ROUTERS, "cascade-judge", "random-mix"], n_boot=n_boot,
                             seed=seed, split_info=info).to_dict()
    else:  # the same routers on other features: swap the registry defaults for this run
        import sys

        from callwise.core.policy import get_policy

        mod = sys.modules["callwise.evaluation.bench"]
        saved = mod.default_policies
        mod.default_policies = lambda: {p: (lambda tr, p=p: get_policy(p)(features=features)) for p in ROUTERS}
        try:
            res = callwise.bench(train, test, n_boot=n_boot, seed=seed, split_info=info).to_dict()
        finally:
            mod.default_policies = saved
        for r in res["tasks"].values():
            r["policies"].setdefault("cascade-judge", None)
        name = f"{name}, features={features}"
    dt = time.perf_counter() - t0
    est = " (costs estimated from a price table)" if res["data"]["costs_estimated"] else ""
    print(f"\n### {name}{est}\n")
    print(f"Split: {info['method']}; bench took {dt:.0f} s. Test AIQ (paper normalisation) with 95% bootstrap CI; "
          "in brackets after each router, the share of the zero-to-oracle gap it closes.\n")
    print("| task | train/test | zero | oracle | " + " | ".join(ROUTERS) + " | cascade-judge (ε=0.05) | best predictive router ≥ zero? |")
    print("|" + "---|" * (6 + len(ROUTERS)))
    wins = 0
    for task, r in res["tasks"].items():
        p = r["policies"]
        z = p["zero"]["aiq"]["paper"]
        cells = []
        for n in [*ROUTERS, "cascade-judge"]:
            if p.get(n):
                g = p[n].get("gap_closed")
                cells.append(f"{_ci(p[n])} ({g:+.2f})" if g is not None else _ci(p[n]))
            else:
                cells.append("-")
        best = max((p[n]["aiq"]["paper"], n) for n in PREDICTIVE if n in p)
        ok = best[0] >= z - 1e-12
        wins += ok
        print(f"| {task} | {r['n_train']}/{r['n_test']} | {_ci(p['zero'])} | {p['oracle']['aiq']['paper']:.4f} | "
              + " | ".join(cells) + f" | {'yes' if ok else '**no**'} ({best[1]} {best[0] - z:+.4f}) |")
    print(f"\nBest predictive router ≥ zero router on {wins} of {len(res['tasks'])} tasks.")
    losers = [t for t, r in res["tasks"].items()
              if max(r["policies"][n]["aiq"]["paper"] for n in PREDICTIVE) < r["policies"]["zero"]["aiq"]["paper"]]
    if losers:
        why(table, train, test, losers, res)
    two = [(t, r) for t, r in res["tasks"].items() if "routellm" in r["policies"].get("zero", {})]
    if two:
        print("\nRouteLLM metrics (share of calls to the strong model; random = APGR 0.5, CPT 50%/80%):\n")
        print("| task | policy | APGR | CPT(50%) | CPT(80%) |\n|---|---|---|---|---|")
        for t, r in two:
            for n, e in r["policies"].items():
                m = e.get("routellm")
                if m and n in (*ROUTERS, "random-mix", "oracle", "cascade-judge"):
                    f = lambda v: "never" if v is None else f"{v:.1%}"  # noqa: E731
                    print(f"| {t} | {n} | {m['apgr']:.3f} | {f(m['cpt50'])} | {f(m['cpt80'])} |")


def why(table: callwise.OutcomeTable, train: callwise.OutcomeTable, test: callwise.OutcomeTable, tasks: list[str],
        res: dict) -> None:
    """Evidence for tasks where no router reaches the zero router: the zero router is the hull of the
    *test* means (hindsight); a prompt-blind router fitted on train (knn with shrink=1: q̂ = training
    means) is the honest prompt-free baseline. Also the train vs test mean quality of each model."""
    from callwise.core.policy import make

    print("\nWhere no router reaches the zero router: the zero router is built from the test set's own model means. "
          "The prompt-blind router fitted on the training split (q̂ = training means) is what a policy that ignores "
          "the prompt can actually achieve:\n")
    print("| task | zero (test hindsight) | prompt-blind, fitted on train | best router | models: train → test mean quality |")
    print("|---|---|---|---|---|")
    for task in tasks:
        tr, te = train.for_task(task), test.for_task(task)
        blind = make("knn", shrink=1.0).fit(tr)
        rep = callwise.Replay(te)
        pts = np.array([c.decide(rep.queries(), rep).point() for c in blind.sweep()])
        from callwise.core.frontier import aiq, ndch

        lo, hi = res["tasks"][task]["cost_range"]
        a_blind = aiq(ndch(pts[:, 0], pts[:, 1]), lo, hi, "paper")
        p = res["tasks"][task]["policies"]
        best = max((p[n]["aiq"]["paper"], n) for n in PREDICTIVE)
        qtr, qte = tr.dense(), te.dense()
        shift = ", ".join(f"{m.split('/')[-1]} {a:.3f} → {b:.3f}" for m, a, b in
                          zip(qtr.models, qtr.quality[:, :, 0].mean(0), qte.quality[:, :, 0].mean(0)))
        print(f"| {task} | {p['zero']['aiq']['paper']:.4f} | {a_blind:.4f} | {best[1]} {best[0]:.4f} | {shift} |")


def budget_table(name: str, table: callwise.OutcomeTable, policy: str, seed: int) -> None:
    print(f"\n### Budget calibration: {policy} on {name}\n")
    print("Budgets are set between the cheapest and the best single model's mean training cost. λ is calibrated on "
          "out-of-fold predictions of the training split; the test split is used once.\n")
    print("| task | budget $/query | calibration cost | test cost [95% CI] | test quality [95% CI] | "
          "best single model (quality, $/query) |")
    print("|---|---|---|---|---|---|")
    for task in table.tasks():
        t = table.for_task(task)
        train, _, _ = callwise.split_outcomes(t, seed=seed)
        v = train.dense()
        c, q = v.cost[:, :, 0].mean(axis=0), v.quality[:, :, 0].mean(axis=0)
        lo, hi = float(c.min()), float(c[np.lexsort((c, -q))[0]])
        for frac in (0.1, 0.5):
            b = lo + frac * (hi - lo)
            rep = fit_policy(t, policy, budget=b, seed=seed, n_boot=1000).to_dict()
            te, cal = rep["test"], rep["calibration"]
            bs = te["best_single_model"]
            flag = " (over)" if te["cost"] > b else ""
            print(f"| {task} | {b:.3g} | {cal['calibration_cost']:.3g} | {te['cost']:.3g}{flag} "
                  f"[{te['cost_ci'][0]:.3g}, {te['cost_ci'][1]:.3g}] | {te['quality']:.3f} "
                  f"[{te['quality_ci'][0]:.3f}, {te['quality_ci'][1]:.3f}] | {bs['quality']:.3f}, {bs['cost']:.3g} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prices", type=Path, default=Path("docs/examples/routellm_prices.yaml"))
    ap.add_argument("--skip-budget", action="store_true")
    ap.add_argument("--features", default="tfidf", help="router features: tfidf (default) or embed (needs callwise[embed])")
    ap.add_argument("--datasets", default="routerbench-subset,rational-cascades,routellm-evals")
    args = ap.parse_args()
    names = args.datasets.split(",")
    for name in names:
        t = callwise.load(args.shared / name, prices=args.prices if name == "routellm-evals" else None)
        bench_tables(name, t, args.bootstrap, args.seed, args.features)
    if not args.skip_budget and "routerbench-subset" in names:
        budget_table("routerbench-subset", callwise.load(args.shared / "routerbench-subset"), "linear", args.seed)


if __name__ == "__main__":
    main()
