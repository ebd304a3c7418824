"""Plan: one verdict across every family — what to run on this traffic, and what it saves.

``plan(data, budget=... | quality=..., risk=...)`` compares every family's candidates (single
models, the zero router, routers, cascades over hull chains, votes, aggregation, compositions) on
out-of-fold training outcomes, chooses under a budget or quality floor that holds with a stated
risk (Learn-then-Test bounds), and reports the choice on the test split: the cross-family
frontier, AIQ, the share of the zero-to-oracle gap closed, and what the choice saves.
"""

import sys
import types
from typing import Any

from .bounds import BOUNDS, lower, upper
from .candidates import Candidate, build_candidates, hull_models, plan_columns
from .compositions import LearnedEscalation, RouteThenEscalate, VoteAgreementCascade
from .crossfit import Evaluated, crossfit
from .planner import PlanResult, TaskPlan, plan
from .select import Pick, Selection, select

__all__ = ["BOUNDS", "Candidate", "Evaluated", "LearnedEscalation", "Pick", "RouteThenEscalate",
           "VoteAgreementCascade", "PlanResult", "Selection", "TaskPlan", "build_candidates",
           "crossfit", "hull_models", "lower", "plan", "plan_columns", "select", "upper"]


class _CallablePackage(types.ModuleType):
    """This package, callable as the function :func:`plan`: ``callwise.plan`` is the function when
    reached through ``callwise``'s lazy names, and this package once something imported it first;
    ``callwise.plan(...)`` works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return plan(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
