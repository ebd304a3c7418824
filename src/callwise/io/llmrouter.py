"""LLMRouter's preprocessed DC-Router data (repo ``ulab-uiuc/LLMRouter``,
``data/dcrouter_preprocessed/{train,test}.json``) and its price file
(``data/example_data/llm_candidates/default_llm.json``) -> the outcome table.

The records have RouterDC's layout, ``{"question": str, "scores": {model: number}}`` (read and
validated by :mod:`.routerdc`; ``cluster_id`` is not used). Most scores are 0/1, some tasks have
fractional scores in [0, 1]; they become ``quality`` as they are.

Mapping:

- ``task`` = ``dcrouter`` for ``train`` / ``test`` files (the records do not say which of the
  mixed tasks a query is from: logic-grid puzzles, QA, maths, code, ...); another file name gives
  its own task as in :mod:`.routerdc`. ``split`` = ``train`` / ``test`` from the file name.
- ``prompt_id`` = ``<file name>:<record index>`` (``train:17``, ``test:3``); a question present
  in both files stays two prompts (the notes count them).

**Prices.** The price file is a JSON object of model -> ``{"input_price", "output_price", ...}``
in USD per 1M tokens (NVIDIA NIM list prices; ``size``, ``feature``, ``model``, ``service`` are
not used). It is found beside the data (``default_llm.json``, or any small ``.json`` object of
that shape). ``--prices FILE`` (a callwise price table, or another LLMRouter price file)
replaces it.

**Costs** are estimated, never recorded: the data has no token counts and no responses. Input
tokens = ceil(characters / 4) of the question (:func:`callwise.core.prices.estimate_tokens`);
output tokens are not recorded and count **0** with the price file (so costs are a lower bound:
the input side only; every model here has the same input and output price, so the models' cost
ratios are exact); a ``--prices`` table with ``assumed_output_tokens`` adds an output side.

:func:`load_prices` reads either kind of price file, so ``--prices default_llm.json`` works for
any format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.files import json_type, read_text
from ..core.outcomes import Provenance
from ..core.prices import ModelPrice, PriceTable
from . import routerdc as _routerdc

PRICE_FILE = "default_llm.json"
PRICE_FIELDS = ("input_price", "output_price")
TASK = "dcrouter"
_PRICE_FILE_MAX_BYTES = 1 << 20  # a price file is small; larger .json files are data


def is_price_data(data: Any) -> bool:
    """Whether parsed JSON is an LLMRouter price file: a non-empty object of model -> object
    with ``input_price`` and ``output_price``."""
    return (isinstance(data, dict) and len(data) > 0
            and all(isinstance(v, dict) and all(k in v for k in PRICE_FIELDS) for v in data.values()))


def _parse_small_json(path: Path) -> Any:
    """A small plain ``.json`` file's parsed content, or None when it is not one / not valid."""
    if not (path.is_file() and path.name.lower().endswith(".json")) or path.stat().st_size > _PRICE_FILE_MAX_BYTES:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def is_price_file(path: str | Path) -> bool:
    """Whether ``path`` is an LLMRouter price file (see :func:`is_price_data`)."""
    return is_price_data(_parse_small_json(Path(path)))


def find_price_file(folder: Path) -> Path | None:
    """The LLMRouter price file in ``folder``: ``default_llm.json`` when present (even if broken,
    so that reading it says why), else the first small ``.json`` of that shape."""
    if (folder / PRICE_FILE).is_file():
        return folder / PRICE_FILE
    return next((p for p in sorted(folder.glob("*.json")) if is_price_file(p)), None)


def is_llmrouter_folder(folder: str | Path) -> bool:
    """A folder with an LLMRouter price file and at least one ``{question, scores}`` file."""
    folder = Path(folder)
    return folder.is_dir() and find_price_file(folder) is not None and _routerdc.is_score_folder(folder)


def read_price_file(path: Path) -> PriceTable:
    """An LLMRouter price file as a :class:`PriceTable` (USD per 1M tokens; no response text is
    assumed, so output tokens count 0 where the data has none)."""
    text = read_text(path, what="an LLMRouter price file (model -> input_price, output_price)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}; expected an LLMRouter price "
                        "file (an object of model -> {input_price, output_price})", file=str(path)) from None
    if not isinstance(data, dict) or not data:
        raise DataError(f"the top level is a JSON {json_type(data)}{' (empty)' if data == {} else ''}, expected an "
                        "object of model -> {input_price, output_price} (USD per 1M tokens)", file=str(path))
    models = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise DataError(f"model {name!r}: the entry is a JSON {json_type(entry)}, expected an object with "
                            "input_price and output_price (USD per 1M tokens)", file=str(path), column=name)
        vals = []
        for key in PRICE_FIELDS:
            if key not in entry:
                raise DataError(f"model {name!r}: missing {key!r}; every model needs input_price and output_price "
                                "(USD per 1M tokens)", file=str(path), column=f"{name}.{key}")
            v = entry[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise DataError(f"model {name!r}: {key} must be a finite number >= 0 (USD per 1M tokens), got {v!r}",
                                file=str(path), column=f"{name}.{key}")
            vals.append(float(v))
        models[str(name)] = ModelPrice(input_per_1m=vals[0], output_per_1m=vals[1])
    return PriceTable(models, source=f"LLMRouter's {path.name} (list prices, USD per 1M tokens: input_price / "
                                     "output_price)", assumed_output_tokens=0, path=str(path))


def load_prices(path: str | Path) -> PriceTable:
    """A price table from a file: an LLMRouter price file (``default_llm.json``'s layout) or a
    callwise price table (YAML / JSON, see :mod:`callwise.core.prices`)."""
    path = Path(path)
    if path.name.lower().endswith(".json") and is_price_file(path):
        return read_price_file(path)
    return PriceTable.load(path)


def read_llmrouter(path: Path, prices: PriceTable | None = None,
                   ) -> tuple[pd.DataFrame, Provenance, list[str], PriceTable]:
    """LLMRouter score files (a file or their folder) as a canonical frame, its provenance, notes
    and the price table used (``prices``, else the price file beside the data)."""
    path = Path(path)
    files, skipped = _routerdc.files_of(path)
    folder = path if path.is_dir() else path.parent
    price_path = find_price_file(folder)
    skipped = [p for p in skipped if p != price_path]
    parsed = _routerdc.read_score_files(files, default_task=TASK)
    notes = []
    if prices is None:
        if price_path is None:
            models = _routerdc.all_models(parsed)
            raise DataError(f"costs are missing: no LLMRouter price file ({PRICE_FILE}) beside the data, and the "
                            f"records hold scores only. Pass a price table (--prices FILE, prices=...) with a price "
                            f"for each of the {len(models)} models {models}", file=str(path), column="cost")
        prices = read_price_file(price_path)
        out_note = "output tokens are not recorded and count 0 (costs are a lower bound: the input side only)"
    else:
        if price_path is not None and (prices.path is None or Path(prices.path).resolve() != price_path.resolve()):
            notes.append(f"prices from {prices.path or prices.source}, not {price_path.name}")
        out_note = f"output tokens = {prices.assumed_output_tokens or 0} per call (assumed_output_tokens)"
    df, prov = _routerdc.outcome_rows(parsed, prices)
    notes.insert(0, f"costs estimated: input tokens = ceil(characters / 4) of the question; {out_note}; priced "
                    f"with {prices.source}")
    notes.extend(_routerdc.repeat_notes(parsed))
    if skipped:
        notes.append(f"skipped {len(skipped)} JSON file(s) that are not {{question, scores}} records: "
                     + ", ".join(p.name for p in skipped))
    return df, prov, notes, prices


__all__ = ["PRICE_FILE", "TASK", "find_price_file", "is_llmrouter_folder", "is_price_data", "is_price_file",
           "load_prices", "read_llmrouter", "read_price_file"]
