"""Write the policy files that tests/core/test_policy_files.py loads: one per registered policy that bench builds.

They were written by callwise 0.1.0 before the package moved to one folder per family (commit
8a05afe), so the test shows that policy files written before the move still load and decide the
same. To write them again from a checkout of that commit:

    PYTHONPATH=<checkout>/src python tests/core/data/policies-0.1.0/make_policies.py tests/core/data/policies-0.1.0

``table.parquet`` is a small seeded synthetic outcome table (3 models, 3 samples each, answers,
confidences, references); ``<name>.json`` / ``.npz`` is each policy fitted on its train split, at the middle setting of its sweep;
``decisions.npz`` holds, per policy, the cost, quality and chosen model of its decisions on the
test split, replayed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import callwise
from callwise import OutcomeTable, Replay, save_policy, split_outcomes

WORDS = ["add", "sum", "total", "count", "prove", "derive", "integral", "limit", "matrix", "graph", "story", "poem"]
#: Settings for the policies bench builds none of by default on this table.
EXPLICIT = {"single": {"model": "medium"}, "oracle": {}, "oracle-cascade": {"budget": 0.001},
            "filter-vote": {"model": "small", "k": 4}, "best-of-k": {"model": "small", "k": 3},
            "metric-aware": {"model": "small", "k": 3, "metric": "exact-match"}}
MODELS = {"small": (0.0001, 0.45), "medium": (0.0004, 0.65), "large": (0.002, 0.85)}


def table(seed: int = 0, n: int = 90) -> OutcomeTable:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        hard = rng.random()
        words = rng.choice(WORDS[:6] if hard < 0.5 else WORDS[6:], size=6)
        prompt = f"q{i}: " + " ".join(words)
        ref = str(i % 7)
        for m, (cost, skill) in MODELS.items():
            for s in range(3):
                right = rng.random() < skill * (1.2 - hard)
                answer = ref if right else str((i + 1 + s * (not right) + rng.integers(0, 3)) % 7)
                rows.append({"prompt_id": f"p{i}", "task": "synthetic", "prompt": prompt, "model": m, "sample": s,
                             "answer": answer, "reference": ref, "quality": float(answer == ref),
                             "cost": cost * (1 + 0.1 * len(prompt) / 40), "latency": 0.5,
                             "confidence": float(np.clip(rng.normal(0.8 if right else 0.5, 0.15), 0, 1)),
                             "keep": float(right if rng.random() < 0.8 else not right)})
    return OutcomeTable.from_frame(pd.DataFrame(rows))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    t = table()
    t.to_parquet(out / "table.parquet")
    train, test, _ = split_outcomes(t, fraction=0.7, seed=0)
    replay = Replay(test)
    decisions: dict[str, np.ndarray] = {}
    for name, cls in callwise.registry().items():
        if name in EXPLICIT:
            pol = cls(**EXPLICIT[name]).fit(train)
        else:
            pol = cls.default(train).fit(train)
            sweep = list(pol.sweep())
            pol = sweep[len(sweep) // 2]  # a setting in the middle of its knob's range, not an end
        save_policy(pol, out / f"{name}.json")
        d = pol.decide(replay.queries(), replay)
        decisions[f"{name}/cost"], decisions[f"{name}/quality"] = d.cost, d.quality
        decisions[f"{name}/chosen"] = d.chosen
        print(f"wrote {name}: point {d.point()}")
    np.savez_compressed(out / "decisions.npz", **decisions)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
