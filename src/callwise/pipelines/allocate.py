"""``callwise allocate``: search a pipeline's allocation on training questions, report it on held-out ones.

Questions come from an outcome table (each prompt is a question; its gold answer is the
``reference`` column or, failing that, inferred from the recorded answers graded correct). The
evaluator is chosen by what can score the pipeline:

- an ensemble vote (every module asks the question itself, a vote combines them, repeated models
  reuse their answer) is scored **exactly** from the table's recorded answers, vectorised
  (:class:`~callwise.pipelines.search.OutcomesEvaluator`);
- any other pipeline runs on a backend: recorded calls (``calls=``, an outcome table of module
  calls replayed by prompt text, e.g. a saved :meth:`PipelineRun.calls_table`) or a live backend.

The search method runs on the training questions; the chosen allocation, the baselines (best
single model, random search and coordinate ascent at the same evaluation budget, exhaustive
search where |M|^L is small) and the Pareto set of every allocation scored (by the method or a
baseline) are then reported on the test questions, with bootstrap intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..core.backend import Backend, Queries
from ..core.errors import DataError, PolicyError
from ..core.outcomes import OutcomeTable
from ..core.progress import Counter, OnProgress
from .graph import Module, Pipeline, Step
from .search import (
    METHODS,
    Evaluator,
    OutcomesEvaluator,
    RunEvaluator,
    SearchResult,
    pareto_allocations,
    search,
)

#: Exhaustive search runs as a baseline when |M|^L is at most this (vectorised evaluators) ...
EXHAUSTIVE_EXACT_MAX = 200_000
#: ... or at most this when every allocation means running the pipeline.
EXHAUSTIVE_RUN_MAX = 64


def ensemble_normaliser(pipeline: Pipeline) -> str | None:
    """The vote's normaliser when ``pipeline`` is a plain ensemble vote that recorded answers score exactly.

    That is: every module's prompt is the question itself (``{prompt}``, no system prompt or
    settings), the only other node is a vote over all modules, and repeated models reuse their
    answer. None otherwise.
    """
    mods = [pipeline.nodes[m] for m in pipeline.modules]
    if pipeline.repeats != "reuse" or not all(isinstance(m, Module) and m.template == "{prompt}" and not m.system
                                              and not m.params for m in mods):
        return None
    steps = [n for n in pipeline.nodes.values() if isinstance(n, Step)]
    if len(steps) != 1 or steps[0].op != "vote" or steps[0].name != pipeline.output:
        return None
    if sorted(steps[0].inputs) != sorted(pipeline.modules):
        return None
    return str(steps[0].options.get("normalise", "text"))


@dataclass
class AllocationResult:
    """What ``callwise allocate`` found: the chosen allocation, baselines, Pareto set, budgets."""

    meta: dict[str, Any]
    chosen: dict[str, Any]
    baselines: list[dict[str, Any]] = field(default_factory=list)
    pareto: list[dict[str, Any]] = field(default_factory=list)
    under_budget: list[dict[str, Any]] = field(default_factory=list)
    evaluated: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta, "chosen": self.chosen, "baselines": self.baselines, "pareto": self.pareto,
                "under_budget": self.under_budget, "evaluated": self.evaluated}


def _mean_ci(x: np.ndarray, seed: int) -> list[float]:
    from ..core.frontier import mean_ci

    return [float(v) for v in mean_ci(np.asarray(x, float), n_boot=1000, seed=seed)]


def _summary(res: SearchResult, names: Sequence[str], test: Evaluator, seed: int) -> dict[str, Any]:
    q, c = test.evaluate(np.array([res.allocation]))
    return {"method": res.method, "allocation": dict(zip(names, res.names)),
            "train": {"quality": res.quality, "cost": res.cost},
            "test": {"quality": float(q[0].mean()), "quality_ci": _mean_ci(q[0], seed), "cost": float(c[0].mean())},
            "evaluations": res.evaluations, "rounds": res.rounds, "stopped": res.stopped,
            "trace": [[res.models[i] for i in a] for a in res.trace]}


def allocate_with(pipeline: Pipeline, train: Evaluator, test: Evaluator, *, method: str = "llmselector",
                  budget: int | None = None, alpha: float = 0.0, seed: int = 0, max_cost: float | None = None,
                  budgets: Sequence[float] = (), baselines: Sequence[str] = ("single", "random", "coordinate",
                                                                              "exhaustive"),
                  exhaustive_max: int = EXHAUSTIVE_EXACT_MAX, meta: dict[str, Any] | None = None,
                  on_step: Callable[[str], None] | None = None,
                  on_progress: OnProgress | None = None) -> AllocationResult:
    """Search on ``train``, report on ``test`` (two evaluators over the same models and modules).
    ``on_step(what)`` is told each search as it starts; ``on_progress(done, total, what)``
    (:mod:`callwise.core.progress`) counts the searches (the method's, each baseline's) and the
    Pareto set's test run as they end."""
    if method not in METHODS:
        raise PolicyError(f"unknown method {method!r}; expected one of {list(METHODS)}")
    step = on_step or (lambda _: None)
    names = pipeline.modules
    M, L = len(train.models), train.n_slots
    counter = Counter(on_progress, 2 + sum(1 for b in baselines if b != method))
    step(f"{method} on {M} models x {L} modules")
    res = search(train, method, budget=budget, alpha=alpha, seed=seed, max_cost=max_cost)
    counter(f"{method}: {res.evaluations} allocation(s) scored")
    chosen = _summary(res, names, test, seed)
    spent = res.evaluations
    out = AllocationResult(dict(meta or {}), chosen)
    pool = dict(res.evaluated)  # every allocation scored on the training set, by any method
    for b in baselines:
        if b == method:
            continue
        if b == "exhaustive" and M ** L > exhaustive_max:
            out.meta.setdefault("notes", []).append(f"exhaustive search skipped: {M}^{L} = {M ** L:,} allocations "
                                                    f"is over {exhaustive_max:,}")
            counter(f"baseline {b} (skipped)")
            continue
        step(f"baseline {b}")
        kw: dict[str, Any] = {"budget": spent} if b in ("random", "coordinate") else {}
        try:
            r = search(train, b, seed=seed, max_cost=max_cost, **kw)
        except PolicyError as e:
            out.meta.setdefault("notes", []).append(f"baseline {b}: {e}")
            counter(f"baseline {b} (failed)")
            continue
        out.baselines.append(_summary(r, names, test, seed))
        pool.update(r.evaluated)
        counter(f"baseline {b}: {r.evaluations} allocation(s) scored")
    step("Pareto set on the test questions")
    front = pareto_allocations(pool)
    if front:
        q, c = test.evaluate(np.array(front))
        for a, qi, ci in zip(front, q, c):
            tq, tc = pool[a]
            out.pareto.append({"allocation": dict(zip(names, (res.models[i] for i in a))),
                               "train": {"quality": tq, "cost": tc},
                               "test": {"quality": float(qi.mean()), "cost": float(ci.mean())}})
    counter(f"Pareto set ({len(front)} allocation(s)) on the test questions")
    for b in budgets:
        ok = [p for p in out.pareto if p["train"]["cost"] <= b]
        best = max(ok, key=lambda p: p["train"]["quality"]) if ok else None
        out.under_budget.append({"budget": float(b), **(best or {"allocation": None})})
    out.evaluated = [{"allocation": [res.models[i] for i in a], "quality": q, "cost": c}
                     for a, (q, c) in res.evaluated.items()]
    out.meta["scored"] = len(pool)
    out.meta.update({"method": method, "budget_evals": budget, "alpha": alpha, "seed": seed, "max_cost": max_cost,
                     "models": list(train.models), "modules": list(names), "pipeline": pipeline.name,
                     "search_space": M ** L})
    return out


def questions(table: OutcomeTable, normalise: str | Any = "text") -> tuple[Queries, np.ndarray, dict[str, Any]]:
    """The table's prompts as queries and their gold answers (the reference column, else inferred)."""
    from .ensemble import infer_references

    v = table.dense()
    refs, stats = infer_references(v, normalise)
    return Queries(v.prompt_ids, v.prompts, v.tasks), refs, stats


def allocate(pipeline: Pipeline, table: OutcomeTable, *, method: str = "llmselector", budget: int | None = None,
             alpha: float = 0.0, seed: int = 0, max_cost: float | None = None, models: Sequence[str] | None = None,
             tasks: Sequence[str] | None = None, metric: str = "exact-match", normalise: str | None = None,
             fraction: float | None = None, test: OutcomeTable | None = None, budgets: Sequence[float] = (),
             backend: Backend | None = None, diagnoser: Any = None, baselines: Sequence[str] | None = None,
             on_step: Callable[[str], None] | None = None, on_progress: OnProgress | None = None) -> AllocationResult:
    """Choose ``pipeline``'s allocation on ``table``'s training questions and report it on its test ones.

    ``tasks``: the task to allocate for (several are joined by prompt text: models recorded on the
    same questions in different tasks sit side by side). ``backend``: runs a pipeline that is not an
    ensemble vote (a live backend, or ``Replay(calls, match="prompt")``); ensemble votes are scored
    exactly from the table. ``fraction``/``test``: the split, as ``callwise bench`` makes it.
    """
    from ..core.split import split_outcomes
    from .ensemble import EnsembleOutcomes, join_by_prompt

    step = on_step or (lambda _: None)
    all_tasks = table.tasks()
    if tasks:
        unknown = [t for t in tasks if t not in all_tasks]
        if unknown:
            raise DataError(f"unknown task(s) {unknown}; the data has {all_tasks}", column="task")
        table = join_by_prompt(table, tasks) if len(tasks) > 1 else table.for_task(tasks[0])
        if test is not None:
            test = join_by_prompt(test, tasks) if len(tasks) > 1 else test.for_task(tasks[0])
    elif len(all_tasks) > 1:
        raise DataError(f"the data has {len(all_tasks)} tasks {all_tasks}; an allocation is chosen per task: pass "
                        "--task (several --task options join tasks that asked the same questions)", column="task")
    cands = list(models) if models else list(table.models())
    unknown_m = [m for m in cands if m not in table.models()] if backend is None else []
    if unknown_m:
        raise DataError(f"model(s) {unknown_m} are not in the data; it has {table.models()}", column="model")
    train_t, test_t, split = split_outcomes(table, fraction=fraction, seed=seed, test=test)
    vote_norm = ensemble_normaliser(pipeline)
    L = len(pipeline.modules)
    meta: dict[str, Any] = {"split": split, "tasks": list(tasks or all_tasks), "metric": metric,
                            "n_train": int(train_t.frame["prompt_id"].nunique()),
                            "n_test": int(test_t.frame["prompt_id"].nunique())}
    if vote_norm is not None and backend is None:
        step("encoding recorded answers")
        if metric != "exact-match":
            raise PolicyError(f"an ensemble vote is scored by exact match; got metric {metric!r}")
        norm = normalise or vote_norm
        tr = EnsembleOutcomes.from_table(train_t, models=cands, normalise=norm)
        te = EnsembleOutcomes.from_table(test_t, models=cands, normalise=norm)
        train_ev: Evaluator = OutcomesEvaluator(tr, L)
        test_ev: Evaluator = OutcomesEvaluator(te, L)
        meta["evaluator"] = "exact (recorded answers, vectorised)"
        meta["normalise"] = norm
        exhaustive_max = EXHAUSTIVE_EXACT_MAX
    else:
        if backend is None:
            raise PolicyError(f"pipeline {pipeline.name!r} is not an ensemble vote over the question, so recorded "
                              "answers cannot score it: give recorded calls (--calls) or a live backend "
                              "(--api-base / --endpoints)")
        norm = normalise or "text"
        q_tr, r_tr, s_tr = questions(train_t, norm)
        q_te, r_te, _ = questions(test_t, norm)
        train_ev = RunEvaluator(pipeline, backend, q_tr, r_tr, models=cands, metric=metric, normalise=norm,
                                diagnoser=diagnoser)
        test_ev = RunEvaluator(pipeline, backend, q_te, r_te, models=cands, metric=metric, normalise=norm)
        meta["evaluator"] = f"runs on {type(backend).__name__}"
        meta["normalise"] = norm
        meta["references"] = s_tr
        exhaustive_max = EXHAUSTIVE_RUN_MAX
    default_b = ("single", "random", "coordinate", "exhaustive")
    return allocate_with(pipeline, train_ev, test_ev, method=method, budget=budget, alpha=alpha, seed=seed,
                         max_cost=max_cost, budgets=budgets, baselines=default_b if baselines is None else baselines,
                         exhaustive_max=exhaustive_max, meta=meta, on_step=step, on_progress=on_progress)
