"""RouterBench wide tables -> the outcome table.

The layout is one row per prompt: ``sample_id``, ``prompt``, ``eval_name`` and, per model,
``<model>`` (quality), ``<model>|total_cost`` and optionally ``<model>|model_response``. It comes as
the original pickles (``routerbench_0shot.pkl``/``routerbench_5shot.pkl``, loaded only when trusted)
or as CSV slices where ``prompt`` and responses are stringified Python lists.

Choices, documented:
- a model's column is any ``X`` for which ``X|total_cost`` exists;
- a cell whose quality is NaN is *not recorded* and produces no outcome row (its cost is ignored);
- stringified lists are parsed with :func:`ast.literal_eval` (literals only, never ``eval``); a
  multi-element list whose elements are all equal collapses to one element, otherwise the elements
  (conversation turns) are joined with a blank line;
- ``prompt_id`` is ``sample_id`` (or the row number when absent), ``task`` is ``eval_name``;
- ``split`` comes from a ``split`` column or from ``_train``/``_test`` in the file name. RouterBench
  has a few sample ids stored twice (one row holds gpt-3.5's outcome, the other the other models');
  their rows are merged by the outcome table, and if the two rows sit in different split files the
  prompt goes to the split that holds most of its outcomes (``meta['split_conflicts']`` lists them).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.files import base_suffix, read_csv, read_pickle
from ..core.outcomes import Provenance

COST_SUFFIX = "|total_cost"
RESPONSE_SUFFIX = "|model_response"


def is_routerbench_columns(columns: list[str]) -> bool:
    return "eval_name" in columns and any(str(c).endswith(COST_SUFFIX) for c in columns)


def parse_listish(value: object) -> object:
    """Text of a stringified Python list of strings (RouterBench's prompt/response cells)."""
    if not isinstance(value, str):
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else value
    s = value.strip()
    if not (s.startswith("[") and s.endswith("]")):
        return value
    try:
        parsed = ast.literal_eval(s)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value
    if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
        return value
    if not parsed:
        return ""
    if all(x == parsed[0] for x in parsed):
        return parsed[0]
    return "\n\n".join(parsed)


def _split_from_name(path: Path) -> str | None:
    stem = path.name.lower()
    m = re.search(r"(?:^|[_.\-])(train|test)(?:[_.\-]|$)", stem)
    return m.group(1) if m else None


def read_wide(path: Path, trust_pickle: bool = False) -> tuple[pd.DataFrame, Provenance]:
    """One RouterBench file as a long canonical frame plus provenance."""
    if base_suffix(path) in (".pkl", ".pickle"):
        wide = read_pickle(path, trust_pickle)
    else:
        wide = read_csv(path)
    cols = [str(c) for c in wide.columns]
    wide.columns = cols
    if not is_routerbench_columns(cols):
        raise DataError("not a RouterBench wide table: expected 'eval_name' and '<model>|total_cost' columns",
                        file=str(path), column="eval_name" if "eval_name" not in cols else "<model>|total_cost")
    models = [c[: -len(COST_SUFFIX)] for c in cols if c.endswith(COST_SUFFIX)]
    missing = [m for m in models if m not in cols]
    if missing:
        raise DataError(f"model {missing[0]!r} has a cost column but no quality column {missing[0]!r}",
                        file=str(path), column=missing[0])
    n = len(wide)
    pid = (wide["sample_id"].astype(str).to_numpy(dtype=object) if "sample_id" in cols
           else np.array([f"{path.name}:{i}" for i in range(n)], dtype=object))
    if "prompt" not in cols:
        raise DataError("missing required column 'prompt'", file=str(path), column="prompt")
    prompts = np.array([parse_listish(v) for v in wide["prompt"]], dtype=object)
    task = wide["eval_name"].to_numpy(dtype=object)
    split = wide["split"].to_numpy(dtype=object) if "split" in cols else None
    if split is None and (s := _split_from_name(path)):
        split = np.full(n, s, dtype=object)

    # text repeated once per model is built as categoricals over the wide rows (each text held once;
    # a part takes codes, not strings); pd.concat keeps them, as every part shares the categories
    by_row = lambda a: pd.Categorical(a) if a is not None else None  # noqa: E731
    pid_c, task_c, prompt_c, split_c = by_row(pid), by_row(task), by_row(prompts), by_row(split)
    model_c = pd.CategoricalDtype(pd.Index(models).unique())
    parts, qcol, ccol, rows = [], [], [], []
    for m in models:
        q = pd.to_numeric(wide[m], errors="coerce")
        bad = q.isna() & wide[m].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"expected a number for quality, got {wide[m].iloc[i]!r}", file=str(path),
                            row=i + 1, column=m)
        rec = q.notna().to_numpy()
        idx = np.flatnonzero(rec)
        resp_col = m + RESPONSE_SUFFIX
        part = {
            "prompt_id": pid_c[idx], "task": task_c[idx], "prompt": prompt_c[idx],
            "model": pd.Categorical.from_codes(np.full(len(idx), model_c.categories.get_loc(m)), dtype=model_c),
            "quality": q.to_numpy()[idx],
            "cost": wide[m + COST_SUFFIX].to_numpy()[idx],
        }
        if resp_col in cols:
            part["answer"] = np.array([parse_listish(v) for v in wide[resp_col].to_numpy()[idx]], dtype=object)
        if split is not None:
            part["split"] = split_c[idx]
        parts.append(pd.DataFrame(part))
        qcol.append(np.full(len(idx), m, dtype=object))
        ccol.append(np.full(len(idx), m + COST_SUFFIX, dtype=object))
        rows.append(idx + 1)
    df = pd.concat(parts, ignore_index=True)
    prov = Provenance(
        file=np.full(len(df), str(path), dtype=object),
        line=np.concatenate(rows),
        columns={"quality": np.concatenate(qcol), "cost": np.concatenate(ccol), "prompt_id": "sample_id",
                 "task": "eval_name", "answer": "<model>|model_response"},
        unit="row",
    )
    return df, prov


def resolve_split_conflicts(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Put each prompt id whose rows sit in both split files into the split with most of its outcomes."""
    if "split" not in df.columns or df["split"].isna().any():
        return df, []
    n_split = df.groupby("prompt_id", observed=True)["split"].nunique()
    conflicted = n_split[n_split > 1].index
    if len(conflicted) == 0:
        return df, []
    sub = df[df["prompt_id"].isin(conflicted)]
    counts = sub.groupby(["prompt_id", "split"], observed=True).size().unstack(fill_value=0)
    winner = counts.idxmax(axis=1)
    df = df.copy()
    mask = df["prompt_id"].isin(conflicted)
    df.loc[mask, "split"] = df.loc[mask, "prompt_id"].map(winner)
    return df, sorted(conflicted.tolist())
