"""Out-of-fold outcomes of every candidate configuration, from the training split only.

For a candidate, the configurations are fixed once: the knob values of the sweep of the policy
fitted on the whole training split (at most ``max_points``, evenly spaced along the sorted
values, both ends kept). A configuration must mean the same thing to every refit of the
candidate, so routers are configured by ``budget`` (dollars per query, which each fit calibrates
to a λ on its own out-of-fold predictions; values evenly spaced between the cheapest and the
dearest model's mean training cost) rather than by λ, whose scale depends on the fit. Then the
training prompts are cut into ``folds`` seeded folds; for each fold the candidate is fitted on
the other folds and every configuration decides the fold's prompts on a replay of their recorded
outcomes. Every training prompt thus gets, per
configuration, the cost and quality of a policy that never saw it: the numbers selection and the
risk bounds are computed from. The policy fitted on the whole training split is kept: it is the
one evaluated on the test split (once, for the report) and written as the policy file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from ..core.errors import CallwiseError
from ..core.files import json_default
from ..core.fixed import model_means
from ..core.outcomes import OutcomeTable
from ..core.parallel import Executor, Unit
from ..core.policy import Policy
from ..core.replay import Replay
from .candidates import Candidate

#: The most configurations kept per candidate (evenly along its knob).
MAX_POINTS = 25


@dataclass
class Evaluated:
    """A candidate's configurations and their per-prompt outcomes (``cv`` on train, ``test`` later)."""

    candidate: Candidate
    knob: str | None
    values: list[Any]
    params: list[dict[str, Any]]
    fitted: Policy
    cv_cost: np.ndarray | None = None  # (P_train, k)
    cv_quality: np.ndarray | None = None
    test_cost: np.ndarray | None = None  # (P_test, k)
    test_quality: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    tested: bool = False  # run on the test split (once; test_note says why it has no test figures)
    test_note: str | None = None

    @property
    def name(self) -> str:
        return self.candidate.name

    @property
    def family(self) -> str:
        return self.candidate.family

    def config(self, policy: Policy, k: int) -> Policy:
        """Configuration ``k`` of ``policy`` (a fitted copy of this candidate)."""
        if self.knob is None:
            return policy
        if self.knob != type(policy).knob:  # a router configured by its calibrated budget
            return policy.with_params(**{self.knob: self.values[k], type(policy).knob: None, "quality_target": None})
        return policy.at_knob(self.values[k])


def _plain(v: Any) -> Any:
    return json_default(v) if isinstance(v, (np.generic, np.ndarray)) else v


def configurations(cand: Candidate, full: Policy, max_points: int = MAX_POINTS,
                   cost_range: tuple[float, float] | None = None) -> Evaluated:
    """The knob values of the fitted policy's sweep (sorted ascending, thinned to ``max_points``);
    routers get ``budget`` values over ``cost_range`` instead (see the module docstring)."""
    knob = type(full).knob
    sweep = full.sweep()
    if knob is None or len(sweep) <= 1:
        return Evaluated(cand, None, [None], [{k: _plain(v) for k, v in full.params().items()}], full)
    if knob == "lam" and hasattr(full, "budget") and cost_range is not None:
        vals = [float(v) for v in np.linspace(cost_range[0], cost_range[1], max_points)]
        ev = Evaluated(cand, "budget", vals, [], full)
        ev.params = [{k: _plain(v) for k, v in ev.config(full, i).params().items()} for i in range(len(vals))]
        return ev
    vals = sorted({float(getattr(c, knob)) for c in sweep if getattr(c, knob) is not None})
    if len(vals) > max_points:
        idx = np.unique(np.round(np.linspace(0, len(vals) - 1, max_points)).astype(int))
        vals = [vals[i] for i in idx]
    if all(float(v).is_integer() for v in vals) and isinstance(getattr(sweep[0], knob), (int, np.integer)):
        vals = [int(v) for v in vals]
    params = [{k: _plain(v) for k, v in full.at_knob(v).params().items()} for v in vals]
    return Evaluated(cand, knob, vals, params, full)


def _run(ev: Evaluated, policy: Policy, replay: Replay) -> tuple[np.ndarray, np.ndarray]:
    queries = replay.queries()
    cost = np.empty((len(queries), len(ev.values)))
    quality = np.empty_like(cost)
    for k in range(len(ev.values)):
        d = ev.config(policy, k).decide(queries, replay)
        cost[:, k], quality[:, k] = d.cost, d.quality
    if not (np.isfinite(cost).all() and np.isfinite(quality).all()):
        raise CallwiseError(f"{ev.name} left some queries without a cost or a quality")
    return cost, quality


def fold_ids(prompt_ids: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A seeded fold number in [0, folds) for each prompt (sizes differ by at most one)."""
    perm = np.random.default_rng(seed).permutation(len(prompt_ids))
    out = np.empty(len(prompt_ids), dtype=np.int64)
    out[perm] = np.arange(len(prompt_ids)) % folds
    return out


@dataclass
class CrossfitJob:
    """One task's cross-fitting: its candidates, its training split and its fold seed. ``key`` names
    the task in the units' names; ``on_step(what, n=1)`` counts its units as they finish."""

    key: str
    cands: list[Candidate]
    train: OutcomeTable
    seed: int
    on_step: Callable[..., None] | None = None


class _Folds:
    """What every fold unit of a task reads (sent once per task): the training split and the fold of
    each of its prompts. The last fold's tables are kept, so units of one fold in a row build them once."""

    def __init__(self, train: OutcomeTable, pids: np.ndarray, fold: np.ndarray) -> None:
        self.train, self.pids, self.fold = train, pids, fold
        self._last: tuple[int, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_last": None}

    def get(self, f: int) -> tuple[OutcomeTable, Replay, np.ndarray]:
        """Fold ``f``: the table to fit on (the other folds), a replay of its own prompts, and the rows
        (into ``pids``) of the replay's prompts."""
        if self._last is None or self._last[0] != f:
            tr = self.train.for_prompts(self.pids[self.fold != f])
            replay = Replay(self.train.for_prompts(self.pids[self.fold == f]).dense())
            where = {p: i for i, p in enumerate(self.pids)}
            self._last = (f, (tr, replay, np.array([where[p] for p in replay.view.prompt_ids])))
        return self._last[1]


#: The errors that drop a candidate (from the plan, with a note) rather than stop the plan.
DROPS = (CallwiseError, ValueError, ArithmeticError)


def _groups(cands: list[Candidate]) -> list[list[int]]:
    """Candidates sharing one template policy (and so one fit per training set), in first-seen order."""
    by: dict[int, list[int]] = {}
    for i, c in enumerate(cands):
        by.setdefault(id(c.policy), []).append(i)
    return list(by.values())


def _light(ev: Evaluated, fitted: bool = False) -> Evaluated:
    """A copy of ``ev`` to send to a unit: its configurations, without the outcomes (and the fitted
    policy unless ``fitted``)."""
    return replace(ev, fitted=ev.fitted if fitted else None, cv_cost=None, cv_quality=None,  # type: ignore[arg-type]
                   test_cost=None, test_quality=None)


def _fit_unit(data: tuple[OutcomeTable, list[Candidate], int, tuple[float, float]],
              group: list[int]) -> list[Evaluated | str]:
    """One unit (:mod:`callwise.core.parallel`): fit the candidates ``group`` (indices into the task's
    candidates, one template) on the whole training split and fix their configurations; a note (str)
    for each that failed."""
    train, cands, max_points, span = data
    memo: dict[int, Policy] = {}
    out: list[Evaluated | str] = []
    for c in (cands[k] for k in group):
        try:
            out.append(configurations(c, c.fitted(train, memo), max_points, span))
        except DROPS as e:
            out.append(f"{c.name} dropped: fitting on the training split failed: {type(e).__name__}: {e}")
    return out


def _fold_unit(folds: _Folds, f: int, evs: list[Evaluated]) -> tuple[np.ndarray, list[Any]]:
    """One unit: fit candidates of one template on the other folds and run every configuration on fold
    ``f``; the fold's rows and, per candidate, (cost, quality) or the error's text."""
    tr, replay, rows = folds.get(f)
    memo: dict[int, Policy] = {}
    out: list[Any] = []
    for ev in evs:
        try:
            out.append(_run(ev, ev.candidate.fitted(tr, memo), replay))
        except DROPS as e:
            out.append(f"{type(e).__name__}: {e}")
    return rows, out


def crossfit_many(jobs: list[CrossfitJob], *, folds: int = 5, max_points: int = MAX_POINTS,
                  executor: Executor | None = None) -> list[tuple[list[Evaluated], np.ndarray, list[str]]]:
    """:func:`crossfit` of several tasks at once, their units run by ``executor`` (serial by default):
    first each (task, template)'s full fit, then each (task, fold, template)'s fold fit and runs. The
    result is the same whatever runs the units; a candidate that fails on a fold is dropped with a note
    on the first fold it failed on."""
    ex = executor or Executor()
    steps = [j.on_step or (lambda *_: None) for j in jobs]
    spans = []
    for j in jobs:
        _, mean_cost, _ = model_means(j.train)
        spans.append((float(mean_cost.min()), float(mean_cost.max())))
    pre = [f"{j.key}: " if j.key else "" for j in jobs]
    groups = [_groups(j.cands) for j in jobs]
    units = [Unit(f"{pre[n]}fit {', '.join(jobs[n].cands[k].name for k in g)}", (g,), str(n))
             for n in range(len(jobs)) for g in groups[n]]
    where = [(n, g) for n in range(len(jobs)) for g in groups[n]]

    def fitted(i: int, r: list[Evaluated | str]) -> None:
        n, g = where[i]
        for k, x in zip(g, r):
            name = jobs[n].cands[k].name
            if isinstance(x, str):
                steps[n](f"fit {name} (dropped)", folds + 2)
            else:
                steps[n](f"fit {name}")

    fits = ex.map(_fit_unit, units, {str(n): (j.train, j.cands, max_points, spans[n]) for n, j in enumerate(jobs)},
                  on_done=fitted)
    evs: list[dict[int, Evaluated]] = [{} for _ in jobs]
    notes: list[dict[int, str]] = [{} for _ in jobs]  # candidate -> why it was dropped when fitted on all of train
    for (n, g), r in zip(where, fits):
        for k, x in zip(g, r):
            if isinstance(x, str):
                notes[n][k] = x
            else:
                x.candidate = jobs[n].cands[k]  # the driver's own candidate, not the unit's copy
                evs[n][k] = x
    # units: each (task, fold, template) fold fit and runs; each task's training split sent once
    shared: dict[str, _Folds] = {}
    fold_units: list[Unit] = []
    fold_where: list[tuple[int, int, list[int]]] = []
    pids_of = []
    for n, j in enumerate(jobs):
        pids = j.train.dense().prompt_ids
        pids_of.append(pids)
        shared[str(n)] = _Folds(j.train, pids, fold_ids(pids, folds, j.seed))
        for ev in evs[n].values():
            ev.cv_cost = np.full((len(pids), len(ev.values)), np.nan)
            ev.cv_quality = np.full_like(ev.cv_cost, np.nan)
        for f in range(folds):
            for g in groups[n]:
                alive = [k for k in g if k in evs[n]]
                if alive:
                    names = ", ".join(j.cands[k].name for k in alive)
                    fold_units.append(Unit(f"{pre[n]}fold {f + 1}/{folds}: {names}",
                                           (f, [_light(evs[n][k]) for k in alive]), str(n)))
                    fold_where.append((n, f, alive))

    def folded(i: int, r: tuple[np.ndarray, list[Any]]) -> None:
        n, f, ks = fold_where[i]
        for k in ks:
            steps[n](f"fold {f + 1}/{folds}: {jobs[n].cands[k].name}")

    runs = ex.map(_fold_unit, fold_units, shared, on_done=folded)
    failed: list[dict[int, tuple[int, str]]] = [{} for _ in jobs]  # candidate -> its first failing fold, why
    for (n, f, ks), (rows, res) in zip(fold_where, runs):
        for k, x in zip(ks, res):
            if isinstance(x, str):
                if k not in failed[n] or f < failed[n][k][0]:
                    failed[n][k] = (f, x)
                continue
            ev = evs[n][k]
            assert ev.cv_cost is not None and ev.cv_quality is not None
            ev.cv_cost[rows], ev.cv_quality[rows] = x
    out = []
    for n, j in enumerate(jobs):
        more = [notes[n][k] for k in sorted(notes[n])]
        for k, (f, why) in sorted(failed[n].items(), key=lambda kv: (kv[1][0], kv[0])):  # as a serial pass meets them
            more.append(f"{j.cands[k].name} dropped: on training fold {f + 1} of {folds}: {why}")
            steps[n](f"fold {f + 1}/{folds}: {j.cands[k].name} (dropped)", 1)  # its test run will not happen
        out.append(([evs[n][k] for k in sorted(evs[n]) if k not in failed[n]], pids_of[n], more))
    return out


def crossfit(cands: list[Candidate], train: OutcomeTable, *, folds: int = 5, seed: int = 0,
             max_points: int = MAX_POINTS, on_step: Callable[..., None] | None = None,
             executor: Executor | None = None) -> tuple[list[Evaluated], np.ndarray, list[str]]:
    """Fit every candidate on all of ``train`` and out of fold; returns the evaluated candidates
    (in order), the training prompt ids the out-of-fold rows follow, and notes on candidates dropped.
    ``on_step(what, n=1)`` after each unit (a candidate's full fit, one fold of it); a dropped
    candidate's units that will not run (its folds left and its test run) are counted at once.
    ``executor`` (:class:`~callwise.core.parallel.Executor`) runs the independent units (each template's
    full fit, then each fold x template); serial by default, and the same result whatever runs them."""
    return crossfit_many([CrossfitJob("", cands, train, seed, on_step)], folds=folds, max_points=max_points,
                         executor=executor)[0]


def _test_unit(replay: Replay, ev: Evaluated) -> tuple[np.ndarray, np.ndarray] | str:
    """One unit: run every configuration of a (fully fitted) candidate on the test split's replay."""
    try:
        return _run(ev, ev.fitted, replay)
    except CallwiseError as e:
        return f"{ev.name} has no test figures: {e}"


def evaluate_tests(jobs: list[tuple[str, list[Evaluated], Replay, Callable[..., None] | None]],
                   executor: Executor | None = None) -> list[list[str]]:
    """:func:`evaluate_test` of several tasks at once (``(key, evs, replay, on_step)`` each), one unit per
    candidate, run by ``executor``; returns each task's notes."""
    ex = executor or Executor()
    units = [Unit(f"{key + ': ' if key else ''}test {ev.name}", (_light(ev, fitted=True),), str(n))
             for n, (key, evs, _, _) in enumerate(jobs) for ev in evs]
    where = [(n, ev) for n, (_, evs, _, _) in enumerate(jobs) for ev in evs]

    def done(i: int, r: Any) -> None:
        n, ev = where[i]
        step = jobs[n][3]
        if step:
            step(f"test {ev.name}")

    res = ex.map(_test_unit, units, {str(n): j[2] for n, j in enumerate(jobs)}, on_done=done)
    for (n, ev), r in zip(where, res):
        ev.tested = True
        if isinstance(r, str):
            ev.test_note = r
        else:
            ev.test_cost, ev.test_quality = r
    return [[ev.test_note for ev in evs if ev.test_note] for _, evs, _, _ in jobs]


def evaluate_test(evs: list[Evaluated], replay: Replay, on_step: Callable[..., None] | None = None,
                  executor: Executor | None = None) -> list[str]:
    """Run every configuration of every (fully fitted) candidate once on the test split's replay;
    returns notes on candidates that could not run there. ``on_step(what)`` after each candidate."""
    return evaluate_tests([("", evs, replay, on_step)], executor)[0]


__all__ = ["MAX_POINTS", "CrossfitJob", "Evaluated", "configurations", "crossfit", "crossfit_many", "evaluate_test",
           "evaluate_tests", "fold_ids"]
