"""Speed benchmark for the predictive routers: decision overhead, fit time, and bench with routers.

Run from the repository root::

    python benchmarks/routers.py [--data ../shared/data/routerbench-subset] [--n 10000] [--repeats 3]

Everything is measured in this one process (the CLI bench is a timed subprocess):

1. Fit time of each router (knn, linear, mlp, mf, and the two-model threshold router) on the
   slice's pooled training split (all tasks, 11 models), with the default 5-fold CV; the shared
   TF-IDF featuriser is fitted once first and timed on its own.
2. Routing overhead on precomputed features for ``--n`` prompts (test prompts' features tiled to
   n rows): the scorer's q̂ plus the λ-argmax rule, i.e. everything ``decide`` does before the
   backend call. Batch: one call for all n prompts, per-query time = total / n (median of
   repeats). Single: n one-prompt calls, p50 and p99 of the per-call time. The ratio single p50
   / batch per-query shows what batching buys; the baseline is the same code one query at a time.
   Goal: knn, linear and mf batch decisions under 0.1 ms per query.
3. ``callwise bench DATA`` with every registered policy (routers included) as a subprocess, against
   the same command restricted to the fixed baselines (``--policy random-mix``).
   Goal: the full bench with routers under 60 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import callwise_command, time_subprocess  # noqa: E402

import callwise  # noqa: E402
from callwise.core.policy import make  # noqa: E402
from callwise.routing.router import route_lambda  # noqa: E402

DECISION_GOAL_MS = 0.1
BENCH_GOAL_S = 60.0
ROUTERS = ("knn", "linear", "mlp", "mf")


def decisions(pol, X: np.ndarray, chat: np.ndarray, lam: float) -> np.ndarray:
    """What ``Router.decide`` computes before calling the backend, on precomputed features."""
    return route_lambda(pol._blend(pol.scorer_.predict(X)), chat, lam)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/routerbench-subset"))
    ap.add_argument("--n", type=int, default=10_000, help="prompts for the decision timing (default 10000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-bench", action="store_true", help="skip the CLI bench timings")
    args = ap.parse_args(argv)

    table = callwise.load(args.data)
    train, test, _ = callwise.split_outcomes(table)
    print(f"data: {args.data} ({table!r}); train {train.frame['prompt_id'].nunique()} prompts, "
          f"test {test.frame['prompt_id'].nunique()} prompts")

    # ---- 1. fit times -------------------------------------------------------------------
    from callwise.routing.features import make_featuriser

    prompts = list(train.dense().prompts)
    t0 = time.perf_counter()
    make_featuriser("tfidf").fit(prompts)
    t_feat = time.perf_counter() - t0
    print(f"\n[1] fit on the pooled training split; TF-IDF + SVD featuriser alone: {t_feat:.2f} s")
    fitted = {}
    for name in (*ROUTERS, "threshold"):
        t0 = time.perf_counter()
        fitted[name] = make(name).fit(train)
        dt = time.perf_counter() - t0
        chosen = getattr(fitted[name], "cv_", None) or fitted[name].inner_.cv_
        print(f"  {name:10s} fit {dt:6.2f} s (5-fold CV; chose {chosen['chosen']})")

    # ---- 2. decision overhead -----------------------------------------------------------
    test_prompts = np.asarray(test.dense().prompts, dtype=object)
    base = fitted["knn"]
    X0 = base.featuriser_.transform(list(test_prompts))
    reps = int(np.ceil(args.n / len(X0)))
    X = np.tile(X0, (reps, 1))[: args.n]
    print(f"\n[2] routing overhead on precomputed features: {args.n} prompts ({X.shape[1]} dims), "
          f"{len(base.models_)} models")
    print(f"  {'router':10s} {'batch ms/query':>15s} {'single p50 ms':>14s} {'single p99 ms':>14s} "
          f"{'single/batch':>13s}  goal <{DECISION_GOAL_MS} ms (batch)")
    for name in ROUTERS:
        pol = fitted[name]
        chat = np.asarray(pol.costs_.predict(np.full(len(X), "", dtype=object)))
        lam = pol.effective_lam()
        batch = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            decisions(pol, X, chat, lam)
            batch.append((time.perf_counter() - t0) / len(X) * 1e3)
        single = np.empty(min(args.n, 10_000))
        for i in range(len(single)):
            t0 = time.perf_counter()
            decisions(pol, X[i:i + 1], chat[i:i + 1], lam)
            single[i] = (time.perf_counter() - t0) * 1e3
        b = float(np.median(batch))
        p50, p99 = np.percentile(single, [50, 99])
        verdict = "" if name == "mlp" else ("  ok" if b < DECISION_GOAL_MS else "  MISSED")
        print(f"  {name:10s} {b:15.4f} {p50:14.4f} {p99:14.4f} {p50 / b:12.1f}x{verdict}")

    # ---- 3. bench with routers ----------------------------------------------------------
    if not args.skip_bench:
        print(f"\n[3] callwise bench {args.data} (subprocess, {args.repeats} run(s) each)")
        with tempfile.TemporaryDirectory() as tmp:
            cmd = callwise_command() + ["bench", str(args.data), "--out", str(Path(tmp) / "a")]
            t_all = time_subprocess("bench, every registered policy", cmd, args.repeats)
            base_cmd = callwise_command() + ["bench", str(args.data), "--policy", "random-mix", "--out", str(Path(tmp) / "b")]
            t_base = time_subprocess("bench, fixed baselines only", base_cmd, args.repeats)
        ok = "ok" if t_all.median < BENCH_GOAL_S else "MISSED"
        print(f"  every registered policy: median {t_all.median:.1f} s (runs {', '.join(f'{r:.1f}' for r in t_all.runs)})"
              f"  goal <{BENCH_GOAL_S:.0f} s: {ok}")
        print(f"  fixed baselines only:    median {t_base.median:.1f} s; routers etc. add "
              f"{t_all.median - t_base.median:.1f} s ({t_all.median / t_base.median:.1f}x)")


if __name__ == "__main__":
    main()
