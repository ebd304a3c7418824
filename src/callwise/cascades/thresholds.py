"""Escalation thresholds from a dollar budget: the quantile rule, offline and on a stream.

METHODS.md section 2. A two-tier policy pays c_S for every query; with a per-query budget b it can
afford to escalate (call L as well) a share p = (b − c_S) / c_L of the queries — the ones whose
confidence is lowest. A routing policy, which calls exactly one model, sends a share
p = (b − c_S) / (c_L − c_S) to L. So a budget becomes a share, and a share becomes a threshold:

- **offline**: the p-quantile of confidences on calibration data (:class:`QuantileThreshold`);
- **on a stream**: the running p-quantile of the confidences seen so far, with no escalation
  during a warm-up (:func:`running_positions`, :class:`StreamingThreshold`).

Both are expressed through a query's *position*: the share of the reference confidences below
its own, with ties split by a per-query uniform draw u (position = (#below + u·#equal) / n). A
query escalates when its position is below p. The tie split matters: recorded confidences are
often discrete (a self-rated score, a log-probability that rounds to 0), and "escalate when
confidence < T" would then escalate none or all of a tied block, under- or over-spending.

A budget guard makes the budget a hard limit: over a batch (or stream) of N queries the spend
never exceeds b·N. Escalations are made in stream order while their cost fits in what is left
after every query's first call; once one does not fit, the guard stops escalating
(:func:`guard`). All functions are vectorised over budgets: a (budgets x queries) decision
matrix comes out of one pass.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from ..core.errors import CallwiseError

#: Relative tolerance of the guard's comparison, so a budget equal to a spend admits it despite
#: rounding in sums of dollar amounts.
_GUARD_RTOL = 1e-9
#: Queries per block when counting running ranks (pairwise within a block, binary search before it).
_BLOCK = 256


class ThresholdError(CallwiseError, ValueError):
    """A budget or share cannot be turned into a threshold."""


def escalation_share(budget: float | np.ndarray, small_cost: float, large_cost: float, *,
                     routing: bool = False) -> np.ndarray:
    """Share of queries a per-query ``budget`` lets go to the large model, clipped to [0, 1].

    Cascade (S always called): p = (b − c_S) / c_L. Routing (one call): p = (b − c_S) / (c_L − c_S).
    When escalating costs nothing (c_L = 0, or for routing c_L <= c_S) the share is 1: take L always.
    """
    c_s, c_l = float(small_cost), float(large_cost)
    if not (np.isfinite(c_s) and np.isfinite(c_l)) or c_s < 0 or c_l < 0:
        raise ThresholdError(f"model costs must be finite and >= 0, got c_S={small_cost!r}, c_L={large_cost!r}")
    denom = c_l - c_s if routing else c_l
    b = np.asarray(budget, dtype=float)
    if not np.isfinite(b).all():
        raise ThresholdError("budgets must be finite numbers of dollars per query")
    if denom <= 0:
        return np.ones_like(b)
    return np.clip((b - c_s) / denom, 0.0, 1.0)


def _check_scores(scores: np.ndarray, what: str) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise ThresholdError(f"{what} must be a 1-D array of confidences, got shape {s.shape}")
    bad = np.isnan(s)  # ±inf are ordered (a log-probability of 0 is -inf): only NaN has no place
    if bad.any():
        raise ThresholdError(f"{what} contain {int(bad.sum())} NaN value(s) (at positions "
                             f"{np.flatnonzero(bad)[:3].tolist()}); every query needs a confidence")
    return s


@dataclass(frozen=True)
class QuantileThreshold:
    """The offline rule: positions of new confidences among sorted calibration confidences.

    ``reference`` is kept whole (not just one cut point) so one calibration serves every budget:
    the threshold for share p is its p-quantile, with ties at the cut split by the uniforms.
    """

    reference: np.ndarray

    @classmethod
    def calibrate(cls, scores: np.ndarray) -> QuantileThreshold:
        """Calibrate on held-out (or training) confidences of the model whose answers are judged."""
        s = _check_scores(scores, "calibration confidences")
        if len(s) == 0:
            raise ThresholdError("cannot calibrate a threshold on zero confidences")
        return cls(np.sort(s))

    def positions(self, scores: np.ndarray, u: np.ndarray) -> np.ndarray:
        """(#reference below + u·#reference equal) / #reference, for each score."""
        s = _check_scores(scores, "confidences")
        lo = np.searchsorted(self.reference, s, side="left")
        hi = np.searchsorted(self.reference, s, side="right")
        return (lo + np.asarray(u, dtype=float) * (hi - lo)) / len(self.reference)


def running_positions(scores: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Each query's position among the confidences seen so far on a stream (itself included).

    Query i (0-based) counts the queries 0..i: (#strictly below + u_i·#equal incl. itself) / (i+1).
    Vectorised in blocks: a block counts the queries before it by binary search in their sorted
    scores and the queries inside it by pairwise comparison — O(N²/B·log N + N·B) work, no
    per-query Python loop.
    """
    s = _check_scores(scores, "confidences")
    u = np.asarray(u, dtype=float)
    n = len(s)
    below = np.empty(n)
    equal = np.empty(n)
    earlier = np.empty(0)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        block = s[start:stop]
        lo = np.searchsorted(earlier, block, side="left")
        hi = np.searchsorted(earlier, block, side="right")
        tri = np.tri(stop - start, dtype=bool)  # tri[i, j]: j <= i, i.e. j came no later than i
        below[start:stop] = lo + ((block[None, :] < block[:, None]) & tri).sum(axis=1)
        equal[start:stop] = (hi - lo) + ((block[None, :] == block[:, None]) & tri).sum(axis=1)
        earlier = np.sort(np.concatenate([earlier, block]), kind="stable")
    return (below + u * equal) / np.arange(1, n + 1)


def candidates(positions: np.ndarray, shares: np.ndarray, warmup: int = 0) -> np.ndarray:
    """(budgets x queries) escalation candidates: position < share, none in the first ``warmup``."""
    cand = np.asarray(positions)[None, :] < np.asarray(shares, dtype=float)[:, None]
    if warmup > 0:
        cand[:, :warmup] = False
    return cand


def guard(cand: np.ndarray, extra_cost: np.ndarray, slack: np.ndarray) -> np.ndarray:
    """Escalations the budget allows: candidates in stream order until the first that does not fit.

    ``cand`` is (budgets x queries); ``extra_cost[i]`` what escalating query i costs beyond its
    first call; ``slack[k]`` the dollars left for escalations at budget k (b·N minus every query's
    first call). The running spend is non-decreasing, so "fits" is a prefix of each row.
    """
    extra = np.asarray(extra_cost, dtype=float)
    spend = np.cumsum(np.where(cand, extra[None, :], 0.0), axis=1)
    slack = np.asarray(slack, dtype=float)
    return cand & (spend <= (slack + _GUARD_RTOL * np.abs(slack))[:, None])


class StreamingThreshold:
    """The online rule for one query at a time (a live stream): running quantile + budget guard.

    ``share`` is p; ``warmup`` queries never escalate (the quantile of a handful of confidences is
    noise); with ``budget_total`` (b·N) and ``reserve_per_query`` (the expected first-call cost of
    each query still to come, over ``horizon`` N queries) escalation stops for good once one would
    not fit. Offline, :func:`running_positions` + :func:`candidates` + :func:`guard` compute the same
    decisions for a whole stream and many budgets at once.
    """

    def __init__(self, share: float, *, warmup: int = 0, budget_total: float | None = None,
                 horizon: int | None = None, reserve_per_query: float = 0.0) -> None:
        if not 0.0 <= share <= 1.0:
            raise ThresholdError(f"escalation share must be in [0, 1], got {share!r}")
        if warmup < 0:
            raise ThresholdError(f"warm-up must be >= 0 queries, got {warmup!r}")
        if budget_total is not None and (horizon is None or horizon < 1):
            raise ThresholdError("a budget guard needs the stream's length (horizon >= 1) to reserve for the "
                                 "queries to come")
        self.share = float(share)
        self.warmup = int(warmup)
        self.budget_total = budget_total
        self.horizon = horizon
        self.reserve_per_query = float(reserve_per_query)
        self._seen: list[float] = []  # sorted
        self._spent = 0.0
        self._stopped = False

    @property
    def spent(self) -> float:
        return self._spent

    @property
    def seen(self) -> int:
        return len(self._seen)

    def step(self, score: float, u: float, first_cost: float, extra_cost: float) -> bool:
        """Record a query's first call (its confidence and cost); True when it should escalate.

        The caller reports the escalation's real cost afterwards with :meth:`charge`, if it differs
        from ``extra_cost`` (the estimate the guard checked).
        """
        if np.isnan(score):
            raise ThresholdError(f"query {self.seen + 1} of the stream has no confidence (NaN)")
        score = float(score)
        bisect.insort(self._seen, score)
        self._spent += float(first_cost)
        i = len(self._seen)
        below = bisect.bisect_left(self._seen, score)
        pos = (below + u * (bisect.bisect_right(self._seen, score) - below)) / i
        if i <= self.warmup or pos >= self.share or self._stopped:
            return False
        if self.budget_total is not None:
            left = max(self.horizon - i, 0) * self.reserve_per_query  # type: ignore[operator]
            limit = self.budget_total - left
            if self._spent + extra_cost > limit + _GUARD_RTOL * abs(limit):
                self._stopped = True
                return False
        self._spent += float(extra_cost)
        return True

    def charge(self, delta: float) -> None:
        """Correct the spend by ``delta`` dollars (the escalation cost more or less than estimated)."""
        self._spent += float(delta)


def search_chain_shares(positions: np.ndarray, quality: np.ndarray, cost: np.ndarray, budgets: np.ndarray, *,
                        max_cells: float = 2e7) -> np.ndarray:
    """Per-stage escalation shares of an n-tier cascade for each budget, searched on calibration data.

    ``positions`` (n x K−1): each calibration query's position among stage k's calibration
    confidences; ``quality`` and ``cost`` (n x K): every model's recorded outcome. Every
    combination of shares on a grid (as fine as ``max_cells`` = combinations x n allows, at least 2
    levels per stage) is simulated exactly; for each budget the combination with the best mean
    quality among those whose mean cost fits is returned (ties to the cheaper), or all zeros (never
    escalate) when none fits. Returns (len(budgets) x K−1).
    """
    pos = np.asarray(positions, dtype=float)
    q = np.asarray(quality, dtype=float)
    c = np.asarray(cost, dtype=float)
    n, stages = pos.shape
    if q.shape != (n, stages + 1) or c.shape != (n, stages + 1):
        raise ThresholdError(f"a {stages + 1}-model chain needs quality and cost of shape ({n}, {stages + 1}), "
                             f"got {q.shape} and {c.shape}")
    if n == 0:
        raise ThresholdError("cannot search chain thresholds on zero calibration queries")
    combos = max(max_cells / n, 2.0**stages)
    g = max(2, int(np.floor(combos ** (1.0 / stages) + 1e-9)))
    levels = np.linspace(0.0, 1.0, g)
    reach = np.ones((1, n), dtype=bool)
    mean_q, mean_c = np.zeros(1), c[:, 0].mean() * np.ones(1)
    for k in range(stages):
        esc = pos[None, :, k] < levels[:, None]  # (g, n)
        stop = reach[:, None, :] & ~esc[None, :, :]
        reach = (reach[:, None, :] & esc[None, :, :]).reshape(-1, n)
        mean_q = np.repeat(mean_q, g) + stop.reshape(-1, n).astype(np.float32) @ q[:, k].astype(np.float32) / n
        mean_c = np.repeat(mean_c, g) + reach.astype(np.float32) @ c[:, k + 1].astype(np.float32) / n
    mean_q = mean_q + reach.astype(np.float32) @ q[:, stages].astype(np.float32) / n
    order = np.lexsort((-mean_q, mean_c))  # by cost, then better first
    best_so_far = np.maximum.accumulate(mean_q[order])
    # the first index in cost order reaching the running best: the cheapest combination that good
    is_new = np.r_[True, best_so_far[1:] > best_so_far[:-1]]
    champion = order[np.maximum.accumulate(np.where(is_new, np.arange(len(order)), 0))]
    k = np.searchsorted(mean_c[order], np.asarray(budgets, dtype=float) * (1 + _GUARD_RTOL), side="right") - 1
    pick = np.where(k >= 0, champion[np.maximum(k, 0)], 0)  # combination 0 = all shares 0
    idx = np.stack(np.unravel_index(pick, (g,) * stages), axis=1)
    return levels[idx]


#: What each query of a three-branch stream did (:func:`paper_stream`).
UNAFFORDABLE, SMALL, ESCALATED, LARGE_ONLY = -1, 0, 1, 2


@dataclass(frozen=True)
class PaperStream:
    """The decisions of :func:`paper_stream`: (budgets x queries) outcomes in stream order, and the spend."""

    outcome: np.ndarray  # UNAFFORDABLE | SMALL | ESCALATED | LARGE_ONLY
    spent: np.ndarray  # (budgets,) dollars (or seconds) charged


def paper_stream(scores: np.ndarray, budgets: np.ndarray, shares: np.ndarray, decision_cost: tuple[float, float],
                 small_cost: np.ndarray, large_cost: np.ndarray, *, large_is_better: bool = True,
                 routing: bool = False, warmup: int = 20, afford_rtol: float = 0.0) -> PaperStream:
    """The authors' streaming rule (``make_cascade`` / ``make_hybrid`` in guillemram97/margin_llms), every budget at once.

    With R the budget left (b·N at the start) and n the queries left, each query in stream order:

    1. R < c_S: nothing is affordable (UNAFFORDABLE: the authors score a random label);
    2. R − n·c_S <= 0: only S is affordable from here on: S (SMALL);
    3. R − n·c_L >= 0 and L is the better model: L directly, without S (LARGE_ONLY);
    4. otherwise the query's score joins the seen scores and, once more than ``warmup`` are seen,
       T is their running p-quantile (the element at rank ⌊len·p⌋ of the sorted scores, +∞ past the
       end). A cascade calls S and escalates when score < T and R (after S) still covers c_L
       (ESCALATED); a router (``routing``) calls only L when score <= T and R > c_L, else only S.

    Scores seen are those of branches 2 and 4 (branch 3 makes no S call). ``decision_cost`` (c_S,
    c_L) are the costs the branches compare (the authors' fixed per-model costs); ``small_cost`` /
    ``large_cost`` (N,) are what each call is charged (the same constants in the paper's fixed-cost
    setups; per-query times or dollars otherwise). ``shares`` (budgets,) is p per budget.
    ``afford_rtol``: with 0 (the default) every comparison is the authors' exactly, rounding
    included (a budget of exactly c_S can leave the last query a hair short of c_S, so unanswered);
    a relative tolerance (of b·N) lets the affordability check admit such a query. One Python step
    per query, vectorised over budgets; the running rank is a matrix-vector product.
    """
    s = _check_scores(scores, "stream scores")
    b = np.asarray(budgets, dtype=float)
    p = np.asarray(shares, dtype=float).reshape(len(b))
    cs, cl = np.asarray(small_cost, dtype=float), np.asarray(large_cost, dtype=float)
    c1, c2 = float(decision_cost[0]), float(decision_cost[1])
    n = len(s)
    if cs.shape != (n,) or cl.shape != (n,):
        raise ThresholdError(f"per-query costs must have the stream's length {n}, got {cs.shape} and {cl.shape}")
    remaining = b * n
    tol = afford_rtol * np.abs(b * n)
    outcome = np.full((len(b), n), UNAFFORDABLE, dtype=np.int8)
    seen = np.zeros((len(b), n), dtype=np.float32)  # which queries' scores joined the seen scores, per budget
    n_seen = np.zeros(len(b))
    for i in range(n):
        left = n - i
        afford = remaining >= c1 - tol
        only_small = afford & (remaining - left * c1 <= 0)
        large_only = afford & ~only_small & (remaining - left * c2 >= 0) & bool(large_is_better)
        normal = afford & ~only_small & ~large_only
        joins = only_small | normal
        seen[:, i] = joins
        n_seen += joins
        k = np.trunc(n_seen * p)  # int(len(aux) * p)
        before = seen[:, :i]
        if routing:  # score <= aux[k]  <=>  #(seen < score) <= k
            rank = before @ (s[:i] < s[i]).astype(np.float32)
        else:  # score < aux[k]  <=>  #(seen <= score, itself included) <= k
            rank = before @ (s[:i] <= s[i]).astype(np.float32) + 1.0
        ready = (n_seen > warmup) & (rank <= k)
        outcome[only_small, i] = SMALL
        outcome[large_only, i] = LARGE_ONLY
        remaining = remaining - np.where(only_small, cs[i], 0.0) - np.where(large_only, cl[i], 0.0)
        if routing:
            go = normal & ready & (remaining - c2 > 0)
            outcome[normal & ~go, i] = SMALL
            outcome[go, i] = ESCALATED
            remaining = remaining - np.where(go, cl[i], np.where(normal, cs[i], 0.0))
        else:
            remaining = remaining - np.where(normal, cs[i], 0.0)
            go = normal & ready & (remaining - c2 >= 0)
            outcome[normal & ~go, i] = SMALL
            outcome[go, i] = ESCALATED
            remaining = remaining - np.where(go, cl[i], 0.0)
    return PaperStream(outcome, b * n - remaining)


def paper_share(budget: float | np.ndarray, small_cost: float, large_cost: float, small_accuracy: float,
                large_accuracy: float, *, routing: bool = False) -> np.ndarray:
    """The authors' escalation share (``return_p`` / ``return_p_sakota``): min((b − c_S)/c_L, 1) for a cascade,
    min((b − c_S)/(c_L − c_S), 1) for a router; when L is not better or not dearer, min((1 − acc_S)/2, 0.6).

    Clipped at 0 below c_S (the authors' budgets never go there; a negative share would index
    their sorted scores from the end).
    """
    b = np.asarray(budget, dtype=float)
    c1, c2 = float(small_cost), float(large_cost)
    if large_accuracy > small_accuracy and c1 < c2:
        return np.clip((b - c1) / ((c2 - c1) if routing else c2), 0.0, 1.0)
    return np.full_like(b, min((1.0 - small_accuracy) / 2, 0.6))
