"""Combining several sampled answers of one model: plurality vote, filtered vote and best-of-K.

Everything here works on one model's recorded samples of a batch of queries, as arrays:

- :class:`Samples` holds, per query, each sample's answer *category* (answers equal after
  normalisation share a category; ``-1`` is an abstention: no answer, or one the normaliser could
  not read), the quality of each category, each sample's cost and which samples were recorded.
- A *draw* is a sequence of sample indices per query: with replacement from the recorded samples
  (the plug-in estimate of the model's answer distribution, needed beyond the recorded count),
  without replacement (distinct recorded samples only), or the first K in recorded order (what a
  live run that asks for samples 0..K-1 sees).

**Tie rule.** Among answers with the most votes, the one seen first in the draw order wins
(``collections.Counter.most_common``'s rule, which the live policies use). Over random draw
orders that is the same as a uniformly random pick among the tied answers, which is what the
exact formulas use. Abstentions cast no vote; when no sample in a prefix has an answer the vote
returns no answer, worth ``EMPTY_QUALITY``.

**How expectations are computed.** Vote over random draws is exact (binomial / hypergeometric
sums) for queries whose samples hold at most two distinct answers and no abstention, and seeded
Monte Carlo otherwise; Filter-Vote is Monte Carlo; best-of-K is exact for every query. The Monte
Carlo evaluates every prefix length of one draw at once: with answers as small integers, the
running plurality winner of a sequence is a running maximum of a per-position key (occurrence
rank, then earliness of the answer's first occurrence), so the whole curve K = 1..K_max costs one
stable (radix) sort and one cumulative maximum per draw — no loop over queries or over K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

from ..core.errors import PolicyError

Draws = Literal["with-replacement", "without-replacement", "first"]
DRAWS: tuple[str, ...] = ("with-replacement", "without-replacement", "first")
#: Quality of a vote that returns no answer (every sample in it abstained).
EMPTY_QUALITY = 0.0
#: Cells (replicates x queries x K) processed per Monte Carlo chunk: bounds memory to ~100 MB.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Samples:
    """One model's samples of a batch of queries, encoded for voting (see the module docstring).

    ``codes`` (Q, S) int16: answer category per sample, -1 = abstention; recorded samples come
    first in each row (``n`` of them), so draws index ``0..n[i]-1``. ``value`` (Q, M): quality of
    each category (the mean recorded quality of its samples; NaN when unknown, as live).
    ``quality`` and ``cost`` (Q, S): per sample, NaN where not recorded. ``order`` (Q, S) maps each
    compacted position back to the original sample index.
    """

    codes: np.ndarray
    value: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    n: np.ndarray
    order: np.ndarray

    @property
    def n_queries(self) -> int:
        return self.codes.shape[0]

    def binary(self) -> np.ndarray:
        """Queries whose recorded samples hold at most two distinct answers and no abstention."""
        rec = np.arange(self.codes.shape[1])[None, :] < self.n[:, None]
        no_abstain = ~((self.codes < 0) & rec).any(axis=1)
        return no_abstain & (self.codes.max(axis=1) <= 1)

    def distribution(self) -> np.ndarray:
        """(Q, M) empirical probability of each answer category among the recorded samples."""
        Q, M = self.value.shape
        rec = np.arange(self.codes.shape[1])[None, :] < self.n[:, None]
        ok = rec & (self.codes >= 0)
        rows = np.broadcast_to(np.arange(Q)[:, None], self.codes.shape)[ok]
        counts = np.bincount(rows * M + self.codes[ok], minlength=Q * M).reshape(Q, M)
        return counts / np.maximum(self.n, 1)[:, None]

    def compacted(self, a: np.ndarray) -> np.ndarray:
        """A (Q, S) per-sample array given in the original sample order, in the compacted order of ``codes``."""
        return np.take_along_axis(np.asarray(a, dtype=float), self.order, axis=1)

    def take(self, rows: np.ndarray) -> "Samples":
        """The same samples for a subset of the queries."""
        return Samples(self.codes[rows], self.value[rows], self.quality[rows], self.cost[rows], self.n[rows],
                       self.order[rows])

    def head(self, n: int) -> "Samples":
        """The same queries keeping only their first ``n`` recorded samples (few-sample prediction)."""
        keep = np.minimum(self.n, n)
        S = int(max(int(keep.max(initial=0)), 1))
        codes = self.codes[:, :S].copy()
        mask = np.arange(S)[None, :] >= keep[:, None]
        codes[mask] = -1
        q, c = self.quality[:, :S].copy(), self.cost[:, :S].copy()
        q[mask], c[mask] = np.nan, np.nan
        return Samples(codes, self.value, q, c, keep, self.order[:, :S])


def encode(answers: np.ndarray, quality: np.ndarray | None = None, cost: np.ndarray | None = None, *,
           recorded: np.ndarray | None = None, normalise: str | Callable[[Any], Any] = "text") -> Samples:
    """Encode (Q, S) answers (with per-sample quality and cost) into :class:`Samples`.

    ``recorded`` marks the samples that exist (default: finite ``quality``, or every sample when
    quality is unknown). Answers are normalised with ``normalise`` (a name from
    :mod:`callwise.core.normalise` or a function); answers that normalise to None abstain.
    """
    from ..core.normalise import normalise_array

    answers = np.asarray(answers, dtype=object)
    if answers.ndim != 2:
        raise PolicyError(f"answers must be a (queries, samples) array, got shape {answers.shape}")
    Q, S = answers.shape
    quality = np.full((Q, S), np.nan) if quality is None else np.asarray(quality, dtype=float)
    cost = np.zeros((Q, S)) if cost is None else np.asarray(cost, dtype=float)
    if recorded is None:
        recorded = np.isfinite(quality) if np.isfinite(quality).any() else np.ones((Q, S), bool)
    recorded = np.asarray(recorded, bool)
    norm = normalise_array(answers, normalise)
    # compact: recorded samples first in each row (stable, so recorded order is kept)
    order = np.argsort(~recorded, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    norm, quality, cost, recorded = take(norm), take(quality), take(cost), take(recorded)
    quality = np.where(recorded, quality, np.nan)
    cost = np.where(recorded, cost, np.nan)
    n = recorded.sum(axis=1)
    has = recorded & np.array([v is not None for v in norm.ravel()], dtype=bool).reshape(Q, S)
    rows = np.broadcast_to(np.arange(Q)[:, None], (Q, S))[has]
    codes = np.full((Q, S), -1, dtype=np.int16)
    if has.any():
        frame = pd.DataFrame({"r": rows, "a": norm[has]})
        g = frame.groupby(["r", "a"], sort=False, observed=True).ngroup().to_numpy()
        # ngroup numbers groups by first appearance; rows come in order, so each row's groups are
        # consecutive and its first group is the smallest id in the row
        first = np.full(Q, np.iinfo(np.int64).max)
        np.minimum.at(first, rows, g)
        local = g - first[rows]
        if local.max() >= np.iinfo(np.int16).max:
            raise PolicyError("a query has more than 32766 distinct answers; votes need far fewer")
        codes[has] = local
        M = int(local.max()) + 1
        q = quality[has]
        sums = np.bincount(g, weights=np.nan_to_num(q), minlength=g.max() + 1)
        known = np.bincount(g, weights=np.isfinite(q).astype(float), minlength=g.max() + 1)
        per_group = np.where(known > 0, sums / np.maximum(known, 1), np.nan)
        value = np.full((Q, M), np.nan)
        value[rows, local] = per_group[g]
    else:
        value = np.full((Q, 1), np.nan)
    return Samples(codes, value, quality, cost, n.astype(np.int64), order)


# --------------------------------------------------------------------------------------------
# the running plurality winner of draw sequences


def prefix_winners(seq: np.ndarray) -> np.ndarray:
    """For (B, K) answer codes (-1 abstains), the winning code of every prefix 1..K, shape (B, K).

    The winner of a prefix has the most occurrences, ties to the answer whose first occurrence is
    earliest; -1 where no sample of the prefix has an answer. Vectorised: each position gets the
    key (occurrence rank of its answer so far, earliness of that answer's first occurrence); an
    answer's key only grows, so the winner of a prefix holds the running maximum of the keys.
    """
    B, K = seq.shape
    if K == 0:
        return np.empty((B, 0), dtype=np.int64)
    it = np.int32 if (K + 1) ** 2 < np.iinfo(np.int32).max else np.int64
    t = np.arange(K, dtype=it)
    order = np.argsort(seq, axis=1, kind="stable").astype(it)  # radix sort for int16: by code, positions ascending
    sc = np.take_along_axis(seq, order, axis=1)
    new = np.ones((B, K), dtype=bool)
    np.not_equal(sc[:, 1:], sc[:, :-1], out=new[:, 1:])
    start = np.maximum.accumulate(np.where(new, t, it(0)), axis=1)
    first = np.take_along_axis(order, start, axis=1)
    # key = (occurrence rank) * (K + 1) + (K - first occurrence), built in place
    key_sorted = np.subtract(t, start, out=start)
    key_sorted += 1
    key_sorted *= K + 1
    key_sorted += K
    key_sorted -= first
    key_sorted[sc < 0] = -1
    key = np.empty_like(key_sorted)
    np.put_along_axis(key, order, key_sorted, axis=1)
    best = np.maximum.accumulate(key, axis=1)
    pos = K - best % (K + 1)
    pos[best < 0] = 0
    win = np.take_along_axis(seq, pos, axis=1).astype(np.int64)
    win[best < 0] = -1
    return win


def _values(value: np.ndarray, rows: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Quality of winning codes ``win`` (..., K) of query ``rows`` (broadcastable); EMPTY where -1."""
    got = value[rows, np.maximum(win, 0)]
    return np.where(win >= 0, got, EMPTY_QUALITY)


def draw_positions(n: np.ndarray, width: int, reps: int, k_max: int, draws: str,
                   rng: np.random.Generator) -> np.ndarray:
    """(reps, len(n), k_max) sample positions for queries with ``n`` samples each, stored first in rows
    of ``width`` (compacted samples: votes' :class:`Samples`, aggregation's ``SampleSet``)."""
    if draws == "first":
        return np.broadcast_to(np.arange(k_max), (reps, len(n), k_max))
    if draws == "with-replacement":
        u = rng.random((reps, len(n), k_max))
        return np.minimum((u * n[None, :, None]).astype(np.int64), n[None, :, None] - 1)
    # without replacement: a random order of the recorded samples, first k_max of it
    S = width
    u = rng.random((reps, len(n), S))
    u[:, np.arange(S)[None, :] >= n[:, None]] = np.inf
    return np.argsort(u, axis=2)[:, :, :k_max]


def check_k(s: Samples, k_max: int, draws: str) -> None:
    """Raise unless ``k_max`` samples can be drawn this way from every query."""
    if draws not in DRAWS:
        raise PolicyError(f"draws must be one of {list(DRAWS)}, got {draws!r}")
    if k_max < 1:
        raise PolicyError(f"the number of samples K must be at least 1, got {k_max}")
    if s.n_queries and int(s.n.min()) < 1:
        raise PolicyError(f"{int((s.n < 1).sum())} queries have no recorded sample to vote on")
    if draws != "with-replacement" and s.n_queries and k_max > int(s.n.min()):
        raise PolicyError(f"K = {k_max} needs {k_max} distinct recorded samples per query ({draws} draws), but some "
                          f"queries have only {int(s.n.min())}; use draws='with-replacement' to go beyond them")


def _mc_curves(s: Samples, k_max: int, draws: str, reps: int, seed: int,
               per_draw: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
               rows: np.ndarray | None = None) -> np.ndarray:
    """Mean over ``reps`` draws of ``per_draw(positions, rows, rng)`` -> (len(rows), k_max) curves."""
    rows = np.arange(s.n_queries) if rows is None else rows
    reps = 1 if draws == "first" else reps
    out = np.empty((len(rows), k_max))
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // max(reps * k_max, 1))
    for a in range(0, len(rows), step):
        r = rows[a:a + step]
        pos = draw_positions(s.n[r], s.codes.shape[1], reps, k_max, draws, rng)
        out[a:a + step] = per_draw(pos, r, rng).mean(axis=0)
    return out


def _vote_draw(s: Samples) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    def run(pos: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        R, B, K = pos.shape
        seq = s.codes[rows[None, :, None], pos]
        win = prefix_winners(seq.reshape(R * B, K)).reshape(R, B, K)
        return _values(s.value, rows[None, :, None], win)
    return run


def _exact_binary_vote(s: Samples, rows: np.ndarray, ks: np.ndarray, draws: str) -> np.ndarray:
    """Exact expected vote quality for binary queries (codes 0 and maybe 1, no abstention)."""
    from scipy import stats

    n = s.n[rows][:, None].astype(float)
    first = s.codes[rows] == 0
    rec = np.arange(s.codes.shape[1])[None, :] < s.n[rows][:, None]
    n0 = (first & rec).sum(axis=1)[:, None].astype(float)
    v0 = s.value[rows, 0][:, None]
    v1 = s.value[rows, 1][:, None] if s.value.shape[1] > 1 else v0
    v1 = np.where(np.isfinite(v1), v1, v0)
    K = ks[None, :].astype(float)
    half = np.floor(K / 2)
    if draws == "with-replacement":
        dist = stats.binom(K, n0 / n)
    else:
        dist = stats.hypergeom(n, n0, K)
    p0 = dist.sf(half) + np.where(K % 2 == 0, 0.5 * dist.pmf(half), 0.0)  # ties split evenly
    return v0 * p0 + v1 * (1 - p0)


def vote_curve(s: Samples, ks: np.ndarray | list[int], *, draws: str = "with-replacement", reps: int = 400,
               seed: int = 0, exact: bool = True) -> np.ndarray:
    """(Q, len(ks)) expected quality of a plurality vote over K samples, for each K in ``ks``.

    ``draws="first"`` is the deterministic vote of samples 0..K-1. Otherwise the expectation over
    random draws: exact for binary queries (``exact=True``), seeded Monte Carlo with ``reps``
    draws for the others.
    """
    ks = np.asarray(ks, dtype=np.int64)
    k_max = int(ks.max())
    check_k(s, k_max, draws)
    out = np.empty((s.n_queries, len(ks)))
    exact_rows = s.binary() if (exact and draws != "first") else np.zeros(s.n_queries, bool)
    if exact_rows.any():
        out[exact_rows] = _exact_binary_vote(s, np.flatnonzero(exact_rows), ks, draws)
    rest = np.flatnonzero(~exact_rows)
    if len(rest):
        out[rest] = _mc_curves(s, k_max, draws, reps, seed, _vote_draw(s), rest)[:, ks - 1]
    return out


def filter_vote_curve(s: Samples, ks: np.ndarray | list[int], keep: np.ndarray | None = None, *,
                      tpr: float = 0.9, fpr: float = 0.2, draws: str = "with-replacement", reps: int = 400,
                      seed: int = 0, correct_at: float = 0.5) -> np.ndarray:
    """(Q, len(ks)) expected quality of Filter-Vote with K *generations* (the caller counts calls).

    Each drawn answer is kept or dropped by a filter: the recorded verdicts ``keep`` (Q, S) in the
    original sample order when given, else a simulated judge that keeps a correct answer
    (quality >= ``correct_at``) with probability ``tpr`` and a wrong one with probability ``fpr``,
    independently per draw. The vote counts kept answers only; while the filter has kept nothing,
    it falls back to the plain vote of the answers drawn so far.
    """
    ks = np.asarray(ks, dtype=np.int64)
    k_max = int(ks.max())
    check_k(s, k_max, draws)
    if not (0 <= tpr <= 1 and 0 <= fpr <= 1):
        raise PolicyError(f"tpr and fpr must be probabilities, got tpr={tpr}, fpr={fpr}")
    kept_c = None if keep is None else s.compacted(keep)
    correct = np.nan_to_num(s.quality, nan=-np.inf) >= correct_at

    def run(pos: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        R, B, K = pos.shape
        seq = s.codes[rows[None, :, None], pos]
        if kept_c is not None:
            kk = kept_c[rows[None, :, None], pos] > 0.5
        else:
            p = np.where(correct[rows[None, :, None], pos], tpr, fpr)
            kk = rng.random((R, B, K)) < p
        win_all = prefix_winners(seq.reshape(R * B, K)).reshape(R, B, K)
        win_kept = prefix_winners(np.where(kk, seq, -1).astype(np.int16).reshape(R * B, K)).reshape(R, B, K)
        win = np.where(win_kept >= 0, win_kept, win_all)
        return _values(s.value, rows[None, :, None], win)

    return _mc_curves(s, k_max, draws, reps, seed, run)[:, ks - 1]


def best_of_curve(s: Samples, ks: np.ndarray | list[int], *, accuracy: float = 1.0,
                  draws: str = "with-replacement") -> np.ndarray:
    """(Q, len(ks)) expected quality of picking one of K samples with a ranker (exact).

    A ranker of ``accuracy`` a picks the best of the K samples with probability a and a uniformly
    random one otherwise: expected quality a * E[max of K] + (1 - a) * E[mean of K]. a = 1 is the
    perfect ranker (accuracy rises monotonically in K); E[max] is exact from the sorted recorded
    qualities (with or without replacement), and the running max / mean for ``draws="first"``.
    """
    ks = np.asarray(ks, dtype=np.int64)
    check_k(s, int(ks.max()), draws)
    if not 0 <= accuracy <= 1:
        raise PolicyError(f"ranker accuracy must be a probability, got {accuracy}")
    q = s.quality
    if draws == "first":
        qq = q[:, : int(ks.max())]
        emax = np.fmax.accumulate(qq, axis=1)[:, ks - 1]
        emean = (np.nancumsum(qq, axis=1) / np.arange(1, qq.shape[1] + 1))[:, ks - 1]
        return accuracy * emax + (1 - accuracy) * emean
    qs = np.sort(np.where(np.isfinite(q), q, np.inf), axis=1)  # recorded ascending, missing last
    n = s.n[:, None, None].astype(float)
    j = np.arange(1, qs.shape[1] + 1)[None, None, :].astype(float)  # rank of each sorted value
    K = ks[None, :, None].astype(float)
    if draws == "with-replacement":
        w = (np.minimum(j, n) / n) ** K - (np.minimum(j - 1, n) / n) ** K
    else:
        from scipy.special import gammaln

        ok = (j >= K) & (j <= n)
        lw = (gammaln(j) - gammaln(K) - gammaln(np.maximum(j - K + 1, 1))
              - (gammaln(n + 1) - gammaln(K + 1) - gammaln(np.maximum(n - K + 1, 1))))
        w = np.where(ok, np.exp(np.where(ok, lw, 0.0)), 0.0)
    w = np.where(j <= n, w, 0.0)
    vals = np.where(np.isfinite(qs), qs, 0.0)[:, None, :]
    emax = (w * vals).sum(axis=2)
    emean = np.nanmean(q, axis=1)[:, None]
    return accuracy * emax + (1 - accuracy) * emean


def expected_cost(s: Samples, ks: np.ndarray | list[int], draws: str = "with-replacement") -> np.ndarray:
    """(Q, len(ks)) expected cost of K generations: K x the mean recorded cost (running sum for "first")."""
    ks = np.asarray(ks, dtype=np.int64)
    if draws == "first":
        return np.nancumsum(s.cost[:, : int(ks.max())], axis=1)[:, ks - 1]
    return np.nanmean(s.cost, axis=1)[:, None] * ks[None, :]


# --------------------------------------------------------------------------------------------
# live: vote over concrete answers


def plurality(answers: np.ndarray, normalise: str | Callable[[Any], Any] = "text") -> np.ndarray:
    """(Q,) index of the winning sample of each row of (Q, K) answers: the first sample holding the
    plurality answer after normalisation (ties: first seen); -1 where every sample abstains."""
    s = encode(answers, recorded=np.ones(np.shape(answers), bool), normalise=normalise)
    K = s.codes.shape[1]
    win = prefix_winners(s.codes)[:, K - 1]
    hit = (s.codes == win[:, None]) & (win[:, None] >= 0)
    return np.where(hit.any(axis=1), s.order[np.arange(s.n_queries), hit.argmax(axis=1)], -1)
