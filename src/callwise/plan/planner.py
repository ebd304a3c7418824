"""``callwise plan``: one verdict across every family — what to run on this traffic, and what it saves.

Per task: build the candidates from the training split (:mod:`~callwise.plan.candidates`), get
every configuration's out-of-fold outcomes on the training split (:mod:`~callwise.plan.crossfit`),
choose under the budget or quality floor with a stated risk (:mod:`~callwise.plan.select`,
:mod:`~callwise.plan.bounds`), and only then run every candidate once on the test split for the
report (:mod:`~callwise.plan.verdict`). The choice never reads the test split; every number in the
result says which data it comes from.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import DataError, PolicyError
from ..core.fixed import model_means
from ..core.frontier import mean_ci
from ..core.outcomes import OutcomeTable
from ..core.parallel import Executor
from ..core.policy import Policy
from ..core.progress import Counter, OnProgress
from ..core.replay import Replay
from ..core.split import split_outcomes
from ..core.version import __version__
from .bounds import BOUNDS
from .candidates import build_candidates
from .crossfit import (
    MAX_POINTS,
    CrossfitJob,
    Evaluated,
    crossfit_many,
    evaluate_test,
    evaluate_tests,
)
from .select import Selection, select
from .verdict import frontier, recommendation


@dataclass
class TaskPlan:
    """One task's plan: the selection (training data), the verdict (test data) and the fitted choice."""

    task: str
    n_train: int
    n_test: int
    selection: Selection
    evaluated: list[Evaluated]
    frontier: dict[str, Any]
    verdict: dict[str, Any] | None
    family_test: dict[str, Any]
    baseline: str
    policy: Policy | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        cands = []

        def test_point(ev: Evaluated, k: int) -> dict[str, float] | None:
            if ev.test_cost is None or ev.test_quality is None:
                return None
            return {"cost": float(ev.test_cost[:, k].mean()), "quality": float(ev.test_quality[:, k].mean())}

        for ev in self.evaluated:
            t = self.selection.table[ev.name]
            cands.append({
                "name": ev.name, "family": ev.family, "policy": ev.fitted.name, "origin": ev.candidate.origin,
                "knob": ev.knob,
                "configurations": [
                    {"value": ev.values[k], "settings": ev.params[k],
                     "cv": {"cost": float(t["cost"][k]), "quality": float(t["quality"][k]),
                            "cost_upper_bound": float(t["cost_upper_bound"][k]),
                            "quality_lower_bound": float(t["quality_lower_bound"][k]),
                            "admissible": bool(t["admissible"][k])},
                     "test": test_point(ev, k)}
                    for k in range(len(ev.values))]})
        return {"n_train": self.n_train, "n_test": self.n_test, "baseline": self.baseline,
                "selection": self.selection.to_dict(), "recommendation": self.verdict,
                "best_by_family_on_test": self.family_test, "frontier": self.frontier,
                "candidates": cands, "notes": self.notes}


@dataclass
class PlanResult:
    """Everything ``callwise plan`` computed; ``to_dict()`` is what results.json holds."""

    meta: dict[str, Any]
    tasks: dict[str, TaskPlan]
    overall: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "tasks": {t: p.to_dict() for t, p in self.tasks.items()}, "overall": self.overall}

    def policy(self, task: str | None = None) -> Policy:
        """The recommended policy of ``task`` (the only one when None), fitted on the training split."""
        if task is None:
            if len(self.tasks) != 1:
                raise PolicyError(f"the plan has {len(self.tasks)} tasks; name one of {sorted(self.tasks)}")
            task = next(iter(self.tasks))
        p = self.tasks[task].policy
        if p is None:
            raise PolicyError(f"task {task!r} has no recommendation: {self.tasks[task].selection.message}")
        return p


def _ci(v: np.ndarray, n_boot: int, seed: int, level: float) -> list[float]:
    """Percentile bootstrap interval of the mean over test prompts (:func:`callwise.core.frontier.mean_ci`)."""
    return [float(x) for x in mean_ci(v, n_boot=max(n_boot, 1), seed=seed, level=level)]


def _family_on_test(sel: Selection, n_boot: int, seed: int, level: float,
                    fr: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for fam, p in sel.best_by_family.items():
        ev = p.ev
        if ev.test_cost is None:
            continue
        c, q = ev.test_cost[:, p.k], ev.test_quality[:, p.k]  # type: ignore[index]
        cand = fr["candidates"].get(ev.name, {})
        out[fam] = {**p.to_dict(), "test": {"cost": float(c.mean()), "cost_ci": _ci(c, n_boot, seed, level),
                                            "quality": float(q.mean()), "quality_ci": _ci(q, n_boot, seed + 1, level),
                                            "candidate_aiq": cand.get("aiq"),
                                            "candidate_gap_closed": cand.get("gap_closed")}}
    return out


def _baseline(evs: list[Evaluated], train: OutcomeTable, baseline: str | None) -> Evaluated:
    singles = {ev.fitted.params().get("model"): ev for ev in evs if ev.family == "single"}
    if not singles:
        raise DataError("no single-model candidate to measure the savings against: include 'single' in "
                        "--candidate (candidates=), e.g. --candidate single,cascade")
    if baseline is not None:
        if baseline not in singles:
            raise DataError(f"--baseline {baseline!r} is not a model of this task; models are {sorted(singles)}")
        return singles[baseline]
    models, cost, quality = model_means(train)
    order = sorted((m for m in models if m in singles), key=lambda m: (-quality[models.index(m)], cost[models.index(m)]))
    return singles[order[0]]


def _task_job(train: OutcomeTable, task: str, *, folds: int, seed: int, metric: str | None,
              include: Sequence[str] | None, on_step: Callable[..., None] | None = None,
              on_total: Callable[[int], None] | None = None) -> tuple[CrossfitJob, list[str]]:
    """One task's candidates, as a cross-fitting job (its folds seeded by the task), and notes."""
    cands, notes = build_candidates(train, metric=metric, include=list(include) if include else None)
    if on_total:
        on_total(len(cands) * (folds + 2))  # per candidate: the full fit, each fold, the test run
    return CrossfitJob(task, cands, train, seed ^ zlib.crc32(task.encode()), on_step), notes


def prepare_task(train: OutcomeTable, task: str, *, folds: int, seed: int, metric: str | None,
                 include: Sequence[str] | None, max_points: int, on_step: Callable[..., None] | None = None,
                 on_total: Callable[[int], None] | None = None,
                 executor: Executor | None = None) -> tuple[list[Evaluated], list[str]]:
    """Candidates of one task and their out-of-fold outcomes on its training split (no test data)."""
    job, notes = _task_job(train, task, folds=folds, seed=seed, metric=metric, include=include, on_step=on_step,
                           on_total=on_total)
    evs, _, more = crossfit_many([job], folds=folds, max_points=max_points, executor=executor)[0]
    return evs, notes + more


def finish_task(train: OutcomeTable, test: OutcomeTable, task: str, evs: list[Evaluated], sel: Selection,
                notes: list[str], *, baseline: str | None, budget: float | None, quality: float | None,
                n_boot: int, seed: int, level: float, oracle: str,
                on_step: Callable[..., None] | None = None, executor: Executor | None = None) -> TaskPlan:
    """After the choice: run the candidates on the test split (once; a later call reuses the runs) and
    build the verdict."""
    view = test.dense()
    todo = [ev for ev in evs if not ev.tested]
    if todo:
        evaluate_test(todo, Replay(view), on_step, executor)
    notes = list(notes) + [ev.test_note for ev in evs if ev.test_note]
    q0, c0 = view.quality[:, :, 0], view.cost[:, :, 0]
    ok = np.isfinite(q0).all(axis=0) & np.isfinite(c0).all(axis=0)
    singles = [m for m, o in zip(view.models, ok) if o]
    fr = frontier(evs, q0[:, ok], c0[:, ok], singles, oracle)
    base = _baseline(evs, train, baseline)
    verdict = None
    policy = None
    if sel.recommended is not None:
        verdict = recommendation(sel.recommended, base, q0[:, ok], c0[:, ok], budget=budget, quality=quality,
                                 n_boot=n_boot, seed=seed, level=level)
        cand = fr["candidates"].get(sel.recommended.ev.name, {})
        verdict["candidate_aiq"], verdict["candidate_gap_closed"] = cand.get("aiq"), cand.get("gap_closed")
        policy = sel.recommended.ev.config(sel.recommended.ev.fitted, sel.recommended.k)
    return TaskPlan(task, int(train.frame["prompt_id"].nunique()), len(view.prompt_ids), sel, evs, fr, verdict,
                    _family_on_test(sel, n_boot, seed, level, fr), str(base.fitted.params().get("model")),
                    policy, notes)


def plan_task(train: OutcomeTable, test: OutcomeTable, task: str, *, budget: float | None, quality: float | None,
              risk: float, bound: str, horizon: float | str, folds: int, seed: int, metric: str | None,
              baseline: str | None, include: Sequence[str] | None, n_boot: int, level: float, oracle: str,
              max_points: int, on_step: Callable[..., None] | None,
              on_total: Callable[[int], None] | None = None, executor: Executor | None = None) -> TaskPlan:
    """Plan one task: out-of-fold outcomes, the choice, then (only then) the test split."""
    evs, notes = prepare_task(train, task, folds=folds, seed=seed, metric=metric, include=include,
                              max_points=max_points, on_step=on_step, on_total=on_total, executor=executor)
    sel = _select(evs, test, budget=budget, quality=quality, risk=risk, bound=bound, horizon=horizon)
    return finish_task(train, test, task, evs, sel, notes, baseline=baseline, budget=budget, quality=quality,
                       n_boot=n_boot, seed=seed, level=level, oracle=oracle, on_step=on_step, executor=executor)


def _select(evs: list[Evaluated], test: OutcomeTable, *, budget: float | None, quality: float | None, risk: float,
            bound: str, horizon: float | str) -> Selection:
    """The choice from the out-of-fold outcomes (the test split lends only its size, for ``horizon="test"``)."""
    h = float(test.frame["prompt_id"].nunique()) if horizon == "test" else float(horizon)
    return select(evs, budget=budget, quality=quality, risk=risk, bound=bound, horizon=h)


def _overall(tasks: dict[str, TaskPlan], budget: float | None, quality: float | None, n_boot: int, seed: int,
             level: float) -> dict[str, Any]:
    """Pooled over the test prompts of every task with a recommendation: its cost, quality and the target."""
    done = [t for t in tasks.values() if t.selection.recommended is not None]
    if not done:
        return {"data": "test split", "tasks_with_a_recommendation": 0}
    cs, qs, bc, bq = [], [], [], []
    for t in done:
        p = t.selection.recommended
        assert p is not None and p.ev.test_cost is not None and p.ev.test_quality is not None
        cs.append(p.ev.test_cost[:, p.k])
        qs.append(p.ev.test_quality[:, p.k])
        base = next(e for e in t.evaluated if e.family == "single" and e.fitted.params().get("model") == t.baseline)
        bc.append(base.test_cost[:, 0])  # type: ignore[index]
        bq.append(base.test_quality[:, 0])  # type: ignore[index]
    c, q, b_c, b_q = (np.concatenate(x) for x in (cs, qs, bc, bq))
    out: dict[str, Any] = {
        "data": "test split, pooled over the test prompts of the tasks with a recommendation",
        "tasks_with_a_recommendation": len(done), "n_prompts": int(len(c)),
        "cost": float(c.mean()), "cost_ci": _ci(c, n_boot, seed, level),
        "quality": float(q.mean()), "quality_ci": _ci(q, n_boot, seed + 1, level),
        "baseline": {"cost": float(b_c.mean()), "quality": float(b_q.mean()),
                     "cost_saved": float(b_c.mean() - c.mean()), "cost_saved_ci": _ci(b_c - c, n_boot, seed, level),
                     "quality_gained": float(q.mean() - b_q.mean()),
                     "quality_gained_ci": _ci(q - b_q, n_boot, seed + 1, level)},
        "mean_gap_closed": {},
    }
    if budget is not None:
        out["target_held"] = {"budget": budget, "held": bool(c.mean() <= budget + 1e-15),
                              "tasks_held": sum(bool(t.verdict and t.verdict["target_held"]["held"]) for t in done)}
    else:
        out["target_held"] = {"quality": quality, "held": bool(q.mean() >= quality - 1e-12),  # type: ignore[operator]
                              "tasks_held": sum(bool(t.verdict and t.verdict["target_held"]["held"]) for t in done)}
    fams: dict[str, list[float]] = {}
    for t in tasks.values():
        for fam, d in t.family_test.items():
            g = d["test"].get("candidate_gap_closed")
            if g is not None:
                fams.setdefault(fam, []).append(g)
    out["mean_gap_closed"] = {f: float(np.mean(v)) for f, v in fams.items()}
    rec = [g for t in done if t.verdict and (g := t.verdict.get("candidate_gap_closed")) is not None]
    if rec:
        out["mean_gap_closed"]["recommendation"] = float(np.mean(rec))
    out["mean_gap_closed_rule"] = ("per family, the mean over tasks of the test gap closed by the candidate of "
                                   "the family's best admissible configuration (its whole knob curve)")
    return out


def plan(data: OutcomeTable, *, test: OutcomeTable | None = None, split: float | None = None,
         tasks: Sequence[str] | None = None, budget: float | None = None, quality: float | None = None,
         risk: float = 0.05, bound: str = "t", horizon: float | str = "test", folds: int = 5, seed: int = 0,
         metric: str | None = None, baseline: str | None = None, candidates: Sequence[str] | None = None,
         n_boot: int = 200, level: float = 0.95, oracle: str = "callwise", max_points: int = MAX_POINTS,
         on_step: Callable[..., None] | None = None, on_total: Callable[[int], None] | None = None,
         on_progress: OnProgress | None = None, jobs: int = 1, ray: str | None = None) -> PlanResult:
    """What to run on this traffic under a budget ($/query) or a quality floor, and what it saves.

    ``data`` is split like ``callwise bench`` (``test``: a held-out table; else the data's own split
    or a seeded ``split`` fraction). ``risk`` δ: the budget (floor) is kept on the next ``horizon``
    queries ("test": as many as the test split has; a number; or ``math.inf`` for the long-run
    mean) with probability ≥ 1 − δ under ``bound`` (see :mod:`callwise.plan.bounds`).
    ``candidates`` restricts the candidates by name or family; ``baseline`` names the model the
    savings are measured against (default: the best single model on the training split).
    ``on_progress(done, total, what)`` (:mod:`callwise.core.progress`) counts the work: per
    candidate its full fit, each fold and its test run (candidates x (folds + 2) per task; the total
    grows as each task's candidates are known, and a dropped candidate's units are counted when it
    drops). The older ``on_step(description)`` is called after each such step and ``on_total(n)``
    as n units are added.

    ``jobs`` > 1 runs the independent units (every task's candidates' full fits, then each task x fold
    x candidate, then each candidate's test run) on that many local processes, ``ray`` (an address, or
    ``"local"``) as Ray tasks (:mod:`callwise.core.parallel`); the plan is the same as serially.
    """
    if (budget is None) == (quality is None):
        raise DataError("give exactly one of --budget ($/query) and --quality (a floor on mean quality)")
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise DataError(f"--budget must be a positive number of dollars per query, got {budget}")
    if quality is not None and not math.isfinite(quality):
        raise DataError(f"--quality must be a finite number, got {quality}")
    if not 0 < risk < 1:
        raise DataError(f"--risk must be strictly between 0 and 1, got {risk}")
    if bound not in BOUNDS:
        raise DataError(f"--bound must be one of {list(BOUNDS)}, got {bound!r}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise DataError(f"--folds must be a whole number >= 2, got {folds!r}")
    if horizon != "test" and not (isinstance(horizon, (int, float)) and horizon > 0):
        raise DataError(f"--horizon must be 'test', a positive number of queries or inf, got {horizon!r}")
    train, test_t, info = split_outcomes(data, fraction=split, seed=seed, test=test)
    all_tasks = test_t.tasks()
    if tasks:
        unknown = [t for t in tasks if t not in all_tasks]
        if unknown:
            raise DataError(f"unknown task(s) {unknown}; tasks are {all_tasks}")
        all_tasks = list(tasks)
    missing = [t for t in all_tasks if t not in set(train.tasks())]
    if missing:
        raise DataError(f"task(s) {missing} have no training prompts; a plan is chosen on training data")
    if baseline is not None:
        lacking = [t for t in all_tasks if baseline not in train.models(t)]
        if lacking:
            raise DataError(f"--baseline {baseline!r} is not a model of this task ({lacking[0]!r}); models are "
                            f"{train.models(lacking[0])}")
    counter = Counter(on_progress)

    def step(what: str, n: int = 1) -> None:
        counter(what, n)
        if on_step:
            on_step(what)

    def grow(n: int) -> None:
        counter.add(n)
        if on_total:
            on_total(n)

    out: dict[str, TaskPlan] = {}
    splits = {t: (train.for_task(t), test_t.for_task(t)) for t in all_tasks}
    for t, (tr, _) in splits.items():
        if tr.frame["prompt_id"].nunique() < 2 * folds:
            raise DataError(f"task {t!r} has {tr.frame['prompt_id'].nunique()} training prompts, too few for "
                            f"{folds} folds (at least {2 * folds})")
    steps = {t: (lambda what, n=1, t=t: step(f"task {t}: {what}", n)) for t in all_tasks}
    with Executor(jobs, ray) as ex:
        made = {t: _task_job(tr, t, folds=folds, seed=seed, metric=metric, include=candidates, on_step=steps[t],
                             on_total=grow) for t, (tr, _) in splits.items()}
        # every task's units at once: the full fits, then task x fold x candidate, then the test runs
        fitted = crossfit_many([job for job, _ in made.values()], folds=folds, max_points=max_points, executor=ex)
        prepared = {t: (evs, made[t][1] + more) for t, (evs, _, more) in zip(made, fitted)}
        sels = {t: _select(evs, splits[t][1], budget=budget, quality=quality, risk=risk, bound=bound,
                           horizon=horizon) for t, (evs, _) in prepared.items()}
        evaluate_tests([(t, evs, Replay(splits[t][1].dense()), steps[t]) for t, (evs, _) in prepared.items()], ex)
    for t, (evs, notes) in prepared.items():
        tr, te = splits[t]
        out[t] = finish_task(tr, te, t, evs, sels[t], notes, baseline=baseline, budget=budget, quality=quality,
                             n_boot=n_boot, seed=seed, level=level, oracle=oracle, on_step=steps[t])
    counter.finish()
    meta = {
        "callwise_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "plan",
        "data": {**{k: v for k, v in train.meta.items() if k != "dropped_prompts"},
                 "fingerprint": data.fingerprint(), "column_fingerprints": data.column_fingerprints(),
                 "costs_estimated": bool(train.costs_estimated)},
        "split": info, "seed": seed, "folds": folds, "risk": risk, "bound": bound,
        "horizon": horizon if horizon == "test" else (None if math.isinf(float(horizon)) else horizon),
        "budget": budget, "quality": quality, "metric": metric,
        "which_data": {"selection": "out-of-fold outcomes on the training split (cv)",
                       "recommendation, frontier, savings, best_by_family_on_test": "the test split, read once "
                       "after the choice"},
    }
    return PlanResult(meta, out, _overall(out, budget, quality, n_boot, seed, level))


__all__ = ["PlanResult", "TaskPlan", "finish_task", "plan", "plan_task", "prepare_task"]
