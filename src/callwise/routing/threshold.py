"""Two-model threshold routers as RouteLLM frames them: a strong-win score and a threshold.

The score of a prompt is s(x) = q̂_strong(x) − q̂_weak(x) from any scorer of
:mod:`callwise.routing.scorers` (fitted, cross-validated and calibrated exactly as in
:mod:`callwise.routing.router`, restricted to the two models); the prompt goes to the strong model
when s(x) >= threshold. The threshold is set

- directly (``threshold``), or
- from a share of strong calls (``strong_share``, the knob): the (1 − share)-quantile of the
  scores on the calibration data (out-of-fold predictions of the training split), or
- from dollars (``budget`` per query): the largest share whose calibration mean cost fits.

With a per-model mean cost this is the λ rule of the n-model router restricted to two models; the
threshold view is the one RouteLLM's APGR / CPT metrics are defined on (:mod:`callwise.routing.apgr`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.backend import Backend, Queries
from ..core.calibrate import Calibration, calibrate_budget
from ..core.errors import PolicyError
from ..core.fixed import train_cheapest_and_best
from ..core.outcomes import OutcomeTable
from ..core.policy import Decisions, Policy, get_policy, register, single_call_decisions
from .router import Route, Router


@register
class ThresholdRouter(Policy):
    """Route to ``strong`` when q̂_strong − q̂_weak >= threshold, else to ``weak`` (see module doc)."""

    name = "threshold"
    family = "router"
    reads = frozenset({"prompt"})
    knob = "strong_share"

    def __init__(self, scorer: str = "mf", strong: str | None = None, weak: str | None = None,
                 threshold: float | None = None, strong_share: float | None = None, budget: float | None = None,
                 features: str | dict | None = "tfidf", hyper: dict[str, Any] | None = None, folds: int = 5,
                 seed: int = 0, steps: int = 11, cache: bool | str = "auto", cache_dir: str | None = None) -> None:
        self.scorer = scorer
        self.strong = strong
        self.weak = weak
        self.threshold = threshold
        self.strong_share = strong_share
        self.budget = budget
        self.features = features
        self.hyper = hyper
        self.folds = folds
        self.seed = seed
        self.steps = steps
        self.cache = cache
        self.cache_dir = cache_dir

    def fit(self, train: OutcomeTable) -> "ThresholdRouter":
        if sum(x is not None for x in (self.threshold, self.strong_share, self.budget)) > 1:
            raise PolicyError("set at most one of threshold, strong_share and budget")
        if self.strong_share is not None and not 0.0 <= self.strong_share <= 1.0:
            raise PolicyError(f"strong_share must be in [0, 1], got {self.strong_share}")
        if len(train) == 0:
            raise PolicyError("cannot fit a router on an empty training set")
        cls = get_policy(self.scorer)
        if not issubclass(cls, Router):
            raise PolicyError(f"threshold routers need a router scorer (knn, linear, mlp, mf), got {self.scorer!r}")
        weak, strong = train_cheapest_and_best(train)
        strong, weak = self.strong or strong, self.weak or weak
        avail = train.models()
        for role, m in (("strong", strong), ("weak", weak)):
            if m not in avail:
                raise PolicyError(f"unknown {role} model {m!r}: the training data has {avail}")
        if strong == weak:
            raise PolicyError(f"the strong and weak models must differ (both are {strong!r})")
        inner = cls(features=self.features, models=[weak, strong], hyper=self.hyper, folds=self.folds,
                    seed=self.seed, cache=self.cache, cache_dir=self.cache_dir).fit(train)
        assert inner._calibration_data is not None
        oof, _, Q, C = inner._calibration_data
        self.inner_ = inner
        self.pair_ = (weak, strong)
        self.calibration_scores_ = np.sort(oof[:, 1] - oof[:, 0])
        self.calibration_ = self._calibrate(oof[:, 1] - oof[:, 0], Q, C)
        return self

    def _threshold_for_share(self, share: float) -> float:
        s = self.calibration_scores_
        if share <= 0:
            return float("inf")
        if share >= 1:
            return float("-inf")
        return float(np.quantile(s, 1.0 - share, method="higher"))

    def _calibrate(self, s: np.ndarray, Q: np.ndarray, C: np.ndarray) -> Calibration | None:
        """Largest-quality strong share within the budget, on the out-of-fold scores s of the training prompts."""
        if self.budget is None:
            return None
        shares = np.linspace(0.0, 1.0, 101)
        strong = np.stack([s >= self._threshold_for_share(a) for a in shares], axis=1).astype(int)
        rows = np.arange(len(Q))[:, None]
        return calibrate_budget(shares, C[rows, strong], Q[rows, strong], float(self.budget), knob="strong_share",
                                method="out-of-fold predictions on the training split")

    def effective_threshold(self) -> float:
        if not hasattr(self, "inner_"):
            raise PolicyError("threshold router is not fitted; call fit(train) first")
        if self.threshold is not None:
            return float(self.threshold)
        if self.strong_share is not None:
            return self._threshold_for_share(float(self.strong_share))
        if self.budget is not None:
            cal = self.calibration_
            if cal is None or cal.target != float(self.budget):
                raise PolicyError(f"this threshold router was calibrated for budget {cal.target if cal else None}; "
                                  "refit it to calibrate for another budget")
            return self._threshold_for_share(cal.value)
        return self._threshold_for_share(0.5)

    def scores(self, prompts: np.ndarray) -> np.ndarray:
        """Strong-win scores q̂_strong − q̂_weak."""
        qhat, _ = self.inner_.predict(prompts)
        return qhat[:, 1] - qhat[:, 0]

    def route(self, prompts: Sequence[str]) -> Route:
        """Choose weak or strong for each prompt (no calls made)."""
        thr = self.effective_threshold()
        qhat, chat = self.inner_.predict(prompts)
        strong = (qhat[:, 1] - qhat[:, 0]) >= thr
        return Route(self.pair_, [self.pair_[int(s)] for s in strong], qhat, np.asarray(chat), {"threshold": thr})

    def decide(self, queries: Queries, backend: Backend) -> Decisions:
        thr = self.effective_threshold()
        missing = [m for m in self.pair_ if m not in backend.models]
        if missing:
            raise PolicyError(f"model {missing[0]!r} is not available; the backend has {list(backend.models)}")
        strong = self.scores(queries.prompts) >= thr
        idx = np.array([backend.models.index(m) for m in self.pair_])
        return single_call_decisions(queries, backend, idx[strong.astype(int)], tuple(backend.models))

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if not hasattr(self, "inner_"):
            raise PolicyError("threshold router is not fitted; call fit(train) first")
        inner_fitted, arrays = self.inner_.to_state()
        arrays["threshold/scores"] = self.calibration_scores_
        fitted = {"pair": list(self.pair_), "inner": {"policy": self.inner_.name, "settings": self.inner_.params(),
                                                      "fitted": inner_fitted},
                  "calibration": self.calibration_.to_dict() if self.calibration_ else None}
        return fitted, arrays

    @classmethod
    def from_state(cls, settings: dict[str, Any], fitted: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> "ThresholdRouter":
        self = super().from_state(settings, fitted, arrays)
        assert isinstance(self, ThresholdRouter)
        inner = fitted["inner"]
        self.inner_ = get_policy(inner["policy"]).from_state(inner["settings"], inner["fitted"], arrays)
        self.pair_ = tuple(fitted["pair"])
        self.calibration_scores_ = np.asarray(arrays["threshold/scores"], float)
        cal = fitted.get("calibration")
        self.calibration_ = Calibration(**cal) if cal else None
        return self

    def sweep(self) -> list[Policy]:
        return [self.with_params(strong_share=float(a), threshold=None, budget=None)
                for a in np.linspace(0.0, 1.0, self.steps)]

    @classmethod
    def default(cls, train: OutcomeTable) -> "ThresholdRouter | None":
        weak, strong = train_cheapest_and_best(train)
        return None if strong == weak else cls()
