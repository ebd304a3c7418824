"""The rational-cascades pair: ``outcomes.csv(.gz)`` (one row per benchmark, split, chain, qid,
model) and ``prompts.csv(.gz)`` (the prompt texts).

Mapping: ``prompt_id`` = ``benchmark:chain:split:qid``; ``task`` = ``benchmark-chain`` (the two
chains hold different models, so each chain of a benchmark is its own task); ``quality`` =
``correct``; ``cost`` = ``cost_usd``; ``latency`` = ``latency_ms`` / 1000; tokens from
``tokens_in``/``tokens_out``; ``confidence`` = ``raw_confidence`` (a log-probability, <= 0, the call's
confidence signal); ``split`` kept; ``prompt`` = system prompt + blank line + user prompt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.files import read_csv
from ..core.outcomes import Provenance

OUTCOME_COLUMNS = ("benchmark", "split", "chain", "qid", "model", "correct", "cost_usd")
KEYS = ["benchmark", "split", "chain", "qid"]


def find_pair(path: Path) -> tuple[Path, Path | None]:
    """(outcomes file, prompts file or None) for a folder or for the outcomes file itself."""
    folder = path if path.is_dir() else path.parent
    pick = lambda stem: next((folder / f"{stem}{s}" for s in (".csv.gz", ".csv") if (folder / f"{stem}{s}").exists()), None)  # noqa: E731
    outcomes = pick("outcomes") if path.is_dir() else path
    if outcomes is None:
        raise DataError("no outcomes.csv(.gz) in this folder", file=str(path))
    return outcomes, pick("prompts")


def is_rational_columns(columns: list[str]) -> bool:
    return all(c in columns for c in ("benchmark", "chain", "qid", "raw_confidence"))


def read_rational(path: Path) -> tuple[pd.DataFrame, Provenance, list[str]]:
    outcomes_path, prompts_path = find_pair(path)
    o = read_csv(outcomes_path)
    missing = [c for c in OUTCOME_COLUMNS if c not in o.columns]
    if missing:
        raise DataError(f"missing required column {missing[0]!r} of the rational-cascades outcomes",
                        file=str(outcomes_path), column=missing[0])
    notes = []
    prompt = pd.Series([None] * len(o), dtype=object)
    if prompts_path is not None:
        p = read_csv(prompts_path)
        pm = [c for c in KEYS + ["user_prompt"] if c not in p.columns]
        if pm:
            raise DataError(f"missing required column {pm[0]!r} of the rational-cascades prompts",
                            file=str(prompts_path), column=pm[0])
        sys_p = p["system_prompt"].fillna("") if "system_prompt" in p.columns else ""
        p = p.assign(text=(sys_p + "\n\n" + p["user_prompt"].fillna("")).str.strip())
        p = p.drop_duplicates(KEYS)
        merged = o[KEYS].merge(p[KEYS + ["text"]], on=KEYS, how="left")
        prompt = merged["text"]
        if prompt.isna().any():
            notes.append(f"{int(prompt.isna().sum())} outcome rows have no prompt text in {prompts_path.name}")
    else:
        notes.append("no prompts.csv beside outcomes.csv: prompt texts are absent")
    df = pd.DataFrame({
        "prompt_id": (o["benchmark"].astype(str) + ":" + o["chain"].astype(str) + ":" + o["split"].astype(str)
                      + ":" + o["qid"].astype(str)),
        "task": o["benchmark"].astype(str) + "-" + o["chain"].astype(str),
        "prompt": prompt.to_numpy(dtype=object),
        "model": o["model"],
        "answer": o["answer"] if "answer" in o.columns else None,
        "quality": o["correct"],
        "cost": o["cost_usd"],
        "split": o["split"],
    })
    if "latency_ms" in o.columns:
        df["latency"] = pd.to_numeric(o["latency_ms"], errors="coerce") / 1000.0
    if "tokens_in" in o.columns:
        df["input_tokens"] = o["tokens_in"]
    if "tokens_out" in o.columns:
        df["output_tokens"] = o["tokens_out"]
    if "raw_confidence" in o.columns:
        df["confidence"] = o["raw_confidence"]
    prov = Provenance(file=str(outcomes_path), line=np.arange(1, len(df) + 1),
                      columns={"quality": "correct", "cost": "cost_usd", "latency": "latency_ms",
                               "confidence": "raw_confidence", "input_tokens": "tokens_in",
                               "output_tokens": "tokens_out", "task": "benchmark", "prompt_id": "qid"},
                      unit="row")
    return df, prov, notes
