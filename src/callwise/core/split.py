"""Train / test splits of an outcome table: the origin's split, a seeded per-task split, or a test file.

Every command that evaluates on held-out prompts (bench, fit, cascade, allocate) splits here, so a
seed means the same split everywhere.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from .errors import DataError
from .outcomes import OutcomeTable


def _task_rng(seed: int, task: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(task.encode())])


def _seeded_ids(ids: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ids = np.sort(ids.astype(str))
    perm = rng.permutation(len(ids))
    n_train = int(round(fraction * len(ids)))
    if len(ids) >= 2:
        n_train = min(max(n_train, 1), len(ids) - 1)
    return ids[perm[:n_train]], ids[perm[n_train:]]


def split_outcomes(table: OutcomeTable, *, fraction: float | None = None, seed: int = 0,
                   test: OutcomeTable | None = None) -> tuple[OutcomeTable, OutcomeTable, dict[str, Any]]:
    """Train and test tables plus a description of the split.

    ``test`` given: ``table`` is all train. Else the origin's train/test split when the data has
    one and ``fraction`` is None; else a seeded per-task split with ``fraction`` in train (0.7 by
    default). The origin's split is used task by task: a task whose origin split lacks one side, or
    some of whose prompts have no split (a dataset whose other tasks have train/test files), falls
    back to the seeded split.
    """
    if test is not None:
        overlap = np.intersect1d(table.prompt_ids().astype(str), test.prompt_ids().astype(str))
        info = {"method": "test-file", "seed": seed, "overlapping_prompt_ids": int(len(overlap))}
        if len(overlap):
            raise DataError(f"{len(overlap)} prompt id(s) are in both the data and the --test set, e.g. "
                            f"{overlap[:3].tolist()}; a test set must be held out", column="prompt_id")
        return table, test, info
    if fraction is not None and not 0.0 < fraction < 1.0:
        raise DataError(f"--split must be a fraction strictly between 0 and 1, got {fraction}")
    use_origin = fraction is None and "split" in table.frame.columns and bool(table.frame["split"].notna().any())
    frac = 0.7 if fraction is None else fraction
    info: dict[str, Any] = {"method": "origin" if use_origin else "seeded", "fraction": None if use_origin else frac,
                            "seed": seed, "fallback_tasks": []}
    f = table.frame
    train_ids: list[np.ndarray] = []
    for task in table.tasks():
        ft = f[f["task"] == task]
        if use_origin:
            sp = ft.drop_duplicates("prompt_id").set_index("prompt_id")["split"]
            tr, te = sp.index[sp == "train"].to_numpy(), sp.index[sp == "test"].to_numpy()
            if len(tr) and len(te) and sp.notna().all():
                train_ids.append(tr.astype(str))
                continue
            info["fallback_tasks"].append(task)
        tr, _ = _seeded_ids(ft["prompt_id"].unique(), frac, _task_rng(seed, task))
        train_ids.append(tr)
    is_train = f["prompt_id"].astype(str).isin(set(np.concatenate(train_ids)))
    return table.select(is_train.to_numpy()), table.select(~is_train.to_numpy()), info
