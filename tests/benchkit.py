"""Small synthetic outcome tables for bench tests (importable from any test: tests/ is on sys.path)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from callwise import OutcomeTable

#: name -> accuracy of the equal-price models
EQUAL_MODELS = {"small": 0.5, "mid": 0.7, "large": 0.8}


def equal_cost_rows(task: str = "same-price", n_prompts: int = 60, seed: int = 0, varying: bool = True) -> list[dict]:
    """Rows of a task where every model costs the same on each prompt (``varying``: that shared cost
    differs from prompt to prompt, so the means agree only up to float noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_prompts):
        c = 0.0003 * (1 + rng.random()) if varying else 0.001
        for m, acc in EQUAL_MODELS.items():
            rows.append({"prompt_id": f"{task}-{i}", "task": task, "prompt": f"question {task} {i}", "model": m,
                         "quality": float(rng.random() < acc), "cost": c})
    return rows


def priced_rows(task: str = "priced", n_prompts: int = 60, seed: int = 1) -> list[dict]:
    """Rows of an ordinary task: the same models at three different prices."""
    rng = np.random.default_rng(seed)
    price = {"small": 0.001, "mid": 0.004, "large": 0.02}
    rows = []
    for i in range(n_prompts):
        for m, acc in EQUAL_MODELS.items():
            rows.append({"prompt_id": f"{task}-{i}", "task": task, "prompt": f"question {task} {i}", "model": m,
                         "quality": float(rng.random() < acc), "cost": price[m] * (1 + rng.random())})
    return rows


def equal_cost_table(mixed: bool = False) -> OutcomeTable:
    """Two equal-price tasks (one with a per-prompt cost, one with one fixed cost), plus an ordinary
    priced task when ``mixed``."""
    rows = equal_cost_rows("same-price") + equal_cost_rows("fixed-price", seed=2, varying=False)
    if mixed:
        rows += priced_rows("priced")
    return OutcomeTable.from_frame(pd.DataFrame(rows))


def three_models(n_prompts: int = 60, tasks=("a", "b"), seed: int = 0, split: bool = False,
                 confidence: bool = False) -> OutcomeTable:
    """Three models (small, mid, large: dearer and more accurate) on each task; ``split`` marks every
    third prompt test, ``confidence`` records a (meaningless) confidence per answer."""
    rng = np.random.default_rng(seed)
    models = {"small": (0.001, 0.5), "mid": (0.004, 0.7), "large": (0.02, 0.9)}
    rows = []
    for t in tasks:
        for i in range(n_prompts):
            for m, (cost, acc) in models.items():
                row = {"prompt_id": f"{t}-{i}", "task": t, "prompt": f"question {t} {i}", "model": m,
                       "quality": float(rng.random() < acc), "cost": cost * (1 + rng.random())}
                if confidence:
                    row["confidence"] = float(rng.random())
                if split:
                    row["split"] = "train" if i % 3 else "test"
                rows.append(row)
    return OutcomeTable.from_frame(pd.DataFrame(rows))
