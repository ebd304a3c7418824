"""Metric-aware aggregation: combine a query's sampled answers into the answer that is best for the
metric it will be judged by (Lukasik et al., "Regression-aware inference with LLMs", arXiv
2403.04182, section 3).

Given N samples y_1..y_N of a query (with weights w_i, 1 by default), the prediction that minimises
the expected loss under the empirical answer distribution is:

- squared error -> the weighted **mean**;
- absolute error -> a weighted **median** (the midpoint of the lower and upper median, which is
  ``numpy.median`` when the weights are equal);
- pinball loss at level tau -> the weighted tau-**quantile** (the smallest sample whose cumulative
  weight reaches tau of the total: numpy's ``inverted_cdf`` method when the weights are equal);
- exact match (0-1 loss) -> the weighted **mode** (ties: the answer seen first);
- any other utility u (token F1, ROUGE-L, BLEU, chrF, numeric closeness, a user's function) ->
  **minimum Bayes risk** (MBR): the sampled candidate c maximising sum_j w_j u(c, y_j) (ties: the
  candidate seen first). With the exact-match utility this *is* the mode.

A :class:`SampleSet` holds each query's *distinct* answers with their total weights, so weighting a
sample by 2 is the same as recording it twice, and MBR needs utilities only between distinct
answers (:mod:`callwise.aggregation.utilities` batches them and caches repeated pairs). An explicit label
distribution (a 1-5 rating read from the log-probabilities of the rating tokens:
:func:`rating_distribution`) is a SampleSet too (:meth:`SampleSet.from_distribution`).

Answers are canonical strings (:mod:`callwise.core.normalise`); numeric rules read them as numbers
(``kind='number'``) or, for dates, as day numbers (``kind='date'``: days since 0001-01-01, so
errors are in days). Answers that do not normalise (or parse) abstain: they carry no weight. A
query with no usable answer is an error naming the query.

Offline, :func:`draw_predictions` evaluates a rule over random draws of N samples per query
(with or without replacement from the recorded ones, or the first N) in one vectorised pass per
rule: a draw becomes per-answer weights by one ``bincount``, and every rule works on the
(draws x queries, distinct answers) weight matrix.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..core.errors import PolicyError
from ..core.normalise import canonical_float, normalise_array

#: Number kinds: how canonical answers read as numbers.
KINDS: tuple[str, ...] = ("number", "date")
_ORDINAL_0 = _dt.date(1, 1, 1).toordinal()
#: Cells (rows x distinct answers) per chunk of :func:`draw_predictions`: bounds memory.
_CHUNK_CELLS = 2_000_000


# --------------------------------------------------------------------------------------------
# answers <-> numbers


def to_numbers(values: np.ndarray, kind: str = "number") -> np.ndarray:
    """Canonical answers (any shape, None where absent) as floats; NaN where an answer does not read.

    ``number``: ``float(answer)``; ``date``: an ``MM/DD/YYYY`` answer as days since 0001-01-01.
    """
    _check_kind(kind)
    arr = np.asarray(values, dtype=object)
    flat = arr.reshape(-1)
    out = np.full(flat.shape, np.nan)
    if flat.size == 0:
        return out.reshape(arr.shape)
    codes, uniques = pd.factorize(flat, use_na_sentinel=True)
    read = _read_date if kind == "date" else _read_number
    table = np.array([read(u) for u in uniques] + [np.nan], dtype=float)
    return table[codes].reshape(arr.shape)


def from_numbers(x: np.ndarray, kind: str = "number") -> np.ndarray:
    """Numbers as canonical answers (object array; None for NaN): the inverse of :func:`to_numbers`.

    Numbers are written as :func:`callwise.core.normalise.number` writes them (``18.0`` -> ``"18"``);
    dates are rounded to the nearest day.
    """
    _check_kind(kind)
    arr = np.asarray(x, dtype=float)
    flat = arr.reshape(-1)
    out = np.empty(flat.shape, dtype=object)
    codes, uniques = pd.factorize(flat, use_na_sentinel=True)
    write = _write_date if kind == "date" else canonical_float
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = [write(float(u)) for u in uniques]
    table[-1] = None
    out[:] = table[codes]
    return out.reshape(arr.shape)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise PolicyError(f"unknown number kind {kind!r}; expected one of {list(KINDS)}")


def _read_number(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _read_date(v: Any) -> float:
    if not isinstance(v, str) or len(v) != 10:
        return math.nan
    try:
        d = _dt.datetime.strptime(v, "%m/%d/%Y").date()
    except ValueError:
        return math.nan
    return float(d.toordinal() - _ORDINAL_0)


def _write_date(days: float) -> str | None:
    if not math.isfinite(days):
        return None
    try:
        return _dt.date.fromordinal(int(round(days)) + _ORDINAL_0).strftime("%m/%d/%Y")
    except (ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------------------------
# sample sets


@dataclass(frozen=True)
class SampleSet:
    """Each query's usable samples and distinct answers, with weights.

    ``values`` (Q, U) object: the distinct canonical answers of each query in first-seen order
    (None in the padding). ``codes`` (Q, S) int: each usable sample's index into its query's
    ``values``; usable samples come first in each row (``n`` of them), -1 after. ``sample_weight``
    (Q, S): each usable sample's weight (0 after). ``weights`` (Q, U): the total weight of each
    distinct answer. ``origin`` (Q, S): each usable sample's index in the input row (for reading
    the recorded quality or text of the chosen sample).
    """

    values: np.ndarray
    codes: np.ndarray
    sample_weight: np.ndarray
    n: np.ndarray
    origin: np.ndarray
    _numbers: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_queries(self) -> int:
        return self.values.shape[0]

    @property
    def weights(self) -> np.ndarray:
        Q, U = self.values.shape
        ok = self.codes >= 0
        rows = np.broadcast_to(np.arange(Q)[:, None], self.codes.shape)[ok]
        return np.bincount(rows * U + self.codes[ok], weights=self.sample_weight[ok], minlength=Q * U).reshape(Q, U)

    def numbers(self, kind: str = "number") -> np.ndarray:
        """(Q, U) the distinct answers as numbers (NaN where one does not read as a ``kind`` number)."""
        if kind not in self._numbers:
            self._numbers[kind] = to_numbers(self.values, kind)
        return self._numbers[kind]

    def take(self, rows: np.ndarray) -> "SampleSet":
        """The same samples for a subset of the queries."""
        return SampleSet(self.values[rows], self.codes[rows], self.sample_weight[rows], self.n[rows], self.origin[rows],
                         {k: v[rows] for k, v in self._numbers.items()})

    def usable_where(self, kind: str) -> "SampleSet":
        """The same queries keeping only samples whose answer reads as a ``kind`` number."""
        num = self.numbers(kind)
        ok = (self.codes >= 0) & np.isfinite(np.take_along_axis(num, np.maximum(self.codes, 0), axis=1))
        return _compact(self.values, self.codes, self.sample_weight, self.origin, ok, self._numbers)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_samples(cls, answers: Any, weights: Any = None, *, normalise: str | Callable[[Any], Any] = "text",
                     recorded: np.ndarray | None = None) -> "SampleSet":
        """Build from (Q, S) answers (or a ragged list of answer lists) and optional (Q, S) weights.

        Answers are normalised with ``normalise`` (a :mod:`callwise.core.normalise` name or a function;
        ``"none"`` keeps them as given); those that normalise to None abstain. ``recorded`` marks
        the samples that exist (default: every present answer). Weights must be finite and >= 0.
        """
        ans = _as_matrix(answers, "answers")
        Q, S = ans.shape
        w = np.ones((Q, S)) if weights is None else _as_weight_matrix(weights, (Q, S))
        norm = normalise_array(ans, normalise)
        ok = np.array([v is not None for v in norm.ravel()], dtype=bool).reshape(Q, S) & (w > 0)
        if recorded is not None:
            ok &= np.asarray(recorded, dtype=bool)
        origin = np.broadcast_to(np.arange(S), (Q, S))
        return _compact(norm, None, w, origin, ok, {})

    @classmethod
    def from_distribution(cls, labels: Sequence[Any], probs: Any) -> "SampleSet":
        """An explicit distribution over ``labels`` per query: ``probs`` (Q, L), rows need not sum to 1.

        Labels are written as canonical answers (numbers as :func:`callwise.core.normalise.number`
        writes them), so the numeric rules read them back as numbers.
        """
        labels = list(labels)
        if not labels:
            raise PolicyError("a label distribution needs at least one label")
        p = np.asarray(probs, dtype=float)
        if p.ndim == 1:
            p = p[None, :]
        if p.ndim != 2 or p.shape[1] != len(labels):
            raise PolicyError(f"probs must be (queries, {len(labels)}) for {len(labels)} labels, got shape {p.shape}")
        canon = normalise_array(np.array(labels, dtype=object), lambda v: _label(v))
        if len(set(canon.tolist())) != len(labels):
            raise PolicyError(f"labels must be distinct, got {labels}")
        return cls.from_samples(np.broadcast_to(canon, p.shape), p, normalise="none")


def _label(v: Any) -> str:
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return canonical_float(float(v)) or str(v)
    return str(v)


def _as_matrix(answers: Any, what: str) -> np.ndarray:
    """(Q, S) object array from an array or a ragged list of lists (padded with None)."""
    if isinstance(answers, SampleSet):
        raise PolicyError(f"{what} is already a SampleSet")
    if isinstance(answers, np.ndarray) and answers.ndim == 2:
        out = answers.astype(object)
    else:
        rows = list(answers) if answers is not None else []
        if rows and all(isinstance(r, (str, bytes, int, float, np.generic)) or r is None for r in rows):
            raise PolicyError(f"{what} must be one list of samples per query (a 2-D array or a list of lists), "
                              f"got a flat list of {len(rows)} values; wrap it as [samples] for one query")
        rows = [list(r) for r in rows]
        S = max((len(r) for r in rows), default=0)
        out = np.full((len(rows), S), None, dtype=object)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
    if out.shape[0] == 0:
        raise PolicyError(f"no queries: {what} is empty")
    if out.shape[1] == 0:
        raise PolicyError(f"no samples: every query's sample list is empty ({what} has shape {out.shape})")
    return out


def _as_weight_matrix(weights: Any, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(weights, np.ndarray) and weights.ndim == 2:
        w = weights.astype(float)
    else:
        rows = [list(r) for r in weights]
        w = np.full((len(rows), shape[1]), np.nan)
        for i, r in enumerate(rows):
            w[i, :len(r)] = r
    if w.shape != shape:
        raise PolicyError(f"weights must have the answers' shape {shape}, got {w.shape}")
    bad = ~np.isnan(w) & (~np.isfinite(w) | (w < 0))
    if bad.any():
        q, s = np.argwhere(bad)[0]
        raise PolicyError(f"query {q}, sample {s}: weight {float(w[q, s])!r} is not a finite number >= 0")
    return np.nan_to_num(w, nan=0.0)


def _compact(values: np.ndarray, codes: np.ndarray | None, weight: np.ndarray, origin: np.ndarray, ok: np.ndarray,
             numbers: dict[str, np.ndarray]) -> SampleSet:
    """Usable samples first in each row; distinct answers per row in first-seen order."""
    Q, S = ok.shape
    order = np.argsort(~ok, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    ok_c = take(ok)
    n = ok_c.sum(axis=1).astype(np.int64)
    Sn = max(int(n.max(initial=0)), 1)
    ok_c = ok_c[:, :Sn]
    w = np.where(ok_c, take(weight)[:, :Sn], 0.0)
    org = np.where(ok_c, take(np.asarray(origin))[:, :Sn], -1)
    if codes is None:  # values are per-sample answers: find the distinct ones
        ans = take(values)[:, :Sn]
        rows = np.broadcast_to(np.arange(Q)[:, None], (Q, Sn))[ok_c]
        new_codes = np.full((Q, Sn), -1, dtype=np.int64)
        if ok_c.any():
            g = pd.DataFrame({"r": rows, "a": ans[ok_c]}).groupby(["r", "a"], sort=False, observed=True).ngroup().to_numpy()
            first = np.full(Q, np.iinfo(np.int64).max)
            np.minimum.at(first, rows, g)
            local = g - first[rows]
            new_codes[ok_c] = local
            U = int(local.max()) + 1
            uniq = np.full((Q, U), None, dtype=object)
            uniq[rows, local] = ans[ok_c]
        else:
            uniq = np.full((Q, 1), None, dtype=object)
        return SampleSet(uniq, new_codes, w, n, org, {})
    # values are already distinct per row: keep the ones still used, renumbered in first-seen order
    c = np.where(ok_c, take(codes)[:, :Sn], -1)
    U = values.shape[1]
    used = np.zeros((Q, U + 1), dtype=bool)
    used[np.arange(Q)[:, None], np.where(c >= 0, c, U)] = True
    used = used[:, :U]
    new_index = np.cumsum(used, axis=1) - 1
    U2 = max(int(used.sum(axis=1).max(initial=0)), 1)
    uniq = np.full((Q, U2), None, dtype=object)
    r, u = np.nonzero(used)
    uniq[r, new_index[r, u]] = values[r, u]
    nums = {}
    for k, v in numbers.items():
        a = np.full((Q, U2), np.nan)
        a[r, new_index[r, u]] = v[r, u]
        nums[k] = a
    new_codes = np.where(c >= 0, np.take_along_axis(new_index, np.maximum(c, 0), axis=1), -1)
    return SampleSet(uniq, new_codes, w, n, org, nums)


def probability_weights(logprobs: Any, keys: Any = None) -> np.ndarray:
    """Per-sample weights from sequence log-probabilities, (Q, S) -> (Q, S), each row summing to 1.

    Sampling already makes frequent answers frequent, so weighting every sample by its
    probability would count it twice. These weights give each *distinct* sample (by ``keys``,
    e.g. the completion text; default: every sample is distinct) its probability once —
    exp(logprob), normalised over the row — and its repeats weight 0. NaN log-probabilities
    (missing samples) get weight 0.
    """
    lp = np.asarray(logprobs, dtype=float)
    if lp.ndim != 2:
        raise PolicyError(f"logprobs must be a (queries, samples) array, got shape {lp.shape}")
    if (lp > 1e-9).any():
        q, s = np.argwhere(lp > 1e-9)[0]
        raise PolicyError(f"query {q}, sample {s}: log-probability {float(lp[q, s])!r} is positive; expected a value <= 0")
    ok = ~np.isnan(lp)
    if keys is not None:
        k = np.asarray(keys, dtype=object)
        if k.shape != lp.shape:
            raise PolicyError(f"keys must have the logprobs' shape {lp.shape}, got {k.shape}")
        for q in range(lp.shape[0]):  # first occurrence of each key per row (rows are short)
            seen: set[Any] = set()
            for s in range(lp.shape[1]):
                if ok[q, s]:
                    if k[q, s] in seen:
                        ok[q, s] = False
                    seen.add(k[q, s])
    top = np.max(np.where(ok, lp, -np.inf), axis=1, keepdims=True)
    w = np.where(ok, np.exp(lp - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = w.sum(axis=1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def rating_distribution(top_logprobs: Sequence[Any], labels: Sequence[Any] = (1, 2, 3, 4, 5)) -> np.ndarray:
    """(Q, L) probabilities of rating ``labels`` read from the top log-probabilities of one token.

    ``top_logprobs[q]`` is a mapping token -> log-probability, or a list of ``{"token", "logprob"}``
    entries (the OpenAI ``top_logprobs`` format). Tokens are matched to labels after stripping
    whitespace; probabilities of tokens that are the same label are added; each row is normalised
    over the labels. A query whose top tokens hold no label is an error naming it.
    """
    names = [str(v).strip() for v in labels]
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros((len(top_logprobs), len(names)))
    for q, entry in enumerate(top_logprobs):
        pairs = entry.items() if isinstance(entry, dict) else (
            (e["token"], e["logprob"]) if isinstance(e, dict) else (e.token, e.logprob) for e in entry)
        for tok, lp in pairs:
            i = index.get(str(tok).strip())
            if i is not None:
                out[q, i] += math.exp(float(lp))
        if out[q].sum() <= 0:
            raise PolicyError(f"query {q}: none of the top tokens is a rating label {names}; "
                              "ask for more top_logprobs or check the labels")
    return out / out.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------
# rules


@dataclass(frozen=True)
class Batch:
    """Rows to aggregate (one per query and draw): the query of each row, per-answer weights (B, U)
    and the position of each answer's first occurrence in the draw (B, U; large where absent)."""

    rows: np.ndarray
    weights: np.ndarray
    first: np.ndarray


class Rule:
    """An aggregation rule. ``numeric`` rules return a number per row; the others pick an answer."""

    name: str = ""
    numeric: bool = False

    def prepare(self, ss: SampleSet, kind: str) -> Any:
        """Per-sample-set work shared by every batch (numbers, utility matrices)."""
        return ss.numbers(kind) if self.numeric else None

    def numbers(self, ctx: Any, b: Batch) -> np.ndarray:
        raise NotImplementedError

    def pick(self, ctx: Any, b: Batch, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Rule({self.name!r})"


def _argmax_first(score: np.ndarray, first: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Index of the highest score per row, ties (within 1e-12 relative) to the earliest first occurrence."""
    s = np.where(present, score, -np.inf)
    top = s.max(axis=1, keepdims=True)
    tol = 1e-12 * np.maximum(np.abs(top), 1.0)
    tied = present & (s >= top - tol)
    return np.argmin(np.where(tied, first, np.iinfo(np.int64).max), axis=1)


class Mean(Rule):
    name, numeric = "mean", True

    def numbers(self, ctx: np.ndarray, b: Batch) -> np.ndarray:
        x = ctx[b.rows]
        w = np.where(np.isfinite(x), b.weights, 0.0)
        total = w.sum(axis=1)
        return np.divide((w * np.nan_to_num(x)).sum(axis=1), total, out=np.full(len(total), np.nan), where=total > 0)


class Quantile(Rule):
    """The weighted tau-quantile: the smallest answer whose cumulative weight reaches tau of the total."""

    numeric = True

    def __init__(self, tau: float) -> None:
        if not (isinstance(tau, (int, float)) and 0.0 < float(tau) < 1.0):
            raise PolicyError(f"a quantile level tau must be a number in (0, 1), got {tau!r}")
        self.tau = float(tau)
        self.name = f"quantile:{self.tau:g}"

    def _sorted(self, ctx: np.ndarray, b: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = ctx[b.rows]
        w = np.where(np.isfinite(x), b.weights, 0.0)
        order = np.argsort(np.where(w > 0, x, np.inf), axis=1, kind="stable")
        xs = np.take_along_axis(x, order, axis=1)
        cw = np.cumsum(np.take_along_axis(w, order, axis=1), axis=1)
        return xs, cw, cw[:, -1:]

    def numbers(self, ctx: np.ndarray, b: Batch) -> np.ndarray:
        xs, cw, total = self._sorted(ctx, b)
        return _first_reaching(xs, cw, total, self.tau, strict=False)


class Median(Quantile):
    """The weighted median: midpoint of the lower median and the upper median (``numpy.median`` unweighted)."""

    def __init__(self) -> None:
        super().__init__(0.5)
        self.name = "median"

    def numbers(self, ctx: np.ndarray, b: Batch) -> np.ndarray:
        xs, cw, total = self._sorted(ctx, b)
        lo = _first_reaching(xs, cw, total, 0.5, strict=False)
        hi = _first_reaching(xs, cw, total, 0.5, strict=True)
        return 0.5 * (lo + hi)


def _first_reaching(xs: np.ndarray, cw: np.ndarray, total: np.ndarray, tau: float, strict: bool) -> np.ndarray:
    """Per row, the sorted value where the cumulative weight first reaches (or, strict, passes) tau * total."""
    target = tau * total
    eps = 1e-12 * np.maximum(total, 1.0)
    hit = cw > target + eps if strict else cw >= target - eps
    i = np.argmax(hit, axis=1)
    out = np.take_along_axis(xs, i[:, None], axis=1)[:, 0]
    return np.where(total[:, 0] > 0, out, np.nan)


class Mode(Rule):
    """The answer with the most weight; ties to the one seen first."""

    name = "mode"

    def pick(self, ctx: Any, b: Batch, rng: np.random.Generator) -> np.ndarray:
        return _argmax_first(b.weights, b.first, b.weights > 0)


class MBR(Rule):
    """Minimum Bayes risk: the candidate with the most expected utility against the samples."""

    def __init__(self, utility: Any = "token-f1", cache: Any = None) -> None:
        from .utilities import UtilityCache, get_utility

        self.utility = get_utility(utility)
        self.cache = cache if cache is not None else UtilityCache()
        self.name = f"mbr:{self.utility.name}"

    def prepare(self, ss: SampleSet, kind: str) -> np.ndarray:
        from .utilities import utility_matrices

        cands = [[v for v in row if v is not None] or [""] for row in ss.values]
        m = utility_matrices(cands, self.utility, self.cache)
        U = ss.values.shape[1]
        out = np.zeros((ss.n_queries, U, U))
        k = min(U, m.shape[1])
        out[:, :k, :k] = m[:, :k, :k]
        return out

    def pick(self, ctx: np.ndarray, b: Batch, rng: np.random.Generator) -> np.ndarray:
        score = np.einsum("bij,bj->bi", ctx[b.rows], b.weights, optimize=True)
        return _argmax_first(score, b.first, b.weights > 0)


class First(Rule):
    """The first sample of the draw (a live run's sample 0): the one-call baseline."""

    name = "first"

    def pick(self, ctx: Any, b: Batch, rng: np.random.Generator) -> np.ndarray:
        return np.argmin(b.first, axis=1)


class RandomSample(Rule):
    """A sample drawn in proportion to the weights: what one call returns, over many calls."""

    name = "random"

    def pick(self, ctx: Any, b: Batch, rng: np.random.Generator) -> np.ndarray:
        cw = np.cumsum(b.weights, axis=1)
        u = rng.random(len(cw)) * cw[:, -1]
        return np.minimum((cw <= u[:, None]).sum(axis=1), cw.shape[1] - 1)


_NAMED: dict[str, Callable[[], Rule]] = {"mean": Mean, "median": Median, "mode": Mode, "first": First,
                                         "random": RandomSample}
RULES: tuple[str, ...] = ("mean", "median", "mode", "quantile:<tau>", "mbr:<utility>", "first", "random")


def get_rule(spec: "str | Rule") -> Rule:
    """A rule from its name: mean, median, mode, quantile:<tau>, mbr:<utility>, first, random."""
    if isinstance(spec, Rule):
        return spec
    if not isinstance(spec, str):
        raise PolicyError(f"an aggregation rule must be a name or a Rule, got {type(spec).__name__}")
    if spec in _NAMED:
        return _NAMED[spec]()
    head, _, arg = spec.partition(":")
    if head == "quantile" and arg:
        try:
            return Quantile(float(arg))
        except ValueError:
            pass
    if head == "mbr" and arg:
        return MBR(arg)
    raise PolicyError(f"unknown aggregation rule {spec!r}; expected one of {list(RULES)}")


# --------------------------------------------------------------------------------------------
# applying a rule


class Predictions:
    """Predictions of one rule, any shape (queries, or queries x draws): canonical answers, their
    numbers (NaN where not numeric) and, for rules that pick a sample, the picked distinct answer
    (index into ``SampleSet.values``; -1 for numeric rules). A numeric rule's answers are written
    as text only when asked for (exact match, utilities), since most metrics read the numbers."""

    def __init__(self, answers: np.ndarray | None, numbers: np.ndarray, index: np.ndarray, kind: str = "number") -> None:
        self._answers = answers
        self.numbers = numbers
        self.index = index
        self.kind = kind

    @property
    def answers(self) -> np.ndarray:
        if self._answers is None:
            self._answers = from_numbers(self.numbers, self.kind)
        return self._answers


def _weights_of_draw(ss: SampleSet, rows: np.ndarray, pos: np.ndarray,
                     mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(B, U) weights and first positions of draws ``pos`` (B, N) of queries ``rows`` (B,); positions
    where ``mask`` is False count for nothing."""
    B, N = pos.shape
    U = ss.values.shape[1]
    c = ss.codes[rows[:, None], pos]
    w = ss.sample_weight[rows[:, None], pos]
    if mask is not None:
        w = np.where(mask, w, 0.0)
    weights = np.bincount((np.arange(B)[:, None] * U + c).ravel(), weights=w.ravel(),
                          minlength=B * U).reshape(B, U)
    first = np.full((B, U), N, dtype=np.int64)
    for j in range(N - 1, -1, -1):  # last write wins, so going backwards leaves the first position
        live = np.flatnonzero(mask[:, j]) if mask is not None else np.arange(B)
        first[live, c[live, j]] = j
    return weights, first


def check_usable(ss: SampleSet, what: str = "samples") -> None:
    """Raise, naming the queries, when a query has no usable sample."""
    bad = np.flatnonzero(ss.n < 1)
    if bad.size:
        raise PolicyError(f"{bad.size} quer{'y has' if bad.size == 1 else 'ies have'} no parsable sample "
                          f"(queries {bad[:5].tolist()}): every one of their {what} is missing, unreadable by "
                          "the normaliser or weighted 0; a prediction needs at least one")


def draw_predictions(ss: SampleSet, rule: "str | Rule", n: int | None = None, *, draws: str = "first",
                     reps: int = 200, seed: int = 0, kind: str = "number") -> Predictions:
    """Apply ``rule`` to draws of ``n`` samples per query: predictions of shape (Q, R).

    ``draws='first'`` uses each query's first ``n`` usable samples (R = 1; ``n=None``: all of
    them); ``with-replacement`` / ``without-replacement`` draw ``reps`` random sets (seeded; the
    same ``seed`` gives every rule the same draws, so rules are compared on common draws).
    """
    from ..voting import DRAWS, draw_positions

    if draws not in DRAWS:
        raise PolicyError(f"draws must be one of {list(DRAWS)}, got {draws!r}")
    check_usable(ss)
    r = get_rule(rule)
    S = int(ss.n.max(initial=1))
    if n is None:
        if draws != "first":
            raise PolicyError("n (samples per draw) is needed for random draws")
        n = S
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise PolicyError(f"n (samples per query) must be an integer >= 1, got {n!r}")
    if draws == "without-replacement" and n > int(ss.n.min()):
        raise PolicyError(f"n = {n} needs {n} distinct usable samples per query (without-replacement draws), but some "
                          f"queries have only {int(ss.n.min())}; use draws='with-replacement' to go beyond them")
    ctx = r.prepare(ss, kind)
    rng = np.random.default_rng(seed)
    R = 1 if draws == "first" else int(reps)
    Q, U = ss.values.shape
    num = np.full((R, Q), np.nan)
    idx = np.full((R, Q), -1, dtype=np.int64)
    step = max(1, _CHUNK_CELLS // max(R * max(U, n), 1))
    for a in range(0, Q, step):
        rows = np.arange(a, min(Q, a + step))
        if draws == "first":  # a query with fewer than n usable samples uses the ones it has
            wmask = np.arange(n)[None, :] < np.minimum(ss.n[rows], n)[:, None]
            pos = np.where(wmask, np.arange(n)[None, :], 0)
        else:
            # replicate-major, query-minor rows, as np.tile(rows, R) below
            pos = draw_positions(ss.n[rows], ss.codes.shape[1], R, n, draws, rng).reshape(R * len(rows), n)
            wmask = None
        brow = np.tile(rows, R)
        b = Batch(brow, *_weights_of_draw(ss, brow, pos, wmask))
        if r.numeric:
            num[:, rows] = r.numbers(ctx, b).reshape(R, len(rows))
        else:
            idx[:, rows] = r.pick(ctx, b, rng).reshape(R, len(rows))
    num, idx = num.T, idx.T
    if r.numeric:
        return Predictions(None, num, idx, kind)
    qrow = np.arange(Q)[:, None]
    answers = ss.values[qrow, np.maximum(idx, 0)]
    return Predictions(answers, ss.numbers(kind)[qrow, np.maximum(idx, 0)], idx)
