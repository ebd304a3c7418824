"""How the accuracy of a vote scales with the number of calls K, and the best K (Chen et al. 2024).

More calls help *easy* queries (the correct answer is the most likely single answer) and hurt
*hard* ones (some wrong answer is more likely), so a task mixing both can peak at a finite K.

- :func:`two_level`: the closed form for a mixture of easy (per-call accuracy p1 > 1/2) and hard
  (p2 < 1/2) binary queries, with the regularised incomplete beta function; :func:`best_k` and
  :func:`shape` (increasing, decreasing, inverse-U, U) of any curve.
- :func:`fit_scaling`: the per-query analytical model. A query is easy when its correct answer is
  a mode of its empirical answer distribution; its vote accuracy is fitted by least squares with
  G_easy(K) = 1 - exp(-a1 K - a2 sqrt(K) - a3) or G_hard(K) = exp(-a1 K - a2 sqrt(K) - a3)
  (a1, a2 >= 1e-6) to its simulated vote accuracy at K in {2, 5, 10, 20, 50, 100}; the system
  curve is the mean over queries, and its argmax the predicted best K. Fitting on a few samples
  per query (:meth:`Samples.head`) predicts the curve far beyond them.

The least squares is a projected Levenberg–Marquardt run on all queries at once (batched 3 x 3
solves), started from the log-linear fit, so fitting 10^4 queries is a few array operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .engine import Samples, vote_curve

#: The K values each query's simulated accuracy is fitted at (the paper's grid).
FIT_KS: tuple[int, ...] = (2, 5, 10, 20, 50, 100)
SHAPES = ("flat", "increasing", "decreasing", "inverse-u", "u", "other")
_A_MIN = 1e-6
_A3_MAX = 50.0


def binary_vote_accuracy(ks: np.ndarray | list[int], p: np.ndarray | float) -> np.ndarray:
    """Accuracy of a majority vote of K calls that are each right with probability p (two answers).

    P(more than K/2 right) = I_p(floor(K/2) + 1, K - floor(K/2)); a tie at even K is split evenly
    (the first-seen rule over random orders). Broadcasts ``ks`` against ``p``.
    """
    K = np.asarray(ks, dtype=float)
    p = np.asarray(p, dtype=float)
    # scipy on first use, so that importing callwise stays light
    from scipy.special import betainc
    from scipy.stats import binom

    h = np.floor(K / 2)
    win = betainc(h + 1, K - h, p)

    tie = np.where(K % 2 == 0, binom.pmf(h, K, p), 0.0)
    return win + 0.5 * tie


def two_level(ks: np.ndarray | list[int], alpha: float, p1: float, p2: float) -> np.ndarray:
    """F(K) = α·I_{p1} + (1 − α)·I_{p2}: a fraction α of easy queries (accuracy p1) and the rest hard (p2).

    For odd K this is METHODS.md's α·I_{p1}((K+1)/2, (K+1)/2) + (1−α)·I_{p2}((K+1)/2, (K+1)/2).
    """
    return alpha * binary_vote_accuracy(ks, p1) + (1 - alpha) * binary_vote_accuracy(ks, p2)


def best_k(ks: np.ndarray | list[int], curve: np.ndarray) -> tuple[int, float]:
    """(K, value) at the curve's maximum; the smallest such K on ties (fewer calls for the same accuracy)."""
    ks, curve = np.asarray(ks), np.asarray(curve, dtype=float)
    i = int(np.nanargmax(curve))
    return int(ks[i]), float(curve[i])


def shape(curve: np.ndarray, tol: float = 1e-9) -> str:
    """The curve's shape in K: ``flat``, ``increasing``, ``decreasing``, ``inverse-u`` (rises then falls),
    ``u`` (falls then rises) or ``other``; changes smaller than ``tol`` count as flat."""
    c = np.asarray(curve, dtype=float)
    d = np.diff(c)
    up, down = d > tol, d < -tol
    if not up.any() and not down.any():
        return "flat"
    if not down.any():
        return "increasing"
    if not up.any():
        return "decreasing"
    lo, hi = c.min(), c.max()
    i_max, i_min = int(np.argmax(c)), int(np.argmin(c))
    # a single interior extreme, monotone on each side (within tol)
    if 0 < i_max < len(c) - 1 and not (d[:i_max] < -tol).any() and not (d[i_max:] > tol).any():
        return "inverse-u"
    if 0 < i_min < len(c) - 1 and not (d[:i_min] > tol).any() and not (d[i_min:] < -tol).any():
        return "u"
    return "other" if hi - lo > tol else "flat"


# --------------------------------------------------------------------------------------------
# the per-query analytical model


def difficulty(s: Samples, correct_at: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(d, easy) per query: d = max_{y≠y*} Pr[y] − Pr[y*] over the empirical answer distribution.

    y* is the answer whose quality is highest when that quality is at least ``correct_at``; a query
    with no such answer has Pr[y*] = 0. Easy means the correct answer is a mode (d <= 0) and some
    sample holds it.
    """
    p = s.distribution()
    v = np.where(np.isfinite(s.value), s.value, -np.inf)
    star = np.argmax(v, axis=1)
    rows = np.arange(s.n_queries)
    has = v[rows, star] >= correct_at
    p_star = np.where(has, p[rows, star], 0.0)
    others = p.copy()
    others[rows[has], star[has]] = -np.inf
    best_other = np.max(others, axis=1, initial=0.0)
    d = best_other - p_star
    return d, has & (d <= 0)


def _design(ks: np.ndarray) -> np.ndarray:
    k = np.asarray(ks, dtype=float)
    return np.column_stack([k, np.sqrt(k), np.ones_like(k)])


def g_curves(params: np.ndarray, easy: np.ndarray, ks: np.ndarray | list[int]) -> np.ndarray:
    """(Q, len(ks)) per-query G_easy / G_hard at ``ks`` from (Q, 3) parameters (a1, a2, a3)."""
    h = _h(params, _design(np.asarray(ks)))
    return np.where(easy[:, None], 1.0 - h, h)


def _h(params: np.ndarray, X: np.ndarray) -> np.ndarray:
    """exp(-(a1 K + a2 sqrt(K) + a3)), the exponent clipped so that nothing overflows."""
    return np.exp(-np.clip(params @ X.T, -50.0, 700.0))


def fit_g(acc: np.ndarray, easy: np.ndarray, ks: np.ndarray | list[int] = FIT_KS, iters: int = 60) -> np.ndarray:
    """(Q, 3) least-squares parameters of G_easy / G_hard to per-query accuracies ``acc`` (Q, len(ks)).

    Projected Levenberg–Marquardt on all queries at once (a1, a2 >= 1e-6; -(a1 + a2) <= a3 <= 50, so
    that G is a probability at every K >= 1), started from
    the log-linear least squares of -log(1 - G) (easy) or -log(G) (hard).
    """
    X = _design(np.asarray(ks))
    y = np.asarray(acc, dtype=float)
    Q = len(y)
    target = np.where(easy[:, None], 1.0 - y, y)  # = exp(-X a) in both cases
    z = -np.log(np.clip(target, 1e-12, 1.0))
    a = z @ np.linalg.pinv(X).T
    a = _project(a)
    sign = np.where(easy, 1.0, -1.0)[:, None]

    def sse(par: np.ndarray) -> np.ndarray:
        return ((g_curves(par, easy, ks) - y) ** 2).sum(axis=1)

    cur = sse(a)
    mu = np.full(Q, 1e-2)
    for _ in range(iters):
        h = _h(a, X)
        r = g_curves(a, easy, ks) - y
        J = sign[:, :, None] * h[:, :, None] * X[None, :, :]  # dG/da: easy +h X, hard -h X
        JtJ = np.einsum("qki,qkj->qij", J, J)
        g = np.einsum("qki,qk->qi", J, r)
        A = JtJ + np.eye(3)[None] * (mu[:, None, None] * np.einsum("qii->qi", JtJ)[:, :, None] + 1e-10)
        step = np.linalg.solve(A, g[:, :, None])[:, :, 0]
        trial = _project(a - step)
        new = sse(trial)
        better = new < cur
        a = np.where(better[:, None], trial, a)
        cur = np.where(better, new, cur)
        mu = np.where(better, np.maximum(mu / 3, 1e-9), mu * 4)
        if (mu > 1e12).all():
            break
    return a


def _project(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[:, :2] = np.maximum(a[:, :2], _A_MIN)
    # a3 >= -(a1 + a2): the exponent is >= 0 for every K >= 1, so G stays a probability even where it
    # extrapolates (K = 1 lies below the fitted grid); a choice beyond the paper's a1, a2 >= 1e-6
    a[:, 2] = np.clip(a[:, 2], -(a[:, 0] + a[:, 1]), _A3_MAX)
    return a


@dataclass
class ScalingModel:
    """A fitted per-query scaling model: per query easy/hard, d and (a1, a2, a3); ``observed`` is the
    simulated accuracy it was fitted to (Q, len(fit_ks))."""

    easy: np.ndarray
    d: np.ndarray
    params: np.ndarray
    fit_ks: tuple[int, ...]
    observed: np.ndarray

    def curve(self, ks: np.ndarray | list[int]) -> np.ndarray:
        """The system's predicted accuracy at ``ks``: the mean of the per-query curves."""
        return g_curves(self.params, self.easy, ks).mean(axis=0)

    def best_k(self, k_max: int = 1000) -> tuple[int, float]:
        ks = np.arange(1, k_max + 1)
        return best_k(ks, self.curve(ks))

    def fit_rmse(self) -> float:
        """Root mean squared error of the per-query fits against the simulated accuracies."""
        return float(np.sqrt(np.mean((g_curves(self.params, self.easy, self.fit_ks) - self.observed) ** 2)))

    def summary(self) -> dict[str, Any]:
        return {"n_queries": int(len(self.easy)), "easy_share": float(np.mean(self.easy)),
                "fit_ks": list(self.fit_ks), "fit_rmse": self.fit_rmse()}


def fit_scaling(s: Samples, *, fit_ks: tuple[int, ...] = FIT_KS, reps: int = 400, seed: int = 0,
                correct_at: float = 0.5) -> ScalingModel:
    """Fit the per-query model to the simulated vote accuracy of each query's empirical distribution.

    The simulation draws with replacement from each query's recorded samples (exact for two-answer
    queries, seeded Monte Carlo with ``reps`` draws otherwise).
    """
    d, easy = difficulty(s, correct_at)
    acc = vote_curve(s, list(fit_ks), draws="with-replacement", reps=reps, seed=seed)
    params = fit_g(acc, easy, fit_ks)
    return ScalingModel(easy, d, params, tuple(fit_ks), acc)
