"""``callwise aggregate``: which way of combining a model's samples wins under which metric.

For each task of an outcome table with several samples per prompt and a ``reference`` (gold)
answer per prompt, and for one model, every aggregation rule (mean, median, mode, the metrics' own
rules such as a quantile or MBR, and the one-call baselines ``first`` and ``random``) is applied to
random draws of ``n`` samples per prompt (``reps`` draws, the same draws for every rule) and scored
under every requested metric against the reference. Reported per (task, metric, rule): the corpus
value (MSE, MAE, accuracy, mean token F1, correlation) with a bootstrap interval over prompts, and
the paired difference to the rule that is Bayes-optimal for the metric, with its interval — so a
table says both which rule won and whether the metric's own rule lost, and by how much.

Numbers or text: a task's answers are read as dates (``MM/DD/YYYY``, scored in days) when its
references are dates, as numbers when most references are numbers (prompts whose reference is not
a number are left out of numeric metrics, and counted), and as text otherwise (numeric metrics are
then skipped, with a note). Only samples that read in the task's kind count (others abstain, as a
failed call would); prompts with none are left out and counted.

:func:`synthetic_suite` builds tasks with known answer distributions (skewed, bimodal,
heavy-tailed) where the Bayes-optimal prediction of each metric is known exactly from the
distribution, and adds it as the rule ``oracle``: the ceiling the sample-based rules approach.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataError, PolicyError
from ..core.frontier import boot_ci
from ..core.outcomes import OutcomeTable
from ..core.progress import Counter, OnProgress
from ..core.version import __version__
from ..voting import samples_per_model
from .metrics import Metric, get_metric, rule_for
from .rules import (
    Predictions,
    SampleSet,
    draw_predictions,
    from_numbers,
    get_rule,
    to_numbers,
)

BASELINES: tuple[str, ...] = ("first", "random")
NUMERIC_RULES: tuple[str, ...] = ("mean", "median", "mode")
TEXT_RULES: tuple[str, ...] = ("mode", "mbr:token-f1")


@dataclass
class AggregateResult:
    """What ``callwise aggregate`` computed; ``to_dict()`` is what results.json holds."""

    meta: dict[str, Any]
    rows: list[dict[str, Any]]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "notes": self.notes, "rows": self.rows}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def task_kind(references: np.ndarray) -> str:
    """``date`` when every reference is an MM/DD/YYYY date, ``number`` when most read as numbers, else ``text``."""
    refs = np.asarray(references, dtype=object)
    if refs.size and np.isfinite(to_numbers(refs, "date")).all():
        return "date"
    if refs.size and np.isfinite(to_numbers(refs, "number")).mean() >= 0.5:
        return "number"
    return "text"


def _rules_for(metrics: Sequence[Metric], kind: str, extra: Sequence[str]) -> list[str]:
    base = list(NUMERIC_RULES if kind != "text" else TEXT_RULES)
    own = [rule_for(m).name for m in metrics]
    out: list[str] = []
    for r in base + own + list(extra) + list(BASELINES):
        if r not in out:
            out.append(r)
    return out


def _rule_object(name: str, metrics: Sequence[Metric]) -> Any:
    for m in metrics:
        r = rule_for(m)
        if r.name == name:
            return r
    return get_rule(name)


def evaluate(table: OutcomeTable, metrics: Sequence[str | Metric] = ("squared-error", "absolute-error", "exact-match"),
             *, model: str | None = None, tasks: Sequence[str] | None = None, n: int = 8,
             draws: str = "with-replacement", reps: int = 200, seed: int = 0, rules: Sequence[str] = (),
             n_boot: int = 1000, level: float = 0.95, oracle: dict[str, dict[str, pd.Series]] | None = None,
             on_step: Callable[[str], None] | None = None, on_progress: OnProgress | None = None) -> AggregateResult:
    """Score every aggregation rule under every metric on each task (see the module docstring).

    ``model``: the model whose samples are combined (default: the one with the most samples per
    prompt). ``rules``: extra rules beyond the defaults. ``oracle``: per task, per metric name, the
    Bayes-optimal prediction under the true distribution by prompt id (synthetic data).
    ``on_step(what)`` is told each task and rule as it starts; ``on_progress(done, total, what)``
    (:mod:`callwise.core.progress`) counts the work as tasks x rules (one unit per task for its
    samples and intervals, one per rule drawn and scored; a task's rules are added when it is reached).
    """
    step = on_step or (lambda _: None)
    ms = [get_metric(m) for m in metrics]
    if not ms:
        raise PolicyError("give at least one metric")
    f = table.frame
    if "reference" not in f.columns or f["reference"].isna().all():
        raise DataError("the data has no 'reference' column (each prompt's gold answer); metric-aware aggregation "
                        "scores its predictions against it", column="reference")
    if "answer" not in f.columns or f["answer"].isna().all():
        raise DataError("the data has no 'answer' column; aggregation combines each sample's answer", column="answer")
    model = model or _default_model(table)
    if model not in table.models():
        raise DataError(f"model {model!r} is not in the data; models are {table.models()}", column="model")
    have = sorted(f.loc[f["model"] == model, "task"].unique())
    tasks = list(tasks) if tasks else have
    unknown = [t for t in tasks if t not in have]
    if unknown:
        raise DataError(f"model {model!r} has no task(s) {unknown}; its tasks are {have}", column="task")
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    counter = Counter(on_progress, len(tasks))
    for i, task in enumerate(tasks):
        if i:  # the task before is scored (or was skipped)
            counter(f"task {tasks[i - 1]}: scored")
        step(f"task {task}")
        view = table.for_task(task).dense([model])
        refs = view.references
        kind = task_kind(refs)
        usable = [m for m in ms if not (m.numeric and kind == "text")]
        skipped = [m.name for m in ms if m not in usable]
        if skipped:
            notes.append(f"{task}: answers are text, so the numeric metric(s) {skipped} are skipped")
        if not usable:
            continue
        rec = np.isfinite(view.quality[:, 0, :])
        ss = SampleSet.from_samples(view.answers[:, 0, :], normalise=kind if kind != "text" else "text", recorded=rec)
        keep = np.ones(ss.n_queries, bool)
        if kind != "text":
            ss = ss.usable_where(kind)
            bad_ref = ~np.isfinite(to_numbers(refs, kind))
            if bad_ref.any():
                notes.append(f"{task}: {int(bad_ref.sum())} of {len(refs)} prompts have a reference that is not a "
                             f"{kind}; left out")
            keep &= ~bad_ref
        none = ss.n < 1
        if (none & keep).any():
            notes.append(f"{task}: {int((none & keep).sum())} of {len(refs)} prompts have no sample that reads as a "
                         f"{'text answer' if kind == 'text' else kind}; left out")
        keep &= ~none
        if not keep.any():
            notes.append(f"{task}: no prompt left to score")
            continue
        idx = np.flatnonzero(keep)
        ss, refs_k = ss.take(idx), refs[idx]
        ref_num = to_numbers(refs_k, kind) if kind != "text" else np.full(len(idx), np.nan)
        rule_names = _rules_for(usable, kind, rules)
        counter.add(len(rule_names))
        per_rule: dict[str, dict[str, np.ndarray]] = {}
        preds: dict[str, Predictions] = {}
        for rn in rule_names:
            step(f"task {task}: {rn}")
            p = draw_predictions(ss, _rule_object(rn, usable), n, draws=draws, reps=reps, seed=seed,
                                 kind=kind if kind != "text" else "number")
            preds[rn] = p
            per_rule[rn] = {m.name: m.scores(p.answers, p.numbers, refs_k, ref_num) for m in usable}
            counter(f"task {task}: {rn}")
        if oracle and task in oracle:
            for m in usable:
                if m.name not in oracle[task]:
                    continue
                o = oracle[task][m.name].reindex(view.prompt_ids[idx]).to_numpy(dtype=float)[:, None]
                per_rule.setdefault("oracle", {})[m.name] = m.scores(from_numbers(o, kind), o, refs_k, ref_num)
                preds.setdefault("oracle", Predictions(None, o, np.full(o.shape, -1), kind))
        for m in usable:
            own = rule_for(m).name
            own_q = per_rule[own][m.name].mean(axis=1)
            values = {}
            for rn in per_rule:
                if m.name not in per_rule[rn]:
                    continue
                sc = per_rule[rn][m.name]
                per_q = sc.mean(axis=1)
                if m.kind == "correlation":
                    value = m.summary(sc, preds[rn].numbers, ref_num)
                    lo = hi = dlo = dhi = float("nan")
                    diff = value - m.summary(per_rule[own][m.name], preds[own].numbers, ref_num)
                else:
                    sign = -1.0 if m.lower_is_better else 1.0
                    value = m.summary(sc)
                    a, b = boot_ci(sign * per_q[:, None], n_boot, seed, level)
                    lo, hi = sorted((float(a[0]), float(b[0])))
                    d = sign * (per_q - own_q)
                    da, db = boot_ci(d[:, None], n_boot, seed + 1, level)
                    diff = float(d.mean())
                    dlo, dhi = sorted((float(da[0]), float(db[0])))
                values[rn] = value
                rows.append({"task": task, "model": model, "kind": kind, "metric": m.name, "rule": rn,
                             "matched": rn == own, "value": float(value), "ci_low": lo, "ci_high": hi,
                             "diff_vs_matched": float(diff), "diff_ci_low": dlo, "diff_ci_high": dhi,
                             "prompts": int(len(idx)), "left_out": int(len(refs) - len(idx))})
            better = min if m.lower_is_better else max
            contenders = {r: v for r, v in values.items() if r != "oracle" and np.isfinite(v)}
            if contenders:
                best = better(contenders, key=contenders.get)
                for row in rows[-len(values):]:
                    row["best"] = row["rule"] == best
                if best != own:
                    row_b = next(r for r in rows[-len(values):] if r["rule"] == best)
                    sig = (np.isfinite(row_b["diff_ci_low"]) and (row_b["diff_ci_low"] > 0 or row_b["diff_ci_high"] < 0))
                    notes.append(f"{task}: under {m.name} the matched rule {own} is beaten by {best} "
                                 f"({_fmt(values[best])} vs {_fmt(values[own])}; "
                                 + ("the paired interval excludes 0)" if sig else "within noise: the paired interval "
                                    "includes 0)"))
    if tasks:
        counter(f"task {tasks[-1]}: scored")
    meta = {"command": "aggregate", "version": __version__, "created": datetime.now(timezone.utc).isoformat(),
            "data": table.meta.get("source"), "fingerprint": table.fingerprint(), "model": model,
            "metrics": [m.name for m in ms], "n": n, "draws": draws, "reps": reps, "seed": seed, "level": level}
    return AggregateResult(meta, rows, notes)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _default_model(table: OutcomeTable) -> str:
    per = samples_per_model(table.frame)
    return str(sorted(per.index, key=lambda m: (-per[m], m))[0])


# --------------------------------------------------------------------------------------------
# synthetic answer distributions with known optima


def _families(rng: np.random.Generator, q: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per family, (support (K,), pmf (q, K)): integer answers with per-query random parameters."""
    out = {}
    k = np.arange(61)
    p = rng.uniform(0.08, 0.35, q)[:, None]  # skewed: geometric, long right tail
    pmf = p * (1 - p) ** k
    out["skewed"] = (k, pmf / pmf.sum(axis=1, keepdims=True))
    k = np.arange(101)  # bimodal: two separated bumps of unequal mass
    a, b = rng.integers(10, 35, q)[:, None], rng.integers(60, 90, q)[:, None]
    w = rng.uniform(0.55, 0.8, q)[:, None]
    pmf = w * np.exp(-0.5 * ((k - a) / 3.0) ** 2) + (1 - w) * np.exp(-0.5 * ((k - b) / 3.0) ** 2)
    out["bimodal"] = (k, pmf / pmf.sum(axis=1, keepdims=True))
    k = np.arange(5001)  # heavy-tailed: discrete power law (truncated), P(k) ~ (k + 1)^-alpha
    alpha = rng.uniform(1.7, 2.3, q)[:, None]
    pmf = (k + 1.0) ** -alpha
    out["heavy-tailed"] = (k, pmf / pmf.sum(axis=1, keepdims=True))
    return out


def optimal_predictions(support: np.ndarray, pmf: np.ndarray, metric: Metric) -> np.ndarray:
    """The Bayes-optimal prediction per row of ``pmf`` for a numeric or exact-match metric, exactly."""
    cdf = np.cumsum(pmf, axis=1)
    if metric.kind in ("squared", "correlation"):
        return pmf @ support.astype(float)
    if metric.kind in ("absolute", "pinball"):
        tau = 0.5 if metric.kind == "absolute" else float(metric.tau)  # type: ignore[arg-type]
        return support[np.argmax(cdf >= tau - 1e-12, axis=1)].astype(float)
    if metric.kind == "exact":
        return support[np.argmax(pmf, axis=1)].astype(float)
    raise PolicyError(f"no closed-form optimum for metric {metric.name!r} in the synthetic suite")


def synthetic_suite(metrics: Sequence[str | Metric] = ("squared-error", "absolute-error", "exact-match"), *,
                    queries: int = 1000, samples: int = 64, seed: int = 0
                    ) -> tuple[OutcomeTable, dict[str, dict[str, pd.Series]]]:
    """Tasks ``synthetic-<family>`` with ``samples`` draws and one reference per query from a known
    distribution, and per task and metric the Bayes-optimal predictions computed from it."""
    rng = np.random.default_rng(seed)
    ms = [get_metric(m) for m in metrics]
    frames, oracle = [], {}
    for fam, (support, pmf) in _families(rng, queries).items():
        task = f"synthetic-{fam}"
        cdf = np.cumsum(pmf, axis=1)
        # inverse-CDF sampling for every row at once: offset row i's CDF by i so one searchsorted serves all
        off = np.arange(queries)[:, None]
        u = rng.random((queries, samples + 1))
        pos = np.searchsorted((cdf + off).ravel(), (u + off).ravel(), side="right").reshape(u.shape)
        draws = support[np.minimum(pos - off * len(support), len(support) - 1)]
        ans, ref = draws[:, :samples], draws[:, samples]
        ids = [f"{task}:{i}" for i in range(queries)]
        oracle[task] = {m.name: pd.Series(optimal_predictions(support, pmf, m), index=ids) for m in ms
                        if m.kind in ("squared", "absolute", "pinball", "exact", "correlation")}
        frames.append(pd.DataFrame({
            "prompt_id": np.repeat(ids, samples),
            "task": task, "model": "synthetic", "sample": np.tile(np.arange(samples), queries),
            "answer": ans.ravel().astype(str), "reference": np.repeat(ref.astype(str), samples),
            "quality": (ans == ref[:, None]).ravel().astype(float), "cost": 0.0}))
    table = OutcomeTable.from_frame(pd.concat(frames, ignore_index=True), meta={"source": f"synthetic(seed={seed})"})
    return table, oracle
