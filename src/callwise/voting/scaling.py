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
#: Named fitting grids: the paper's, and the default of the authors' code (``fitscalelaws``, M).
FIT_GRIDS: dict[str, tuple[int, ...]] = {"paper": FIT_KS, "authors-code": (1, 10, 100, 1000, 10000)}
#: How a query whose correct answer ties with others for the mode is fitted: ``scale`` (the authors'
#: ``fitscalelaws_onepoint``: fit m x its accuracy, divide the prediction by m) or ``raw``.
TIE_RULES = ("scale", "raw")
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
    """(Q, len(ks)) per-query G_easy / G_hard at ``ks`` from (Q, 3) parameters (a1, a2, a3), within [0, 1].

    The fit leaves a3 free, as the authors' does, so below the fitting grid (K = 1 under the paper's
    grid, which starts at 2) G can leave [0, 1]; a prediction is clipped to it.
    """
    return np.clip(_g_raw(params, easy, ks), 0.0, 1.0)


def _g_raw(params: np.ndarray, easy: np.ndarray, ks: np.ndarray | list[int]) -> np.ndarray:
    h = _h(params, _design(np.asarray(ks)))
    return np.where(easy[:, None], 1.0 - h, h)


def _h(params: np.ndarray, X: np.ndarray) -> np.ndarray:
    """exp(-(a1 K + a2 sqrt(K) + a3)), the exponent clipped so that nothing overflows."""
    return np.exp(-np.clip(params @ X.T, -50.0, 700.0))


def fit_g(acc: np.ndarray, easy: np.ndarray, ks: np.ndarray | list[int] = FIT_KS, iters: int = 200, *,
          probability_at_k1: bool = False) -> np.ndarray:
    """(Q, 3) least-squares parameters of G_easy / G_hard to per-query accuracies ``acc`` (Q, len(ks)).

    Projected Levenberg–Marquardt on all queries at once, from two starts — the log-linear least
    squares of -log(1 - G) (easy) or -log(G) (hard), and the authors' initial guess (1, 1, 1) — the
    better fit of the two kept per query. Bounds as the authors' ``fit_parameters``: a1, a2 >=
    1e-6, a3 free (held within ±50 for the exponentials). ``probability_at_k1`` adds
    a3 >= -(a1 + a2), so that G is a probability at every K >= 1 even where it extrapolates: callwise's
    earlier choice, which pins many fits to that bound (G_easy(1) = 0) and fits worse on the grid.
    """
    X = _design(np.asarray(ks))
    y = np.asarray(acc, dtype=float)
    Q = len(y)
    target = np.where(easy[:, None], 1.0 - y, y)  # = exp(-X a) in both cases
    z = -np.log(np.clip(target, 1e-12, 1.0))
    loglinear = _project(z @ np.linalg.pinv(X).T, probability_at_k1)
    authors = _project(np.ones((Q, 3)), probability_at_k1)  # the authors' initial guess [1, 1, 1]
    # both starts at once, the better fit of the two kept per query
    a2 = _lm(np.vstack([loglinear, authors]), np.concatenate([easy, easy]), np.vstack([y, y]), X, ks, iters,
             probability_at_k1)
    g = _g_raw(a2, np.concatenate([easy, easy]), ks)
    err = ((g - np.vstack([y, y])) ** 2).sum(axis=1)
    first = err[:Q] <= err[Q:]
    return np.where(first[:, None], a2[:Q], a2[Q:])


def _lm(a: np.ndarray, easy: np.ndarray, y: np.ndarray, X: np.ndarray, ks: np.ndarray | list[int], iters: int,
        probability_at_k1: bool) -> np.ndarray:
    """Projected Levenberg–Marquardt from ``a`` on every row at once."""
    sign = np.where(easy, 1.0, -1.0)[:, None]

    def sse(par: np.ndarray) -> np.ndarray:
        return ((_g_raw(par, easy, ks) - y) ** 2).sum(axis=1)

    cur = sse(a)
    mu = np.full(len(a), 1e-2)
    for _ in range(iters):
        h = _h(a, X)
        r = _g_raw(a, easy, ks) - y
        J = sign[:, :, None] * h[:, :, None] * X[None, :, :]  # dG/da: easy +h X, hard -h X
        JtJ = np.einsum("qki,qkj->qij", J, J)
        g = np.einsum("qki,qk->qi", J, r)
        A = JtJ + np.eye(3)[None] * (mu[:, None, None] * np.einsum("qii->qi", JtJ)[:, :, None] + 1e-10)
        step = np.linalg.solve(A, g[:, :, None])[:, :, 0]
        trial = _project(a - step, probability_at_k1)
        new = sse(trial)
        better = new < cur
        a = np.where(better[:, None], trial, a)
        cur = np.where(better, new, cur)
        mu = np.where(better, np.maximum(mu / 3, 1e-9), mu * 4)
        if (mu > 1e12).all():
            break
    return a


def _project(a: np.ndarray, probability_at_k1: bool = False) -> np.ndarray:
    a = a.copy()
    a[:, :2] = np.maximum(a[:, :2], _A_MIN)
    low = -(a[:, 0] + a[:, 1]) if probability_at_k1 else -_A3_MAX
    a[:, 2] = np.clip(a[:, 2], low, _A3_MAX)
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
    #: per query, the m of the tie rule (1 unless the correct answer ties with m - 1 others for the mode)
    scale: np.ndarray | None = None
    ties: str = "raw"

    def per_query(self, ks: np.ndarray | list[int]) -> np.ndarray:
        """(Q, len(ks)) each query's predicted accuracy: G_easy / G_hard, divided by its tie scale."""
        g = g_curves(self.params, self.easy, ks)
        return g if self.scale is None else g / self.scale[:, None]

    def curve(self, ks: np.ndarray | list[int]) -> np.ndarray:
        """The system's predicted accuracy at ``ks``: the mean of the per-query curves."""
        return self.per_query(ks).mean(axis=0)

    def best_k(self, k_max: int = 1000) -> tuple[int, float]:
        ks = np.arange(1, k_max + 1)
        return best_k(ks, self.curve(ks))

    def fit_rmse(self) -> float:
        """Root mean squared error of the per-query fits against the simulated accuracies."""
        return float(np.sqrt(np.mean((self.per_query(self.fit_ks) - self.observed) ** 2)))

    def summary(self) -> dict[str, Any]:
        tied = int((self.scale > 1).sum()) if self.scale is not None else 0
        return {"n_queries": int(len(self.easy)), "easy_share": float(np.mean(self.easy)),
                "fit_ks": list(self.fit_ks), "fit_rmse": self.fit_rmse(), "ties": self.ties,
                "tied_for_the_mode": tied}


def mode_ties(s: Samples, easy: np.ndarray) -> np.ndarray:
    """(Q,) m per query: how many answers share the top empirical probability, for easy queries (1 otherwise)."""
    p = s.distribution()
    top = p.max(axis=1, keepdims=True)
    m = (np.abs(p - top) <= 1e-12).sum(axis=1)
    return np.where(easy & (top[:, 0] > 0), np.maximum(m, 1), 1).astype(float)


def sparse_vote_accuracy(s: Samples, ks: np.ndarray | list[int], *, reps: int = 100, seed: int = 0) -> np.ndarray:
    """(Q, len(ks)) vote accuracy at a few (possibly large) K by Monte Carlo over answer counts.

    Each draw of K calls with replacement is a multinomial count vector over a query's answers
    (its empirical distribution), the winner the most counted, ties split uniformly (the first-seen
    rule over random orders). O(reps x answers) per K whatever K is, so K = 10,000 costs what K = 10
    does: what the authors' grid needs (their ``simulate_answer`` draws the K answers one by one).
    """
    p = s.distribution()
    total = p.sum(axis=1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.0)
    value = np.nan_to_num(s.value, nan=0.0)
    rng = np.random.default_rng(seed)
    Q = p.shape[0]
    out = np.zeros((Q, len(ks)))
    has = total[:, 0] > 0
    rows = np.flatnonzero(has)
    for j, k in enumerate(np.asarray(ks, dtype=np.int64)):
        counts = rng.multinomial(int(k), p[rows], size=(reps, len(rows)))  # (reps, Q', M)
        win = np.argmax(counts + 0.5 * rng.random(counts.shape), axis=2)  # ties uniformly
        out[rows, j] = value[rows[None, :], win].mean(axis=0)
    return out


def fit_scaling(s: Samples, *, fit_ks: tuple[int, ...] | str = FIT_KS, reps: int = 400, seed: int = 0,
                correct_at: float = 0.5, ties: str = "scale") -> ScalingModel:
    """Fit the per-query model to the simulated vote accuracy of each query's empirical distribution.

    The simulation draws with replacement from each query's recorded samples (exact for two-answer
    queries, seeded Monte Carlo with ``reps`` draws otherwise; on a grid reaching past 100 calls,
    Monte Carlo over answer counts, :func:`sparse_vote_accuracy`). ``fit_ks``: the K values, or a
    name of :data:`FIT_GRIDS` (``paper``, the default; ``authors-code``, 1 to 10,000). ``ties``:
    ``scale`` (the authors', default) fits G_easy to m x the accuracy of a query whose correct
    answer ties with m - 1 others for the mode and divides its prediction by m (its vote accuracy
    tends to 1/m, not 1); ``raw`` fits the accuracy as it is.
    """
    if isinstance(fit_ks, str):
        if fit_ks not in FIT_GRIDS:
            raise ValueError(f"unknown fitting grid {fit_ks!r}; grids are {sorted(FIT_GRIDS)}")
        fit_ks = FIT_GRIDS[fit_ks]
    if ties not in TIE_RULES:
        raise ValueError(f"ties must be one of {TIE_RULES}, got {ties!r}")
    d, easy = difficulty(s, correct_at)
    if max(fit_ks) > 100:
        acc = sparse_vote_accuracy(s, list(fit_ks), reps=reps, seed=seed)
    else:
        acc = vote_curve(s, list(fit_ks), draws="with-replacement", reps=reps, seed=seed)
    scale = mode_ties(s, easy) if ties == "scale" else np.ones(len(easy))
    params = fit_g(np.clip(acc * scale[:, None], 0.0, 1.0), easy, fit_ks)
    return ScalingModel(easy, d, params, tuple(fit_ks), acc, scale, ties)


def theorem1_shape(alpha: float, p1: float, p2: float, *, statement: str = "consistent") -> str:
    """The shape of the two-level vote curve from (α, p1, p2) alone (Theorem 1 of the paper's first version).

    α: share of easy queries, p1 > 1/2 their per-call accuracy, p2 < 1/2 the hard ones'; the cut
    is 1 − 1/t with t = p2(1−p2)(1/2−p2) / [p1(1−p1)(p1−1/2)] + 1. ``statement="as-stated"`` reads
    the theorem as written (METHODS.md): if p1 + p2 > 1 the curve increases when α >= the cut, else
    rises then falls; if p1 + p2 < 1 it decreases when α <= the cut, else falls then rises. That
    disagrees with the paper's own closed form F(K) (:func:`two_level`) on every setting we checked
    (e.g. p1 = 0.9, p2 = 0.3, α = 0.9: best K = 7, an inverse-U, where it says increasing), while
    the same cut with the two cases of p1 + p2 exchanged agrees with it on all of them:
    ``statement="consistent"`` (default) — if p1 + p2 > 1, decreasing when α <= the cut, else
    inverse-U; if p1 + p2 < 1, U when α <= the cut, else increasing. (With p1 + p2 > 1 the easy
    queries converge faster than the hard ones fade, so the curve ends falling.)
    ``not-applicable`` unless p2 < 1/2 < p1 and 0 < α < 1.
    """
    if statement not in ("consistent", "as-stated"):
        raise ValueError(f"statement must be 'consistent' or 'as-stated', got {statement!r}")
    if not (0.0 < alpha < 1.0 and 0.0 < p2 < 0.5 < p1 < 1.0):
        return "not-applicable"
    t = p2 * (1 - p2) * (0.5 - p2) / (p1 * (1 - p1) * (p1 - 0.5)) + 1.0
    low = alpha <= 1.0 - 1.0 / t
    if p1 + p2 == 1:
        return "flat"
    if statement == "as-stated":
        if p1 + p2 > 1:
            return "inverse-u" if alpha < 1.0 - 1.0 / t else "increasing"
        return "decreasing" if low else "u"
    if p1 + p2 > 1:
        return "decreasing" if low else "inverse-u"
    return "u" if low else "increasing"


def theorem1_estimate(s: Samples, correct_at: float = 0.5) -> dict[str, Any]:
    """(α, p1, p2) estimated from the samples (easy share; mean per-call accuracy of easy and hard
    queries) and the shape Theorem 1 predicts from them, before any vote is simulated."""
    _, easy = difficulty(s, correct_at)
    q = np.where(np.isfinite(s.quality), s.quality, np.nan)
    rec = np.arange(q.shape[1])[None, :] < s.n[:, None]
    per_call = np.nanmean(np.where(rec, (q >= correct_at).astype(float), np.nan), axis=1)
    alpha = float(np.mean(easy))
    p1 = float(np.mean(per_call[easy])) if easy.any() else float("nan")
    p2 = float(np.mean(per_call[~easy])) if (~easy).any() else float("nan")
    ok = bool(np.isfinite(p1) and np.isfinite(p2))
    ks = np.arange(1, 2002, 2)
    return {"alpha": alpha, "p1": p1, "p2": p2,
            "shape": theorem1_shape(alpha, p1, p2) if ok else "not-applicable",
            "shape_as_stated": theorem1_shape(alpha, p1, p2, statement="as-stated") if ok else "not-applicable",
            "two_level_shape": shape(two_level(ks, alpha, p1, p2)) if ok else "not-applicable"}
