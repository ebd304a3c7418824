"""callwise: spend LLM calls wisely.

Evaluate LLM call policies (routing, cascades, votes, metric-aware aggregation, per-module model
selection) on recorded outcomes and show the cost–quality trade-off honestly. One folder per
family over a small core (see ``docs/architecture.md``):

- :mod:`callwise.core`: :class:`OutcomeTable`, the frontier math (hulls, zero router, oracle,
  AIQ, bootstrap CIs), :class:`Policy` and its registry, :class:`Replay`, fixed policies,
  calibration, policy files (:func:`save_policy` / :func:`load_policy`), :func:`split_outcomes`;
- :mod:`callwise.io`: :func:`load` and the loaders, the bundled sample (:func:`load_sample`);
- the families :mod:`callwise.routing`, :mod:`callwise.cascades`, :mod:`callwise.voting`,
  :mod:`callwise.aggregation`, :mod:`callwise.pipelines`; live runs and serving in
  :mod:`callwise.live`;
- :mod:`callwise.evaluation`: :func:`bench` and :func:`fit_policy` (``callwise bench`` / ``fit``);
- :mod:`callwise.plan`: :func:`plan` (``callwise plan``), one verdict across every family, and the
  compositions of families (route-then-escalate, the vote-agreement cascade, a learned escalation).

Importing callwise is cheap: each name below is imported when first used (``callwise.load`` imports
the loaders, not the families). The policy registry imports every family on its first lookup, so
``make("knn" | "confidence-cascade" | "vote" | ..., budget=...)`` finds them by name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Each public name and the module it comes from (imported on first use: PEP 562).
_LAZY = {
    **{n: "callwise.aggregation" for n in ("Metric", "MetricAware", "get_metric", "register_metric")},
    **{n: "callwise.core" for n in (
        "CallwiseError", "DataError", "Decisions", "DenseView", "FormatError", "Oracle", "OutcomeTable", "Policy",
        "PolicyError", "PriceTable", "Queries", "RandomMix", "Replay", "SingleModel", "__version__", "load_policy",
        "make", "register", "registry", "save_policy", "split_outcomes")},
    **{n: "callwise.evaluation" for n in ("bench", "fit_policy")},
    **{n: "callwise.io" for n in ("detect_format", "load", "load_sample", "write_parquet")},
    "plan": "callwise.plan",  # the function: callwise.plan(...) is the Python twin of `callwise plan`
    **{n: "callwise.voting" for n in ("BestOfK", "FilterVote", "Vote")},
}
#: The subpackages, reachable as attributes (callwise.routing, ...) once imported or on first use.
_SUBPACKAGES = ("core", "io", "routing", "cascades", "voting", "aggregation", "pipelines", "live", "evaluation")

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        # set after the import: importing the package callwise.plan set the attribute `plan` to the
        # package, and the public name is the function (the package stays in sys.modules)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"callwise.{name}")
    raise AttributeError(f"module 'callwise' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))


if TYPE_CHECKING:  # for type checkers and IDEs: the names as eager imports
    from .aggregation import Metric, MetricAware, get_metric, register_metric  # noqa: F401
    from .core import (  # noqa: F401
        CallwiseError,
        DataError,
        Decisions,
        DenseView,
        FormatError,
        Oracle,
        OutcomeTable,
        Policy,
        PolicyError,
        PriceTable,
        Queries,
        RandomMix,
        Replay,
        SingleModel,
        __version__,
        load_policy,
        make,
        register,
        registry,
        save_policy,
        split_outcomes,
    )
    from .evaluation import bench, fit_policy  # noqa: F401
    from .io import detect_format, load, load_sample, write_parquet  # noqa: F401
    from .plan import plan  # noqa: F401
    from .voting import BestOfK, FilterVote, Vote  # noqa: F401
