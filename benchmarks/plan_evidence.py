"""Evidence for ``callwise plan``: the recommendation at three budgets per task, on the shared data.

Run from the repository root::

    python benchmarks/plan_evidence.py [--data ../shared/data] [--datasets routerbench-subset,...]
                                       [--fractions 0.1,0.3,0.6] [--risk 0.05] [--json OUT.json]

Per task, exactly what ``callwise plan DATA --budget B`` does, with the work that does not depend
on the budget done once: the candidates' out-of-fold outcomes on the training split
(``prepare_task``), then for each budget the choice on those outcomes (``select``), then the
test split (read once, its runs shared by the three verdicts; ``finish_task``). Budgets are set
from the *training* split: the cheapest model's mean cost plus 10%, 30% and 60% of the way to the
best single model's. Printed per task and budget: the recommendation and its family, test cost and
quality, what it saves against the best single model on train, whether the budget held (and in
what share of 200 bootstrap resamples of the test prompts), and the best admissible configuration
of each family on test. Then: how often the budget held, and which family won how often.
RouteLLM evals are priced by ``docs/examples/routellm_prices.yaml`` (they record no costs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import callwise
from callwise.core.fixed import model_means
from callwise.plan.planner import finish_task, prepare_task
from callwise.plan.select import select

DATASETS = {
    "routerbench-subset": {},
    "rational-cascades": {},
    "routellm-evals": {"prices": "docs/examples/routellm_prices.yaml"},
    "mot-cascade-samples": {"drop_incomplete": True, "tasks": ["date_cot1", "date_pot1"],
                            "models": ["gpt-3.5-turbo", "gpt-4"], "split": 0.6},
}


def load(root: Path, name: str) -> tuple[callwise.OutcomeTable, callwise.OutcomeTable, list[str]]:
    spec = DATASETS[name]
    t = callwise.load(root / name, drop_incomplete=spec.get("drop_incomplete", False), prices=spec.get("prices"))
    if "tasks" in spec:
        t = t.select(t.frame["task"].isin(spec["tasks"]).to_numpy())
    if "models" in spec:
        t = t.select(t.frame["model"].isin(spec["models"]).to_numpy())
    train, test, _ = callwise.split_outcomes(t, fraction=spec.get("split"), seed=0)
    return train, test, test.tasks()


def budgets(train: callwise.OutcomeTable, fractions: list[float]) -> list[float]:
    models, cost, quality = model_means(train)
    lo, best = float(cost.min()), float(cost[int(np.argmax(quality))])
    return [lo + f * (best - lo) for f in fractions]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--fractions", default="0.1,0.3,0.6")
    ap.add_argument("--risk", type=float, default=0.05)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--tasks", default=None, help="Only these tasks (comma-separated)")
    a = ap.parse_args(argv)
    fractions = [float(x) for x in a.fractions.split(",")]
    rows: list[dict[str, Any]] = []
    for name in a.datasets.split(","):
        train, test, tasks = load(a.data, name)
        print(f"\n### {name}\n")
        print("| task | budget $/q | recommended (family) | test cost | test quality [95% CI] | saved vs best model "
              "(quality Δ) | budget held (resamples) | best of each family on test (quality) |")
        print("|---|---|---|---|---|---|---|---|")
        for task in tasks:
            if a.tasks and task not in a.tasks.split(","):
                continue
            tr, te = train.for_task(task), test.for_task(task)
            t0 = time.perf_counter()
            evs, notes = prepare_task(tr, task, folds=a.folds, seed=0, metric=None, include=None, max_points=25)
            prep = time.perf_counter() - t0
            n_test = int(te.frame["prompt_id"].nunique())
            for b in budgets(tr, fractions):
                sel = select(evs, budget=b, risk=a.risk, horizon=float(n_test))
                tp = finish_task(tr, te, task, evs, sel, notes, baseline=None, budget=b, quality=None,
                                 n_boot=200, seed=0, level=0.95, oracle="callwise")
                v = tp.verdict
                fam = {f: (d["label"], d["test"]["quality"]) for f, d in tp.family_test.items()}
                row = {"dataset": name, "task": task, "budget": b, "seconds_crossfit": prep,
                       "candidates": len(evs), "message": sel.message,
                       "recommendation": v, "families": fam, "beats_single": sel.beats_single}
                rows.append(row)
                if v is None:
                    print(f"| {task} | {b:.3g} | none: {sel.message} | | | | | |")
                    continue
                ab = v["against_baseline"]
                share = "" if ab["cost_saved_share"] is None else f"{ab['cost_saved_share']:.0%}"
                held = v["target_held"]
                best = "; ".join(f"{f} {q:.3f}" for f, (_, q) in fam.items())
                print(f"| {task} | {b:.3g} | {v['label']} ({v['family']}) | {v['test']['cost']:.3g} | "
                      f"{v['test']['quality']:.3f} [{v['test']['quality_ci'][0]:.3f}, {v['test']['quality_ci'][1]:.3f}] "
                      f"| {share} vs {ab['model']} ({ab['quality_gained']:+.3f}) | "
                      f"{'yes' if held['held'] else '**no**'} ({held['share_of_resamples_held']:.0%}) | {best} |")
            print(f"<!-- {task}: {len(evs)} candidates, cross-fitting {prep:.0f} s -->")
            sys.stdout.flush()
    done = [r for r in rows if r["recommendation"] is not None]
    held = sum(r["recommendation"]["target_held"]["held"] for r in done)
    wins = Counter(r["recommendation"]["family"] for r in done)
    print(f"\n{len(done)} of {len(rows)} (task, budget) cases have a recommendation; the budget held on the test "
          f"split in {held} of {len(done)}; the recommendation's family: "
          + ", ".join(f"{f} {n}" for f, n in wins.most_common()))
    if a.json is not None:
        a.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
