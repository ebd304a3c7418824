"""The non-predictive cascade with a noisy judge (RouterBench, arXiv 2403.12031; METHODS.md §1).

Models are called cheapest first. After each call a judge looks at the answer and accepts it when
its quality q >= τ (τ: by default the 0.95-quantile of all training qualities of the task); an
accepted answer is returned, a rejected one sends the query on to the next model. The judge is
wrong with probability ε: each verdict is flipped independently. A per-query cost cap stops the
chain early. The answer returned is the last one called, accepted or not.

Offline the judge reads the recorded quality, so the policy needs a backend that knows quality
(a :class:`~callwise.core.replay.Replay`); a live backend, whose calls return quality NaN until
scored, is refused rather than silently judged.

Design notes:

- The judge's mistakes are drawn from a counter-based hash of (seed, query id, model), not from a
  sequential generator: a query's verdicts do not depend on how the queries are batched or
  ordered, and every configuration of a sweep sees the same mistakes (common random numbers,
  so the swept curve is not jittered by fresh noise at each point).
- The cost cap compares the query's *actual* spend so far plus the next model's *expected*
  (mean training) cost with ``max_cost``, as a live system would: it knows what it has spent but
  not what the next call will cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.backend import Backend, KnowsTruth, Queries
from ..core.errors import PolicyError
from ..core.frontier import ndch, pareto_front
from ..core.hashing import pair_uniforms
from ..core.outcomes import OutcomeTable
from ..core.policy import Decisions, Policy, register

#: Relative slack of the cost-cap comparison, so a cap equal to a prefix's cost admits that prefix
#: despite rounding in the means.
_CAP_SLACK = 1e-9


def _number(value: object) -> float | None:
    """``value`` as a float, or None when it is not a real number (NaN counts as not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    v = float(value)
    return None if np.isnan(v) else v


def judge_uniforms(ids: np.ndarray, models: Sequence[str], seed: int) -> np.ndarray:
    """Uniforms in [0, 1), shape (len(ids), len(models)): one per (query id, model), fixed by ``seed``.

    Each value depends only on (seed, id, model), so results do not change with batching, query
    order or the chain a model sits in.
    """
    return pair_uniforms(ids, models, seed)


def _column_means(a: np.ndarray) -> np.ndarray:
    """NaN-ignoring column means (NaN for a column with no recorded value), without warnings."""
    ok = np.isfinite(a)
    n = ok.sum(axis=0)
    s = np.where(ok, a, 0.0).sum(axis=0)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


@register
class CascadeJudge(Policy):
    """Call models cheapest first until a noisy judge accepts the answer or the cost cap is hit.

    Settings:

    - ``models``: the chain, in calling order (cheapest first). None: ``fit`` builds it by
      ``chain``: ``hull`` (default) takes the models on the non-decreasing convex hull of the
      training (mean cost, mean quality) points, by cost; ``all`` takes every model by mean training
      cost, as the paper's cascade orders all models by unit price.
    - ``epsilon``: probability that the judge's verdict (accept / reject) is wrong.
    - ``tau``: accept when quality >= tau. None: ``fit`` sets it to the ``tau_quantile``-quantile
      of all training qualities (0.95 in the paper).
    - ``max_cost``: per-query cap in dollars (None: none). Before each call after the first, the
      query stops if its spend so far plus the next call's cost exceeds the cap: by ``cap_cost``,
      ``expected`` (default: the next model's mean training cost, what a live system knows) or
      ``actual`` (the next call's recorded cost, as RouterBench's ``run_cascading_router_for_eval``
      reads it — an offline backend only; the call stops when spend + cost >= the cap).
    - ``seed``: fixes the judge's mistakes.

    Fitted state (names ending in ``_``): ``chain_`` (the chain used when ``models`` is None),
    ``expected_cost_`` (mean training cost of every training model), ``tau_`` (the quantile τ).
    The knob is ``max_cost``; :meth:`sweep` caps at each chain prefix's expected cost.
    """

    name = "cascade-judge"
    family = "cascade"
    reads = frozenset()
    knob = "max_cost"

    chain_: tuple[str, ...] | None = None
    expected_cost_: dict[str, float] | None = None
    tau_: float | None = None

    def __init__(self, models: Sequence[str] | None = None, epsilon: float = 0.0, tau: float | None = None,
                 tau_quantile: float = 0.95, max_cost: float | None = None, seed: int = 0, *,
                 chain: str = "hull", cap_cost: str = "expected") -> None:
        self.models = list(models) if models is not None else None
        self.epsilon = epsilon
        self.tau = tau
        self.tau_quantile = tau_quantile
        self.max_cost = max_cost
        self.seed = seed
        self.chain = chain
        self.cap_cost = cap_cost

    # -- settings and fitted state -------------------------------------------------------------
    def _check_settings(self) -> None:
        eps, tq, cap = _number(self.epsilon), _number(self.tau_quantile), _number(self.max_cost)
        if eps is None or not 0.0 <= eps <= 1.0:
            raise PolicyError(f"cascade-judge epsilon (the judge's error rate) must be in [0, 1], got {self.epsilon!r}")
        if tq is None or not 0.0 < tq <= 1.0:
            raise PolicyError(f"cascade-judge tau_quantile must be in (0, 1], got {self.tau_quantile!r}")
        if self.tau is not None and _number(self.tau) is None:
            raise PolicyError(f"cascade-judge tau must be a number or None, got {self.tau!r}")
        if self.max_cost is not None and (cap is None or cap < 0.0):
            raise PolicyError(f"cascade-judge max_cost must be a number of dollars >= 0 or None, got {self.max_cost!r}")
        if self.chain not in ("hull", "all"):
            raise PolicyError(f"cascade-judge chain must be 'hull' or 'all', got {self.chain!r}")
        if self.cap_cost not in ("expected", "actual"):
            raise PolicyError(f"cascade-judge cap_cost must be 'expected' or 'actual', got {self.cap_cost!r}")
        if self.models is not None:
            if not self.models:
                raise PolicyError("cascade-judge needs at least one model in its chain")
            dup = sorted({m for m in self.models if self.models.count(m) > 1})
            if dup:
                raise PolicyError(f"cascade-judge chain lists {dup} more than once: {self.models}")

    @staticmethod
    def _unfitted(why: str) -> PolicyError:
        return PolicyError(f"cascade-judge needs {why}: call fit(train) first")

    def _chain(self) -> list[str]:
        if self.models is not None:
            return list(self.models)
        if self.chain_ is None:
            raise self._unfitted("a chain (with models=None it picks the hull models of the training data)")
        return list(self.chain_)

    def _tau(self) -> float:
        if self.tau is not None:
            return float(self.tau)
        if self.tau_ is None:
            raise self._unfitted("a threshold (with tau=None it takes a quantile of the training qualities)")
        return self.tau_

    def _expected_costs(self, chain: Sequence[str]) -> np.ndarray:
        if self.expected_cost_ is None:
            raise self._unfitted("the models' expected costs (from training data) for max_cost and sweep()")
        known = self.expected_cost_
        missing = [m for m in chain if m not in known]
        if missing:
            raise PolicyError(f"cascade-judge has no training cost for {missing}; it was trained on {sorted(known)}")
        return np.array([known[m] for m in chain], dtype=float)

    def fit(self, train: OutcomeTable) -> CascadeJudge:
        """Learn mean training costs, τ (if ``tau`` is None) and the chain (if ``models`` is None)."""
        self._check_settings()
        v = train.dense()
        quality, cost = v.quality[:, :, 0], v.cost[:, :, 0]
        mean_c, mean_q = _column_means(cost), _column_means(quality)
        if self.models is not None:
            missing = [m for m in self.models if m not in v.models]
            if missing:
                raise PolicyError(f"cascade-judge models {missing} are not in the training data; "
                                  f"available models are {list(v.models)}")
        ok = np.isfinite(mean_c) & np.isfinite(mean_q)
        self.expected_cost_ = {m: float(c) for m, c, k in zip(v.models, mean_c, ok) if k}
        hull = ndch(mean_c, mean_q)
        front = pareto_front(mean_c, mean_q)  # hull vertices are front points; front costs are distinct
        on_hull = front[np.isin(mean_c[front], hull.cost)]
        if self.chain == "all":
            by_cost = [j for j in np.argsort(mean_c, kind="stable") if ok[j]]
            self.chain_ = tuple(v.models[j] for j in by_cost)
        else:
            self.chain_ = tuple(v.models[j] for j in on_hull)
        self.tau_ = float(np.nanquantile(quality, float(self.tau_quantile)))
        return self

    # -- deciding --------------------------------------------------------------------------------
    def decide(self, queries: Queries, backend: Backend) -> Decisions:
        """Run the cascade stage by stage: one batched call per model on the still-undecided queries."""
        self._check_settings()
        chain = self._chain()
        missing = [m for m in chain if m not in backend.models]
        if missing:
            raise PolicyError(f"cascade-judge models {missing} are not available; the backend has {list(backend.models)}")
        tau, eps = self._tau(), float(self.epsilon)
        cap = None if self.max_cost is None else float(self.max_cost)
        expected = self._expected_costs(chain) if cap is not None else np.zeros(len(chain))
        flip = judge_uniforms(queries.ids, chain, self.seed) < eps  # (n, len(chain)): the judge errs here
        actual = None
        if cap is not None and self.cap_cost == "actual":
            if not isinstance(backend, KnowsTruth):
                raise PolicyError("cascade-judge cap_cost='actual' reads each call's recorded cost before making it: "
                                  "it needs an offline backend (Replay); use cap_cost='expected' live")
            _, truth_cost = backend.truth(queries)
            actual = truth_cost[:, [list(backend.models).index(m) for m in chain]]

        models = tuple(backend.models)
        n = len(queries)
        calls = np.zeros((n, len(models)), dtype=np.int64)
        cost, quality = np.zeros(n), np.full(n, np.nan)
        latency = np.zeros(n)
        answers = np.full(n, None, dtype=object)
        chosen = np.full(n, -1, dtype=np.int64)
        has_answers = has_latency = False
        pending = np.arange(n)
        for k, m in enumerate(chain):
            if k > 0 and cap is not None and actual is not None:  # RouterBench: stop when spend + cost >= cap
                pending = pending[cost[pending] + actual[pending, k] < cap]
            elif k > 0 and cap is not None:
                pending = pending[cost[pending] + expected[k] <= cap + _CAP_SLACK * abs(cap)]
            if len(pending) == 0:
                break
            got = backend.call(m, queries.take(pending))
            q = np.asarray(got.quality, dtype=float)
            if np.isnan(q).any():
                raise PolicyError(f"cascade-judge needs a quality signal (a judge or scorer) to accept answers, but "
                                  f"model {m!r} returned no quality for {int(np.isnan(q).sum())} queries; it cannot "
                                  "run on a backend without recorded quality")
            j = models.index(m)
            calls[pending, j] += 1
            cost[pending] += got.cost
            quality[pending] = q
            chosen[pending] = j
            if got.answers is not None:
                answers[pending], has_answers = got.answers, True
            if got.latency is not None:
                latency[pending] += got.latency
                has_latency = True
            accepted = (q >= tau) ^ flip[pending, k]
            pending = pending[~accepted]
        return Decisions(queries.ids, models, calls, cost, quality, chosen,
                         answers if has_answers else None, latency if has_latency else None)

    # -- knob ------------------------------------------------------------------------------------
    def sweep(self) -> list[Policy]:
        """Copies capped at each chain prefix's expected cost (c1, c1+c2, …, total), then uncapped.

        The first copy calls only the cheapest model. Because the cap compares actual spend, a
        query that overspent early can still be stopped at the total's cap, so the last copy
        (``max_cost=None``) is the full cascade.
        """
        self._check_settings()
        caps = np.cumsum(self._expected_costs(self._chain()))
        return [*(self.with_params(max_cost=float(c)) for c in caps), self.with_params(max_cost=None)]

    # -- policy files --------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Fitted state for a policy file: all of it is small and JSON-able (no arrays)."""
        fitted = {"chain_": None if self.chain_ is None else list(self.chain_),
                  "expected_cost_": self.expected_cost_, "tau_": self.tau_}
        return fitted, {}

    @classmethod
    def from_state(cls, settings: dict[str, Any], fitted: dict[str, Any],
                   arrays: dict[str, np.ndarray]) -> CascadeJudge:
        self = super().from_state(settings, fitted, arrays)
        assert isinstance(self, CascadeJudge)
        chain, costs, tau = fitted.get("chain_"), fitted.get("expected_cost_"), fitted.get("tau_")
        self.chain_ = None if chain is None else tuple(str(m) for m in chain)
        self.expected_cost_ = None if costs is None else {str(m): float(c) for m, c in costs.items()}
        self.tau_ = None if tau is None else float(tau)
        return self

    @classmethod
    def default(cls, train: OutcomeTable) -> CascadeJudge | None:
        """ε = 0.05 (a fairly good judge) over the hull chain; None with fewer than two models."""
        return cls(epsilon=0.05) if len(train.models()) >= 2 else None
