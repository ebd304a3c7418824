"""RouterBench's three routers as the paper configured them, beside callwise's CV-chosen defaults.

    python benchmarks/routerbench_configs.py [--data ../shared/data/routerbench-subset]

Per task of the data (its own train/test files): the AIQ (paper normalisation, x 100) on the test
prompts of KNN with k = 5, 10, 40 (the paper's) and k chosen by CV (callwise), the MLP with one
regressor per model (RouterBench's MLPRouter: hidden (100, 100, 100), alpha 1e-4, seed 1234) and
callwise's multi-output MLP chosen by CV, the SVM router (one LinearSVR per model, C = 1, seed
1234) and C chosen by CV, and the zero router, all over the shared cost range of the task. Each
router traces its λ-sweep; features are callwise's default TF-IDF + SVD (the paper embeds prompts).
The paper's configurations use the scorer's prediction as it is (``shrink=0``); callwise's CV also
chooses how far to blend it with the training mean (``shrink=1`` is the prompt-blind zero router).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from callwise import Replay, load, make, split_outcomes
from callwise.core.frontier import aiq, ndch, shared_range

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parent.parent / "shared" / "data" / "routerbench-subset"
PAPER_MLP = {"hidden": [100, 100, 100], "alpha": 1e-4, "seed": 1234, "early_stopping": False, "per_model": True,
             "n_iter_no_change": 10}
CONFIGS = {
    # the paper's routers use the scorer's prediction as it is: no blend with the training mean (shrink 0)
    "knn k=5 (paper)": ("knn", {"hyper": {"k": 5}, "shrink": 0.0}),
    "knn k=10 (paper)": ("knn", {"hyper": {"k": 10}, "shrink": 0.0}),
    "knn k=40 (paper)": ("knn", {"hyper": {"k": 40}, "shrink": 0.0}),
    "knn (CV)": ("knn", {}),
    "mlp per model (paper)": ("mlp", {"hyper": PAPER_MLP, "shrink": 0.0}),
    "mlp (CV)": ("mlp", {}),
    "svm C=1 (paper)": ("svm", {"hyper": {"C": 1.0}, "shrink": 0.0}),
    "svm (CV)": ("svm", {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    train, test, _ = split_outcomes(load(args.data), seed=args.seed)
    table: dict[str, dict[str, float]] = {}
    for task in test.tasks():
        tr, te = train.for_task(task), test.for_task(task)
        rep = Replay(te)
        v = rep.view
        singles = np.column_stack([v.cost[:, :, 0].mean(axis=0), v.quality[:, :, 0].mean(axis=0)])
        points = {}
        for label, (name, params) in CONFIGS.items():
            t0 = time.perf_counter()
            pol = make(name, **params).fit(tr)
            points[label] = np.array([d.point() for d in (p.decide(rep.queries(), rep) for p in pol.sweep())])
            print(f"  {task}: {label} fitted and swept in {time.perf_counter() - t0:.1f} s", flush=True)
        lo, hi = shared_range([singles[:, 0], *(p[:, 0] for p in points.values())])
        table[task] = {"zero": aiq(ndch(singles[:, 0], singles[:, 1]), lo, hi, "paper")}
        for label, p in points.items():
            table[task][label] = aiq(ndch(p[:, 0], p[:, 1]), lo, hi, "paper")
    tasks = list(table)
    print("\n| router | " + " | ".join(tasks) + " | mean |")
    print("|---|" + "---:|" * (len(tasks) + 1))
    for label in ["zero", *CONFIGS]:
        vals = [100 * table[t][label] for t in tasks]
        print(f"| {label} | " + " | ".join(f"{x:.2f}" for x in vals) + f" | {np.mean(vals):.2f} |")


if __name__ == "__main__":
    main()
