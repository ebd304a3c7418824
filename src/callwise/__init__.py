"""callwise: spend LLM calls wisely.

Evaluate LLM call policies (routing, cascades, votes, per-module model selection) on recorded
outcomes and show the cost–quality trade-off honestly. The public API:

- :func:`load` -> :class:`OutcomeTable` (the one data currency; :mod:`callwise.io` loaders);
- :mod:`callwise.frontier` (hulls, zero router, oracle, AIQ, bootstrap CIs);
- :class:`Policy` and the registry (:mod:`callwise.policies`), run against a backend
  (:class:`Replay` offline);
- :func:`bench` / :func:`split_outcomes` (what ``callwise bench`` does);
- predictive routers (``make("knn" | "linear" | "mlp" | "mf" | "threshold", budget=...)``),
  :func:`fit_policy` (what ``callwise fit`` does), :func:`save_policy` / :func:`load_policy`
  (open policy files).
"""

__version__ = "0.1.0"

from .backends import Queries, Replay  # noqa: E402
from .bench import bench, split_outcomes  # noqa: E402
from .errors import CallwiseError, DataError, FormatError, PolicyError  # noqa: E402
from .fitting import fit_policy  # noqa: E402
from .io import detect_format, load, write_parquet  # noqa: E402
from .metrics import Metric, get_metric, register_metric  # noqa: E402
from .outcomes import DenseView, OutcomeTable  # noqa: E402
from .policies import (  # noqa: E402
    BestOfK,
    Decisions,
    FilterVote,
    MetricAware,
    Oracle,
    Policy,
    RandomMix,
    SingleModel,
    Vote,
    make,
    register,
    registry,
)
from .policy_io import load_policy, save_policy  # noqa: E402
from .prices import PriceTable  # noqa: E402
from .sample import load_sample  # noqa: E402

__all__ = [
    "BestOfK", "CallwiseError", "DataError", "FilterVote", "Vote", "Decisions", "DenseView", "FormatError", "MetricAware", "Oracle", "OutcomeTable", "Policy",
    "PolicyError", "PriceTable", "Queries", "RandomMix", "Replay", "SingleModel", "__version__", "bench",
    "Metric", "detect_format", "fit_policy", "get_metric", "load", "register_metric", "load_policy", "load_sample", "make", "register", "registry",
    "save_policy", "split_outcomes", "write_parquet",
]
