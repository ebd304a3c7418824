"""Long tables (CSV, JSONL, Parquet) with the outcome table's own column names.

Other column names are mapped with ``mapping={canonical: original}`` (CLI: ``--map
quality=correct --map cost=cost_usd``). Columns that are neither canonical nor mapped are ignored.

**Cost from token counts.** A table may record token counts instead of dollars: the canonical
columns ``input_tokens`` (prompt tokens) and ``output_tokens`` (completion tokens), other names
mapped as above (``--map input_tokens=prompt_tokens --map output_tokens=completion_tokens``).
With a price table (``--prices FILE``, ``prices=``) :func:`price_tokens` computes

    cost = input_tokens * input price / 1e6 + output_tokens * output price / 1e6 + per_call price

per row (prices in USD per 1M tokens). Where a token column is absent, its tokens are estimated
from text (``prompt`` for input, ``answer`` for output; characters / 4), or for output from the
table's ``assumed_output_tokens``; a price that would need tokens that are neither recorded nor
estimable is an error. When the table also has a ``cost`` column, recorded costs are kept and the
prices fill only its empty cells. Computed costs mark the table ``costs_estimated`` and the
notes say how each cost was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import AbstractSet, Callable, Mapping

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.files import base_suffix, read_csv, read_jsonl, read_parquet
from ..core.outcomes import OPTIONAL_COLUMNS, SCHEMA, Provenance
from ..core.prices import PriceTable, estimate_tokens

LONG_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


def read_raw(path: Path, text_columns: tuple[str, ...] = (),
             wanted: Callable[[str], bool] | None = None) -> tuple[pd.DataFrame, np.ndarray | None, str]:
    """The file's records, their line numbers (JSONL) and the unit to name them by. ``wanted``: read
    only the columns it accepts where the format allows (Parquet, CSV; JSON is parsed whole)."""
    suffix = base_suffix(path)
    if suffix == ".parquet":
        return read_parquet(path, wanted), None, "row"
    if suffix in (".jsonl", ".json"):
        df = read_jsonl(path)  # a JSON list numbers its records from 0 ("record 3"), JSON lines by line
        return df.drop(columns="__line__"), df["__line__"].to_numpy(), str(df.attrs.get("unit", "line"))
    if suffix == ".csv":
        return read_csv(path, text_columns=text_columns, wanted=wanted), None, "row"
    raise DataError(f"unknown file type {suffix!r}; expected one of {list(LONG_SUFFIXES)} (optionally .gz)",
                    file=str(path))


def check_mapping(mapping: Mapping[str, str] | None) -> dict[str, str]:
    mapping = dict(mapping or {})
    unknown = [k for k in mapping if k not in SCHEMA]
    if unknown:
        raise DataError(f"column mapping names unknown canonical column(s) {unknown}; "
                        f"canonical columns are {list(SCHEMA)}")
    return mapping


def read_long(path: Path, mapping: Mapping[str, str] | None = None,
              columns: AbstractSet[str] | None = None) -> tuple[pd.DataFrame, Provenance]:
    """A long table's canonical columns and their provenance. ``columns``: the optional columns to
    read (None: all); the file's other optional columns are not read from Parquet or CSV."""
    mapping = check_mapping(mapping)
    ids = tuple(mapping.get(c, c) for c in ("prompt_id", "model", "task", "answer", "split"))
    wanted = None
    if columns is not None:  # the file's names of the unread columns (mapped or canonical), unless a read one
        unread = [c for c in OPTIONAL_COLUMNS if c not in columns]
        skip = ({mapping.get(c, c) for c in unread} | set(unread)) - {mapping.get(c, c) for c in SCHEMA
                                                                        if c not in unread}
        wanted = lambda name: str(name) not in skip  # noqa: E731
    raw, lines, unit = read_raw(path, ids, wanted)
    raw.columns = [str(c) for c in raw.columns]
    header = [str(c) for c in raw.attrs.get("header", raw.columns)]  # every column of the file, read or not
    absent = [orig for orig in mapping.values() if orig not in header]
    if absent:
        raise DataError(f"mapped column {absent[0]!r} is not in the file; its columns are {header}",
                        file=str(path), column=absent[0])
    rename = {orig: canon for canon, orig in mapping.items()}
    shadowed = [c for c in raw.columns if c in SCHEMA and c not in rename and c in mapping]
    df = raw.drop(columns=shadowed).rename(columns=rename)
    df = df[[c for c in df.columns if c in SCHEMA]]
    prov = Provenance(
        file=str(path),
        line=lines if lines is not None else np.arange(1, len(df) + 1),
        columns={c: mapping.get(c, c) for c in SCHEMA},
        unit=unit,
    )
    return df, prov


#: The token columns :func:`price_tokens` reads, with the text each is estimated from when absent.
TOKEN_COLUMNS = {"input_tokens": "prompt", "output_tokens": "answer"}


def _tokens(df: pd.DataFrame, prov: Provenance, col: str) -> np.ndarray:
    """A token column as floats (NaN where empty), checked to hold non-negative whole numbers."""
    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = (np.isnan(num) & raw.notna().to_numpy()) | (num < 0) | (np.isfinite(num) & (num != np.round(num))) | np.isinf(num)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        file, row = prov.where(i)
        v = raw.iloc[i]
        shown = repr(v.item() if isinstance(v, np.generic) else v)
        raise DataError(f"expected a token count (a whole number >= 0), got {shown}", file=file, row=row,
                        column=prov.column(col, i))
    return num


def price_tokens(df: pd.DataFrame, prov: Provenance, prices: PriceTable) -> tuple[pd.DataFrame, list[str], bool]:
    """``df`` with ``cost`` computed from its token columns and ``prices`` where it has no recorded
    cost (see the module docstring), notes saying how, and whether any cost was computed. Errors
    name the file, row and column."""
    has_cost = "cost" in df.columns
    if has_cost:
        need = (df["cost"].isna() | (df["cost"].astype(str).str.strip() == "")).to_numpy()
        if not need.any():
            return df, [f"costs are recorded in the data; the price table ({prices.source}) was not used"], False
    else:
        need = np.ones(len(df), dtype=bool)
    models = df["model"].astype(str).to_numpy(dtype=object)
    missing = sorted({m for m in models[need] if m not in prices.models})
    if missing:
        raise DataError(f"no price for model(s) {missing}; the price table has {sorted(prices.models)}",
                        file=prices.path, column="models")
    table = {m: prices.models[m] for m in set(models[need])}
    per = lambda attr: np.array([getattr(table[m], attr) if ok else 0.0 for m, ok in zip(models, need)])  # noqa: E731
    p_in, p_out, p_call = per("input_per_1m"), per("output_per_1m"), per("per_call")
    how, out = [], df.copy()
    for col, text in TOKEN_COLUMNS.items():
        price = p_in if col == "input_tokens" else p_out
        if col in df.columns:
            tok = _tokens(df, prov, col)
            empty = need & np.isnan(tok) & (price > 0)
            if empty.any():
                i = int(np.flatnonzero(empty)[0])
                file, row = prov.where(i)
                raise DataError(f"empty {col} for model {models[i]!r}, which has a price per token; the cost needs "
                                "the token count", file=file, row=row, column=prov.column(col, i))
            how.append(f"{col} recorded")
        elif text in df.columns and df[text].notna().any():
            tok = estimate_tokens(df[text].to_numpy(dtype=object)).astype(float)
            out[col] = tok.astype(np.int64)
            how.append(f"{col} estimated from {text!r} text (characters / 4)")
        elif col == "output_tokens" and prices.assumed_output_tokens is not None:
            tok = np.full(len(df), float(prices.assumed_output_tokens))
            out[col] = tok.astype(np.int64)
            how.append(f"output_tokens = {prices.assumed_output_tokens} per call (assumed_output_tokens)")
        else:
            priced = need & (price > 0)
            if priced.any():
                i = int(np.flatnonzero(priced)[0])
                file, _ = prov.where(i)
                hint = " or set assumed_output_tokens in the price table" if col == "output_tokens" else ""
                raise DataError(f"model {models[i]!r} has a price per {col.split('_')[0]} token but the table has no "
                                f"{col} column (nor {text!r} text to estimate it from): add or map one (--map "
                                f"{col}=YOUR_COLUMN){hint}", file=file, column=col)
            tok = np.zeros(len(df))
        if col == "input_tokens":
            t_in = tok
        else:
            t_out = tok
    cost = np.nan_to_num(t_in) * p_in / 1e6 + np.nan_to_num(t_out) * p_out / 1e6 + p_call
    if has_cost:  # recorded values stay as they were (the table's checks name a bad one)
        out["cost"] = out["cost"].astype(object)
        out.loc[need, "cost"] = cost[need]
    else:
        out["cost"] = cost
    filled = f"{int(need.sum())} of {len(df)} empty costs" if has_cost else "costs"
    return out, [f"{filled} computed from token counts ({'; '.join(how)}) priced with {prices.source}"], True


def check_cost_source(df: pd.DataFrame, prov: Provenance) -> None:
    """Without a price table, a table with token columns but no ``cost`` column gets an error that
    says how to price it (instead of only "missing required column")."""
    if "cost" in df.columns:
        return
    tokens = [c for c in TOKEN_COLUMNS if c in df.columns]
    if tokens:
        file = prov.file if isinstance(prov.file, str) else None
        raise DataError(f"missing required column 'cost'; the table has token columns {tokens}: pass a price table "
                        "(--prices FILE, prices=...) to compute cost = input_tokens x input price + output_tokens x "
                        "output price (USD per 1M tokens), or map a cost column (--map cost=YOUR_COLUMN)",
                        file=file, column="cost")
