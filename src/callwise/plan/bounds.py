"""Budgets and quality floors that hold with a stated risk: confidence bounds and the selection rule.

A plan chooses among many configurations on out-of-fold (cross-validated) training outcomes. For
the choice to keep ``--budget B`` on traffic it has not seen, the rule must hold for the
configuration it *ends up* choosing, not only for one fixed in advance. callwise uses
Learn-then-Test (Angelopoulos et al. 2021) with two standard pieces:

- **A bound per configuration.** For configuration j with out-of-fold per-query costs
  c_1..c_n (mean m, standard deviation s), the upper bound on the mean cost over the next
  ``horizon`` queries is ``m + t_{1-δ'}(n-1) · s · sqrt(1/n + 1/horizon)`` (``bound="t"``, a
  Student-t prediction bound for a future mean: the calibration mean's error and the future
  sample's own noise; ``horizon=inf`` bounds the long-run mean). ``bound="bernstein"`` is the
  distribution-free empirical-Bernstein bound of Maurer & Pontil (2009) on the long-run mean, for
  costs in [0, R] with R the largest cost seen: ``m + s·sqrt(2 ln(2/δ')/n) + 7 R ln(2/δ') /
  (3(n-1))``. The quality floor uses the mirror-image lower bounds.
- **Family-wise error control over the choice.** Each candidate's configurations are tested in a
  fixed order, knob ascending (for every registered knob, cheapest first) under a budget and knob
  descending under a quality floor, and a configuration is *admissible* only while every one
  before it in that order passed (fixed-sequence testing, which needs no correction inside a
  sequence); across candidates the level is split evenly (Bonferroni): δ' = δ / (number of
  candidates). Then, if the bounds are valid, the chance that *any* admissible configuration
  overspends is at most δ, so the chosen one is within budget with probability at least 1 − δ.

The guarantee is about the mean over queries like the calibration ones (the same traffic mix); it
assumes the policy refitted on all training data behaves like the fold-fitted ones the bounds were
computed from, and the t bound is a large-sample (CLT) approximation. The live guard
(``BudgetLedger``) is a different, hard promise: it refuses a call that would take a batch or a key
past its budget, whatever the traffic. The plan's bound chooses settings that rarely need the guard.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..core.errors import PolicyError

Bound = Literal["t", "bernstein"]
BOUNDS: tuple[str, ...] = ("t", "bernstein")
BOUND_DESCRIPTIONS = {
    "t": "Student-t prediction bound on the mean over the next `horizon` queries: "
         "m ± t(1-δ', n-1)·s·sqrt(1/n + 1/horizon)",
    "bernstein": "empirical-Bernstein bound (Maurer & Pontil 2009) on the long-run mean: "
                 "m ± (s·sqrt(2 ln(2/δ')/n) + 7 R ln(2/δ')/(3(n-1))), R the range of the values",
}


def _check(delta: float, bound: str, horizon: float) -> None:
    if not 0 < delta < 1:
        raise PolicyError(f"the risk must be strictly between 0 and 1, got {delta}")
    if bound not in BOUNDS:
        raise PolicyError(f"unknown bound {bound!r}; expected one of {list(BOUNDS)}")
    if not horizon > 0:
        raise PolicyError(f"the horizon must be a positive number of queries (or inf), got {horizon}")


def margin(values: np.ndarray, delta: float, *, bound: str = "t", horizon: float = np.inf) -> np.ndarray:
    """Per column of ``values`` (n, k): how far the one-sided (1 − δ) bound lies from the column mean."""
    _check(delta, bound, horizon)
    v = np.asarray(values, dtype=float)
    v = v[:, None] if v.ndim == 1 else v
    n = v.shape[0]
    if n < 2:
        raise PolicyError(f"a confidence bound needs at least 2 calibration queries, got {n}")
    s = v.std(axis=0, ddof=1)
    if bound == "t":
        from scipy import stats

        return stats.t.ppf(1 - delta, n - 1) * s * np.sqrt(1.0 / n + (0.0 if np.isinf(horizon) else 1.0 / horizon))
    span = v.max(axis=0) - np.minimum(v.min(axis=0), 0.0)
    log = np.log(2.0 / delta)
    return s * np.sqrt(2 * log / n) + 7 * span * log / (3 * (n - 1))


def upper(values: np.ndarray, delta: float, **kw: float | str) -> np.ndarray:
    """One-sided (1 − δ) upper bound on each column's mean (see the module docstring)."""
    v = np.asarray(values, dtype=float)
    return (v[:, None] if v.ndim == 1 else v).mean(axis=0) + margin(v, delta, **kw)  # type: ignore[arg-type]


def lower(values: np.ndarray, delta: float, **kw: float | str) -> np.ndarray:
    """One-sided (1 − δ) lower bound on each column's mean."""
    v = np.asarray(values, dtype=float)
    return (v[:, None] if v.ndim == 1 else v).mean(axis=0) - margin(v, delta, **kw)  # type: ignore[arg-type]


def admissible_prefix(passes: np.ndarray) -> np.ndarray:
    """Fixed-sequence testing: configuration i is admissible when it and every one before it passed."""
    return np.cumprod(np.asarray(passes, dtype=bool)).astype(bool)


__all__ = ["BOUNDS", "BOUND_DESCRIPTIONS", "Bound", "admissible_prefix", "lower", "margin", "upper"]
