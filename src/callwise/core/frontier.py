"""Cost–quality frontier math (RouterBench, arXiv 2403.12031, section 1 of METHODS.md).

A model or policy run over a dataset is a point (mean cost per query, mean quality); a policy with
a knob traces a set of points. Mixing two achievable points at random per query achieves every
point between them, so what a set of points *offers* is its **non-decreasing convex hull** (NDCH)
R̃(c): the best quality reachable at mean cost <= c. This module computes hulls in O(n log n),
the zero router and the oracle, AIQ in both normalisations, quality at a budget, cost to reach a
target, and bootstrap confidence intervals over prompts.

AIQ normalisations (every report names the one it shows):

``paper``
    AIQ = 1/(c_max − c_min) ∫_{c_min}^{c_max} R̃(c) dc over a cost range shared by the compared
    curves (c_min, c_max: the cheapest and dearest point of any of them). Below a curve's own
    cheapest point nothing is achievable, so R̃ counts as 0 there; above its dearest point R̃ is flat.
``routerbench-code``
    As the RouterBench code computes it: each hull is extended flat to the largest cost c_max of
    any compared curve, integrated from its *own* cheapest point, and divided by c_max.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Sequence

import numpy as np

AIQNormalisation = Literal["paper", "routerbench-code"]
NORMALISATIONS: tuple[AIQNormalisation, ...] = ("paper", "routerbench-code")


@dataclass(frozen=True)
class Curve:
    """A non-decreasing concave piecewise-linear curve given by its vertices.

    ``cost`` is strictly increasing and ``quality`` strictly increasing along the vertices.
    ``params`` optionally holds the knob value (e.g. λ) that produced each vertex.
    """

    cost: np.ndarray
    quality: np.ndarray
    params: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.cost)

    def __call__(self, budget: float | np.ndarray) -> np.ndarray | float:
        """R̃(budget): best quality at mean cost <= budget (NaN below the cheapest vertex)."""
        return quality_at_budget(self, budget)

    @property
    def start(self) -> float:
        return float(self.cost[0])

    def to_list(self) -> list[list[float]]:
        return [[float(c), float(q)] for c, q in zip(self.cost, self.quality)]


def _clean(cost: Iterable[float], quality: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(cost, dtype=float).ravel()
    q = np.asarray(quality, dtype=float).ravel()
    if c.shape != q.shape:
        raise ValueError(f"cost and quality differ in length: {c.shape} vs {q.shape}")
    ok = np.isfinite(c) & np.isfinite(q)
    return c[ok], q[ok]


def pareto_front(cost: Iterable[float], quality: Iterable[float]) -> np.ndarray:
    """Indices of the Pareto-optimal points (no other point is at most as costly and strictly
    better, or strictly cheaper and as good), sorted by cost. Ties keep the first index."""
    c = np.asarray(cost, dtype=float).ravel()
    q = np.asarray(quality, dtype=float).ravel()
    idx = np.flatnonzero(np.isfinite(c) & np.isfinite(q))
    if len(idx) == 0:
        return idx
    order = idx[np.lexsort((idx, -q[idx], c[idx]))]  # cost asc, quality desc, index asc
    qs = q[order]
    prev_best = np.concatenate(([-np.inf], np.maximum.accumulate(qs)[:-1]))
    return order[qs > prev_best]


def ndch(cost: Iterable[float], quality: Iterable[float]) -> Curve:
    """The non-decreasing convex hull of points, in O(n log n).

    Pareto filtering (a sort and a running maximum) leaves an increasing staircase; a monotone
    chain over it keeps the upper concave envelope. Collinear middle points are dropped.
    """
    c, q = _clean(cost, quality)
    if len(c) == 0:
        raise ValueError("no finite points to build a hull from")
    front = pareto_front(c, q)
    pc, pq = c[front], q[front]
    hull: list[int] = []
    for i in range(len(pc)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (pc[b] - pc[a]) * (pq[i] - pq[a]) - (pq[b] - pq[a]) * (pc[i] - pc[a])
            if cross >= 0:  # b lies on or under the chord a -> i
                hull.pop()
            else:
                break
        hull.append(i)
    h = np.asarray(hull)
    return Curve(pc[h], pq[h])


def quality_at_budget(curve: Curve, budget: float | np.ndarray) -> np.ndarray | float:
    """R̃(budget): linear between vertices, flat after the last, NaN below the first."""
    b = np.asarray(budget, dtype=float)
    out = np.interp(b, curve.cost, curve.quality)
    out = np.where(b < curve.cost[0], np.nan, out)
    return float(out) if out.ndim == 0 else out


def cost_to_reach(curve: Curve, target: float) -> float:
    """The least mean cost at which the curve reaches quality ``target`` (inf if it never does)."""
    if target > curve.quality[-1]:
        return float("inf")
    if target <= curve.quality[0]:
        return float(curve.cost[0])
    return float(np.interp(target, curve.quality, curve.cost))


def area(curve: Curve, lo: float, hi: float) -> float:
    """∫_{lo}^{hi} R̃(c) dc with R̃ = 0 below the curve's first vertex and flat after its last."""
    start = max(lo, curve.cost[0])
    if hi <= start:
        return 0.0
    inner = curve.cost[(curve.cost > start) & (curve.cost < hi)]
    xs = np.concatenate(([start], inner, [hi]))
    ys = np.interp(xs, curve.cost, curve.quality)
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


def aiq(curve: Curve, c_min: float, c_max: float, normalisation: AIQNormalisation = "paper") -> float:
    """Average improvement in quality of ``curve`` over the shared cost range [c_min, c_max].

    See the module docstring for the two normalisations. Degenerate ranges: with c_max == c_min
    the ``paper`` AIQ is R̃(c_min) (0 if the curve starts above it); with c_max == 0 the
    ``routerbench-code`` AIQ is R̃(0). A range that is zero up to float noise is not caught here: see
    :func:`range_has_width`, which ``callwise bench`` checks before reporting an AIQ.
    """
    if normalisation == "paper":
        if c_max <= c_min:
            return 0.0 if curve.cost[0] > c_min else float(np.interp(c_min, curve.cost, curve.quality))
        return area(curve, c_min, c_max) / (c_max - c_min)
    if normalisation == "routerbench-code":
        if c_max <= 0:
            return float(curve.quality[0]) if curve.cost[0] <= 0 else 0.0
        return area(curve, curve.cost[0], c_max) / c_max
    raise ValueError(f"unknown AIQ normalisation {normalisation!r}; expected one of {NORMALISATIONS}")


#: A cost range narrower than this share of its costs has no real width (float noise of equal prices).
RANGE_REL_TOL = 1e-9


def range_has_width(c_min: float, c_max: float, rel: float = RANGE_REL_TOL) -> bool:
    """Whether ``[c_min, c_max]`` is a real range: ``c_max - c_min > rel * max(|c_min|, |c_max|, tiny)``.

    When every compared policy costs the same (one price for every model, say) the shared range is
    zero up to float noise, and AIQ, an average over that range, is undefined: the area over a width of
    1e-19 divided by that width is noise. Callers then report AIQ as undefined (``None``), not a number.
    """
    lo, hi = float(c_min), float(c_max)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return False
    return hi - lo > rel * max(abs(lo), abs(hi), np.finfo(float).tiny)


def shared_range(point_sets: Iterable[Iterable[float]]) -> tuple[float, float]:
    """(c_min, c_max): the cheapest and dearest cost over all compared policies' points."""
    costs = np.concatenate([np.asarray(list(p) if not isinstance(p, np.ndarray) else p, float).ravel()
                            for p in point_sets])
    costs = costs[np.isfinite(costs)]
    return float(costs.min()), float(costs.max())


# --------------------------------------------------------------------------------------------
# the zero router and the oracle over a prompts x models table


def zero_router(model_costs: Sequence[float], model_qualities: Sequence[float]) -> Curve:
    """The zero router: the NDCH of the single models' points (random mixing of models)."""
    return ndch(model_costs, model_qualities)


def _valid(q: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.isfinite(q) & np.isfinite(c)


def oracle_choice(quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Per prompt, the model of highest quality, ties to the cheapest (then the lowest index).

    When no model is right (all qualities equal, e.g. all 0) that rule routes to the cheapest
    model: the oracle never pays for a model that does not improve quality. Models with no
    recorded outcome (NaN) are never chosen.
    """
    q = np.where(_valid(quality, cost), quality, -np.inf)
    best = q.max(axis=1, keepdims=True)
    c = np.where(q == best, cost, np.inf)
    return np.argmin(c, axis=1)


def lambda_choice(quality: np.ndarray, cost: np.ndarray, lam: float) -> np.ndarray:
    """Per prompt, argmax_j λ·q_j − c_j; ties to the cheaper model, then the lower index."""
    ok = _valid(quality, cost)
    u = np.where(ok, lam * np.nan_to_num(quality) - np.nan_to_num(cost), -np.inf)
    best = u.max(axis=1, keepdims=True)
    c = np.where(u >= best - 1e-12 * np.maximum(1.0, np.abs(best)), cost, np.inf)
    return np.argmin(c, axis=1)


def take(values: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """values[p, choice[p]] for every prompt p."""
    return np.take_along_axis(values, choice[:, None], axis=1)[:, 0]


#: Oracle conventions: ``callwise`` (a prompt no model solves goes to the cheapest model, which it
#: pays for) or ``routerbench`` (RouterBench's code: such a prompt is "no_model_correct" and costs 0).
ORACLE_CONVENTIONS = ("callwise", "routerbench")


def oracle_costs(quality: np.ndarray, cost: np.ndarray, convention: str = "callwise") -> np.ndarray:
    """The costs the oracle sees under ``convention``: RouterBench's zeroes every prompt no model solves."""
    if convention not in ORACLE_CONVENTIONS:
        raise ValueError(f"unknown oracle convention {convention!r}; expected one of {ORACLE_CONVENTIONS}")
    c = np.asarray(cost, float)
    if convention == "callwise":
        return c
    q = np.asarray(quality, float)
    unsolved = ~(np.where(_valid(q, c), q, 0.0) > 0).any(axis=1)
    return np.where(unsolved[:, None] & np.isfinite(c), 0.0, c)


def oracle_point(quality: np.ndarray, cost: np.ndarray, convention: str = "callwise") -> tuple[float, float]:
    """(mean cost, mean quality) of the oracle over prompts x models arrays (``convention``: see :data:`ORACLE_CONVENTIONS`)."""
    c = oracle_costs(quality, cost, convention)
    ch = oracle_choice(quality, c)
    return float(take(c, ch).mean()), float(take(quality, ch).mean())


def oracle_curve(quality: np.ndarray, cost: np.ndarray, convention: str = "callwise") -> Curve:
    """The oracle's curve: per prompt argmax λ·q − c with the true qualities, swept over all λ >= 0.

    Computed exactly, not on a λ grid: each prompt's options form an upper concave staircase
    (found by gift wrapping, vectorised over prompts: O(P·M²)); the mean over prompts of the
    per-prompt choices at a common λ is the Minkowski sum of those staircases, which is the
    segments of all prompts sorted by slope. Every router over these models lies on or below it.
    ``params`` holds λ = 1/slope at each vertex (0 at the start, where every prompt takes its
    cheapest model, ties to higher quality). ``convention="routerbench"``: a prompt no model
    solves costs nothing, as in RouterBench's code (see :data:`ORACLE_CONVENTIONS`).
    """
    q = np.asarray(quality, float)
    c = oracle_costs(q, cost, convention)
    ok = _valid(q, c)
    if not ok.any(axis=1).all():
        raise ValueError("every prompt needs at least one model with a recorded outcome")
    P = q.shape[0]
    qv = np.where(ok, q, -np.inf)
    cv = np.where(ok, c, np.inf)
    cmin = cv.min(axis=1, keepdims=True)
    cur = np.argmax(np.where(cv == cmin, qv, -np.inf), axis=1)
    cur_q, cur_c = take(qv, cur), take(cv, cur)
    start_c, start_q = cur_c.mean(), cur_q.mean()
    seg_dc, seg_dq = [], []
    active = np.ones(P, bool)
    for _ in range(q.shape[1]):
        dq = qv - cur_q[:, None]
        dc = cv - cur_c[:, None]
        elig = ok & (dq > 0) & active[:, None]
        if not elig.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(dc > 0, dq / dc, np.inf)
        slope = np.where(elig, slope, -np.inf)
        best = slope.max(axis=1)
        nxt = np.argmax(np.where((slope == best[:, None]) & elig, qv, -np.inf), axis=1)
        rows = elig.any(axis=1)
        seg_dc.append(take(cv, nxt)[rows] - cur_c[rows])
        seg_dq.append(take(qv, nxt)[rows] - cur_q[rows])
        cur_c = np.where(rows, take(cv, nxt), cur_c)
        cur_q = np.where(rows, take(qv, nxt), cur_q)
        active &= rows
    if not seg_dc:
        return Curve(np.array([start_c]), np.array([start_q]), np.array([0.0]))
    dc = np.concatenate(seg_dc)
    dq = np.concatenate(seg_dq)
    with np.errstate(divide="ignore"):
        slope = np.where(dc > 0, dq / dc, np.inf)
    order = np.argsort(-slope, kind="stable")
    xs = np.concatenate(([start_c], start_c + np.cumsum(dc[order]) / P))
    ys = np.concatenate(([start_q], start_q + np.cumsum(dq[order]) / P))
    lam = np.concatenate(([0.0], 1.0 / slope[order]))
    hull = ndch(xs, ys)
    keep = np.searchsorted(xs, hull.cost)  # xs is non-decreasing; first vertex of each cost
    keep = np.minimum(keep, len(xs) - 1)
    return Curve(hull.cost, hull.quality, lam[keep])


# --------------------------------------------------------------------------------------------
# bootstrap confidence intervals over prompts


def densify(x: np.ndarray, y: np.ndarray, per_segment: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Points along straight segments in linear cost, so a hull is drawn truthfully on a log axis."""
    if len(x) < 2:
        return x, y
    t = np.linspace(0.0, 1.0, per_segment)
    xs = (x[:-1, None] + (x[1:] - x[:-1])[:, None] * t).ravel()
    ys = (y[:-1, None] + (y[1:] - y[:-1])[:, None] * t).ravel()
    return xs, ys


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """``n_boot`` resamples of ``n`` prompt indices (with replacement), shape (n_boot, n)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(idx)`` over resampled prompt indices."""
    vals = np.array([statistic(idx) for idx in bootstrap_indices(n, n_boot, seed)])
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(vals, [a, 1 - a])
    return float(lo), float(hi)


def mean_ci(values: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> np.ndarray:
    """Percentile bootstrap intervals of column means, vectorised: ``values`` (P,) or (P, K) ->
    (2,) or (2, K) rows [low, high]."""
    v = np.asarray(values, float)
    one = v.ndim == 1
    v = v[:, None] if one else v
    P = v.shape[0]
    rng = np.random.default_rng(seed)
    w = rng.multinomial(P, np.full(P, 1.0 / P), size=n_boot)  # (B, P) counts
    means = w @ v / P
    a = (1 - level) / 2
    out = np.quantile(means, [a, 1 - a], axis=0)
    return out[:, 0] if one else out


def boot_ci(per_query: np.ndarray, n_boot: int, seed: int, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the mean over queries, per column, from multinomial resampling weights."""
    Q = per_query.shape[0]
    rng = np.random.default_rng(seed)
    W = rng.multinomial(Q, np.full(Q, 1.0 / Q), size=n_boot) / Q
    boot = W @ per_query
    a = (1 - level) / 2
    return np.quantile(boot, a, axis=0), np.quantile(boot, 1 - a, axis=0)
