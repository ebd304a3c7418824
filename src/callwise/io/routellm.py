"""RouteLLM's recorded two-model evaluations (``routellm/evals/``) -> the outcome table.

- ``mmlu/responses/mmlu_<subject>.csv`` and ``gsm8k/gsm8k_responses.csv``: a ``prompt`` column and
  one boolean correctness column per model; GSM8K also has ``<model>_response`` texts.
  ``prompt_id`` = ``<task>/<file stem>/<row>`` (0-based), ``task`` = the folder name
  (``mmlu``, ``gsm8k``).
- ``mt_bench/judgements.jsonl``: GPT-4 single-answer scores 1-10 per (question, turn, model);
  ``prompt_id`` = ``mt_bench/<question_id>/turn<turn>``, ``task`` = ``mt_bench``, quality = the score
  rescaled to [0, 1] as (score - 1) / 9. Prompt text comes from ``question.jsonl`` (all turns up to
  this one); the answer text is read out of the judge's prompt (``### Assistant A:`` blocks).

The data has no costs, so a :class:`~callwise.core.prices.PriceTable` is required: tokens are estimated
from the prompt and answer texts and the table is marked ``costs_estimated``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError
from ..core.files import read_csv, read_jsonl
from ..core.outcomes import Provenance
from ..core.prices import PriceTable

RESPONSE_SUFFIX = "_response"
MT_SCORE_RANGE = (1.0, 10.0)


def is_routellm_columns(columns: list[str]) -> bool:
    """A ``prompt`` column plus at least two other columns that are not response texts."""
    others = [c for c in columns if c != "prompt" and not c.endswith(RESPONSE_SUFFIX)]
    return "prompt" in columns and len(others) >= 2 and "eval_name" not in columns and "model" not in columns


def routellm_files(path: Path) -> list[Path]:
    """The RouteLLM result files under ``path`` (a folder), or ``[path]`` for one file."""
    if path.is_file():
        return [path]
    files = sorted(path.glob("mmlu/responses/*.csv")) + sorted(path.glob("mmlu/responses/*.csv.gz"))
    files += sorted(path.glob("gsm8k/gsm8k_responses.csv*")) + sorted(path.glob("*_responses.csv*"))
    files += sorted(path.glob("mt_bench/judgements.jsonl*")) + sorted(path.glob("judgements.jsonl*"))
    return files


def _task_of(path: Path) -> str:
    parent = path.parent.name if path.parent.name != "responses" else path.parent.parent.name
    return parent or path.stem.split("_")[0]


def read_correctness_csv(path: Path, prices: PriceTable) -> tuple[pd.DataFrame, Provenance]:
    raw = read_csv(path)
    cols = [str(c) for c in raw.columns]
    if not is_routellm_columns(cols):
        raise DataError("not a RouteLLM eval CSV: expected 'prompt' and one correctness column per model",
                        file=str(path), column="prompt")
    models = [c for c in cols if c != "prompt" and not c.endswith(RESPONSE_SUFFIX)]
    task = _task_of(path)
    stem = path.name.split(".")[0]
    n = len(raw)
    parts, qcol, rows = [], [], []
    for m in models:
        vals = raw[m]
        if vals.dtype != bool:
            q = vals.map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0})  # 1/0 hash like True/False
            bad = q.isna().to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"expected True/False correctness, got {vals.iloc[i]!r}", file=str(path),
                                row=i + 1, column=m)
        else:
            q = vals.astype(float)
        resp = raw[m + RESPONSE_SUFFIX].to_numpy(dtype=object) if m + RESPONSE_SUFFIX in cols else None
        cost, tin, tout = prices.costs(m, raw["prompt"].to_numpy(dtype=object), resp)
        parts.append(pd.DataFrame({
            "prompt_id": [f"{task}/{stem}/{i}" for i in range(n)], "task": task,
            "prompt": raw["prompt"].to_numpy(dtype=object), "model": m, "answer": resp,
            "quality": q.to_numpy(dtype=float), "cost": cost, "input_tokens": tin, "output_tokens": tout,
        }))
        qcol.append(np.full(n, m, dtype=object))
        rows.append(np.arange(1, n + 1))
    df = pd.concat(parts, ignore_index=True)
    return df, Provenance(file=str(path), line=np.concatenate(rows),
                          columns={"quality": np.concatenate(qcol), "cost": "(price table)"}, unit="row")


_ASSISTANT = re.compile(r"### Assistant A:\s*(.*?)(?=\n\n### User:|<\|The End of Assistant A's Conversation|\Z)", re.S)
# turn-1 judgements use the single-answer prompt, which holds the answer between these markers
_SINGLE = re.compile(r"\[The Start of Assistant's Answer\]\s*(.*?)\s*\[The End of Assistant's Answer\]", re.S)


def read_mt_bench(path: Path, prices: PriceTable) -> tuple[pd.DataFrame, Provenance]:
    j = read_jsonl(path)
    need = ["question_id", "model", "score", "turn"]
    miss = [c for c in need if c not in j.columns]
    if miss:
        raise DataError(f"missing required field {miss[0]!r} of MT-Bench judgements", file=str(path), column=miss[0])
    qfile = next((path.parent / f"question{s}" for s in (".jsonl", ".jsonl.gz") if (path.parent / f"question{s}").exists()), None)
    turns: dict[int, list[str]] = {}
    if qfile is not None:
        q = read_jsonl(qfile)
        turns = {int(r.question_id): list(r.turns) for r in q.itertuples()}
    prompts, answers = [], []
    for r in j.itertuples():
        t = int(r.turn)
        qs = turns.get(int(r.question_id))
        prompts.append("\n\n".join(qs[:t]) if qs else None)
        judge_prompt = getattr(r, "user_prompt", "") or ""
        blocks = _ASSISTANT.findall(judge_prompt) or _SINGLE.findall(judge_prompt)
        answers.append(blocks[t - 1].strip() if len(blocks) >= t else None)
    prompts_a = np.array(prompts, dtype=object)
    answers_a = np.array(answers, dtype=object)
    score = pd.to_numeric(j["score"], errors="coerce").to_numpy(dtype=float)
    lo, hi = MT_SCORE_RANGE
    bad = ~np.isfinite(score) | (score < lo) | (score > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"MT-Bench score {j['score'].iloc[i]!r} is outside [1, 10]", file=str(path),
                        row=f"line {j['__line__'].iloc[i]}", column="score")
    cost = np.zeros(len(j))
    tin = np.zeros(len(j), dtype=np.int64)
    tout = np.zeros(len(j), dtype=np.int64)
    for m in j["model"].unique():
        sel = (j["model"] == m).to_numpy()
        cost[sel], tin[sel], tout[sel] = prices.costs(str(m), prompts_a[sel], answers_a[sel])
    df = pd.DataFrame({
        "prompt_id": [f"mt_bench/{a}/turn{b}" for a, b in zip(j["question_id"], j["turn"])],
        "task": "mt_bench", "prompt": prompts_a, "model": j["model"].astype(str), "answer": answers_a,
        "quality": (score - lo) / (hi - lo), "cost": cost, "input_tokens": tin, "output_tokens": tout,
    })
    return df, Provenance(file=str(path), line=j["__line__"].to_numpy(), columns={"quality": "score"}, unit="line")


def read_routellm(path: Path, prices: PriceTable | None) -> tuple[pd.DataFrame, list[Provenance], list[pd.DataFrame]]:
    if prices is None:
        raise DataError("RouteLLM evals record correctness only, no costs: pass a price table "
                        "(--prices FILE, prices=PriceTable.load(...))", file=str(path), column="cost")
    files = routellm_files(path)
    if not files:
        raise DataError("no RouteLLM eval files here (expected mmlu/responses/*.csv, gsm8k/gsm8k_responses.csv "
                        "or mt_bench/judgements.jsonl)", file=str(path))
    frames, provs = [], []
    for f in files:
        df, prov = read_mt_bench(f, prices) if ".jsonl" in f.name else read_correctness_csv(f, prices)
        frames.append(df)
        provs.append(prov)
    return frames, provs
