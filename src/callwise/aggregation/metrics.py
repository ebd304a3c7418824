"""Evaluation metrics and the aggregation rule that is Bayes-optimal for each.

A :class:`Metric` says how one prediction is scored against the reference answer and which rule
(:mod:`callwise.aggregation`) minimises its expected loss under the sampled answer distribution
(Lukasik et al., "Regression-aware inference with LLMs", arXiv 2403.04182, section 3 and its
table of decision rules):

=================  ==========================  ============================================
metric             per-example score            Bayes-optimal rule
=================  ==========================  ============================================
squared-error      -(p - y)^2   (reported MSE)  mean
absolute-error     -|p - y|     (reported MAE)  median
pinball:<tau>      -pinball_tau(p, y)           tau-quantile
exact-match        1[p == y]    (accuracy)      mode
token-f1           SQuAD token F1(p, y)          MBR with token F1
rouge-l            ROUGE-L F(p, y)               MBR with ROUGE-L
bleu / chrf        sentence BLEU / chrF (0-1)   MBR with the same utility
closeness          1 - min(1, |p-y|/max(|p|,|y|))  MBR with closeness
pearson            corpus correlation           mean (per example)
spearman           corpus rank correlation      mean (per example)
=================  ==========================  ============================================

**Correlation metrics.** Pearson and Spearman are computed over a whole corpus, so no per-example
loss exists to minimise. The rule used is the per-example **mean**. For Pearson this is optimal,
not a heuristic: for any predictor f, cov(f(X), Y) = cov(f(X), m(X)) with m(X) = E[Y | X], so by
Cauchy-Schwarz corr(f, Y) = corr(f, m) * sd(m) / sd(Y) <= corr(m, Y), with equality for f = m
(and any increasing affine map of it). For Spearman the mean is a surrogate (the optimum is the
expected rank, which needs the whole corpus). METHODS.md flags the paper's exact recommendation
for correlation metrics as unconfirmed, and the paper's text could not be read from this machine;
the mean is the rule its regression experiments use, and the Pearson argument above stands on
its own. Per query, a correlation metric's score is the squared error (what the mean minimises);
the corpus value is the correlation of the predictions with the references.

User metrics: :meth:`Metric.from_utility` (any utility u(hyp, ref) -> MBR under u) and
:meth:`Metric.from_loss` (a numeric loss -> MBR under the negated loss: the sample with the least
expected loss), registered with :func:`register_metric` to be usable by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.errors import PolicyError

KINDS = ("squared", "absolute", "pinball", "exact", "utility", "correlation", "loss")


@dataclass(frozen=True)
class Metric:
    """How a prediction is scored against the reference, and the rule that is Bayes-optimal for it.

    ``kind`` is one of ``squared``, ``absolute``, ``pinball`` (with ``tau``), ``exact``, ``utility``
    (with ``utility``), ``correlation`` (``pearson`` / ``spearman``) or ``loss`` (a user's numeric
    ``loss``). ``numeric`` metrics read answers as numbers. ``lower_is_better`` says whether the
    reported corpus value is a loss (MSE, MAE, pinball) rather than a score.
    """

    name: str
    rule: str
    kind: str
    description: str
    tau: float | None = None
    utility: Any = None
    loss_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in ("squared", "absolute", "pinball", "correlation", "loss")

    @property
    def lower_is_better(self) -> bool:
        return self.kind in ("squared", "absolute", "pinball", "loss")

    # -- scoring -----------------------------------------------------------------------------
    def scores(self, pred_answers: np.ndarray, pred_numbers: np.ndarray, ref_answers: np.ndarray,
               ref_numbers: np.ndarray, cache: Any = None) -> np.ndarray:
        """Per-example scores, higher is better, shaped like the predictions ((Q,) or (Q, R)).

        References are (Q,); NaN / None predictions (no answer) score as wrong: 0 for exact match
        and utilities; for numeric metrics they are an error (the caller decides a fallback).
        """
        p = np.asarray(pred_numbers, dtype=float)
        y = np.asarray(ref_numbers, dtype=float).reshape((-1,) + (1,) * (p.ndim - 1))
        if self.numeric:
            if np.isnan(p).any() or np.isnan(y).any():
                raise PolicyError(f"metric {self.name!r} needs numeric predictions and references; "
                                  f"{int(np.isnan(p).sum())} predictions and {int(np.isnan(y).sum())} references "
                                  "are not numbers")
            d = p - y
            if self.kind in ("squared", "correlation"):
                return -(d * d)
            if self.kind == "absolute":
                return -np.abs(d)
            if self.kind == "pinball":
                tau = float(self.tau)  # type: ignore[arg-type]
                return -np.maximum(tau * -d, (tau - 1.0) * -d)
            return -np.asarray(self.loss_fn(np.broadcast_to(p, d.shape), np.broadcast_to(y, d.shape)),  # type: ignore[misc]
                               dtype=float)
        a = np.asarray(pred_answers, dtype=object)
        r = np.broadcast_to(np.asarray(ref_answers, dtype=object).reshape((-1,) + (1,) * (a.ndim - 1)), a.shape)
        if self.kind == "exact":
            return np.fromiter((x is not None and x == g for x, g in zip(a.ravel(), r.ravel())), dtype=float,
                               count=a.size).reshape(a.shape)
        return _utility_scores(self.utility, a, r, cache)

    def summary(self, scores: np.ndarray, pred_numbers: np.ndarray | None = None,
                ref_numbers: np.ndarray | None = None) -> float:
        """The corpus value: the mean loss (losses), the mean score, or the correlation averaged over draws."""
        if self.kind == "correlation":
            return correlation(self.name, np.asarray(pred_numbers, float), np.asarray(ref_numbers, float))
        m = float(np.mean(scores))
        return -m if self.lower_is_better else m

    # -- user metrics --------------------------------------------------------------------------
    @classmethod
    def from_utility(cls, name: str, utility: Any) -> "Metric":
        """A metric scored by ``utility(hyp, ref)`` (higher is better), aggregated by MBR under it."""
        from .utilities import get_utility

        u = get_utility(utility)
        return cls(name, f"mbr:{name}", "utility", f"user utility {u.name}", utility=u)

    @classmethod
    def from_loss(cls, name: str, loss: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> "Metric":
        """A numeric metric scored by a vectorised ``loss(pred, ref)`` (lower is better); its rule is MBR
        under the negated loss, i.e. the sampled answer with the least expected loss."""
        if not callable(loss):
            raise PolicyError(f"a metric's loss must be a function (pred, ref) -> loss, got {type(loss).__name__}")
        return cls(name, f"mbr-loss:{name}", "loss", f"user loss {getattr(loss, '__name__', 'loss')}", loss_fn=loss)


def _utility_scores(utility: Any, a: np.ndarray, r: np.ndarray, cache: Any) -> np.ndarray:
    """utility(a, r) elementwise; the cache computes each distinct pair once."""
    from .utilities import UtilityCache, get_utility

    u = get_utility(utility)
    flat_a, flat_r = a.ravel(), r.ravel()
    ok = np.fromiter((x is not None for x in flat_a), dtype=bool, count=flat_a.size)
    out = np.zeros(flat_a.size)
    if ok.any():
        out[ok] = (cache if cache is not None else UtilityCache()).values(u, flat_a[ok].astype(str), flat_r[ok].astype(str))
    return out.reshape(a.shape)


def correlation(name: str, pred: np.ndarray, ref: np.ndarray) -> float:
    """Pearson or Spearman correlation of predictions (Q,) or (Q, R) with references (Q,), averaged over R."""
    from scipy.stats import rankdata

    p = pred if pred.ndim == 2 else pred[:, None]
    y = np.broadcast_to(ref[:, None], p.shape)
    if name == "spearman":
        p, y = rankdata(p, axis=0), rankdata(y, axis=0)
    pc, yc = p - p.mean(axis=0), y - y.mean(axis=0)
    den = np.sqrt((pc * pc).sum(axis=0) * (yc * yc).sum(axis=0))
    r = np.divide((pc * yc).sum(axis=0), den, out=np.full(den.shape, np.nan), where=den > 0)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


_BUILTIN: dict[str, Metric] = {m.name: m for m in (
    Metric("squared-error", "mean", "squared", "squared error (p - y)^2; reported as MSE"),
    Metric("absolute-error", "median", "absolute", "absolute error |p - y|; reported as MAE"),
    Metric("exact-match", "mode", "exact", "1 when the normalised prediction equals the reference; reported as accuracy"),
    Metric("token-f1", "mbr:token-f1", "utility", "SQuAD token F1 against the reference", utility="token-f1"),
    Metric("rouge-l", "mbr:rouge-l", "utility", "ROUGE-L F-measure against the reference", utility="rouge-l"),
    Metric("bleu", "mbr:bleu", "utility", "sentence BLEU / 100 (sacrebleu)", utility="bleu"),
    Metric("chrf", "mbr:chrf", "utility", "sentence chrF / 100 (sacrebleu)", utility="chrf"),
    Metric("closeness", "mbr:closeness", "utility", "numeric closeness 1 - min(1, |p-y| / max(|p|, |y|))",
           utility="closeness"),
    Metric("pearson", "mean", "correlation", "Pearson correlation over the corpus (per query: squared error)"),
    Metric("spearman", "mean", "correlation", "Spearman rank correlation over the corpus (per query: squared error)"),
)}
ALIASES: dict[str, str] = {"mse": "squared-error", "squared": "squared-error", "l2": "squared-error",
                           "mae": "absolute-error", "absolute": "absolute-error", "l1": "absolute-error",
                           "em": "exact-match", "exact": "exact-match", "accuracy": "exact-match", "0-1": "exact-match",
                           "f1": "token-f1", "rouge": "rouge-l", "rougel": "rouge-l"}
_USER: dict[str, Metric] = {}


def metric_names() -> list[str]:
    """Every metric name usable in :func:`get_metric` (built-in, aliases, pinball:<tau>, registered)."""
    return sorted(_BUILTIN) + sorted(ALIASES) + ["pinball:<tau>"] + sorted(_USER)


def register_metric(metric: Metric) -> Metric:
    """Make a user metric usable by name (in policies, ``callwise aggregate`` through the API, policy files)."""
    if not isinstance(metric, Metric):
        raise PolicyError(f"register_metric needs a Metric (Metric.from_utility / from_loss), got {type(metric).__name__}")
    if metric.name in _BUILTIN or metric.name in ALIASES:
        raise PolicyError(f"metric {metric.name!r} is built in; register a user metric under another name")
    _USER[metric.name] = metric
    return metric


def get_metric(spec: "str | Metric") -> Metric:
    """A metric from its name or alias, ``pinball:<tau>`` (tau in (0, 1)), or a :class:`Metric`."""
    if isinstance(spec, Metric):
        return spec
    if not isinstance(spec, str):
        raise PolicyError(f"a metric must be a name or a Metric, got {type(spec).__name__}")
    key = spec.strip().lower()
    if key in _USER:
        return _USER[key]
    key = ALIASES.get(key, key)
    if key in _BUILTIN:
        return _BUILTIN[key]
    head, _, arg = key.partition(":")
    if head in ("pinball", "quantile-loss") and arg:
        try:
            tau = float(arg)
        except ValueError:
            tau = float("nan")
        if not 0.0 < tau < 1.0:
            raise PolicyError(f"metric {spec!r}: the pinball level tau must be a number in (0, 1), got {arg!r}")
        return Metric(f"pinball:{tau:g}", f"quantile:{tau:g}", "pinball", f"pinball (quantile) loss at tau={tau:g}",
                      tau=tau)
    raise PolicyError(f"unknown metric {spec!r}; expected one of {metric_names()}")


def rule_for(metric: "str | Metric") -> Any:
    """The :class:`~callwise.aggregation.Rule` that is Bayes-optimal for ``metric``."""
    from .rules import MBR, get_rule

    m = get_metric(metric)
    if m.kind == "utility":
        return MBR(m.utility)
    if m.kind == "loss":
        fn = m.loss_fn

        def negated_loss(hyp: str, ref: str) -> float:
            return -float(np.asarray(fn(np.array([float(hyp)]), np.array([float(ref)])))[0])  # type: ignore[misc]

        negated_loss.__name__ = f"neg-{m.name}"
        return MBR(negated_loss)
    return get_rule(m.rule)
