"""Fixed policies: one model, the oracle, and a random mixture of models."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .backend import Backend, KnowsTruth, Queries
from .errors import PolicyError
from .frontier import lambda_choice, oracle_choice
from .outcomes import OutcomeTable
from .policy import Decisions, Policy, register, single_call_decisions


def model_means(train: OutcomeTable) -> tuple[list[str], np.ndarray, np.ndarray]:
    v = train.dense()
    return list(v.models), np.nanmean(v.cost[:, :, 0], axis=0), np.nanmean(v.quality[:, :, 0], axis=0)


def cheapest_and_best(cost: np.ndarray, quality: np.ndarray) -> tuple[int, int]:
    """Indices of the cheapest model (ties to the better) and the best model (ties to the cheaper),
    from per-model mean costs and qualities."""
    return int(np.lexsort((-quality, cost))[0]), int(np.lexsort((cost, -quality))[0])


def train_cheapest_and_best(train: OutcomeTable) -> tuple[str, str]:
    """The cheapest and the best model by their mean cost and quality on the training data."""
    models, cost, quality = model_means(train)
    cheap, best = cheapest_and_best(cost, quality)
    return models[cheap], models[best]


@register
class SingleModel(Policy):
    """Send every query to one model."""

    name = "single"
    reads = frozenset()

    def __init__(self, model: str) -> None:
        self.model = model

    def decide(self, queries: Queries, backend: Backend) -> Decisions:
        if self.model not in backend.models:
            raise PolicyError(f"model {self.model!r} is not available; the backend has {list(backend.models)}")
        j = backend.models.index(self.model)
        return single_call_decisions(queries, backend, np.full(len(queries), j))


@register
class Oracle(Policy):
    """The oracle: per query the highest-quality model, ties to the cheapest (a bound, not a router).

    With ``lam`` set it instead takes argmax λ·q − c with the true qualities (a point on the
    oracle curve). Needs a backend that knows the truth (offline replay). When no model is right
    it routes to the cheapest model (see :func:`callwise.core.frontier.oracle_choice`).
    """

    name = "oracle"
    family = "oracle"
    reads = frozenset()
    knob = "lam"

    def __init__(self, lam: float | None = None) -> None:
        self.lam = lam

    def decide(self, queries: Queries, backend: Backend) -> Decisions:
        if not isinstance(backend, KnowsTruth):
            raise PolicyError("the oracle needs recorded outcomes (a Replay backend); it cannot run live")
        q, c = backend.truth(queries)
        choice = oracle_choice(q, c) if self.lam is None else lambda_choice(q, c, float(self.lam))
        return single_call_decisions(queries, backend, choice)


@register
class RandomMix(Policy):
    """Route each query to a model drawn at random with fixed weights (seeded).

    With two models the knob is ``weight``, the probability of the second: sweeping it from 0 to
    1 traces the chord between the two models' points (what the zero router's hull assumes).
    ``default(train)`` mixes the cheapest model with the best one on the training data.
    """

    name = "random-mix"
    reads = frozenset()
    knob = "weight"

    def __init__(self, models: Sequence[str], weight: float | None = None,
                 weights: Sequence[float] | None = None, seed: int = 0, steps: int = 11) -> None:
        self.models = list(models)
        self.weight = weight
        self.weights = list(weights) if weights is not None else None
        self.seed = seed
        self.steps = steps

    def _probabilities(self) -> np.ndarray:
        if self.weights is not None:
            p = np.asarray(self.weights, float)
            if len(p) != len(self.models) or (p < 0).any() or not np.isclose(p.sum(), 1.0):
                raise PolicyError(f"random-mix weights must be {len(self.models)} non-negative numbers summing to 1, got {self.weights}")
            return p
        if len(self.models) == 2 and self.weight is not None:
            if not 0.0 <= self.weight <= 1.0:
                raise PolicyError(f"random-mix weight must be in [0, 1], got {self.weight}")
            return np.array([1.0 - self.weight, self.weight])
        return np.full(len(self.models), 1.0 / len(self.models))

    def decide(self, queries: Queries, backend: Backend) -> Decisions:
        missing = [m for m in self.models if m not in backend.models]
        if missing or not self.models:
            raise PolicyError(f"random-mix models {missing or self.models} are not available; the backend has {list(backend.models)}")
        p = self._probabilities()
        rng = np.random.default_rng(self.seed)
        pick = rng.choice(len(self.models), size=len(queries), p=p)
        idx = np.array([backend.models.index(m) for m in self.models])
        return single_call_decisions(queries, backend, idx[pick])

    def sweep(self) -> list[Policy]:
        if len(self.models) != 2:
            return [self]
        return [self.with_params(weight=float(w), weights=None) for w in np.linspace(0.0, 1.0, self.steps)]

    @classmethod
    def default(cls, train: OutcomeTable) -> "RandomMix | None":
        cheap, best = train_cheapest_and_best(train)
        return None if cheap == best else cls([cheap, best])

