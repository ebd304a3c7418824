"""Vote scaling on the real MoT-cascade samples: for every file with at least 2 samples per question,
is the vote's accuracy curve monotone in K, and how far is the best K predicted from a few samples
per question from the empirical best?

    python benchmarks/vote_scaling.py [--data ../shared/data/mot-cascade-samples] [--few 4] [--out DIR]
                                      [--ties scale|raw] [--fit-grid paper|authors-code]

Prints one markdown row per (model, task) and writes ``vote_scaling.json`` (every summary) to
``--out`` when given. The same numbers for one set come from ``callwise scale FILE --model M``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from callwise.io import load
from callwise.voting.curves import scale

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parent.parent / "shared" / "data" / "mot-cascade-samples"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--few", type=int, default=4)
    ap.add_argument("--k-max", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--ties", default="scale", help="scale (the authors': fit m x accuracy, predict /m) | raw")
    ap.add_argument("--fit-grid", default="paper", help="paper (2..100) | authors-code (1..10000)")
    args = ap.parse_args()
    rows = []
    print("| model | task | prompts | N | K=1 | best K (acc) | plateau K | at N | shape | drop best→N [95% CI] | "
          f"predicted K from {args.few} (plateau) | pred. err at emp. best K | regret [95% CI] |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for folder in sorted(p for p in args.data.iterdir() if p.is_dir()):
        table = load(folder, drop_incomplete=True)
        for task in table.tasks():
            t = table.for_task(task)
            per = t.frame.groupby("prompt_id")["sample"].nunique()
            n = int(per.mode().max())
            if n < 2 or "greedy" in task:
                continue
            model = t.models()[0]
            t0 = time.perf_counter()
            r = scale(t, model, task=task, n_few=args.few, k_max=args.k_max, reps=args.reps, ties=args.ties,
                      fit_grid=args.fit_grid)
            sm, e, p = r.summary, r.summary["empirical"], r.summary["predicted"]
            rows.append({"model": model, "task": task, "seconds": time.perf_counter() - t0, **sm})
            beyond = f" (>{n})" if p["beyond_recorded"] else ""
            left = f" (−{sm['excluded_prompts']})" if sm["excluded_prompts"] else ""
            print(f"| {model} | {task} | {sm['n_prompts']}{left} | {n} | {e['accuracy_k1']:.3f} | {e['best_k']} "
                  f"({e['accuracy']:.3f}) | {e['plateau_k']} | {e['accuracy_at_n']:.3f} | {e['shape']} | {e['drop_best_to_n']:.3f} "
                  f"[{e['drop_ci'][0]:.3f}, {e['drop_ci'][1]:.3f}] | {p['best_k']}{beyond} ({p['plateau_k']}; few="
                  f"{sm['few_samples']}) | "
                  f"{p['error_at_empirical_best_k']:+.3f} | {p['regret']:.3f} [{p['regret_ci'][0]:.3f}, "
                  f"{p['regret_ci'][1]:.3f}] |", flush=True)
    if rows:
        import numpy as np

        pred = [r["predicted"] for r in rows]
        within = [p for p, r in zip(pred, rows) if not p["beyond_recorded"]]
        print(f"\nties={args.ties}, fit grid={args.fit_grid}, {len(rows)} sets: predicted best K beyond the recorded N "
              f"on {sum(p['beyond_recorded'] for p in pred)}; |predicted K - empirical best K| where within N: median "
              f"{np.median([abs(p['k_error']) for p in within]) if within else float('nan'):.1f} ({len(within)} sets); "
              f"|error of the predicted curve at the empirical best K|: mean {np.mean([abs(p['error_at_empirical_best_k']) for p in pred]):.4f}; "
              f"regret: mean {np.mean([p['regret'] for p in pred]):.4f}, max {max(p['regret'] for p in pred):.4f}; "
              f"predicted plateau K: median {np.median([p['plateau_k'] for p in pred]):.0f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "vote_scaling.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
