"""Uncertainty cascades: answer with a cheap model, escalate when its answer looks unreliable.

METHODS.md section 2 (Ramírez, Birch, Titov). A chain of models S1 -> S2 -> ... -> L is called in
order; after stage k a query moves on when a *score* of stage k's answer is in the lowest share
of scores. The share comes from a per-query dollar budget (:mod:`callwise.cascades.thresholds`):

- two tiers: p = (b − c_S) / c_L, the quantile rule (routing: p = (b − c_S) / (c_L − c_S));
- n tiers: per-stage shares searched on calibration data under the budget.

Thresholds are set ``offline`` (quantiles of calibration scores, fitted on training data) or on a
``streaming`` batch (running quantiles over the batch in order, after a warm-up; two tiers). Both
run a budget guard: over a batch of N queries the spend stays within b·N — escalations are made
in order while their (expected) cost fits, and stop at the first that does not.

:class:`Escalation` is the shared machinery; a family only says what the score of an answer is:

- :class:`ConfidenceCascade` (``confidence-cascade``): the model's own confidence — a recorded
  confidence, the first-token margin, or the agreement of several samples (:mod:`callwise.cascades.signals`);
- :class:`OracleCascade` (``oracle-cascade``): escalate exactly when S is wrong and L right (an
  upper bound that reads the recorded truth);
- the learned baselines in :mod:`callwise.cascades.learned`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..core.backend import Backend, Calls, KnowsTruth, Queries
from ..core.budget import BudgetLedger
from ..core.costs import CostModel
from ..core.errors import PolicyError
from ..core.fixed import train_cheapest_and_best
from ..core.hashing import query_uniforms
from ..core.money import usd
from ..core.outcomes import DenseView, OutcomeTable
from ..core.policy import Decisions, Policy, register, single_call_decisions
from .signals import SignalError, make_signal
from .thresholds import (
    _GUARD_RTOL,
    QuantileThreshold,
    ThresholdError,
    candidates,
    escalation_share,
    guard,
    paper_share,
    running_positions,
    search_chain_shares,
)

MODES = ("offline", "streaming")
#: How a streaming two-tier policy decides: the authors' three branches, or callwise's guarded rule.
STREAM_RULES = ("paper", "guarded")
#: Mean costs within this relative distance count as one price (they differ by token counts only):
#: a chain may list such models in either order, and ``callwise cascade`` puts the weaker first.
SAME_PRICE = 0.10
#: Budgets ``sweep()`` traces, evenly from the first model's cost to the whole chain's.
SWEEP_POINTS = 21


def tie_uniforms(ids: np.ndarray, model: str, seed: int) -> np.ndarray:
    """The uniforms that split ties between equal scores of ``model``'s answers (fixed per query)."""
    return query_uniforms(ids, seed, salt=f"tie:{model}")


class Escalation(Policy):
    """Base of cascades and two-tier routers that escalate on a score under a per-query budget.

    Settings:

    - ``models``: the chain, cheapest first (two or more; routers take exactly two). None:
      ``fit`` takes the cheapest and the best model of the training data.
    - ``budget``: dollars per query (the knob). The guard keeps a batch's spend within budget·N.
    - ``mode``: ``offline`` (thresholds from training quantiles) or ``streaming`` (running
      quantiles over the batch in order, nothing escalated during the first ``warmup`` queries).
    - ``stream_rule`` (streaming, two tiers): ``paper``, the authors' three branches (S when only
      S is affordable for the rest; L directly, without S, when the budget left covers L for every
      query left and L was better on training data; else S, escalating below the running quantile
      of the scores seen once more than ``warmup`` are seen), deciding one query at a time; or
      ``guarded``, callwise's rule (every query calls S, escalations under the budget guard, which
      never lets the batch's spend pass budget·N). The paper's rule compares mean training costs,
      so with costs that vary by query it can overspend a little or leave the last queries of a
      stream unanswered (no call, quality 0) when the budget runs out.
    - ``seed``: fixes the uniform draws that split ties between equal scores.
    - ``cost_model``: how the guard predicts the cost of a call it has not made yet: ``length``
      (per-model linear in the prompt's length, fitted on training costs) or ``mean``.

    Fitted state: ``models_``, ``cost_`` (mean training cost per model), ``reference_`` (sorted
    calibration scores per decision stage) and ``calibration_data_`` (positions, quality and cost of
    the calibration queries, for the n-tier share search).
    """

    family = "cascade"
    knob = "budget"
    routing: ClassVar[bool] = False

    models_: tuple[str, ...] | None = None
    cost_: np.ndarray | None = None
    costs_: CostModel | None = None
    reference_: list[np.ndarray] | None = None
    calibration_data_: dict[str, np.ndarray] | None = None

    def __init__(self, models: Sequence[str] | None = None, budget: float | None = None, mode: str = "offline",
                 warmup: int = 20, seed: int = 0, cost_model: str = "length", *, stream_rule: str = "paper") -> None:
        self.models = list(models) if models is not None else None
        self.budget = budget
        self.mode = mode
        self.warmup = warmup
        self.seed = seed
        self.cost_model = cost_model
        self.stream_rule = stream_rule

    # -- what a family defines -------------------------------------------------------------------
    def _fit_scores(self, view: DenseView) -> np.ndarray:
        """Calibration scores (n x K−1) of stages 0..K−2 on the training view (out-of-fold if learned)."""
        raise NotImplementedError

    def _stage_scores(self, k: int, queries: Queries, calls: Calls | None) -> np.ndarray:
        """Scores of stage k's answers for ``queries`` (``calls``: stage k's calls; None for routers)."""
        raise NotImplementedError

    # -- settings ---------------------------------------------------------------------------------
    def _check_settings(self) -> None:
        if self.cost_model not in ("length", "mean"):
            raise PolicyError(f"{self.name} cost_model must be 'length' or 'mean', got {self.cost_model!r}")
        if self.mode not in MODES:
            raise PolicyError(f"{self.name} mode must be one of {MODES}, got {self.mode!r}")
        if self.stream_rule not in STREAM_RULES:
            raise PolicyError(f"{self.name} stream_rule must be one of {STREAM_RULES}, got {self.stream_rule!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, (int, np.integer)) or self.warmup < 0:
            raise PolicyError(f"{self.name} warmup must be a whole number of queries >= 0, got {self.warmup!r}")
        if self.budget is not None:
            b = self.budget
            if isinstance(b, bool) or not isinstance(b, (int, float, np.number)) or not np.isfinite(b) or b < 0:
                raise PolicyError(f"{self.name} budget must be a number of dollars per query >= 0, got {b!r}")
        if self.models is not None:
            if len(self.models) < 2 or (self.routing and len(self.models) != 2):
                need = "exactly two models (small, large)" if self.routing else "at least two models, cheapest first"
                raise PolicyError(f"{self.name} needs {need}, got {self.models}")
            dup = sorted({m for m in self.models if self.models.count(m) > 1})
            if dup:
                raise PolicyError(f"{self.name} lists {dup} more than once: {self.models}")

    def _require_fitted(self) -> None:
        if self.models_ is None or self.cost_ is None or self.reference_ is None or self.costs_ is None:
            raise PolicyError(f"{self.name} is not fitted: call fit(train) first")

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, train: OutcomeTable) -> Escalation:
        """Learn mean costs, the score model (if any) and the calibration quantiles from training data."""
        self._check_settings()
        models = tuple(self.models) if self.models is not None else train_cheapest_and_best(train)
        if models[0] == models[-1]:
            raise PolicyError(f"{self.name}: the cheapest training model {models[0]!r} is also the best; "
                              "there is nothing to escalate to (name the models)")
        known = train.models()
        missing = [m for m in models if m not in known]
        if missing:
            raise PolicyError(f"{self.name} models {missing} are not in the training data; models are {known}")
        view = train.dense(models)
        quality, cost = view.quality[:, :, 0], view.cost[:, :, 0]
        gaps = ~np.isfinite(quality).all(axis=1)
        if gaps.any():
            raise PolicyError(f"{self.name} needs every chain model's outcome on every training prompt; "
                              f"{int(gaps.sum())} prompts lack one, e.g. {view.prompt_ids[gaps][:3].tolist()}")
        self.models_ = models
        cost = cost * self._stage_calls(len(models))[None, :]
        self.cost_ = cost.mean(axis=0)
        dearer = np.flatnonzero(self.cost_[:-1] > self.cost_[1:] * (1 + SAME_PRICE))
        if len(dearer) and not self.routing:
            k = int(dearer[0])
            raise PolicyError(f"{self.name} calls its chain cheapest first, but {models[k]!r} (mean "
                              f"{usd(self.cost_[k])}) costs more than the next, {models[k + 1]!r} "
                              f"({usd(self.cost_[k + 1])}); order the models by cost (models within "
                              f"{SAME_PRICE:.0%} count as one price)")
        self.costs_ = CostModel.fit(self.cost_model, view.prompts, cost, None, models, None)
        scores = np.asarray(self._fit_scores(view), dtype=float).reshape(len(view.prompt_ids), len(models) - 1)
        try:
            self.reference_ = [QuantileThreshold.calibrate(scores[:, k]).reference for k in range(scores.shape[1])]
        except ThresholdError as e:
            raise PolicyError(f"{self.name} calibration: {e}") from None
        positions = np.stack([QuantileThreshold(self.reference_[k]).positions(
            scores[:, k], tie_uniforms(view.prompt_ids, models[k], self.seed)) for k in range(scores.shape[1])], axis=1)
        self.calibration_data_ = {"positions": positions, "quality": quality, "cost": cost}
        return self

    # -- budget -> shares ----------------------------------------------------------------------------
    def budget_range(self) -> tuple[float, float]:
        """(cheapest, dearest) per-query spend: the first model alone, or every model of the chain."""
        self._require_fitted()
        assert self.cost_ is not None
        hi = self.cost_[-1] if self.routing else self.cost_.sum()
        return float(self.cost_[0]), float(hi)

    def shares(self, budget: float | np.ndarray) -> np.ndarray:
        """Escalation share of each decision stage at each budget: (len(budgets) x K−1)."""
        self._require_fitted()
        assert self.cost_ is not None and self.calibration_data_ is not None
        b = np.atleast_1d(np.asarray(budget, dtype=float))
        if len(self.cost_) == 2:
            try:
                return escalation_share(b, self.cost_[0], self.cost_[1], routing=self.routing)[:, None]
            except ThresholdError as e:
                raise PolicyError(f"{self.name}: {e}") from None
        cal = self.calibration_data_
        return search_chain_shares(cal["positions"], cal["quality"], cal["cost"], b)

    def sweep(self) -> list[Policy]:
        """Copies at budgets evenly from the first model's mean cost to the whole chain's."""
        lo, hi = self.budget_range()
        return [self.with_params(budget=float(b)) for b in np.linspace(lo, hi, SWEEP_POINTS)]

    # -- deciding -------------------------------------------------------------------------------------
    def positions(self, k: int, scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Positions of stage-k scores: among calibration scores (offline) or the batch so far (streaming)."""
        assert self.models_ is not None and self.reference_ is not None
        u = tie_uniforms(ids, self.models_[k], self.seed)
        try:
            if self.mode == "streaming":
                return running_positions(scores, u)
            return QuantileThreshold(self.reference_[k]).positions(scores, u)
        except ThresholdError as e:
            raise PolicyError(f"{self.name} stage {k} ({self.models_[k]}): {e}") from None

    def _stage_candidates(self, k: int, queries: Queries, calls: Calls | None, share: float,
                          backend: Backend) -> np.ndarray:
        """Which of ``queries`` (at stage k) ask to move on at this share."""
        scores = self._stage_scores(k, queries, calls)
        warm = self.warmup if self.mode == "streaming" else 0
        return candidates(self.positions(k, scores, queries.ids), np.array([share]), warm)[0]

    def decide(self, queries: Queries, backend: Backend) -> Decisions:
        """Run the chain stage by stage (one batched call per model), escalating under the guard."""
        self._check_settings()
        self._require_fitted()
        assert self.models_ is not None and self.cost_ is not None
        if self.budget is None:
            raise PolicyError(f"{self.name} needs a budget (dollars per query) to decide; set budget= or use sweep()")
        models = self.models_
        if self.mode == "streaming" and len(models) > 2:
            raise PolicyError(f"{self.name}: streaming thresholds are for two tiers; a {len(models)}-model chain "
                              "uses offline thresholds (mode='offline')")
        missing = [m for m in models if m not in backend.models]
        if missing:
            raise PolicyError(f"{self.name} models {missing} are not available; the backend has {list(backend.models)}")
        if self.mode == "streaming" and self.stream_rule == "paper" and getattr(self, "_ledger", None) is None:
            return self._decide_paper_stream(queries, backend)
        shares = self.shares(float(self.budget))[0]
        n = len(queries)
        if self.routing:
            return self._decide_routing(queries, backend, float(shares[0]))
        ledger = getattr(self, "_ledger", None)
        total = float(self.budget) * n if ledger is None else ledger.allowance(n, float(self.budget))
        assert self.costs_ is not None
        per = self._stage_calls(len(models))
        expected = self.costs_.predict(queries.prompts)
        first = self._call(backend, models[0], queries, int(per[0]))
        cost, quality = first.cost.astype(float).copy(), first.quality.astype(float).copy()
        answers = _first_sample(first.answers)
        col = [backend.models.index(m) for m in models]  # decisions are over every backend model
        calls = np.zeros((n, len(backend.models)), dtype=np.int64)
        calls[:, col[0]] = per[0]
        chosen = np.full(n, col[0], dtype=np.int64)
        at, stage_calls = np.arange(n), first
        for k in range(len(models) - 1):
            if len(at) == 0:
                break
            cand = self._stage_candidates(k, queries.take(at), stage_calls, float(shares[k]), backend)
            esc = guard(cand[None, :], expected[at, k + 1], np.array([total - cost.sum()]))[0]
            at = at[esc]
            if len(at) == 0:
                break
            stage_calls = self._call(backend, models[k + 1], queries.take(at), int(per[k + 1]))
            cost[at] += stage_calls.cost
            quality[at] = stage_calls.quality
            if answers is not None and stage_calls.answers is not None:
                answers[at] = _first_sample(stage_calls.answers)
            calls[at, col[k + 1]] = per[k + 1]
            chosen[at] = col[k + 1]
        if ledger is not None:
            ledger.record(n, float(self.budget), float(cost.sum()))
        return Decisions(queries.ids, tuple(backend.models), calls, cost, quality, chosen, answers, None)

    def with_ledger(self, ledger: BudgetLedger | None) -> Escalation:
        """A copy that keeps its budget across batches in ``ledger`` (a server's stream of one-query batches).

        The offline thresholds serve as they are; the guard then spends the slack earned by
        earlier batches instead of holding each batch to b·N alone.
        """
        new = self.with_params(mode="offline")
        new._ledger = ledger  # type: ignore[attr-defined]
        return new  # type: ignore[return-value]

    def cheaper(self, pressure: float) -> Policy:
        """The budget moved from this setting toward the first model's mean cost (no escalation)."""
        self._require_fitted()
        assert self.cost_ is not None
        p = min(max(float(pressure), 0.0), 1.0)
        if p == 0.0 or self.budget is None:
            return self
        lo = float(self.cost_[0])
        return self.with_params(budget=float(self.budget) - p * max(float(self.budget) - lo, 0.0))

    def _call(self, backend: Backend, model: str, queries: Queries, n_calls: int = 1) -> Calls:
        """Call ``model`` ``n_calls`` times per query (one Calls: the first answer, the summed cost)."""
        return backend.call(model, queries)

    def _stage_calls(self, n_models: int) -> np.ndarray:
        """Calls per query to each stage's model (costs, budgets and the guard count them all)."""
        return np.ones(n_models, dtype=np.int64)

    def _decide_paper_stream(self, queries: Queries, backend: Backend) -> Decisions:
        """The authors' three branches over the batch as a stream, one query at a time (two tiers).

        What :func:`~callwise.cascades.thresholds.paper_stream` computes offline for every budget:
        the branches compare mean training costs (``cost_``), the spend is charged what each call
        cost, and L counts as better when its training accuracy is higher.
        """
        assert self.models_ is not None and self.cost_ is not None and self.calibration_data_ is not None
        small, large = self.models_
        c1, c2 = float(self.cost_[0]), float(self.cost_[1])
        acc = np.asarray(self.calibration_data_["quality"], dtype=float).mean(axis=0)
        better = bool(acc[1] > acc[0])
        p = float(paper_share(float(self.budget), c1, c2, float(acc[0]), float(acc[1]), routing=self.routing))  # type: ignore[arg-type]
        per = self._stage_calls(2)
        n = len(queries)
        col = [backend.models.index(m) for m in self.models_]
        calls = np.zeros((n, len(backend.models)), dtype=np.int64)
        cost, quality = np.zeros(n), np.zeros(n)
        chosen = np.full(n, -1, dtype=np.int64)
        answers = np.full(n, None, dtype=object)
        route_scores = self._stage_scores(0, queries, None) if self.routing else None
        seen: list[float] = []  # sorted scores of the queries that went through S's branches
        remaining = float(self.budget) * n  # type: ignore[arg-type]
        # the one difference from the authors' comparisons: a budget equal to the spend still affords
        # the last call (rounding would otherwise leave it unanswered), as paper_stream(afford_rtol=...)
        tol = _GUARD_RTOL * abs(remaining)

        def answer(i: int, stage: int, c: Calls) -> None:
            nonlocal remaining
            cost[i] += float(c.cost[0])
            remaining -= float(c.cost[0])
            quality[i] = float(c.quality[0])
            chosen[i] = col[stage]
            calls[i, col[stage]] = per[stage]
            if c.answers is not None:
                answers[i] = _first_sample(c.answers)[0]  # type: ignore[index]

        for i in range(n):
            left = n - i
            one = queries.take(np.array([i]))
            if remaining < c1 - tol:
                continue  # nothing is affordable: no call, no answer
            if remaining - left * c1 <= 0:  # only S from here on
                first = self._call(backend, small, one, int(per[0]))
                score = route_scores[i] if route_scores is not None else self._stage_scores(0, one, first)[0]
                bisect.insort(seen, float(score))
                answer(i, 0, first)
                continue
            if remaining - left * c2 >= 0 and better:  # the budget covers L for every query left
                answer(i, 1, self._call(backend, large, one, int(per[1])))
                continue
            if route_scores is not None:
                score = float(route_scores[i])
                bisect.insort(seen, score)
                k = int(len(seen) * p)
                to_large = len(seen) > self.warmup and bisect.bisect_left(seen, score) <= k and remaining - c2 > 0
                answer(i, 1 if to_large else 0, self._call(backend, large if to_large else small, one,
                                                           int(per[1 if to_large else 0])))
                continue
            first = self._call(backend, small, one, int(per[0]))
            score = float(self._stage_scores(0, one, first)[0])
            bisect.insort(seen, score)
            answer(i, 0, first)
            k = int(len(seen) * p)
            if len(seen) > self.warmup and bisect.bisect_right(seen, score) <= k and remaining - c2 >= 0:
                answer(i, 1, self._call(backend, large, one, int(per[1])))  # escalate: L's answer replaces S's
        has_answers = any(a is not None for a in answers)
        return Decisions(queries.ids, tuple(backend.models), calls, cost, quality, chosen,
                         answers if has_answers else None, None)

    def _decide_routing(self, queries: Queries, backend: Backend, share: float) -> Decisions:
        assert self.models_ is not None and self.costs_ is not None
        cand = self._stage_candidates(0, queries, None, share, backend)
        expected = self.costs_.predict(queries.prompts)
        n, b = len(queries), float(self.budget)  # type: ignore[arg-type]
        ledger = getattr(self, "_ledger", None)
        slack = (b * n if ledger is None else ledger.allowance(n, b)) - expected[:, 0].sum()
        esc = guard(cand[None, :], np.maximum(expected[:, 1] - expected[:, 0], 0.0), np.array([slack]))[0]
        col = [backend.models.index(m) for m in self.models_]
        d = single_call_decisions(queries, backend, np.where(esc, col[1], col[0]))
        if ledger is not None:
            ledger.record(n, b, float(d.cost.sum()))
        return d

    # -- policy files ------------------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        self._require_fitted()
        assert self.reference_ is not None and self.calibration_data_ is not None and self.cost_ is not None
        arrays = {f"reference/{k}": r for k, r in enumerate(self.reference_)}
        arrays.update({f"calibration/{k}": v for k, v in self.calibration_data_.items()})
        arrays["cost"] = self.cost_
        assert self.costs_ is not None
        arrays["cost_model"] = self.costs_.coef
        return {"models": list(self.models_ or ())}, arrays

    @classmethod
    def from_state(cls, settings: dict[str, Any], fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> Policy:
        self = super().from_state(settings, fitted, arrays)
        assert isinstance(self, Escalation)
        self.models_ = tuple(fitted["models"])
        self.cost_ = np.asarray(arrays["cost"], dtype=float)
        self.costs_ = CostModel(self.cost_model, arrays["cost_model"])
        self.reference_ = [np.asarray(arrays[f"reference/{k}"]) for k in range(len(self.models_) - 1)]
        self.calibration_data_ = {k: np.asarray(arrays[f"calibration/{k}"]) for k in ("positions", "quality", "cost")}
        return self


def sampled_call(backend: Backend, model: str, queries: Queries, n_calls: int = 1) -> Calls:
    """``n_calls`` samples of ``model`` on every query as one :class:`Calls`: the first sample's answer,
    quality and confidence, every sample's answer (queries x samples) and the summed cost."""
    first = backend.call(model, queries)
    if n_calls == 1:
        return first
    more = [backend.call(model, queries, sample=s) for s in range(1, n_calls)]
    answers = None
    if first.answers is not None and all(c.answers is not None for c in more):
        answers = np.stack([first.answers, *[c.answers for c in more]], axis=1)  # type: ignore[list-item]
    cost = first.cost + sum(c.cost for c in more)
    return Calls(model, first.quality, cost, answers, first.latency, first.confidence, first.logprobs)


def _first_sample(answers: np.ndarray | None) -> np.ndarray | None:
    """The answer returned: the first sample's when a stage was sampled several times (queries x samples)."""
    if answers is None:
        return None
    a = np.array(answers, dtype=object)
    return a[:, 0] if a.ndim == 2 else a


def _has_confidence(train: OutcomeTable) -> bool:
    return "confidence" in train.frame.columns and bool(train.frame["confidence"].notna().all())


@register
class ConfidenceCascade(Escalation):
    """Escalate on the answering model's own confidence: no trained model, no extra call.

    Extra settings: ``signal`` (``recorded``: the data's confidence column, e.g. an answer
    log-probability; ``margin``: the first-token top-1 − top-2 margin from logprob payloads;
    ``agreement``: the majority share of ``samples`` samples) and ``signal_options`` (for margin:
    ``space``, ``labels``, ``fallback``). The margin is computed from the logprob payloads the
    backend returns with each call; its calibration reads margins recorded in the training data's
    ``confidence`` column (outcome tables hold no payloads). With ``samples`` > 1 each stage calls its model that many
    times, pays for every call, and answers with the first sample; the others only vote on how
    sure the model is.
    """

    name = "confidence-cascade"
    reads = frozenset({"prompt", "confidence", "answer"})  # prompt: the cost model's lengths

    def __init__(self, models: Sequence[str] | None = None, budget: float | None = None, mode: str = "offline",
                 warmup: int = 20, seed: int = 0, cost_model: str = "length", signal: str = "recorded",
                 signal_options: dict[str, Any] | None = None, samples: int = 1, *,
                 stream_rule: str = "paper") -> None:
        super().__init__(models, budget, mode, warmup, seed, cost_model, stream_rule=stream_rule)
        self.signal = signal
        self.signal_options = dict(signal_options or {})
        self.samples = samples

    def _check_settings(self) -> None:
        super()._check_settings()
        try:
            make_signal(self.signal, **self.signal_options)
        except SignalError as e:
            raise PolicyError(f"{self.name}: {e}") from None
        if isinstance(self.samples, bool) or not isinstance(self.samples, (int, np.integer)) or self.samples < 1:
            raise PolicyError(f"{self.name} samples must be a whole number >= 1, got {self.samples!r}")
        if self.signal == "agreement" and self.samples < 2:
            raise PolicyError(f"{self.name}: the agreement signal needs samples >= 2, got {self.samples}")

    def _scores(self, confidence: np.ndarray | None, answers: np.ndarray | None, ids: np.ndarray,
                model: str, logprobs: list[Any] | None = None) -> np.ndarray:
        try:
            return make_signal(self.signal, **self.signal_options).scores(
                confidence=confidence, logprobs=logprobs, answers=answers, ids=ids)
        except SignalError as e:
            raise PolicyError(f"{self.name}, model {model!r}: {e}") from None

    def _fit_scores(self, view: DenseView) -> np.ndarray:
        cols = []
        for k, model in enumerate(view.models[:-1]):
            conf = None if view.confidence is None else view.confidence[:, k, 0]
            if self.signal == "margin":
                # outcome tables hold no logprob payloads: calibrate on margins recorded as confidence
                if conf is None:
                    raise PolicyError(f"{self.name}: the margin signal is calibrated on margins recorded in the "
                                      "training data's 'confidence' column, and it has none")
                cols.append(make_signal("recorded").scores(confidence=conf, ids=view.prompt_ids))
                continue
            answers = None if view.answers is None else view.answers[:, k, :self.samples]
            cols.append(self._scores(conf, answers, view.prompt_ids, model))
        return np.stack(cols, axis=1)

    def _call(self, backend: Backend, model: str, queries: Queries, n_calls: int = 1) -> Calls:
        return sampled_call(backend, model, queries, n_calls)

    def needs_logprobs(self) -> bool:
        """Live, the margin reads first-token logprobs and ``recorded`` the answer's log-probability."""
        return self.signal in ("margin", "recorded")

    def _stage_calls(self, n_models: int) -> np.ndarray:
        """``samples`` calls to every model whose confidence decides; one to the last."""
        return np.r_[np.full(n_models - 1, int(self.samples)), 1].astype(np.int64)

    def _stage_scores(self, k: int, queries: Queries, calls: Calls | None) -> np.ndarray:
        assert calls is not None
        return self._scores(calls.confidence, calls.answers, queries.ids, calls.model, calls.logprobs)

    @classmethod
    def default(cls, train: OutcomeTable) -> ConfidenceCascade | None:
        """Bench runs it where the data records a confidence for every answer: cheapest -> best model."""
        if not _has_confidence(train):
            return None
        small, large = train_cheapest_and_best(train)
        return None if small == large else cls([small, large]).fit(train)


@register
class OracleCascade(Escalation):
    """The best a two-tier cascade can do: escalate exactly the queries S gets wrong and L right.

    It reads every model's recorded outcome, so it needs an offline backend; the budget guard
    still applies, so at a small budget it escalates the first such queries that fit.
    """

    name = "oracle-cascade"
    reads = frozenset({"prompt"})  # the cost model (cost_model="length")

    def _check_settings(self) -> None:
        super()._check_settings()
        if self.models is not None and len(self.models) != 2:
            raise PolicyError(f"{self.name} is a two-tier bound; give exactly two models, got {self.models}")

    def _fit_scores(self, view: DenseView) -> np.ndarray:
        q = view.quality[:, :, 0]
        return (q[:, 0] >= q[:, 1]).astype(float)[:, None]

    def _stage_candidates(self, k: int, queries: Queries, calls: Calls | None, share: float,
                          backend: Backend) -> np.ndarray:
        if not isinstance(backend, KnowsTruth):
            raise PolicyError(f"{self.name} reads recorded outcomes; it needs an offline backend such as Replay")
        assert self.models_ is not None
        quality, _ = backend.truth(queries)
        j = [backend.models.index(m) for m in self.models_]
        return quality[:, j[1]] > quality[:, j[0]]
