"""Compositions of families that none of the anchors offers, each a registered policy usable alone.

- :class:`RouteThenEscalate` (``route-escalate``): a router picks the first model of a cost-ordered
  chain for each query; that model's own confidence then decides, stage by stage, whether to
  escalate to the next model of the chain, exactly as the uncertainty cascade does (the same
  calibration quantiles and tie draws). Knob ``escalate``: the share of each stage's calibration
  scores below which a query moves on. ``escalate=0`` is the router; ``router=None`` starts every
  query at the chain's first model, which is the cascade at that share.
- :class:`VoteAgreementCascade` (``vote-agreement-cascade``), the cascade of the MoT data's authors
  (Yue et al. 2024): K samples of the cheap model; their majority answer stands unless their
  agreement (the majority's share) is low, then the next model answers. Budget knob, the
  cascade's budget rule and guard.
- :class:`LearnedEscalation` (``learned-escalation``): one escalation score learned from several
  signals — the answer's recorded confidence, the agreement of its samples, a router's predicted
  gain of the next model, and prompt features — by a logistic regression fitted on the training
  data (out-of-fold scores calibrate the thresholds), fed to the cascade's budget rule and guard.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from ..cascades import ConfidenceCascade, Escalation, sampled_call
from ..core.backend import Backend, Calls, Queries
from ..core.errors import PolicyError
from ..core.fixed import model_means
from ..core.hashing import texts_digest
from ..core.outcomes import DenseView, OutcomeTable
from ..core.policy import Decisions, Policy, get_policy, make, register
from ..voting import samples_per_model
from .candidates import hull_models

FAMILY = "composition"


def nest(prefix: str, policy: Policy, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """A fitted sub-policy's state inside its parent's: arrays under ``prefix:``."""
    fitted, arr = policy.to_state()
    arrays.update({f"{prefix}:{k}": v for k, v in arr.items()})
    return {"policy": policy.name, "settings": policy.params(), "fitted": fitted}


def unnest(prefix: str, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Policy:
    """Inverse of :func:`nest`."""
    sub = {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + ":")}
    return get_policy(doc["policy"]).from_state(doc["settings"], doc["fitted"], sub)


def _check_share(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= float(value) <= 1:
        raise PolicyError(f"{name} escalate must be a share in [0, 1], got {value!r}")


@register
class RouteThenEscalate(Policy):
    """A router picks the first model; the answered model's confidence decides whether to escalate.

    Settings: ``router`` (a registered router: knn, linear, mlp, mf, svm; None: no router, every
    query starts at the chain's first model), ``router_budget`` (dollars per query the router is
    calibrated to; None: its default λ), ``models`` (the chain, cheapest first; None: the training
    hull of single models), ``escalate`` (the knob), ``signal`` (the cascade's signal), ``seed``.
    """

    name = "route-escalate"
    family = FAMILY
    reads = frozenset({"prompt", "confidence", "answer"})
    knob = "escalate"

    def __init__(self, router: str | None = "linear", router_budget: float | None = None,
                 models: Sequence[str] | None = None, escalate: float = 0.2, signal: str = "recorded",
                 seed: int = 0) -> None:
        self.router = router
        self.router_budget = router_budget
        self.models = list(models) if models is not None else None
        self.escalate = escalate
        self.signal = signal
        self.seed = seed

    def fit(self, train: OutcomeTable) -> "RouteThenEscalate":
        _check_share(self.name, self.escalate)
        chain = list(self.models) if self.models is not None else hull_models(train)
        if len(chain) < 2:
            raise PolicyError(f"{self.name} needs a chain of at least two models; the training hull has {chain}")
        self.cascade_ = ConfidenceCascade(chain, budget=None, signal=self.signal, seed=self.seed).fit(train)
        self.models_ = tuple(self.cascade_.models_ or chain)
        self.router_ = None
        if self.router is not None:
            r = make(self.router, models=list(self.models_))
            if getattr(r, "family", None) != "router" or not hasattr(r, "choose"):
                raise PolicyError(f"{self.name} router must be a predictive router (knn, linear, mlp, mf, svm), "
                                  f"got {self.router!r}")
            self.router_ = r.fit(train)
        return self

    def _router_config(self) -> Policy | None:
        if self.router_ is None:
            return None
        if self.router_budget is None:
            return self.router_
        return self.router_.with_params(budget=float(self.router_budget), lam=None, quality_target=None)

    def start(self, queries: Queries) -> np.ndarray:
        """Chain index the router picks for each query (0 without a router)."""
        r = self._router_config()
        if r is None:
            return np.zeros(len(queries), dtype=np.int64)
        prompts = np.asarray(queries.prompts, dtype=object)
        qhat, chat = r.predict(prompts)  # type: ignore[attr-defined]
        return np.asarray(r.choose(prompts, qhat, chat), dtype=np.int64)  # type: ignore[attr-defined]

    def decide(self, queries: Queries, backend: Backend) -> Decisions:
        if not hasattr(self, "cascade_"):
            raise PolicyError(f"{self.name} is not fitted: call fit(train) first")
        _check_share(self.name, self.escalate)
        models = self.models_
        missing = [m for m in models if m not in backend.models]
        if missing:
            raise PolicyError(f"{self.name} models {missing} are not available; the backend has {list(backend.models)}")
        n = len(queries)
        stage = self.start(queries)
        col = [backend.models.index(m) for m in models]
        calls = np.zeros((n, len(backend.models)), dtype=np.int64)
        cost, quality = np.zeros(n), np.full(n, np.nan)
        chosen = np.full(n, -1, dtype=np.int64)
        answers = np.full(n, None, dtype=object)
        has_answers = False
        waiting = np.ones(n, dtype=bool)
        for k in range(len(models)):
            at = np.flatnonzero(waiting & (stage == k))
            if not len(at):
                continue
            got = backend.call(models[k], queries.take(at))
            cost[at] += got.cost
            quality[at] = got.quality
            chosen[at] = col[k]
            calls[at, col[k]] = 1
            if got.answers is not None:
                answers[at], has_answers = got.answers, True
            if k == len(models) - 1:
                waiting[at] = False
                break
            move = self.cascade_._stage_candidates(k, queries.take(at), got, float(self.escalate), backend)
            stage[at[move]] = k + 1
            waiting[at[~move]] = False
        return Decisions(queries.ids, tuple(backend.models), calls, cost, quality, chosen,
                         answers if has_answers else None, None)

    def sweep(self) -> list[Policy]:
        return [self.with_params(escalate=float(s)) for s in np.linspace(0.0, 1.0, 11)]

    def cheaper(self, pressure: float) -> Policy:
        p = min(max(float(pressure), 0.0), 1.0)
        return self if p == 0 else self.with_params(escalate=float(self.escalate) * (1 - p))

    def needs_logprobs(self) -> bool:
        return self.signal in ("margin", "recorded")

    @classmethod
    def default(cls, train: OutcomeTable) -> "RouteThenEscalate | None":
        """Where every answer has a confidence and the training hull has two models or more."""
        f = train.frame
        if "confidence" not in f.columns or not f["confidence"].notna().all() or len(hull_models(train)) < 2:
            return None
        return cls()

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if not hasattr(self, "cascade_"):
            raise PolicyError(f"{self.name} is not fitted: call fit(train) first")
        arrays: dict[str, np.ndarray] = {}
        router = self._router_config()
        if router is not None:
            router.effective_lam()  # calibrate to router_budget now: a policy file keeps no calibration data
        fitted = {"models": list(self.models_), "cascade": nest("cascade", self.cascade_, arrays),
                  "router": None if router is None else nest("router", router, arrays)}
        return fitted, arrays

    @classmethod
    def from_state(cls, settings: dict[str, Any], fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> Policy:
        self = super().from_state(settings, fitted, arrays)
        assert isinstance(self, RouteThenEscalate)
        self.models_ = tuple(fitted["models"])
        self.cascade_ = unnest("cascade", fitted["cascade"], arrays)  # type: ignore[assignment]
        self.router_ = None if fitted["router"] is None else unnest("router", fitted["router"], arrays)
        return self


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


def agreement(answers: np.ndarray) -> np.ndarray:
    """Per row, the share of its samples that give the majority answer (0 when none has an answer)."""
    a = np.asarray(answers, dtype=object)
    out = np.zeros(a.shape[0])
    for i, row in enumerate(a):
        got = [x for x in row if not _missing(x)]
        if got:
            out[i] = Counter(got).most_common(1)[0][1] / len(row)
    return out


def majority_first(answers: np.ndarray) -> np.ndarray:
    """Per row, the order of samples that puts the first sample of the majority answer first.

    Ties go to the answer seen first; missing answers (None/NaN) never win unless all are missing.
    """
    a = np.asarray(answers, dtype=object)
    order = np.tile(np.arange(a.shape[1]), (a.shape[0], 1))
    for i, row in enumerate(a):
        got = [x for x in row if not _missing(x)]
        if not got:
            continue
        top = Counter(got).most_common(1)[0][1]
        first = next(j for j, x in enumerate(row) if x in got and Counter(got)[x] == top)
        order[i] = np.r_[first, np.delete(np.arange(a.shape[1]), first)]
    return order


@register
class VoteAgreementCascade(ConfidenceCascade):
    """K samples of each stage's model: the majority answer stands unless the samples disagree.

    A :class:`~callwise.cascades.ConfidenceCascade` with ``signal="agreement"`` whose stages answer
    with the *majority* of their samples (the vote), not the first sample: what the MoT authors'
    cascade does (GPT-3.5 → GPT-4 on DATE, deferring when the sampled answers disagree). The last
    model is called once. Knob: ``budget``.
    """

    name = "vote-agreement-cascade"
    family = FAMILY
    reads = frozenset({"prompt", "answer"})

    def __init__(self, models: Sequence[str] | None = None, budget: float | None = None, mode: str = "offline",
                 warmup: int = 20, seed: int = 0, cost_model: str = "length", samples: int = 5, *,
                 stream_rule: str = "paper") -> None:
        super().__init__(models, budget, mode, warmup, seed, cost_model, signal="agreement", samples=samples,
                         stream_rule=stream_rule)

    def params(self) -> dict[str, Any]:
        p = super().params()
        p.pop("signal", None)
        p.pop("signal_options", None)
        return p

    def _fit_scores(self, view: DenseView) -> np.ndarray:
        if view.answers is None or view.answers.shape[2] < self.samples:
            have = 0 if view.answers is None else view.answers.shape[2]
            raise PolicyError(f"{self.name} needs {self.samples} recorded samples with answers per prompt, got {have}")
        return super()._fit_scores(view)

    def _scores(self, confidence: np.ndarray | None, answers: np.ndarray | None, ids: np.ndarray,
                model: str, logprobs: list[Any] | None = None) -> np.ndarray:
        """The majority's share of *all* K samples: a sample without an answer counts as dissent."""
        if answers is None or np.asarray(answers).ndim != 2:
            raise PolicyError(f"{self.name}, model {model!r}: the agreement signal needs {self.samples} sampled answers")
        return agreement(answers)

    def fit(self, train: OutcomeTable) -> "VoteAgreementCascade":
        super().fit(train)
        # calibration outcomes: a stage answers with its majority, so its quality is the majority's
        view = train.dense(self.models_)
        assert self.calibration_data_ is not None and view.answers is not None
        q = self.calibration_data_["quality"].copy()
        for k in range(len(self.models_ or ()) - 1):  # type: ignore[arg-type]
            a = view.answers[:, k, :self.samples]
            pick = majority_first(a)[:, 0]
            q[:, k] = view.quality[np.arange(len(pick)), k, pick]
        self.calibration_data_["quality"] = q
        return self

    def _call(self, backend: Backend, model: str, queries: Queries, n_calls: int = 1) -> Calls:
        if n_calls == 1:
            return backend.call(model, queries)
        got = [backend.call(model, queries, sample=s) for s in range(n_calls)]
        if any(c.answers is None for c in got):
            raise PolicyError(f"{self.name}: the agreement signal needs the answers of {model}'s samples")
        answers = np.stack([c.answers for c in got], axis=1)  # type: ignore[misc]
        qual = np.stack([c.quality for c in got], axis=1)
        order = majority_first(answers)
        rows = np.arange(len(order))[:, None]
        first = got[0]
        return Calls(model, qual[rows[:, 0], order[:, 0]], sum(c.cost for c in got), answers[rows, order],
                     first.latency, first.confidence, first.logprobs)

    @classmethod
    def default(cls, train: OutcomeTable) -> "VoteAgreementCascade | None":
        """Where the cheapest model has 3+ sampled answers per prompt: cheapest -> best model."""
        f = train.frame
        if "answer" not in f.columns or not f["answer"].notna().any():
            return None
        models, cost, quality = model_means(train)
        small, large = models[int(np.argmin(cost))], models[int(np.argmax(quality))]
        if small == large:
            return None
        k = int(samples_per_model(f[f["model"] == small]).min())
        return cls([small, large], samples=min(k, 5)) if k >= 3 else None


#: The signals a learned escalation score may combine.
SIGNALS = ("confidence", "agreement", "router-gain", "prompt")
#: Confidences are clipped to [-CLIP, CLIP] before the regression (log-probabilities reach -inf).
CLIP = 50.0


@register
class LearnedEscalation(Escalation):
    """One escalation score learned from several signals, fed to the cascade's budget rule.

    Per stage k a logistic regression predicts that model k's answer is right from: its recorded
    confidence, the agreement of its ``samples`` sampled answers, a ``router``'s predicted quality
    gain of model k+1 over model k, and the router's prompt features — each where the data has it
    (``signals`` restricts them). Out-of-fold predictions on the training data calibrate the
    thresholds, so they are not set on scores the regression has memorised; the router's gain is
    out of fold too (its own cross-validation). Knob: ``budget``.
    """

    name = "learned-escalation"
    family = FAMILY
    reads = frozenset({"prompt", "confidence"})

    def __init__(self, models: Sequence[str] | None = None, budget: float | None = None, mode: str = "offline",
                 warmup: int = 20, seed: int = 0, cost_model: str = "length", router: str = "linear",
                 samples: int = 5, signals: Sequence[str] | None = None, alpha: float = 1.0, *,
                 stream_rule: str = "paper") -> None:
        super().__init__(models, budget, mode, warmup, seed, cost_model, stream_rule=stream_rule)
        self.router = router
        self.samples = samples
        self.signals = list(signals) if signals is not None else None
        self.alpha = alpha

    def _check_settings(self) -> None:
        super()._check_settings()
        bad = [s for s in (self.signals or []) if s not in SIGNALS]
        if bad:
            raise PolicyError(f"{self.name} signals must be among {list(SIGNALS)}, got {bad}")

    def _features(self, k: int, prompts: np.ndarray, confidence: np.ndarray | None, answers: np.ndarray | None,
                  qhat: np.ndarray, X: np.ndarray) -> np.ndarray:
        use = self.used_
        cols = []
        if "confidence" in use:
            if confidence is None:
                raise PolicyError(f"{self.name}: the confidence signal needs a confidence for every answer")
            # a log-probability may be -inf (an answer the model gave probability 0): keep it finite
            c = np.clip(np.nan_to_num(np.asarray(confidence, float), nan=0.0, posinf=CLIP, neginf=-CLIP), -CLIP, CLIP)
            cols.append(c[:, None])
        if "agreement" in use:
            if answers is None or np.asarray(answers).ndim != 2:
                raise PolicyError(f"{self.name}: the agreement signal needs {self.samples} sampled answers")
            cols.append(agreement(answers)[:, None])
        if "router-gain" in use:
            cols.append((qhat[:, k + 1] - qhat[:, k])[:, None])
        if "prompt" in use:
            cols.append(X)
        return np.hstack(cols)

    def _stage_calls(self, n_models: int) -> np.ndarray:
        s = int(self.samples) if "agreement" in getattr(self, "used_", ()) else 1
        return np.r_[np.full(n_models - 1, s), 1].astype(np.int64)

    def fit(self, train: OutcomeTable) -> "LearnedEscalation":
        self._check_settings()
        models = tuple(self.models) if self.models is not None else tuple(hull_models(train))
        view = train.dense(models)
        f = train.frame
        avail = ["router-gain", "prompt"]
        if "confidence" in f.columns and f["confidence"].notna().all():
            avail.insert(0, "confidence")
        if view.answers is not None and view.answers.shape[2] >= max(2, int(self.samples)):
            avail.insert(1 if avail[0] == "confidence" else 0, "agreement")
        want = self.signals if self.signals is not None else avail
        missing = [s for s in want if s not in avail]
        if missing:
            raise PolicyError(f"{self.name}: the data cannot give the signal(s) {missing}; it has {avail}")
        self.used_ = list(want)
        self._inputs_memo: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
        self.router_ = make(self.router, models=list(models)).fit(train)
        auto = self.models is None
        self.models = list(models)
        try:
            return super().fit(train)  # type: ignore[return-value]
        finally:
            if auto:
                self.models = None

    def _router_inputs(self, prompts: np.ndarray, oof: bool) -> tuple[np.ndarray, np.ndarray]:
        """(q̂, prompt features) of ``prompts``; the last few batches' are kept (every stage's), so the
        configurations of a sweep (copies sharing this dict) featurise a batch once."""
        memo = self.__dict__.setdefault("_inputs_memo", {})
        key = (oof, texts_digest(prompts))
        if key not in memo:
            if len(memo) >= 8:
                memo.pop(next(iter(memo)))
            memo[key] = self._compute_router_inputs(prompts, oof)
        return memo[key]

    def _compute_router_inputs(self, prompts: np.ndarray, oof: bool) -> tuple[np.ndarray, np.ndarray]:
        r = self.router_
        if oof:
            assert r._calibration_data is not None  # type: ignore[attr-defined]
            qhat = r._calibration_data[0]  # type: ignore[attr-defined]
        else:
            qhat = r.predict(prompts)[0]  # type: ignore[attr-defined]
        if "prompt" not in self.used_:
            return qhat, np.zeros((len(prompts), 0))
        X = r._featurise(r.featuriser_, prompts)  # type: ignore[attr-defined]
        return qhat, X

    def _fit_scores(self, view: DenseView) -> np.ndarray:
        from ..routing import make_scorer

        qhat, X = self._router_inputs(np.asarray(view.prompts, dtype=object), oof=True)
        n = len(view.prompt_ids)
        fold = np.random.default_rng(self.seed).permutation(n) % 5
        self.scorers_, cols = [], []
        for k in range(len(view.models) - 1):
            conf = None if view.confidence is None else view.confidence[:, k, 0]
            ans = None if view.answers is None else view.answers[:, k, :int(self.samples)]
            Z = self._features(k, view.prompts, conf, ans, qhat, X)
            y = view.quality[:, k, 0]
            oof = np.empty(n)
            for f in range(5):
                tr = fold != f
                oof[~tr] = make_scorer("linear", alpha=self.alpha, link="auto").fit(Z[tr], y[tr, None]).predict(Z[~tr])[:, 0]
            self.scorers_.append(make_scorer("linear", alpha=self.alpha, link="auto").fit(Z, y[:, None]))
            cols.append(oof)
        return np.stack(cols, axis=1)

    def _call(self, backend: Backend, model: str, queries: Queries, n_calls: int = 1) -> Calls:
        return sampled_call(backend, model, queries, n_calls)

    def _stage_scores(self, k: int, queries: Queries, calls: Calls | None) -> np.ndarray:
        assert calls is not None
        prompts = np.asarray(queries.prompts, dtype=object)
        qhat, X = self._router_inputs(prompts, oof=False)
        Z = self._features(k, prompts, calls.confidence, calls.answers, qhat, X)
        return self.scorers_[k].predict(Z)[:, 0]

    def needs_logprobs(self) -> bool:
        return "confidence" in getattr(self, "used_", ["confidence"])

    @classmethod
    def default(cls, train: OutcomeTable) -> "LearnedEscalation | None":
        """Where prompts are text and the training hull has two models or more (the hull chain)."""
        f = train.frame
        if "prompt" not in f.columns or not f["prompt"].map(lambda p: isinstance(p, str) and bool(p)).all():
            return None
        return cls(hull_models(train)) if len(hull_models(train)) >= 2 else None

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        from ..core.policy_files import pack

        fitted, arrays = super().to_state()
        fitted["used"] = list(self.used_)
        fitted["router"] = nest("router", self.router_, arrays)
        fitted["scorers"] = [{"settings": s.settings(), "state": pack(f"scorer/{k}", s.state(), arrays)}
                             for k, s in enumerate(self.scorers_)]
        return fitted, arrays

    @classmethod
    def from_state(cls, settings: dict[str, Any], fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> Policy:
        from ..core.policy_files import unpack
        from ..routing import scorer_from_state

        self = super().from_state(settings, fitted, arrays)
        assert isinstance(self, LearnedEscalation)
        self.used_ = list(fitted["used"])
        self.router_ = unnest("router", fitted["router"], arrays)
        self.scorers_ = [scorer_from_state(s["settings"], unpack(s["state"], arrays)) for s in fitted["scorers"]]
        return self


__all__ = ["FAMILY", "SIGNALS", "LearnedEscalation", "RouteThenEscalate", "VoteAgreementCascade", "majority_first",
           "nest", "unnest"]
