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

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..core.errors import CallwiseError
from ..core.files import json_default
from ..core.fixed import model_means
from ..core.outcomes import OutcomeTable
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


def crossfit(cands: list[Candidate], train: OutcomeTable, *, folds: int = 5, seed: int = 0,
             max_points: int = MAX_POINTS, on_step: Callable[..., None] | None = None
             ) -> tuple[list[Evaluated], np.ndarray, list[str]]:
    """Fit every candidate on all of ``train`` and out of fold; returns the evaluated candidates
    (in order), the training prompt ids the out-of-fold rows follow, and notes on candidates dropped.
    ``on_step(what, n=1)`` after each unit (a candidate's full fit, one fold of it); a dropped
    candidate's units that will not run (its folds left and its test run) are counted at once."""
    step = on_step or (lambda *_: None)
    notes: list[str] = []
    evs: list[Evaluated] = []
    _, mean_cost, _ = model_means(train)
    span = (float(mean_cost.min()), float(mean_cost.max()))
    memo: dict[int, Policy] = {}
    for c in cands:
        try:
            evs.append(configurations(c, c.fitted(train, memo), max_points, span))
        except (CallwiseError, ValueError, ArithmeticError) as e:
            notes.append(f"{c.name} dropped: fitting on the training split failed: {type(e).__name__}: {e}")
            step(f"fit {c.name} (dropped)", folds + 2)
            continue
        step(f"fit {c.name}")
    view = train.dense()
    pids = view.prompt_ids
    where = {p: i for i, p in enumerate(pids)}
    fold = fold_ids(pids, folds, seed)
    for ev in evs:
        ev.cv_cost = np.full((len(pids), len(ev.values)), np.nan)
        ev.cv_quality = np.full_like(ev.cv_cost, np.nan)
    alive = list(evs)
    for f in range(folds):
        tr = train.for_prompts(pids[fold != f])
        replay = Replay(train.for_prompts(pids[fold == f]).dense())
        rows = np.array([where[p] for p in replay.view.prompt_ids])
        fold_memo: dict[int, Policy] = {}
        for ev in list(alive):
            try:
                c, q = _run(ev, ev.candidate.fitted(tr, fold_memo), replay)
            except (CallwiseError, ValueError, ArithmeticError) as e:
                notes.append(f"{ev.name} dropped: on training fold {f + 1} of {folds}: {type(e).__name__}: {e}")
                alive.remove(ev)
                step(f"fold {f + 1}/{folds}: {ev.name} (dropped)", folds - f + 1)
                continue
            assert ev.cv_cost is not None and ev.cv_quality is not None
            ev.cv_cost[rows], ev.cv_quality[rows] = c, q
            step(f"fold {f + 1}/{folds}: {ev.name}")
    return alive, pids, notes


def evaluate_test(evs: list[Evaluated], replay: Replay, on_step: Callable[..., None] | None = None) -> list[str]:
    """Run every configuration of every (fully fitted) candidate once on the test split's replay;
    returns notes on candidates that could not run there. ``on_step(what)`` after each candidate."""
    step = on_step or (lambda *_: None)
    notes = []
    for ev in evs:
        try:
            ev.test_cost, ev.test_quality = _run(ev, ev.fitted, replay)
        except CallwiseError as e:
            notes.append(f"{ev.name} has no test figures: {e}")
        step(f"test {ev.name}")
    return notes


__all__ = ["MAX_POINTS", "Evaluated", "configurations", "crossfit", "evaluate_test", "fold_ids"]
