"""Predictive routers over any number of models: features -> q̂ per model -> λ-argmax decision rule.

A router is three separable parts:

1. a featuriser turns prompts into vectors (:mod:`callwise.routing.features`; TF-IDF + SVD by default);
2. a scorer predicts every model's quality q̂_j(x) (:mod:`callwise.routing.scorers`: knn, linear, mlp, mf);
3. the decision rule routes each prompt to argmax_j λ·q̂_j(x) − ĉ_j(x), ties to the cheaper model,
   where ĉ_j is the expected cost of model j learned on the training prompts (``cost_model``):
   its mean cost (``mean``), a per-model linear function of the prompt length (``length``), or
   RouterBench's per-token price proxy from a price table (``token-price``).

Sweeping λ traces the router's cost–quality curve. Fitting chooses the scorer's hyperparameters
by k-fold cross-validation on the training split only (criterion: the AIQ of the out-of-fold
λ-curve, ties by the Brier score), keeps the out-of-fold predictions as calibration data, and
refits on the whole training split. ``budget`` (dollars per query) or ``quality_target`` then set
λ on that calibration data (:mod:`callwise.core.calibrate`); the test split is never looked at.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from ..core.backend import Backend, Queries
from ..core.calibrate import Calibration, calibrate_budget, calibrate_quality, mix_mask
from ..core.costs import COST_MODELS, CostModel
from ..core.errors import PolicyError
from ..core.frontier import aiq, lambda_choice, ndch
from ..core.outcomes import OutcomeTable
from ..core.policy import Decisions, Policy, register, single_call_decisions
from .features import FeatureCache, Featuriser, make_featuriser
from .scorers import SCORERS, make_scorer, one_thread

#: Candidate weights s of the training-mean prior in q̂ = (1 − s)·scorer(x) + s·q̄ (chosen by CV).
#: s = 1 ignores the prompt: its λ-sweep is exactly the zero router's hull vertices.
SHRINK_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
N_SWEEP = 40
N_CALIBRATION = 400
#: How the CV fits its fold models: ``fast`` (default) with each scorer's :meth:`~.scorers.Scorer.cv_settings`
#: (the MLP's epochs and the SVM's solver passes capped by their ``CV_SAMPLE_BUDGET`` on large folds;
#: the other scorers unchanged), ``refit`` with the candidate's own settings (every fold fit exactly as
#: the final fit; before, the only mode).
CV_MODES = ("fast", "refit")
_FEATURE_MEMO: "OrderedDict[str, tuple[Featuriser, np.ndarray]]" = OrderedDict()


@dataclass(frozen=True)
class Route:
    """What a router decided for some prompts, with the numbers behind it."""

    models: tuple[str, ...]
    chosen: list[str]
    predicted_quality: np.ndarray  # (P, M)
    expected_cost: np.ndarray  # (P, M)
    setting: dict[str, float]  # the knob value used, e.g. {"lam": 0.02}

    def to_dicts(self) -> list[dict[str, Any]]:
        return [{"model": c, **self.setting,
                 "predicted_quality": dict(zip(self.models, map(float, q))),
                 "expected_cost": dict(zip(self.models, map(float, e)))}
                for c, q, e in zip(self.chosen, self.predicted_quality, self.expected_cost)]


# --------------------------------------------------------------------------------------------
# the λ rule, vectorised over a grid


def lambda_grid(qhat: np.ndarray, chat: np.ndarray, n: int) -> np.ndarray:
    """About n λ values covering every switch of the λ-argmax on these predictions, plus 0 and +inf.

    The switch points are λ = Δĉ/Δq̂ between model pairs. When there are few distinct ones (e.g.
    predictions that do not vary by prompt) the grid takes a λ between each consecutive pair, so
    no decision region is skipped; otherwise quantiles of them spread the grid where decisions
    change, so the sweep shows the whole curve at any cost scale.
    """
    dq = qhat[:, :, None] - qhat[:, None, :]
    dc = chat[:, :, None] - chat[:, None, :]
    ok = (dq > 1e-12) & (dc > 0)
    br = np.unique(dc[ok] / dq[ok]) if ok.any() else np.array([1.0])
    if len(br) <= n:
        mids = np.sqrt(br[1:] * br[:-1]) if len(br) > 1 else np.empty(0)
        inner = np.concatenate([br * (1 - 1e-9), mids, br * (1 + 1e-9)])
    else:
        inner = np.quantile(br, np.linspace(0.0, 1.0, max(n - 2, 1))) * (1 + 1e-9)
    return np.unique(np.concatenate([[0.0], inner, [np.inf]]))


def route_lambda(qhat: np.ndarray, chat: np.ndarray, lam: float) -> np.ndarray:
    """argmax_j λ·q̂_j − ĉ_j per prompt (ties to the cheaper model); λ = inf is argmax q̂."""
    if np.isinf(lam):
        return lambda_choice(qhat, chat * 1e-12, 1.0)
    return lambda_choice(qhat, chat, float(lam))


def lambda_choices(qhat: np.ndarray, chat: np.ndarray, lams: np.ndarray, block: int = 16) -> np.ndarray:
    """``route_lambda(qhat, chat, lam)`` for every λ of ``lams``: a (P, len(lams)) array of model indices.

    The same arithmetic as :func:`~callwise.core.frontier.lambda_choice` (so the same choices, ties
    included): with every prediction finite, a thousand prompts at a time over models sorted by cost;
    otherwise with the validity mask and NaN fill computed once and ``block`` finite λs at a time.
    """
    lams = np.asarray(lams, dtype=np.float64)
    out = np.empty((len(qhat), len(lams)), dtype=np.int64)
    ok = np.isfinite(qhat) & np.isfinite(chat)
    finite = np.flatnonzero(np.isfinite(lams))
    if ok.all() and len(finite):
        # every prediction finite (the usual case): the models of each prompt in ascending expected cost
        # (stable, so equal costs keep index order); the cheapest near-best model is then the first one
        # within the tolerance of the best utility, the same choice as the argmin over masked costs
        # below. Laid out models x prompts x λ, a thousand prompts at a time, so every pass runs over
        # contiguous memory that stays in cache (3x faster than the masked path on 12,000 prompts).
        order = np.argsort(chat, axis=1, kind="stable")
        qs = np.ascontiguousarray(np.take_along_axis(qhat, order, 1).T)
        cs = np.ascontiguousarray(np.take_along_axis(chat, order, 1).T)
        lf = lams[finite]
        M = qs.shape[0]
        for s in range(0, len(qhat), 1024):
            rows = slice(s, s + 1024)
            u = lf[None, None, :] * qs[:, rows, None]  # (M, rows, λ)
            u -= cs[:, rows, None]
            best = u.max(axis=0)
            thr = best - 1e-12 * np.maximum(1.0, np.abs(best))
            first = np.full(best.shape, M - 1, dtype=np.int64)
            for j in range(M - 2, -1, -1):
                first[u[j] >= thr] = j
            out[rows, finite] = np.take_along_axis(order[rows], first, 1)
        finite = finite[:0]
    qn, cn = np.nan_to_num(qhat), np.nan_to_num(chat)
    for i in range(0, len(finite), block):
        idx = finite[i:i + block]
        u = lams[idx][None, :, None] * qn[:, None, :] - cn[:, None, :]  # (P, B, M)
        u = np.where(ok[:, None, :], u, -np.inf)
        best = u.max(axis=2, keepdims=True)
        c = np.where(u >= best - 1e-12 * np.maximum(1.0, np.abs(best)), chat[:, None, :], np.inf)
        out[:, idx] = np.argmin(c, axis=2)
    for j in np.flatnonzero(~np.isfinite(lams)):
        out[:, j] = route_lambda(qhat, chat, float(lams[j]))
    return out


def sweep_outcomes(qhat: np.ndarray, chat: np.ndarray, Q: np.ndarray, C: np.ndarray,
                   lams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Realised (cost, quality) per prompt for each λ: two (P, len(lams)) arrays."""
    rows = np.arange(len(Q))
    choice = lambda_choices(qhat, chat, lams)
    return C[rows[:, None], choice], Q[rows[:, None], choice]


def curve_aiq(cost: np.ndarray, quality: np.ndarray, lo: float, hi: float) -> float:
    """AIQ (paper normalisation) of the hull of the mean points of per-prompt (cost, quality) columns."""
    return aiq(ndch(cost.mean(axis=0), quality.mean(axis=0)), lo, hi, "paper")


def _folds(n: int, k: int, seed: int) -> np.ndarray:
    """Fold index of each of n prompts (a seeded permutation cut into k near-equal folds)."""
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return fold


# --------------------------------------------------------------------------------------------
# the policy


class Router(Policy):
    """A predictive router (see the module docstring). Subclasses fix the scorer kind.

    Settings: ``features`` (featuriser spec, e.g. ``"tfidf"``, ``"tfidf:n_components=64"``,
    ``"embed"``, ``"embed:/path/to/model"``), ``models`` (route among these; default all),
    ``cost_model``, ``prices`` (price table for ``token-price``), ``lam`` (fixed λ), ``budget``
    (dollars per query) or ``quality_target``, ``hyper`` (fixed scorer settings: skips the CV),
    ``shrink`` (fixed prior weight s in q̂ = (1 − s)·scorer + s·training mean; default chosen by
    CV from ``SHRINK_GRID``, so a router whose prompt features carry no signal on held-out folds
    falls back towards the zero router instead of below it), ``selection`` (``"1se"``: keep the
    prompt-blind router unless CV shows a gain larger than one standard error), ``folds``,
    ``seed``, ``cache`` (``"auto"`` caches embeddings only, True/False always/never),
    ``cache_dir`` and ``cv`` (``"fast"``: fold fits with the scorer's cheaper CV settings, see
    :data:`CV_MODES`; ``"refit"``: every fold fitted exactly as the final fit). With none of
    lam/budget/quality_target set, λ is the one with the best
    calibration quality (the router's most accurate point).
    """

    family = "router"
    reads = frozenset({"prompt", "output_tokens"})  # output_tokens: cost_model="token-price"
    knob = "lam"
    scorer_kind: ClassVar[str] = "knn"

    def __init__(self, features: str | dict | None = "tfidf", models: Sequence[str] | None = None,
                 cost_model: str = "mean", prices: str | None = None, lam: float | None = None,
                 budget: float | None = None, quality_target: float | None = None,
                 hyper: dict[str, Any] | None = None, shrink: float | None = None, selection: str = "1se",
                 folds: int = 5, seed: int = 0,
                 cache: bool | str = "auto", cache_dir: str | None = None, cv: str = "fast") -> None:
        self.features = features
        self.models = list(models) if models is not None else None
        self.cost_model = cost_model
        self.prices = prices
        self.lam = lam
        self.budget = budget
        self.quality_target = quality_target
        self.hyper = dict(hyper) if hyper is not None else None
        self.shrink = shrink
        self.selection = selection
        self.folds = folds
        self.seed = seed
        self.cache = cache
        self.cache_dir = cache_dir
        self.cv = cv

    # ---- fitting ------------------------------------------------------------------------

    def _check_settings(self) -> None:
        if self.cost_model not in COST_MODELS:
            raise PolicyError(f"cost_model must be one of {COST_MODELS}, got {self.cost_model!r}")
        if sum(x is not None for x in (self.lam, self.budget, self.quality_target)) > 1:
            raise PolicyError("set at most one of lam, budget and quality_target")
        if self.lam is not None and not (self.lam >= 0):
            raise PolicyError(f"lam must be >= 0, got {self.lam}")
        if self.shrink is not None and not 0.0 <= self.shrink <= 1.0:
            raise PolicyError(f"shrink must be in [0, 1], got {self.shrink}")
        if self.selection not in ("1se", "best"):
            raise PolicyError(f"selection must be '1se' or 'best', got {self.selection!r}")
        if not isinstance(self.folds, int) or self.folds < 2:
            raise PolicyError(f"folds must be an integer >= 2, got {self.folds!r}")
        if self.cv not in CV_MODES:
            raise PolicyError(f"cv must be one of {', '.join(map(repr, CV_MODES))}, got {self.cv!r}")

    def _featurise(self, featuriser: Featuriser, prompts: Sequence[str]) -> np.ndarray:
        use = self.cache is True or (self.cache == "auto" and featuriser.kind != "tfidf")
        if use:
            return FeatureCache(self.cache_dir).transform(featuriser, list(prompts))
        return featuriser.transform(list(prompts))

    def _fit_features(self, prompts: np.ndarray) -> tuple[Featuriser, np.ndarray]:
        """Fit the featuriser on the training prompts and featurise them (memoised in-process).

        Several routers fitted on the same prompts (as in ``callwise bench``) share one fit: the
        featuriser is unsupervised and deterministic given its settings and the texts.
        """
        spec = json.dumps(make_featuriser(self.features).settings(), sort_keys=True, default=str)
        key = hashlib.sha256((spec + "\x1e" + "\x1f".join(prompts)).encode()).hexdigest()
        if key in _FEATURE_MEMO:
            _FEATURE_MEMO.move_to_end(key)
            return _FEATURE_MEMO[key]
        featuriser = make_featuriser(self.features).fit(list(prompts))
        out = (featuriser, self._featurise(featuriser, prompts))
        _FEATURE_MEMO[key] = out
        while len(_FEATURE_MEMO) > 8:
            _FEATURE_MEMO.popitem(last=False)
        return out

    def fit(self, train: OutcomeTable) -> "Router":
        self._check_settings()
        if len(train) == 0:
            raise PolicyError("cannot fit a router on an empty training set")
        avail = train.models()
        if self.models is not None:
            unknown = [m for m in self.models if m not in avail]
            if unknown:
                raise PolicyError(f"unknown model {unknown[0]!r}: the training data has {avail}")
            if len(self.models) < 1:
                raise PolicyError("a router needs at least one model")
        view = train.dense(self.models)
        Q, C = view.quality[:, :, 0], view.cost[:, :, 0]
        bad = ~np.isfinite(Q).all(axis=0)
        if bad.any():
            raise PolicyError(f"models {[view.models[j] for j in np.flatnonzero(bad)]} lack recorded outcomes on some "
                              "training prompts (tasks with different model sets?): fit one task at a time or pass models=")
        prompts = np.asarray(view.prompts, dtype=object)
        if any(not isinstance(p, str) or not p for p in prompts):
            raise PolicyError("a predictive router needs the prompt text of every training prompt")
        featuriser, X = self._fit_features(prompts)
        costs = CostModel.fit(self.cost_model, prompts, C, train, view.models, self.prices)
        chat = costs.predict(prompts)
        folds = min(self.folds, len(Q))
        with one_thread():  # small dense problems: BLAS threads only contend (see scorers.one_thread)
            cv = self._cross_validate(X, Q, C, chat, folds) if len(Q) >= 2 else None
        hyper, shrink, raw, table = cv if cv is not None else (self.hyper or {}, self.shrink or 0.0, None, [])
        scorer = make_scorer(self.scorer_kind, **hyper).fit(X, Q)
        self.models_ = tuple(view.models)
        self.featuriser_ = featuriser
        self.scorer_ = scorer
        self.shrink_ = float(shrink)
        self.prior_ = Q.mean(axis=0)
        # calibration data: out-of-fold scorer predictions blended with the prior used when deployed
        # (CV scored each fold against its own fold prior; calibrating against the deployed prior
        # keeps λ from sitting on a switch point that moves when the prior does)
        oof = self._blend(raw if raw is not None else scorer.predict(X))
        self.costs_ = costs
        self.lambdas_ = lambda_grid(oof, chat, N_SWEEP)
        self.cv_ = {"folds": folds, "selection": self.selection, "mode": self.cv,
                    "criterion": "per-fold AIQ (paper) gain of the λ-curve over the prompt-blind router; "
                                 "1se: fall back to prompt-blind unless the best gain exceeds one standard error",
                    "chosen": {**hyper, "shrink": self.shrink_}, "candidates": table}
        self._calibration_data: tuple[np.ndarray, ...] | None = (oof, chat, Q, C)
        self._calibration_sweep: dict[str, tuple[np.ndarray, ...]] = {}  # shared by with_params copies
        c, q = sweep_outcomes(oof, chat, Q, C, self.lambdas_)
        self.default_lam_ = float(self.lambdas_[np.lexsort((c.mean(axis=0), -q.mean(axis=0)))[0]])
        self.calibration_ = self._calibrate()
        self._memo: dict[tuple[Any, ...], np.ndarray] = {}
        return self

    def _cross_validate(self, X: np.ndarray, Q: np.ndarray, C: np.ndarray, chat: np.ndarray,
                        folds: int) -> tuple[dict[str, Any], float, np.ndarray, list[dict[str, Any]]]:
        """k-fold CV over the scorer grid x the prior weight: (settings, shrink, raw out-of-fold q̂, table).

        Each candidate is scored per fold by its AIQ gain over the prompt-blind router (q̂ = the
        training means, s = 1, whose λ-sweep is the zero router) on that fold's prompts. The best
        mean gain wins if it exceeds one standard error of the per-fold gains (``selection="1se"``);
        otherwise the prompt features showed no reliable signal and the router stays prompt-blind.
        ``selection="best"`` takes the best mean gain regardless.
        """
        fold = _folds(len(Q), folds, self.seed)
        grid = [self.hyper] if self.hyper is not None else SCORERS[self.scorer_kind].grid
        shrinks = SHRINK_GRID if self.shrink is None else (float(self.shrink),)
        lo, hi = float(C.mean(axis=0).min()), float(C.mean(axis=0).max())
        prior = np.empty_like(Q)
        for f in range(folds):
            prior[fold == f] = Q[fold != f].mean(axis=0)

        def fold_aiqs(pred: np.ndarray) -> np.ndarray:
            c, q = sweep_outcomes(pred, chat, Q, C, lambda_grid(pred, chat, N_SWEEP))
            return np.array([curve_aiq(c[fold == f], q[fold == f], lo, hi) for f in range(folds)])

        base = fold_aiqs(prior)
        table: list[dict[str, Any]] = []
        results = []
        kind = SCORERS[self.scorer_kind]
        fits = [[kind.cv_settings(c, int((fold != f).sum())) if self.cv == "fast" else c for c in grid]
                for f in range(folds)]
        raws = kind.fold_predictions(fits, X, Q, fold)
        for cand, raw in zip(grid, raws):
            for s in shrinks:
                oof = (1 - s) * raw + s * prior
                gain = fold_aiqs(oof) - base
                mean, se = float(gain.mean()), float(gain.std(ddof=1) / np.sqrt(folds)) if folds > 1 else 0.0
                brier = float(np.mean((oof - Q) ** 2))
                table.append({"settings": cand, "shrink": s, "aiq_gain": mean, "aiq_gain_se": se, "brier": brier})
                results.append((round(mean, 12), -brier, cand, s, raw, se))
        best = max(results, key=lambda r: (r[0], r[1]))
        if self.selection == "1se" and self.shrink is None and best[0] <= best[5]:
            blind = [r for r in results if r[3] == 1.0]
            best = max(blind, key=lambda r: (r[0], r[1])) if blind else best
        return dict(best[2]), best[3], best[4], table

    def _calibrate(self) -> Calibration | None:
        assert self._calibration_data is not None
        if self.budget is None and self.quality_target is None:
            return None  # nothing to calibrate: the sweep waits until a goal asks for it
        oof, chat, Q, C = self._calibration_data
        method = (f"out-of-fold predictions on the training split ({self.cv_['folds']}-fold): each calibration "
                  "prompt is scored by a model that did not train on it")
        memo = getattr(self, "_calibration_sweep", {})
        if "sweep" not in memo:  # the same for every goal: compute once per fit
            lams = lambda_grid(oof, chat, N_CALIBRATION)
            memo["sweep"] = (lams, *sweep_outcomes(oof, chat, Q, C, lams))
        lams, c, q = memo["sweep"]
        if self.budget is not None:
            return calibrate_budget(lams, c, q, float(self.budget), knob="lam", method=method, mix=True)
        if self.quality_target is not None:
            return calibrate_quality(lams, c, q, float(self.quality_target), knob="lam", method=method)
        return None

    def _require_fitted(self) -> None:
        if not hasattr(self, "scorer_"):
            raise PolicyError(f"{self.name} router is not fitted; call fit(train) first")

    # ---- deciding -----------------------------------------------------------------------

    def _goal(self) -> tuple[str, float] | None:
        if self.budget is not None:
            return "budget", float(self.budget)
        if self.quality_target is not None:
            return "quality", float(self.quality_target)
        return None

    def effective_lam(self) -> float:
        """The λ this configuration routes with: set, calibrated, or the most accurate on calibration data.

        A budget calibrated to a mixture routes a hashed share of prompts with a second λ (see
        :meth:`choose`); this returns the first.
        """
        cal = self._active_calibration()
        if cal is not None:
            return cal.value
        if self.lam is not None:
            return float(self.lam)
        return self.default_lam_

    def choose(self, prompts: np.ndarray, qhat: np.ndarray, chat: np.ndarray) -> np.ndarray:
        """Index into ``models_`` per prompt under this configuration's λ (or calibrated λ mixture)."""
        choice = route_lambda(qhat, chat, self.effective_lam())
        cal = self._active_calibration()
        if cal is not None and cal.mix_value is not None and cal.mix_share > 0:
            alt = mix_mask(prompts, cal.mix_share)
            if alt.any():
                choice[alt] = route_lambda(qhat[alt], chat[alt], cal.mix_value)
        return choice

    def _active_calibration(self) -> Calibration | None:
        """The calibration for the current budget / quality target (recomputed if the goal changed)."""
        self._require_fitted()
        if self.lam is not None:
            return None
        goal = self._goal()
        if goal is None:
            return None
        cal = self.calibration_
        if cal is None or (cal.goal, cal.target) != goal:
            if self._calibration_data is None:
                raise PolicyError(f"this router was calibrated for {cal.goal if cal else 'no'} target "
                                  f"{cal.target if cal else ''}; the calibration data is not saved with a policy "
                                  "file, so refit it to calibrate for another budget or quality target")
            cal = self.calibration_ = self._calibrate()
        return cal

    def predict(self, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(q̂, ĉ): predicted quality and expected cost, prompts x ``models_``."""
        self._require_fitted()
        prompts = np.asarray(list(prompts), dtype=object)
        # the texts themselves are the key: a tuple hashes from each string's cached hash and compares by
        # identity first, so a sweep's configurations asking about one batch do not rehash its text
        key = tuple(prompts)
        memo = getattr(self, "_memo", None)
        if memo is not None and key in memo:
            qhat = memo[key]
        else:
            qhat = self._blend(self.scorer_.predict(self._featurise(self.featuriser_, prompts)))
            if memo is not None:
                memo.clear()
                memo[key] = qhat
        return qhat, self.costs_.predict(prompts)

    def _blend(self, raw: np.ndarray) -> np.ndarray:
        return (1.0 - self.shrink_) * raw + self.shrink_ * self.prior_

    def route(self, prompts: Sequence[str]) -> Route:
        """Choose a model for each prompt (no calls made): what ``callwise route`` prints."""
        prompts = np.asarray(list(prompts), dtype=object)
        qhat, chat = self.predict(prompts)
        choice = self.choose(prompts, qhat, chat)
        cal = self._active_calibration()
        setting = {"lam": self.effective_lam()}
        if cal is not None and cal.mix_value is not None:
            setting.update(mix_lam=cal.mix_value, mix_share=cal.mix_share)
        return Route(self.models_, [self.models_[j] for j in choice], qhat, np.asarray(chat), setting)

    def decide(self, queries: Queries, backend: Backend) -> Decisions:
        self._require_fitted()
        missing = [m for m in self.models_ if m not in backend.models]
        if missing:
            raise PolicyError(f"router model {missing[0]!r} is not available; the backend has {list(backend.models)}")
        qhat, chat = self.predict(queries.prompts)
        local = self.choose(np.asarray(queries.prompts, dtype=object), qhat, chat)
        to_backend = np.array([backend.models.index(m) for m in self.models_])
        return single_call_decisions(queries, backend, to_backend[local], tuple(backend.models))

    def sweep(self) -> list[Policy]:
        self._require_fitted()
        return [self.with_params(lam=float(lam), budget=None, quality_target=None) for lam in self.lambdas_]

    def at_knob(self, value: float) -> Policy:
        """Route with λ = ``value`` (a fixed λ replaces a budget or quality calibration)."""
        return self.with_params(lam=float(value), budget=None, quality_target=None)

    def cheaper(self, pressure: float) -> Policy:
        """λ moved down the fitted grid from this setting's λ toward 0 (λ weighs quality against cost
        in λ·q̂ − ĉ, so a smaller λ routes cheaper; λ = 0 sends every prompt to its cheapest model)."""
        self._require_fitted()
        p = min(max(float(pressure), 0.0), 1.0)
        if p == 0.0:
            return self
        lam0 = self.effective_lam()
        lams = np.asarray(self.lambdas_, dtype=float)
        grid = np.unique(np.r_[0.0, lams[lams < lam0], lam0])[::-1]  # from this λ down to 0
        return self.at_knob(float(grid[int(round(p * (len(grid) - 1)))]))

    @classmethod
    def default(cls, train: OutcomeTable) -> "Router | None":
        if len(train.models()) < 2:
            return None
        return cls()

    # ---- policy files -------------------------------------------------------------------

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        self._require_fitted()
        from ..core.policy_files import pack

        arrays: dict[str, np.ndarray] = {
            "router/lambdas": self.lambdas_, "router/default_lam": np.array(self.default_lam_),
            "router/prior": self.prior_, "costs/coef": self.costs_.coef}
        fitted = {
            "models": list(self.models_),
            "features": {"settings": self.featuriser_.settings(),
                         "state": pack("features", self.featuriser_.state(), arrays)},
            "scorer": {"settings": self.scorer_.settings(), "state": pack("scorer", self.scorer_.state(), arrays)},
            "shrink": self.shrink_, "cost_model": self.costs_.kind, "cv": self.cv_,
            "calibration": self.calibration_.to_dict() if self.calibration_ else None,
        }
        return fitted, arrays

    @classmethod
    def from_state(cls, settings: dict[str, Any], fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Router":
        from ..core.policy_files import unpack
        from .features import featuriser_from_state
        from .scorers import scorer_from_state

        self = super().from_state(settings, fitted, arrays)
        assert isinstance(self, Router)
        self.models_ = tuple(fitted["models"])
        f, sc = fitted["features"], fitted["scorer"]
        self.featuriser_ = featuriser_from_state(f["settings"], unpack(f["state"], arrays))
        self.scorer_ = scorer_from_state(sc["settings"], unpack(sc["state"], arrays))
        self.costs_ = CostModel(fitted["cost_model"], arrays["costs/coef"])
        self.shrink_ = float(fitted["shrink"])
        self.prior_ = np.asarray(arrays["router/prior"], float)
        self.lambdas_ = np.asarray(arrays["router/lambdas"], float)
        self.default_lam_ = float(arrays["router/default_lam"])
        self.cv_ = fitted.get("cv", {})
        cal = fitted.get("calibration")
        self.calibration_ = Calibration(**cal) if cal else None
        self._calibration_data = None
        self._memo = {}
        n = len(self.models_)
        if self.prior_.shape != (n,) or self.costs_.coef.shape[1] != n:
            raise PolicyError(f"the saved arrays do not match the {n} models {list(self.models_)}")
        return self


def _router(kind: str, doc: str) -> type[Router]:
    cls = type(f"{kind.capitalize()}Router", (Router,), {"name": kind, "scorer_kind": kind, "__doc__": doc,
                                                          "__module__": __name__})
    return register(cls)


KnnRouter = _router("knn", "Router with a cosine k-nearest-neighbour scorer (k chosen by CV).")
LinearRouter = _router("linear", "Router with a linear (ridge) / logistic scorer per model (L2 strength by CV).")
MlpRouter = _router("mlp", "Router with a multi-output MLP scorer (architecture and L2 by CV).")
MfRouter = _router("mf", "Router with a matrix-factorisation scorer, RouteLLM's MF for n models (rank and L2 by CV).")
SvmRouter = _router("svm", "Router with one linear support-vector regressor per model, RouterBench's SVM router (C by CV).")
