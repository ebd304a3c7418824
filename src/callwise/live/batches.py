"""The steps of a live batch run, shared by the one-process path (:mod:`callwise.live.runs`) and the
sharded Ray path (:mod:`callwise.live.distributed`): checking a job, making its calls' rows (a
policy's chunks, or every model and sample), and turning the rows into the graded outcome table and
the run's summary (:class:`RunResult`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..core.budget import BudgetLedger
from ..core.errors import DataError
from ..core.outcomes import OutcomeTable
from ..core.policy import Policy
from .backend import Live, Response, calls_from_responses
from .grading import check_grading, grade
from .prompts import Prompts
from .recording import Recording

#: Prompts decided per chunk: large enough for batched features, small enough for a steady progress bar.
CHUNK = 256


@dataclass
class RunResult:
    """A live run's outcomes (every call made) and its summary."""

    outcomes: OutcomeTable
    decisions: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _row(prompts: Prompts, index: dict[str, int], pid: str, sample: int, r: Response) -> dict[str, Any]:
    i = index[pid]
    usage = r.usage or {}
    tok = lambda k: int(usage[k]) if isinstance(usage.get(k), (int, float)) else None  # noqa: E731
    return {"prompt_id": pid, "task": prompts.queries.tasks[i], "prompt": prompts.queries.prompts[i], "model": r.model,
            "sample": int(sample), "answer": r.content, "quality": r.quality, "cost": r.cost, "latency": r.latency,
            "input_tokens": tok("prompt_tokens"), "output_tokens": tok("completion_tokens"),
            "confidence": r.confidence, "cached": r.cached, "cost_source": r.cost_source}


def _table(rows: list[dict[str, Any]], prompts: Prompts, grader: str | None, *, partial: bool,
           meta: dict[str, Any]) -> OutcomeTable:
    df = pd.DataFrame(rows)
    if grader is not None:
        index = {p: i for i, p in enumerate(prompts.queries.ids)}
        refs = [prompts.references[index[p]] for p in df["prompt_id"]]
        df["quality"] = grade(grader, df["answer"].tolist(), refs, ids=df["prompt_id"].tolist(), file=prompts.path)
    missing = df["quality"].isna()
    if missing.any():
        raise DataError(f"{int(missing.sum())} answers have no quality: give each prompt a 'reference' and a grader "
                        "(--grade exact|contains|number|choice); the answers are cached, so re-running with a "
                        "grader costs nothing", file=prompts.path, column="reference")
    if df["confidence"].isna().all():
        df = df.drop(columns=["confidence"])
    df = df.drop_duplicates(["prompt_id", "model", "sample"], keep="first")
    extra = df[["cached", "cost_source"]]
    table = OutcomeTable.from_frame(df.drop(columns=["cached", "cost_source"]), partial=partial,
                                    meta={**meta, "source": prompts.path})
    table.meta["cache_hits"] = int(extra["cached"].sum())
    return table


def _prepare_policy(policy: Policy, prompts: Prompts, backend: Live, grader: str | None,
                    ledger: BudgetLedger | None = None) -> Policy:
    """Check the grader, ask for logprobs when the policy reads them, give it a budget ledger (``ledger``,
    else a new one) when it keeps its budget across chunks."""
    if grader is not None:  # a bad grader or a missing reference fails before any call
        check_grading(grader, prompts.references, ids=prompts.queries.ids, file=prompts.path)
    if policy.needs_logprobs():
        backend.with_logprobs(True)
    if keeps_ledger(policy):
        policy = policy.with_ledger(BudgetLedger() if ledger is None else ledger)  # type: ignore[attr-defined]
    return policy


def keeps_ledger(policy: Policy) -> bool:
    """Whether a live run gives ``policy`` a budget ledger (its decisions then depend on earlier chunks' spend)."""
    return getattr(policy, "with_ledger", None) is not None and getattr(policy, "mode", "offline") == "offline"


def _policy_rows(policy: Policy, prompts: Prompts, backend: Live, *, complete: bool, chunk: int,
                 progress: Callable[[int], None] | None) -> dict[str, Any]:
    """The calls a policy makes on ``prompts``: outcome rows, aux models, decisions, spend."""
    q = prompts.queries
    index = {str(p): i for i, p in enumerate(q.ids)}
    rows: list[dict[str, Any]] = []
    aux: list[str] = []  # models of calls about a prompt (a judge's, a ranker's): not outcomes of it
    frames = []
    spent_before = backend.stats["spent"]
    for start in range(0, len(q), chunk):
        idx = np.arange(start, min(start + chunk, len(q)))
        rec = Recording(backend)
        d = policy.decide(q.take(idx), rec)
        frames.append(d.to_frame().assign(answer=d.answers if d.answers is not None else None))
        for c in rec.log:
            for pid, r in zip(c.ids, c.calls.responses or []):
                if str(pid) in index:
                    rows.append(_row(prompts, index, str(pid), c.sample, r))
                else:  # e.g. "<id>#judge": Filter-Vote's judge or best-of-K's ranker
                    aux.append(r.model)
        if progress is not None:
            progress(len(idx))
    policy_spent = backend.stats["spent"] - spent_before
    explored = 0.0
    if complete:
        called = {(r["prompt_id"], r["model"]) for r in rows if r["sample"] == 0}
        for model in backend.models:
            todo = np.array([i for i, p in enumerate(q.ids) if (str(p), model) not in called], dtype=np.int64)
            if len(todo):
                got = backend.complete_many(model, q.take(todo))
                calls_from_responses(model, got)  # raises on any failure
                for i, r in zip(todo, got):
                    rows.append(_row(prompts, index, str(q.ids[i]), 0, r))  # type: ignore[arg-type]
                    explored += 0.0 if r.cached else r.cost  # type: ignore[union-attr]
    decisions = pd.concat(frames, ignore_index=True)
    return {"rows": rows, "aux": aux, "decisions": decisions, "policy_spent": float(policy_spent),
            "explored": float(explored)}


def _policy_result(policy: Policy, prompts: Prompts, backend: Live, parts: dict[str, Any], *, grader: str | None,
                   complete: bool, spent: float, retries: int, fallbacks: int) -> RunResult:
    """The outcome table and summary of a policy's calls (:func:`_policy_rows`, or its shards concatenated)."""
    q = prompts.queries
    rows, aux, decisions = parts["rows"], parts["aux"], parts["decisions"]
    meta = {"format": "callwise-run", "policy": policy.name, "settings": policy.params(),
            "prices": backend.price_source(), "complete": complete}
    table = _table(rows, prompts, grader, partial=not complete, meta=meta)
    summary = {"prompts": len(q), "policy": policy.name, "calls": int(len(rows) + len(aux)), "aux_calls": len(aux),
               "calls_per_model": {m: int(n) for m, n in
                                   pd.Series([r["model"] for r in rows] + aux).value_counts().items()},
               "cost_policy": float(decisions["cost"].sum()), "mean_cost": float(decisions["cost"].mean()),
               "spent_now": float(spent), "spent_policy_now": float(parts["policy_spent"]),
               "spent_exploring_now": float(parts["explored"]), "cache_hits": table.meta["cache_hits"],
               "retries": retries, "fallbacks": fallbacks}
    score = getattr(policy, "score_answers", None)
    if score is not None and any(r is not None for r in prompts.references):
        # a metric-aware answer may be no sample at all (a mean): score it under the policy's metric
        index_of = {str(p): i for i, p in enumerate(q.ids)}
        refs = [prompts.references[index_of[str(p)]] for p in decisions["prompt_id"]]
        qual = score(decisions["answer"].to_numpy(dtype=object), refs)
        decisions["quality"] = qual
        summary["metric"] = policy._metric().name  # type: ignore[attr-defined]
        summary["mean_quality"] = float(np.mean(qual)) if len(qual) else math.nan
    elif grader is not None or not decisions["quality"].isna().all():
        qual = _decision_quality(decisions, table)
        summary["mean_quality"] = float(np.mean(qual)) if len(qual) else math.nan
    return RunResult(table, decisions, summary)


def _decision_quality(decisions: pd.DataFrame, table: OutcomeTable) -> np.ndarray:
    """Quality of each returned answer: the graded quality of the row the policy answered with."""
    f = table.frame
    s0 = f[f["sample"] == 0].set_index(["prompt_id", "model"])["quality"]
    keys = list(zip(decisions["prompt_id"].astype(str), decisions["model"]))
    q = s0.reindex(keys).to_numpy(dtype=float)
    if "answer" in decisions.columns and "answer" in f.columns:
        # a multi-call policy (a vote) may answer with another sample than 0: the quality of the row it returned
        by = f.drop_duplicates(["prompt_id", "model", "answer"]).set_index(["prompt_id", "model", "answer"])["quality"]
        got = by.reindex([(p, m, a) for (p, m), a in zip(keys, decisions["answer"])]).to_numpy(dtype=float)
        q = np.where(np.isfinite(got), got, q)
    return q


def _check_collect(models: Sequence[str], prompts: Prompts, backend: Live, samples: int, grader: str | None) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise DataError(f"samples must be a whole number >= 1, got {samples!r}", column="samples")
    unknown = [m for m in models if m not in backend.models]
    if unknown:
        raise DataError(f"model(s) {unknown} have no endpoint; endpoints are {list(backend.models)}", column="models")
    if grader is not None:  # a bad grader or a missing reference fails before any call
        check_grading(grader, prompts.references, ids=prompts.queries.ids, file=prompts.path)


def _collect_rows(models: Sequence[str], prompts: Prompts, backend: Live, *, samples: int,
                  progress: Callable[[int], None] | None) -> list[dict[str, Any]]:
    """Every model's answers (``samples`` each) on ``prompts``, as outcome rows (ungraded)."""
    q = prompts.queries
    index = {str(p): i for i, p in enumerate(q.ids)}
    rows: list[dict[str, Any]] = []
    step = lambda r: progress(1) if progress is not None else None  # noqa: E731
    for model in models:
        for s in range(samples):
            got = backend.complete_many(model, q, sample=s, progress=step)
            calls_from_responses(model, got)  # raises on any failure; finished calls are cached
            rows.extend(_row(prompts, index, str(pid), s, r) for pid, r in zip(q.ids, got))  # type: ignore[arg-type]
    return rows


def _collect_result(models: Sequence[str], prompts: Prompts, backend: Live, rows: list[dict[str, Any]], *,
                    samples: int, grader: str | None, spent: float, retries: int, fallbacks: int) -> RunResult:
    """The graded outcome table and summary of collected rows (:func:`_collect_rows`, or its shards)."""
    meta = {"format": "callwise-collect", "models": list(models), "samples": samples, "prices": backend.price_source()}
    table = _table(rows, prompts, grader, partial=False, meta=meta)
    summary = {"prompts": len(prompts), "models": list(models), "samples": samples, "calls": len(rows),
               "spent_now": float(spent), "cache_hits": table.meta["cache_hits"],
               "retries": retries, "fallbacks": fallbacks,
               "mean_quality": {m: float(v) for m, v in table.frame.groupby("model", observed=True)["quality"].mean().items()}}
    return RunResult(table, pd.DataFrame(), summary)
