"""I/O: loaders of every recorded format into the outcome table, format detection, and the bundled sample.

``load(path)`` detects the format from the path (file or folder) and its header; ``format=``
forces one of :data:`FORMATS`:

- ``routerbench``: RouterBench wide tables (CSV slices, or the original pickles with
  ``trust_pickle=True``); a folder of them loads as one dataset.
- ``long``: CSV / JSONL / Parquet with the canonical column names (or ``mapping``); a folder of
  them loads as one dataset. The canonical Parquet written by :func:`write_parquet` is ``long``.
- ``rational-cascades``: the ``outcomes.csv`` + ``prompts.csv`` pair.
- ``routellm``: RouteLLM's eval CSVs / MT-Bench judgements; needs ``prices``.
- ``mot``: the MoT-cascade sample files (a ``.json(.gz)`` list of records with ``generated`` and
  ``results``; a folder of them, or a folder of model folders); costs estimated with
  :data:`callwise.io.mot.DEFAULT_PRICES` unless ``prices`` is given.
- ``routerdc``: RouterDC's ``{question, scores}`` JSON lists, one file per task and split; the
  data has no costs, so it needs ``prices``.
- ``llmrouter``: LLMRouter's DC-Router ``train`` / ``test`` files (the same records) with the
  price file beside them (``default_llm.json``); ``prices`` replaces that file.

``prices`` is a :class:`~callwise.core.prices.PriceTable` or the path of a price file: a callwise
price table (YAML / JSON) or an LLMRouter price file (see :func:`callwise.io.llmrouter.load_prices`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..core.errors import DataError, FormatError
from ..core.files import base_suffix, is_pickle, read_bytes, read_csv, read_jsonl
from ..core.outcomes import (
    DEFAULT_TASK,
    META_KEY,
    OPTIONAL_COLUMNS,
    OutcomeTable,
    Provenance,
    check_columns,
    write_parquet,
)
from ..core.prices import PriceTable
from . import llmrouter as _llmrouter
from . import long as _long
from . import mot as _mot
from . import rational as _rational
from . import routellm as _routellm
from . import routerbench as _rb
from . import routerdc as _routerdc
from .sample import sample_path

FORMATS = ("routerbench", "long", "rational-cascades", "routellm", "mot", "routerdc", "llmrouter")
DATA_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet", ".pkl", ".pickle")


def _data_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and base_suffix(p) in DATA_SUFFIXES)
    if not files:
        raise DataError(f"no data files in this folder (expected {', '.join(DATA_SUFFIXES)}, optionally .gz)",
                        file=str(folder))
    return files


def _columns_of(path: Path) -> list[str]:
    suffix = base_suffix(path)
    if suffix == ".csv":
        return [str(c) for c in read_csv(path, header_only=True).columns]
    if suffix in (".jsonl", ".json"):
        return [str(c) for c in read_jsonl(path).columns if c != "__line__"]
    if suffix == ".parquet":
        try:
            return [str(c) for c in pq.read_schema(path).names]
        except Exception:
            raise FormatError("named .parquet but is not a readable Parquet file", file=str(path)) from None
    return []


def detect_format(path: str | Path) -> str:
    """The format of a file or folder, from its layout and header; a clear error when unknown."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or folder", file=str(path))
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if {"outcomes.csv", "outcomes.csv.gz"} & names:
            return "rational-cascades"
        if _routellm.routellm_files(path):
            return "routellm"
        if _mot.is_mot_folder(path):
            return "mot"
        if _llmrouter.is_llmrouter_folder(path):
            return "llmrouter"
        if _routerdc.is_score_folder(path):
            return "routerdc"
        formats = {detect_format(f) for f in _data_files(path)}
        if len(formats) > 1:
            raise FormatError(f"the folder mixes formats {sorted(formats)}; load its files one by one", file=str(path))
        return formats.pop()
    suffix = base_suffix(path)
    if suffix in (".pkl", ".pickle"):
        return "routerbench"
    if suffix not in DATA_SUFFIXES:
        raise FormatError(f"unknown format: file type {suffix or '(none)'!r} is not one of "
                          f"{list(DATA_SUFFIXES)} (optionally .gz); pass --input-format", file=str(path))
    if suffix == ".csv" and is_pickle(read_bytes(path)[:4]):
        raise FormatError("is a pickle although named .csv; pass --input-format routerbench --trust-pickle if you "
                          "trust it", file=str(path))
    if suffix == ".json" and _mot.is_mot_file(path):  # before _columns_of, which reads a list as a table
        return "mot"
    if suffix == ".json" and _routerdc.is_score_file(path):
        return "llmrouter" if _llmrouter.find_price_file(path.parent) is not None else "routerdc"
    if suffix == ".json" and _llmrouter.is_price_file(path):
        raise FormatError("is an LLMRouter price file (model -> input_price, output_price), not recorded outcomes: "
                          "load the folder that holds it with its data files, or pass it as --prices FILE",
                          file=str(path))
    cols = _columns_of(path)
    if _rb.is_routerbench_columns(cols):
        return "routerbench"
    if _rational.is_rational_columns(cols):
        return "rational-cascades"
    if {"question_id", "score", "turn", "model"} <= set(cols) or _routellm.is_routellm_columns(cols):
        return "routellm"
    if {"prompt_id", "model"} <= set(cols):
        return "long"
    raise FormatError(f"cannot detect the format from its columns {cols[:12]}; pass --input-format one of "
                      f"{list(FORMATS)} (and --map for a long table with other column names)", file=str(path))


def _concat(frames: Sequence[pd.DataFrame], provs: Sequence[Provenance]) -> tuple[pd.DataFrame, Provenance]:
    if len(frames) == 1:
        return frames[0], provs[0]
    if any("task" in f.columns for f in frames):  # a file without a task column gets the default task
        frames = [f if "task" in f.columns else f.assign(task=DEFAULT_TASK) for f in frames]
    lengths = [len(f) for f in frames]
    per_row = lambda v, n: v if isinstance(v, np.ndarray) else np.full(n, v, dtype=object)  # noqa: E731
    keys = set().union(*(p.columns for p in provs))
    cols = {k: np.concatenate([per_row(p.columns.get(k, k), n) for p, n in zip(provs, lengths)]) for k in keys}
    units = {p.unit for p in provs}
    lines = [per_row(p.line, n) if p.line is not None else np.arange(1, n + 1) for p, n in zip(provs, lengths)]
    if len(units) > 1:  # files count differently (JSONL lines, CSV rows): label each position with its unit
        lines = [np.array([f"{p.unit} {x}" for x in ln], dtype=object) for p, ln in zip(provs, lines)]
    return (pd.concat(frames, ignore_index=True),
            Provenance(np.concatenate([per_row(p.file, n) for p, n in zip(provs, lengths)]),
                       np.concatenate(lines), cols, units.pop() if len(units) == 1 else "row"))


def load(
    path: str | Path,
    format: str | None = None,
    *,
    mapping: Mapping[str, str] | None = None,
    prices: PriceTable | str | Path | None = None,
    trust_pickle: bool = False,
    drop_incomplete: bool = False,
    quality_range: tuple[float, float] = (0.0, 1.0),
    columns: Iterable[str] | None = None,
) -> OutcomeTable:
    """Load recorded outcomes from a file or folder into a validated :class:`OutcomeTable`.

    ``columns`` names the optional columns to keep (of :data:`~callwise.core.outcomes.OPTIONAL_COLUMNS`:
    prompt text, answers, references, latency, token counts, confidence, keep); the outcomes themselves
    (ids, task, model, sample, quality, cost, split) are always read. None keeps every column. A
    long Parquet or CSV file is read with only those columns (a prompt text or answer column never
    reaches memory); other formats drop the rest before validation. What a command needs is
    :func:`callwise.evaluation.bench.bench_columns` / :func:`callwise.plan.plan_columns`. The
    table's ``columns_read`` records the choice; its fingerprint does not depend on it.

    Raises :class:`~callwise.core.errors.DataError` naming the file, row/prompt and column on bad input.
    """
    keep = None if columns is None else check_columns(columns)
    path = Path(path)
    if format is None:
        # a column mapping only applies to long tables, whose headers it renames
        format = "long" if mapping else detect_format(path)
    elif format not in FORMATS:
        raise FormatError(f"unknown format {format!r}; expected one of {list(FORMATS)}", file=str(path))
    elif not path.exists():
        raise DataError("no such file or folder", file=str(path))
    if isinstance(prices, (str, Path)):
        prices = _llmrouter.load_prices(prices)
    meta: dict[str, Any] = {"source": str(path), "format": format, "costs_estimated": False, "notes": []}

    if format == "routerbench":
        files = _data_files(path) if path.is_dir() else [path]
        pairs = [_rb.read_wide(f, trust_pickle) for f in files]
        df, prov = _concat([p[0] for p in pairs], [p[1] for p in pairs])
        df, conflicts = _rb.resolve_split_conflicts(df)
        if conflicts:
            meta["split_conflicts"] = conflicts
            meta["notes"].append(f"{len(conflicts)} prompt id(s) had rows in both the train and test files; each "
                                 "was merged and put in the split holding most of its outcomes")
    elif format == "long":
        files = _data_files(path) if path.is_dir() else [path]
        read = None if keep is None else keep | (set(_long.TOKEN_COLUMNS) | set(_long.TOKEN_COLUMNS.values())
                                                 if isinstance(prices, PriceTable) else set())
        pairs = [_long.read_long(f, mapping, read) for f in files]
        df, prov = _concat([p[0] for p in pairs], [p[1] for p in pairs])
        stored = _stored_meta(files[0]) if len(files) == 1 and base_suffix(files[0]) == ".parquet" else None
        if stored:
            meta.update({k: v for k, v in stored.items() if k not in ("source", "format")})
            meta["converted_from"] = stored.get("source")
        if isinstance(prices, PriceTable):
            df, notes, computed = _long.price_tokens(df, prov, prices)
            meta["notes"].extend(notes)
            if computed:
                meta["costs_estimated"] = True
                meta["price_table"] = prices.describe()
        else:
            _long.check_cost_source(df, prov)
    elif format == "rational-cascades":
        df, prov, notes = _rational.read_rational(path)
        meta["notes"].extend(notes)
    elif format == "mot":
        mot_prices = prices if isinstance(prices, PriceTable) else _mot.DEFAULT_PRICES
        df, prov, notes = _mot.read_mot(path, prices=mot_prices)
        meta["notes"].extend(notes)
        meta["costs_estimated"] = True
        meta["price_table"] = mot_prices.describe()
    elif format == "routerdc":
        df, prov, notes = _routerdc.read_routerdc(path, prices if isinstance(prices, PriceTable) else None)
        meta["notes"].extend(notes)
        meta["costs_estimated"] = True
        meta["price_table"] = prices.describe()  # type: ignore[union-attr]
    elif format == "llmrouter":
        df, prov, notes, used = _llmrouter.read_llmrouter(path, prices if isinstance(prices, PriceTable) else None)
        meta["notes"].extend(notes)
        meta["costs_estimated"] = True
        meta["price_table"] = used.describe()
    else:  # routellm
        frames, provs = _routellm.read_routellm(path, prices if isinstance(prices, PriceTable) else None)
        df, prov = _concat(frames, provs)
        meta["costs_estimated"] = True
        meta["price_table"] = prices.describe()  # type: ignore[union-attr]
        meta["notes"].append("costs estimated from a user price table and text-length token estimates")
        if (df["task"] == "mt_bench").any():
            meta["notes"].append("MT-Bench scores 1-10 rescaled to quality (score - 1) / 9")
    if keep is not None:
        df = df.drop(columns=[c for c in OPTIONAL_COLUMNS if c in df.columns and c not in keep])
        meta["columns_read"] = sorted(keep)
    return OutcomeTable.from_frame(df, prov, quality_range=quality_range, drop_incomplete=drop_incomplete,
                                   meta=meta)


def _stored_meta(path: Path) -> dict[str, Any] | None:
    try:
        md = pq.read_schema(path).metadata or {}
    except Exception:
        return None
    return json.loads(md[META_KEY]) if META_KEY in md else None




def load_sample() -> OutcomeTable:
    """The bundled sample (RouteLLM GSM8K + MT-Bench, see :mod:`.sample`) as an outcome table."""
    return load(sample_path(), format="long")


__all__ = ["FORMATS", "detect_format", "load", "load_sample", "sample_path", "write_parquet"]
