"""The core every family builds on: the outcome table, the frontier math, the policy and backend interface.

Nothing here knows a method: it holds the data currency (:class:`OutcomeTable`), the cost–quality
plane (hulls, zero router, oracle, AIQ, bootstrap intervals), :class:`Policy` with its registry,
:class:`Replay`, the fixed policies, calibration, policy files, splits, costs and budgets.
"""

from .backend import Backend, Calls, KnowsTruth, Queries
from .budget import BudgetLedger
from .calibrate import Calibration, calibrate_budget, calibrate_quality
from .costs import COST_MODELS, CostModel
from .errors import CallwiseError, DataError, FormatError, PolicyError
from .fixed import Oracle, RandomMix, SingleModel
from .outcomes import DenseView, OutcomeTable, write_parquet
from .policy import (
           Decisions,
           Policy,
           get_policy,
           make,
           policy_models,
           register,
           registry,
           single_call_decisions,
)
from .policy_files import PolicyFileError, load_policy, save_policy
from .prices import ModelPrice, PriceTable, estimate_tokens
from .replay import Replay
from .split import split_outcomes
from .version import __version__

__all__ = ["Backend", "BudgetLedger", "COST_MODELS", "Calibration", "CallwiseError", "Calls", "CostModel", "DataError",
           "Decisions", "DenseView", "FormatError", "KnowsTruth", "ModelPrice", "Oracle", "OutcomeTable", "Policy",
           "PolicyError", "PolicyFileError", "PriceTable", "Queries", "RandomMix", "Replay", "SingleModel",
           "__version__", "calibrate_budget", "calibrate_quality", "estimate_tokens", "get_policy", "load_policy",
           "make", "policy_models", "register", "registry", "save_policy", "single_call_decisions", "split_outcomes",
           "write_parquet"]
