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

Importing callwise registers every family's policies, so ``make("knn" | "confidence-cascade" |
"vote" | ..., budget=...)`` finds them by name.
"""

# Importing a family registers its policies. In layout order (core's on the first import), so
# that registry() and bench list them that way:
# isort: off
from . import core  # noqa: F401
from . import routing  # noqa: E402,F401
from . import cascades  # noqa: E402,F401
from . import voting  # noqa: E402,F401
from . import aggregation  # noqa: E402,F401
from . import plan as _plan  # noqa: E402,F401  (the compositions register here)
# isort: on
from .aggregation import Metric, MetricAware, get_metric, register_metric
from .core import (
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
from .evaluation import bench, fit_policy
from .io import detect_format, load, load_sample, write_parquet
from .plan import (
    plan,  # the function: callwise.plan(...) is the Python twin of `callwise plan`
)
from .voting import BestOfK, FilterVote, Vote

__all__ = [
    "BestOfK", "CallwiseError", "DataError", "Decisions", "DenseView", "FilterVote", "FormatError", "Metric",
    "MetricAware", "Oracle", "OutcomeTable", "Policy", "PolicyError", "PriceTable", "Queries", "RandomMix", "Replay",
    "SingleModel", "Vote", "__version__", "bench", "detect_format", "fit_policy", "get_metric", "load", "load_policy",
    "load_sample", "make", "plan", "register", "register_metric", "registry", "save_policy", "split_outcomes",
    "write_parquet",
]
