"""Quality benchmark for allocation search: LLMSelector's optimality gap on real ensemble votes.

Run from the repository root::

    python benchmarks/allocation_quality.py [--data ../shared/data] [--seeds 20] [--slots 3,5]
                                            [--json OUT.json]

No public multi-module traces exist, but an ensemble vote over recorded answers is a real compound
system whose every allocation can be scored exactly (``callwise.pipelines.ensemble``): L answerer
slots on the same question, a plurality vote (ties to the first slot), a model in two slots
answering once (paid once). Datasets, each with its own train/test split:

- rational-cascades MMLU and MedMCQA: the llama (5) and qwen/OpenAI (4) chains joined by prompt
  text into 9 models per question; answers are parsed letters.
- RouterBench ARC-Challenge and Winogrande (11 models): the letter is parsed from each response
  (``normalise="choice"``); train and test are the subset's two files.

References are inferred from the answers graded correct. For each dataset and L:

- **exhaustive**: every allocation scored on train; the best (ties: cheaper) is reported on test.
  This is the reference optimum a search is compared with. **test oracle**: the best allocation
  on the test set itself (an upper bound no method can claim).
- **single**: the best single model on train (the same model in every slot).
- **llmselector**: from a random start (``--seeds`` starts), no budget: it stops by the L+1 rule.
- **random** and **coordinate**: each seed's run at LLMSelector's evaluations from that seed.
- **llmselector+diag**: LLMSelector with ``alpha = 1`` and the slot diagnoser (was this slot's own
  answer right: the verdict an ideal LLM diagnoser would give on training questions).
- **llmselector-2stage**: the authors' two-stage variant (``OptimizerLLMDiagnoser2Stage``): the same
  slot diagnoser walks a seeded half of the training questions to build the start, then the vote
  (alpha = 0) runs from it.

For each: mean test accuracy over seeds with a 95% interval (t over seeds; the test-sample
interval of a single allocation is given for exhaustive), mean evaluations, the gap to
exhaustive on test and on train, and the share of seeds that found the train optimum.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from callwise.core.frontier import mean_ci
from callwise.io import load
from callwise.pipelines.ensemble import (
    EnsembleOutcomes,
    all_allocations,
    join_by_prompt,
)
from callwise.pipelines.search import OutcomesEvaluator, search


def datasets(root: Path) -> dict[str, tuple[Any, Any]]:
    rc = load(root / "rational-cascades")
    out = {}
    for bench in ("mmlu", "medmcqa"):
        joined = join_by_prompt(rc, [f"{bench}-llama", f"{bench}-qwen_oai"])
        f = joined.frame
        train = joined.select((f["split"] == "train").to_numpy())
        test = joined.select((f["split"] == "test").to_numpy())
        out[f"{bench} (rational-cascades, 9 models)"] = (train, test)
    rb = root / "routerbench-subset"
    for name, stem in (("arc-challenge", "arc_challenge"), ("winogrande", "winograde")):
        train = load(rb / f"{stem}_train.csv.gz", drop_incomplete=True)
        test = load(rb / f"{stem}_test.csv.gz", drop_incomplete=True)
        out[f"{name} (RouterBench, 11 models)"] = (train, test)
    return out


def t_interval(x: np.ndarray) -> list[float]:
    x = np.asarray(x, float)
    if len(x) < 2 or np.all(x == x[0]):
        return [float(x.mean()), float(x.mean())]
    h = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return [float(x.mean() - h), float(x.mean() + h)]


def study(name: str, train_t: Any, test_t: Any, L: int, seeds: int) -> dict[str, Any]:
    tr = EnsembleOutcomes.from_table(train_t, normalise="choice")
    te = EnsembleOutcomes.from_table(test_t, models=tr.models, normalise="choice")
    ev_tr, ev_te = OutcomesEvaluator(tr, L), OutcomesEvaluator(te, L)
    M = len(tr.models)

    def test_q(alloc: tuple[int, ...]) -> float:
        return float(ev_te.evaluate(np.array([alloc]))[0][0].mean())

    t0 = time.perf_counter()
    ex = search(ev_tr, "exhaustive")
    allocs = all_allocations(M, L)
    oracle_q, _ = te.mean_scores(allocs)
    ex_test = test_q(ex.allocation)
    q_ex, c_ex = ev_te.evaluate(np.array([ex.allocation]))
    single = search(ev_tr, "single")
    rows: dict[str, Any] = {
        "exhaustive": {"test": ex_test, "test_ci": [float(v) for v in mean_ci(q_ex[0], n_boot=1000, seed=0)],
                       "train": ex.quality, "cost": float(c_ex[0].mean()), "evaluations": M ** L,
                       "allocation": list(ex.names)},
        "single": {"test": test_q(single.allocation), "train": single.quality, "evaluations": M,
                   "allocation": list(single.names)},
    }
    per: dict[str, dict[str, list[float]]] = {m: {"test": [], "train": [], "evals": [], "opt": []}
                                             for m in ("llmselector", "llmselector+diag", "llmselector-2stage", "random",
                                                       "coordinate")}
    for s in range(seeds):
        r = search(ev_tr, "llmselector", seed=s)
        runs = {"llmselector": r,
                "random": search(ev_tr, "random", budget=r.evaluations, seed=s),
                "coordinate": search(ev_tr, "coordinate", budget=r.evaluations, seed=s),
                "llmselector+diag": search(ev_tr, "llmselector", alpha=1.0, seed=s),
                "llmselector-2stage": search(ev_tr, "llmselector-2stage", seed=s)}
        for m, x in runs.items():
            per[m]["test"].append(test_q(x.allocation))
            per[m]["train"].append(x.quality)
            per[m]["evals"].append(x.evaluations)
            per[m]["opt"].append(float(x.quality >= ex.quality - 1e-6))  # float32 sums differ by ~1e-8
    for m, d in per.items():
        t = np.array(d["test"])
        rows[m] = {"test": float(t.mean()), "test_ci": t_interval(t), "train": float(np.mean(d["train"])),
                   "evaluations": float(np.mean(d["evals"])), "found_train_optimum": float(np.mean(d["opt"])),
                   "gap_test": float(ex_test - t.mean()), "gap_train": float(ex.quality - np.mean(d["train"]))}
    return {"dataset": name, "slots": L, "models": M, "allocations": M ** L, "n_train": tr.n_queries,
            "n_test": te.n_queries, "test_oracle": float(oracle_q.max()), "rows": rows,
            "seconds": time.perf_counter() - t0}


def print_table(res: dict[str, Any]) -> None:
    r = res["rows"]
    print(f"\n### {res['dataset']}, L = {res['slots']} ({res['allocations']:,} allocations; "
          f"{res['n_train']} train / {res['n_test']} test questions; {res['seconds']:.1f} s)\n")
    print("| method | test accuracy [95% CI] | train accuracy | evaluations | gap to exhaustive (test / train) "
          "| seeds at the train optimum |")
    print("|---|---|---|---|---|---|")
    e = r["exhaustive"]
    print(f"| exhaustive (reference) | {e['test']:.4f} [{e['test_ci'][0]:.3f}, {e['test_ci'][1]:.3f}] "
          f"| {e['train']:.4f} | {e['evaluations']:,} | 0 | - |")
    for m in ("llmselector", "llmselector+diag", "llmselector-2stage", "coordinate", "random"):
        x = r[m]
        print(f"| {m} | {x['test']:.4f} [{x['test_ci'][0]:.3f}, {x['test_ci'][1]:.3f}] | {x['train']:.4f} "
              f"| {x['evaluations']:.1f} | {x['gap_test']:+.4f} / {x['gap_train']:+.4f} "
              f"| {x['found_train_optimum']:.0%} |")
    s = r["single"]
    print(f"| best single model ({s['allocation'][0]}) | {s['test']:.4f} | {s['train']:.4f} | {s['evaluations']} "
          f"| {e['test'] - s['test']:+.4f} / {e['train'] - s['train']:+.4f} | - |")
    print(f"\ntest oracle (best allocation on the test set itself): {res['test_oracle']:.4f}; exhaustive's choice: "
          f"{', '.join(e['allocation'])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--slots", default="3,5")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = []
    for name, (train, test) in datasets(a.data).items():
        for L in (int(x) for x in a.slots.split(",")):
            res = study(name, train, test, L, a.seeds)
            print_table(res)
            out.append(res)
            sys.stdout.flush()
    if a.json is not None:
        a.json.write_text(json.dumps(out, indent=1))
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
