"""Shared check of the ``{question, scores}`` loaders (RouterDC, LLMRouter) against their raw files."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from callwise import OutcomeTable


def merged_with_raw(table: OutcomeTable, raw: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """The table's rows joined with the raw records (prompt id ``<key>:<record index>``), after checking
    that both hold the same (prompt, model) pairs, scores and questions; the joined frame also says
    each row's estimated input tokens (``ceil(characters / 4)`` of the question) as ``tokens``."""
    rows = [(f"{key}:{i}", m, float(s), r["question"]) for key, recs in raw.items()
            for i, r in enumerate(recs) for m, s in r["scores"].items()]
    expect = pd.DataFrame(rows, columns=["prompt_id", "model", "quality", "prompt"])
    got = table.frame.merge(expect, on=["prompt_id", "model"], how="outer", suffixes=("", "_raw"), indicator=True)
    assert (got["_merge"] == "both").all()
    assert np.array_equal(got["quality"].to_numpy(), got["quality_raw"].to_numpy())
    assert (got["prompt"] == got["prompt_raw"]).all()
    got["tokens"] = got["prompt_raw"].map(lambda q: math.ceil(len(q) / 4))
    assert (got["input_tokens"] == got["tokens"]).all() and (got["output_tokens"] == 0).all()
    return got
