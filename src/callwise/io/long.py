"""Long tables (CSV, JSONL, Parquet) with the outcome table's own column names.

Other column names are mapped with ``mapping={canonical: original}`` (CLI: ``--map
quality=correct --map cost=cost_usd``). Columns that are neither canonical nor mapped are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.files import base_suffix, read_csv, read_jsonl, read_parquet
from ..core.outcomes import SCHEMA, Provenance

LONG_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


def read_raw(path: Path, text_columns: tuple[str, ...] = ()) -> tuple[pd.DataFrame, np.ndarray | None, str]:
    """The file's records, their line numbers (JSONL) and the unit to name them by."""
    suffix = base_suffix(path)
    if suffix == ".parquet":
        return read_parquet(path), None, "row"
    if suffix in (".jsonl", ".json"):
        df = read_jsonl(path)
        return df.drop(columns="__line__"), df["__line__"].to_numpy(), "line"
    if suffix == ".csv":
        return read_csv(path, text_columns=text_columns), None, "row"
    raise DataError(f"unknown file type {suffix!r}; expected one of {list(LONG_SUFFIXES)} (optionally .gz)",
                    file=str(path))


def check_mapping(mapping: Mapping[str, str] | None) -> dict[str, str]:
    mapping = dict(mapping or {})
    unknown = [k for k in mapping if k not in SCHEMA]
    if unknown:
        raise DataError(f"column mapping names unknown canonical column(s) {unknown}; "
                        f"canonical columns are {list(SCHEMA)}")
    return mapping


def read_long(path: Path, mapping: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, Provenance]:
    mapping = check_mapping(mapping)
    ids = tuple(mapping.get(c, c) for c in ("prompt_id", "model", "task", "answer", "split"))
    raw, lines, unit = read_raw(path, ids)
    raw.columns = [str(c) for c in raw.columns]
    absent = [orig for orig in mapping.values() if orig not in raw.columns]
    if absent:
        raise DataError(f"mapped column {absent[0]!r} is not in the file; its columns are {list(raw.columns)}",
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
