"""The core every family builds on: the outcome table, the frontier math, the policy and backend interface.

Nothing here knows a method: it holds the data currency (:class:`OutcomeTable`), the cost–quality
plane (hulls, zero router, oracle, AIQ, bootstrap intervals), :class:`Policy` with its registry,
:class:`Replay`, the fixed policies, calibration, policy files, splits, costs and budgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Each public name and the core module it comes from, imported on first use (PEP 562): the
#: ``callwise`` command and ``import callwise`` do not pay for pandas until a command needs it.
_LAZY = {
    **{n: "backend" for n in ("Backend", "Calls", "KnowsTruth", "Queries")},
    "BudgetLedger": "budget",
    **{n: "calibrate" for n in ("Calibration", "calibrate_budget", "calibrate_quality")},
    **{n: "costs" for n in ("COST_MODELS", "CostModel")},
    **{n: "errors" for n in ("CallwiseError", "DataError", "FormatError", "PolicyError")},
    **{n: "fixed" for n in ("Oracle", "RandomMix", "SingleModel")},
    **{n: "outcomes" for n in ("DenseView", "OutcomeTable", "write_parquet")},
    **{n: "policy" for n in ("Decisions", "Policy", "get_policy", "make", "policy_models", "register", "registry",
                             "single_call_decisions")},
    **{n: "policy_files" for n in ("PolicyFileError", "load_policy", "save_policy")},
    **{n: "prices" for n in ("ModelPrice", "PriceTable", "estimate_tokens")},
    "Replay": "replay",
    "split_outcomes": "split",
    "__version__": "version",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from .backend import Backend, Calls, KnowsTruth, Queries  # noqa: F401
    from .budget import BudgetLedger  # noqa: F401
    from .calibrate import Calibration, calibrate_budget, calibrate_quality  # noqa: F401
    from .costs import COST_MODELS, CostModel  # noqa: F401
    from .errors import CallwiseError, DataError, FormatError, PolicyError  # noqa: F401
    from .fixed import Oracle, RandomMix, SingleModel  # noqa: F401
    from .outcomes import DenseView, OutcomeTable, write_parquet  # noqa: F401
    from .policy import (  # noqa: F401
        Decisions,
        Policy,
        get_policy,
        make,
        policy_models,
        register,
        registry,
        single_call_decisions,
    )
    from .policy_files import PolicyFileError, load_policy, save_policy  # noqa: F401
    from .prices import ModelPrice, PriceTable, estimate_tokens  # noqa: F401
    from .replay import Replay  # noqa: F401
    from .split import split_outcomes  # noqa: F401
    from .version import __version__  # noqa: F401
