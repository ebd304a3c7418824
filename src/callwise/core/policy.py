"""The policy interface shared by every family (fixed, routers, cascades, votes, pipelines).

A policy decides which calls to make for a batch of queries and which answer to return. It is
batch-first and backend-agnostic: ``decide(queries, backend)`` returns :class:`Decisions` (models
called, cost, quality where known), so the same object is evaluated offline on
:class:`~callwise.core.replay.Replay` and run live later.

- ``fit(train)`` learns from a training outcome table (fixed policies learn nothing, or little);
  like scikit-learn, constructor arguments are plain settings and ``__init__`` does no work.
- A policy with a knob (a mixing weight, λ, a threshold, K) exposes it as ``knob`` and
  ``sweep()`` returns configured copies that trace its cost–quality curve.
- Policies are registered by name (:func:`register`) so the CLI, the server and the benchmarks
  find them the same way. ``Policy.default(train)`` builds the configuration that
  ``callwise bench`` evaluates (or None to skip the policy for that data).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, TypeVar

import numpy as np
import pandas as pd

from .backend import Backend, Queries
from .errors import PolicyError
from .outcomes import OPTIONAL_COLUMNS, OutcomeTable


@dataclass(frozen=True)
class Decisions:
    """What a policy did for each query of a batch.

    ``calls[i, j]`` counts the calls made to ``models[j]`` for query ``i``; ``chosen[i]`` is the
    index of the model whose answer is returned (-1 when the answer is an aggregate of several).
    ``quality`` is the quality of the returned answer (NaN where unknown, e.g. live).
    """

    query_ids: np.ndarray
    models: tuple[str, ...]
    calls: np.ndarray
    cost: np.ndarray
    quality: np.ndarray
    chosen: np.ndarray
    answers: np.ndarray | None = None
    latency: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.query_ids)

    def point(self) -> tuple[float, float]:
        """(mean cost per query, mean quality): the policy's point in the cost–quality plane."""
        return float(np.mean(self.cost)), float(np.mean(self.quality))

    def to_frame(self) -> pd.DataFrame:
        """One row per query: id, chosen model, cost, quality, and calls per model."""
        chosen = np.array([self.models[c] if c >= 0 else None for c in self.chosen], dtype=object)
        df = pd.DataFrame({"prompt_id": self.query_ids, "model": chosen, "cost": self.cost, "quality": self.quality})
        for j, m in enumerate(self.models):
            df[f"calls:{m}"] = self.calls[:, j]
        return df


def single_call_decisions(queries: Queries, backend: Backend, choice: np.ndarray,
                          models: tuple[str, ...] | None = None) -> Decisions:
    """Decisions of a policy that calls exactly one model per query: ``choice[i]`` indexes ``models``.

    Makes one batched backend call per distinct chosen model (vectorised over its queries).
    """
    models = tuple(models or backend.models)
    n = len(queries)
    cost, quality = np.zeros(n), np.full(n, np.nan)
    latency = np.full(n, np.nan)
    answers = np.full(n, None, dtype=object)
    has_answers = has_latency = False
    for j in np.unique(choice):
        sel = np.flatnonzero(choice == j)
        got = backend.call(models[j], queries.take(sel))
        cost[sel], quality[sel] = got.cost, got.quality
        if got.answers is not None:
            answers[sel], has_answers = got.answers, True
        if got.latency is not None:
            latency[sel], has_latency = got.latency, True
    calls = np.zeros((n, len(models)), dtype=np.int64)
    calls[np.arange(n), choice] = 1
    return Decisions(queries.ids, models, calls, cost, quality, choice.astype(np.int64),
                     answers if has_answers else None, latency if has_latency else None)


class Policy(ABC):
    """Base class of every policy. Subclasses set ``name`` and implement :meth:`decide`."""

    name: ClassVar[str] = "policy"
    family: ClassVar[str] = "fixed"
    knob: ClassVar[str | None] = None
    #: The optional outcome-table columns (:data:`~callwise.core.outcomes.OPTIONAL_COLUMNS`) that some
    #: configuration of this policy reads, in ``fit`` or through its backend's calls (answers,
    #: confidence): a command loads only the union of its policies' (:func:`columns_read_by`). The
    #: default is every one, so a policy that does not declare its own sees the whole table; each
    #: registered policy declares its own, and ``tests/test_columns_read.py`` holds every declaration
    #: to account (fitting and deciding on only these columns gives the decisions of the whole table).
    reads: ClassVar[frozenset[str]] = frozenset(OPTIONAL_COLUMNS)

    def fit(self, train: OutcomeTable) -> "Policy":
        """Learn from recorded training outcomes; returns self."""
        return self

    @abstractmethod
    def decide(self, queries: Queries, backend: Backend) -> Decisions:
        """Decide and make the calls for a batch of queries."""

    def params(self) -> dict[str, Any]:
        """The policy's settings, JSON-serialisable (public attributes not starting with '_')."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and not k.endswith("_")}

    def sweep(self) -> list["Policy"]:
        """Configured copies that trace the policy's curve (just itself when it has no knob)."""
        return [self]

    def with_params(self, **params: Any) -> "Policy":
        """A copy with some settings changed (fitted state is shared, not re-fitted)."""
        new = copy.copy(self)
        for k, v in params.items():
            if not hasattr(new, k):
                raise PolicyError(f"{self.name} has no setting {k!r}; settings are {sorted(self.params())}")
            setattr(new, k, v)
        return new

    def at_knob(self, value: float) -> "Policy":
        """A copy with the knob set to ``value``: what a server serves as ``callwise/NAME@VALUE``."""
        if self.knob is None:
            raise PolicyError(f"{self.name} has no knob to set (got @{value})")
        return self.with_params(**{self.knob: value})

    def cheaper(self, pressure: float) -> "Policy":
        """A copy that spends less: ``pressure`` 0 is this setting, 1 the cheapest its knob reaches.

        A server moves a key's policy this way as its daily budget runs low. Policies without a
        cheaper setting return themselves.
        """
        return self

    def needs_logprobs(self) -> bool:
        """Whether live calls must return log-probabilities (a confidence signal reads them)."""
        return False

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Fitted state for a policy file: (JSON-able dict, named arrays). See :mod:`callwise.core.policy_files`.

        The base implementation serves policies that learn nothing; a policy with fitted
        attributes (names ending in ``_``) must override it and :meth:`from_state`.
        """
        fitted = [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]
        if fitted:
            raise PolicyError(f"{self.name} policies cannot be saved to a policy file yet")
        return {}, {}

    @classmethod
    def from_state(cls, settings: dict[str, Any], fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Policy":
        """Rebuild a fitted policy from :meth:`params` and :meth:`to_state` output."""
        try:
            return cls(**settings)
        except TypeError as e:
            raise PolicyError(f"settings {sorted(settings)} do not fit the {cls.name} policy: {e}") from None

    @classmethod
    def default(cls, train: OutcomeTable) -> "Policy | None":
        """The configuration ``callwise bench`` evaluates on this training data (None: skip)."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


P = TypeVar("P", bound=type[Policy])
_REGISTRY: dict[str, type[Policy]] = {}

#: The modules whose import registers callwise's own policies, in layout order: core's fixed
#: policies, then each family. ``import callwise`` imports none of them (start-up stays fast); the
#: first lookup (:func:`registry`, :func:`get_policy`, :func:`make`) imports them all, so every
#: policy is findable by name however callwise was imported. A policy of your own registers when
#: its module is imported (the :func:`register` decorator).
FAMILIES = ("callwise.core.fixed", "callwise.routing", "callwise.cascades", "callwise.voting",
            "callwise.aggregation", "callwise.plan")
_families_loaded = False


def _load_families() -> None:
    global _families_loaded
    if not _families_loaded:
        import importlib

        for module in FAMILIES:
            importlib.import_module(module)
        _families_loaded = True


def _layout_rank(cls: type[Policy]) -> int:
    """Position of a policy's family in :data:`FAMILIES` (policies of your own come last)."""
    mod = cls.__module__
    for i, fam in enumerate(FAMILIES):
        root = fam if fam != "callwise.core.fixed" else "callwise.core"
        if mod == root or mod.startswith(root + "."):
            return i
    return len(FAMILIES)


def register(cls: P) -> P:
    """Class decorator: make a policy findable by its ``name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise PolicyError(f"a policy named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Policy]]:
    """Registered policy classes by name, family by family in layout order (core, routing, cascades,
    voting, aggregation, plan's compositions; then your own), each family's in registration order."""
    _load_families()
    return dict(sorted(_REGISTRY.items(), key=lambda kv: _layout_rank(kv[1])))  # stable: registration order within


def columns_read_by(policies: Iterable[str | Policy | type[Policy]]) -> frozenset[str]:
    """The optional columns a set of policies reads (names, instances or classes): the union of
    their :attr:`Policy.reads`."""
    out: set[str] = set()
    for p in policies:
        cls = get_policy(p) if isinstance(p, str) else (p if isinstance(p, type) else type(p))
        out |= cls.reads
    return frozenset(out)


def get_policy(name: str) -> type[Policy]:
    if name not in _REGISTRY:
        _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PolicyError(f"no policy named {name!r}; registered: {sorted(_REGISTRY)}") from None


def check_settings(policy: Policy) -> None:
    """Run the policy's own checks of its settings (``_check_settings`` or ``_check``, where it has
    them): a PolicyError for a bad type or range, before any call is made."""
    for name in ("_check_settings", "_check"):
        fn = getattr(policy, name, None)
        if callable(fn):
            fn()


def _takes_list(annotation: Any) -> bool:
    """Whether a constructor annotation (a string under ``from __future__ import annotations``) is a list of things."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return any(w in str(text) for w in ("Sequence[", "list[", "List[", "tuple[", "Tuple[", "Iterable["))


def coerce_params(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """Settings as a user types them, made what the constructor expects: a comma list
    (``models=small,large``) where the policy takes a list of things. A JSON list or a real list
    passes through; a setting that takes a single string is left as it is."""
    import inspect

    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return dict(params)
    out = dict(params)
    for k, v in params.items():
        p = sig.parameters.get(k)
        if isinstance(v, str) and p is not None and _takes_list(p.annotation):
            numbers = any(w in str(p.annotation) for w in ("float", "int"))
            out[k] = [_scalar(x.strip()) if numbers else x.strip() for x in v.split(",") if x.strip()]
    return out


def _scalar(text: str) -> Any:
    """One item of a comma list of numbers (``weights=0.3,0.7``); text that is no number stays text
    (the policy's own check names it)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def make(name: str, **params: Any) -> Policy:
    """Build a registered policy by name with its settings (comma lists accepted where a list is expected)."""
    cls = get_policy(name)
    return cls(**coerce_params(cls, params))


def policy_models(policy: Policy) -> list[str]:
    """The models a (fitted) policy may call: what a live backend needs endpoints for."""
    models = getattr(policy, "models_", None) or getattr(policy, "chain_", None)
    if models is None:
        one = getattr(policy, "model", None)
        models = [one] if isinstance(one, str) else (getattr(policy, "models", None) or [])
    return [str(m) for m in models]
