"""The direct API: aggregate each query's samples with a rule, or with the Bayes-optimal rule of a metric.

``aggregate(samples, "mae")`` looks the metric's rule up (:mod:`.metrics`), so this module sits
above both the rules and the metrics; ``mean`` / ``median`` / ``quantile`` / ``mode`` / ``mbr``
are the rules by name.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..core.errors import PolicyError
from .metrics import rule_for
from .rules import (
    _NAMED,
    MBR,
    Batch,
    Mean,
    Median,
    Mode,
    Quantile,
    Rule,
    SampleSet,
    _as_weight_matrix,
    draw_predictions,
    get_rule,
)


def aggregate(samples: Any, rule: "str | Rule" = "mode", *, weights: Any = None,
              normalise: str | Callable[[Any], Any] | None = None, kind: str = "number") -> np.ndarray:
    """Aggregate each query's samples with ``rule`` (or the rule of a metric name): (Q,) answers.

    ``samples``: a :class:`SampleSet`, a (Q, S) array or a ragged list of answer lists. ``rule``:
    ``mean``, ``median``, ``mode``, ``quantile:<tau>``, ``mbr:<utility>``, ``first``, ``random``,
    a :class:`Rule`, or a metric name (``mae`` -> its Bayes-optimal rule, see
    :mod:`callwise.aggregation.metrics`). ``normalise`` defaults to ``number`` for numeric rules (``date``
    when ``kind='date'``) and ``text`` otherwise. Numeric rules return canonical numbers as text;
    use :func:`mean` / :func:`median` / :func:`quantile` for floats.
    """
    r = _rule_or_metric(rule)
    ss = _sample_set(samples, weights, normalise, r, kind)
    return draw_predictions(ss, r, draws="first", kind=kind).answers[:, 0]


def _rule_or_metric(spec: "str | Rule") -> Rule:
    if isinstance(spec, str) and spec.partition(":")[0] not in ("quantile", "mbr") and spec not in _NAMED:
        return rule_for(spec)
    return get_rule(spec)


def _sample_set(samples: Any, weights: Any, normalise: Any, r: Rule, kind: str) -> SampleSet:
    if isinstance(samples, SampleSet):
        if weights is not None:
            raise PolicyError("weights go into the SampleSet when it is built, not with it")
        ss = samples
    else:
        norm = normalise if normalise is not None else (("date" if kind == "date" else "number") if r.numeric
                                                         else "text")
        ss = SampleSet.from_samples(samples, weights, normalise=norm)
    if r.numeric:
        ss = ss.usable_where(kind)
    return ss


def _numeric(samples: Any, rule: Rule, weights: Any, kind: str) -> np.ndarray:
    if isinstance(samples, np.ndarray) and samples.ndim == 2 and samples.dtype.kind in "fiu" and kind == "number":
        # numbers already: no normalising or grouping into distinct answers (rules work on per-sample columns)
        x = samples.astype(float)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise PolicyError(f"no samples: the sample array has shape {x.shape}")
        w = np.ones(x.shape) if weights is None else _as_weight_matrix(weights, x.shape)
        w = np.where(np.isfinite(x), w, 0.0)
        bad = np.flatnonzero(~(w > 0).any(axis=1))
        if bad.size:
            raise PolicyError(f"{bad.size} quer{'y has' if bad.size == 1 else 'ies have'} no parsable sample "
                              f"(queries {bad[:5].tolist()}): every sample is NaN or weighted 0")
        if weights is None and isinstance(rule, Quantile):  # unweighted: numpy's selection, no full sort
            if isinstance(rule, Median):
                return np.nanmedian(x, axis=1)
            return np.nanquantile(x, rule.tau, axis=1, method="inverted_cdf")
        first = np.broadcast_to(np.arange(x.shape[1]), x.shape)
        return rule.numbers(x, Batch(np.arange(x.shape[0]), w, first))
    ss = _sample_set(samples, weights, None, rule, kind)
    return draw_predictions(ss, rule, draws="first", kind=kind).numbers[:, 0]


def mean(samples: Any, weights: Any = None, *, kind: str = "number") -> np.ndarray:
    """(Q,) weighted mean of each query's numeric samples: the prediction for squared error."""
    return _numeric(samples, Mean(), weights, kind)


def median(samples: Any, weights: Any = None, *, kind: str = "number") -> np.ndarray:
    """(Q,) weighted median of each query's numeric samples: the prediction for absolute error."""
    return _numeric(samples, Median(), weights, kind)


def quantile(samples: Any, tau: float, weights: Any = None, *, kind: str = "number") -> np.ndarray:
    """(Q,) weighted tau-quantile of each query's numeric samples: the prediction for pinball loss at tau."""
    return _numeric(samples, Quantile(tau), weights, kind)


def mode(samples: Any, weights: Any = None, *, normalise: str | Callable[[Any], Any] = "text") -> np.ndarray:
    """(Q,) most-weighted normalised answer of each query (ties: seen first): the prediction for exact match."""
    return aggregate(samples, Mode(), weights=weights, normalise=normalise)


def mbr(samples: Any, utility: Any = "token-f1", weights: Any = None, *,
        normalise: str | Callable[[Any], Any] = "none", cache: Any = None) -> np.ndarray:
    """(Q,) minimum-Bayes-risk answer of each query under ``utility`` (a name, or a function (hyp, ref) -> float)."""
    return aggregate(samples, MBR(utility, cache), weights=weights, normalise=normalise)
