"""Learned baselines for uncertainty cascades: a trained model scores the answer or the prompt.

Both are thresholded by the same budget rule and guard as :class:`ConfidenceCascade`
(:mod:`callwise.cascades.escalation`), so the comparison isolates the score:

- :class:`FrugalCascade` (``frugal-cascade``), FrugalGPT-style: a classifier on features of the
  prompt *and* the small model's answer predicts that the answer is right; the cascade escalates
  the lowest predictions. (FrugalGPT fine-tunes DistilBERT; here the text features of
  :mod:`callwise.routing.features` feed a logistic regression.)
- :class:`TwoTierRouter` (``two-tier-router``), routing: a classifier on the prompt alone
  predicts, before any call, that the small model is adequate — ``target="adequate"`` (S's answer
  is right; the routing variant of the cascade, built on the router scorers) or ``"not-worse"``
  (HybridLLM: S's quality is at least L's minus ``tolerance``) — and exactly one model is called.

Calibration quantiles come from out-of-fold predictions on the training data, so the threshold is
not set on scores the classifier has memorised.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.backend import Calls, Queries
from ..core.errors import PolicyError
from ..core.fixed import cheapest_and_best, model_means, train_cheapest_and_best
from ..core.hashing import texts_digest
from ..core.outcomes import DenseView, OutcomeTable
from ..core.policy import Policy, register
from ..routing import (
    Featuriser,
    Scorer,
    SentenceEmbeddings,
    TfidfSvd,
    featuriser_from_state,
    make_featuriser,
    make_scorer,
    scorer_from_state,
)
from .escalation import Escalation

#: Folds of the out-of-fold calibration predictions.
FOLDS = 5
#: Fold features memoised (a few sets of texts: one task's prompts, or prompts + one model's answers).
_FOLD_MEMO: OrderedDict[str, Any] = OrderedDict()
_FOLD_MEMO_SIZE = 4
#: Features of the classifiers: TF-IDF + SVD, exact (Gram matrix) on small training sets and
#: randomized above ``features.EXACT_SVD_MAX_DOCS`` texts, so no fit is super-linear in the prompts
#: (``"tfidf:svd=exact"``, the default before, is still available through ``features=``).
DEFAULT_FEATURES = "tfidf:svd=auto"


def answer_texts(prompts: np.ndarray, answers: np.ndarray | None) -> list[str]:
    """Prompt and answer joined as one text (the FrugalGPT scorer's input)."""
    if answers is None:
        raise PolicyError("frugal-cascade scores the small model's answer, but no answers were recorded/returned")
    return [f"{p}\n\nAnswer: {'' if a is None else a}" for p, a in zip(prompts, answers)]


class TextClassifier:
    """Text features -> probability of a 0/1 label (logistic regression; ridge for graded labels).

    ``fit`` returns out-of-fold predictions for the training texts alongside the model fitted on all
    of them. Each fold refits the featuriser too: fitted on all texts, TF-IDF + SVD would have seen
    the held-out fold, its out-of-fold scores would be distributed unlike scores of new prompts,
    and quantiles calibrated on them would miss the budget. The fold features of a set of texts are
    memoised, so classifiers with other labels on the same texts (other model pairs) reuse them.
    """

    def __init__(self, features: str | dict[str, Any] | None = None, alpha: float = 1.0) -> None:
        self.features = features
        self.alpha = alpha
        self.featuriser: Featuriser | None = None
        self.scorer: Scorer | None = None

    def _classifier(self, X: np.ndarray, y: np.ndarray) -> Scorer:
        return make_scorer("linear", alpha=self.alpha, link="auto").fit(X, y[:, None])

    def _fold_features(self, texts: list[str], seed: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]],
                                                                   Featuriser, np.ndarray]:
        spec = self.features or DEFAULT_FEATURES
        digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
        key = json.dumps([digest, seed, spec], sort_keys=True, default=str)
        if key in _FOLD_MEMO:
            _FOLD_MEMO.move_to_end(key)
            return _FOLD_MEMO[key]
        n = len(texts)
        fold = np.random.default_rng(seed).permutation(n) % FOLDS
        splits = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(FOLDS)]
        full = make_featuriser(spec)
        if isinstance(full, TfidfSvd):  # the same fold features, the texts tokenised once
            per_fold = full.fit_folds(texts, splits)
        elif isinstance(full, SentenceEmbeddings):  # nothing learned: the fold featurisers all equal the full one
            X = full.fit(texts).transform(texts)
            per_fold = [(X[tr], X[te]) for tr, te in splits]
        else:
            per_fold = []
            for tr, te in splits:
                feat = make_featuriser(spec).fit([texts[i] for i in tr])
                per_fold.append((feat.transform([texts[i] for i in tr]), feat.transform([texts[i] for i in te])))
            full.fit(texts)
        out = (fold, per_fold, full, full.transform(texts))
        _FOLD_MEMO[key] = out
        while len(_FOLD_MEMO) > _FOLD_MEMO_SIZE:
            _FOLD_MEMO.popitem(last=False)
        return out

    def fit(self, texts: list[str], y: np.ndarray, seed: int = 0) -> np.ndarray:
        """Fit on all texts; return out-of-fold predictions (5 folds, seeded)."""
        y = np.asarray(y, dtype=float)
        n = len(texts)
        if n < 2 * FOLDS:
            raise PolicyError(f"a learned escalation score needs at least {2 * FOLDS} training prompts, got {n}")
        fold, per_fold, self.featuriser, X = self._fold_features(texts, seed)
        oof = np.empty(n)
        for f, (X_tr, X_te) in enumerate(per_fold):
            oof[fold == f] = self._classifier(X_tr, y[fold != f]).predict(X_te)[:, 0]
        self.scorer = self._classifier(X, y)
        return oof

    def predict(self, texts: list[str]) -> np.ndarray:
        """Predicted probabilities; the last batch's are kept (a sweep's configurations share one classifier)."""
        if self.featuriser is None or self.scorer is None:
            raise PolicyError("the escalation classifier is not fitted")
        key = texts_digest(texts)
        last = getattr(self, "_last", None)
        if last is None or last[0] != key:
            last = self._last = (key, self.scorer.predict(self.featuriser.transform(texts))[:, 0])
        return last[1]

    def state(self, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        from ..core.policy_files import pack

        assert self.featuriser is not None and self.scorer is not None
        return {"features": {"settings": self.featuriser.settings(),
                             "state": pack(f"{prefix}/features", self.featuriser.state(), arrays)},
                "scorer": {"settings": self.scorer.settings(),
                           "state": pack(f"{prefix}/scorer", self.scorer.state(), arrays)}}

    @classmethod
    def from_state(cls, fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> TextClassifier:
        from ..core.policy_files import unpack

        self = cls()
        f, s = fitted["features"], fitted["scorer"]
        self.featuriser = featuriser_from_state(f["settings"], unpack(f["state"], arrays))
        self.scorer = scorer_from_state(s["settings"], unpack(s["state"], arrays))
        return self


class _Learned(Escalation):
    """An escalation policy whose stage scores come from one :class:`TextClassifier` per stage."""

    classifiers_: list[TextClassifier] | None = None

    def __init__(self, models: Sequence[str] | None = None, budget: float | None = None, mode: str = "offline",
                 warmup: int = 20, seed: int = 0, cost_model: str = "length",
                 features: str | dict[str, Any] | None = None, alpha: float = 1.0, *,
                 stream_rule: str = "paper") -> None:
        super().__init__(models, budget, mode, warmup, seed, cost_model, stream_rule=stream_rule)
        self.features = features
        self.alpha = alpha

    def _texts(self, k: int, prompts: np.ndarray, answers: np.ndarray | None) -> list[str]:
        raise NotImplementedError

    def _labels(self, k: int, quality: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _fit_scores(self, view: DenseView) -> np.ndarray:
        q = view.quality[:, :, 0]
        self.classifiers_, cols = [], []
        for k in range(len(view.models) - 1):
            answers = None if view.answers is None else view.answers[:, k, 0]
            clf = TextClassifier(self.features, self.alpha)
            cols.append(clf.fit(self._texts(k, view.prompts, answers), self._labels(k, q), self.seed + k))
            self.classifiers_.append(clf)
        return np.stack(cols, axis=1)

    def _stage_scores(self, k: int, queries: Queries, calls: Calls | None) -> np.ndarray:
        if self.classifiers_ is None:
            raise PolicyError(f"{self.name} is not fitted: call fit(train) first")
        answers = None if calls is None else calls.answers
        return self.classifiers_[k].predict(self._texts(k, queries.prompts, answers))

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        fitted, arrays = super().to_state()
        assert self.classifiers_ is not None
        fitted["classifiers"] = [c.state(f"classifier/{k}", arrays) for k, c in enumerate(self.classifiers_)]
        return fitted, arrays

    @classmethod
    def from_state(cls, settings: dict[str, Any], fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> Policy:
        self = super().from_state(settings, fitted, arrays)
        assert isinstance(self, _Learned)
        self.classifiers_ = [TextClassifier.from_state(c, arrays) for c in fitted["classifiers"]]
        return self


@register
class FrugalCascade(_Learned):
    """FrugalGPT-style cascade: a classifier on prompt + answer predicts the answer is right."""

    name = "frugal-cascade"
    reads = frozenset({"prompt", "answer"})

    def _texts(self, k: int, prompts: np.ndarray, answers: np.ndarray | None) -> list[str]:
        return answer_texts(prompts, answers)

    def _labels(self, k: int, quality: np.ndarray) -> np.ndarray:
        return quality[:, k]

    @classmethod
    def default(cls, train: OutcomeTable) -> FrugalCascade | None:
        """Bench runs it where answers are recorded (cheapest -> best model)."""
        if "answer" not in train.frame.columns or train.frame["answer"].isna().any():
            return None
        small, large = train_cheapest_and_best(train)
        return None if small == large else cls([small, large]).fit(train)


@register
class TwoTierRouter(_Learned):
    """Call exactly one of two models, decided from the prompt: the small one when predicted adequate.

    ``target``: ``adequate`` (label: S's quality, i.e. S is right) or ``not-worse`` (HybridLLM's
    label: q_S >= q_L − ``tolerance``).
    """

    name = "two-tier-router"
    family = "router"
    reads = frozenset({"prompt"})
    routing = True

    def __init__(self, models: Sequence[str] | None = None, budget: float | None = None, mode: str = "offline",
                 warmup: int = 20, seed: int = 0, cost_model: str = "length",
                 features: str | dict[str, Any] | None = None, alpha: float = 1.0, target: str = "adequate",
                 tolerance: float = 0.0, *, stream_rule: str = "paper") -> None:
        super().__init__(models, budget, mode, warmup, seed, cost_model, features, alpha, stream_rule=stream_rule)
        self.target = target
        self.tolerance = tolerance

    def _check_settings(self) -> None:
        super()._check_settings()
        if self.target not in ("adequate", "not-worse"):
            raise PolicyError(f"{self.name} target must be 'adequate' or 'not-worse', got {self.target!r}")

    def _texts(self, k: int, prompts: np.ndarray, answers: np.ndarray | None) -> list[str]:
        return [str(p) for p in prompts]

    def _labels(self, k: int, quality: np.ndarray) -> np.ndarray:
        if self.target == "adequate":
            return quality[:, 0]
        return (quality[:, 0] >= quality[:, 1] - float(self.tolerance)).astype(float)

    @classmethod
    def default(cls, train: OutcomeTable) -> TwoTierRouter | None:
        """Bench runs the HybridLLM label between the cheapest and the best model."""
        models, cost, quality = model_means(train)
        small, large = cheapest_and_best(cost, quality)
        if not cost[large] > cost[small]:
            return None
        return cls([models[small], models[large]], target="not-worse").fit(train)
