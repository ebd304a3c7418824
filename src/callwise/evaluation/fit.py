"""Fit one policy on recorded outcomes, calibrate it, and report how it does on held-out prompts.

:func:`fit_policy` is what ``callwise fit`` runs: split the data (the data's own train/test split,
a seeded split, a ``--test`` file, or no hold-out at all), fit the named policy on the training
part only (budget / quality calibration happens inside ``fit``, on training data), then run it
once on the test part and report its mean cost and quality with bootstrap confidence intervals
next to the best single model's. Save the result with :func:`callwise.core.policy_files.save_policy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import DataError, PolicyError
from ..core.fixed import cheapest_and_best
from ..core.frontier import mean_ci
from ..core.money import usd
from ..core.outcomes import OutcomeTable
from ..core.policy import Policy, coerce_params, get_policy
from ..core.progress import Counter, OnProgress
from ..core.replay import Replay
from ..core.split import split_outcomes


@dataclass
class FitReport:
    """What :func:`fit_policy` did: the fitted policy, the data used and the held-out evaluation."""

    policy: Policy
    data: dict[str, Any]
    split: dict[str, Any]
    test: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        cal = getattr(self.policy, "calibration_", None)
        return {"policy": self.policy.name, "settings": self.policy.params(), "data": self.data, "split": self.split,
                "calibration": cal.to_dict() if cal is not None else None, "test": self.test, "notes": self.notes}


def fit_policy(table: OutcomeTable, name: str, *, params: dict[str, Any] | None = None, task: str | None = None,
               budget: float | None = None, quality: float | None = None, fraction: float | None = None,
               holdout: bool = True, test: OutcomeTable | None = None, seed: int = 0, n_boot: int = 1000,
               level: float = 0.95, on_progress: OnProgress | None = None) -> FitReport:
    """Fit policy ``name`` (with ``params``) on the training part of ``table`` and evaluate it on the rest.

    ``budget`` (dollars per query) or ``quality`` (target mean quality) calibrate the policy's knob
    on training data. ``task`` restricts the data to one task (needed when tasks have different
    model sets). ``holdout=False`` fits on everything and reports no test figures.
    ``on_progress(done, total, what)`` (:mod:`callwise.core.progress`) after the fit (with its
    cross-validation and calibration) and after the held-out evaluation.
    """
    cls = get_policy(name)
    params = dict(params or {})
    if budget is not None and quality is not None:
        raise PolicyError("give a budget or a quality target, not both")
    if budget is not None:
        params["budget"] = budget
    if quality is not None:
        params["quality_target"] = quality
    if task is not None:
        if task not in table.tasks():
            raise DataError(f"no task {task!r} in the data; tasks are {table.tasks()}", column="task")
        table = table.for_task(task)
        test = test.for_task(task) if test is not None else None
    if holdout:
        train, test_t, info = split_outcomes(table, fraction=fraction, seed=seed, test=test)
    else:
        train, test_t, info = table, None, {"method": "none: fitted on all the data"}
    try:
        policy = cls(**coerce_params(cls, params))
    except TypeError as e:
        raise PolicyError(f"bad settings for policy {name!r}: {e}") from None
    has_test = test_t is not None and len(test_t) > 0
    counter = Counter(on_progress, 1 + has_test)
    policy.fit(train)
    counter(f"fit {name} on {int(train.frame['prompt_id'].nunique()):,} prompts")
    data = {"fingerprint": train.fingerprint(), "n_prompts": int(train.frame["prompt_id"].nunique()),
            "tasks": train.tasks(), "models": train.models(), "format": train.meta.get("format"),
            "costs_estimated": train.costs_estimated}
    report = FitReport(policy, data, info)
    if test_t is not None and len(test_t):
        report.test = evaluate(policy, test_t, n_boot=n_boot, seed=seed, level=level)
        counter(f"held-out evaluation on {report.test['n_prompts']:,} prompts")
        if budget is not None and report.test["cost"] > budget:
            report.notes.append(f"held-out mean cost {usd(report.test['cost'])} exceeds the budget {usd(budget)}: "
                                "calibration holds on training data, the test prompts differ")
    return report


def evaluate(policy: Policy, test: OutcomeTable, *, n_boot: int = 1000, seed: int = 0,
             level: float = 0.95) -> dict[str, Any]:
    """Mean cost and quality of a fitted policy on ``test`` with bootstrap CIs, and the single models' points."""
    replay = Replay(test)
    d = policy.decide(replay.queries(), replay)
    q, c = replay.truth(replay.queries())
    means_q, means_c = q.mean(axis=0), c.mean(axis=0)
    _, best = cheapest_and_best(means_c, means_q)
    cq = mean_ci(d.quality, n_boot=n_boot, seed=seed, level=level)
    cc = mean_ci(d.cost, n_boot=n_boot, seed=seed, level=level)
    shares = d.calls.mean(axis=0)
    return {"n_prompts": len(d), "cost": float(d.cost.mean()), "cost_ci": [float(x) for x in cc],
            "quality": float(d.quality.mean()), "quality_ci": [float(x) for x in cq], "level": level,
            "calls_share": {m: float(s) for m, s in zip(d.models, shares) if s > 0},
            "best_single_model": {"model": replay.models[best], "cost": float(means_c[best]),
                                  "quality": float(means_q[best])},
            "single_models": {m: {"cost": float(cm), "quality": float(qm)}
                              for m, cm, qm in zip(replay.models, means_c, means_q)}}
