"""Pairwise utility functions for minimum-Bayes-risk (MBR) aggregation of LLM samples.

MBR picks, among the N sampled answers to a query, the candidate with the highest (weighted) mean
*utility* against all the samples: the answer that agrees most with what the model says overall. A
utility ``u(hyp, ref)`` scores a candidate answer ``hyp`` against a sample ``ref``; higher is better and
the built-ins take values in ``[0, 1]``. MBR needs the utility of every (candidate, sample) pair, which
is O(N^2) per query, so every utility here is *batched*: it takes two equal-length 1-D object arrays of
strings and returns one float64 array, and the numeric ones are vectorised with numpy / scipy instead of
looping over pairs in Python. :class:`UtilityCache` remembers values per (hyp, ref) pair, because the
same answers recur across a query's samples, across Monte-Carlo draws and across repeated calls.

The built-in utilities (:data:`UTILITIES`):

- ``exact`` -- 1 if ``hyp == ref`` (string equality) else 0. Symmetric.
- ``token-f1`` -- SQuAD's token F1 over :func:`tokens` (lower-cased, punctuation and articles removed,
  whitespace split): with ``common`` the size of the multiset intersection of the two token lists,
  precision ``P = common / len(hyp)``, recall ``R = common / len(ref)`` and ``F1 = 2PR / (P + R)``
  (which equals ``2 common / (len(hyp) + len(ref))``); 0 when ``common`` is 0. When a token list is
  empty the value is 1 if both are empty, else 0. Symmetric.
- ``rouge-l`` -- ROUGE-L F-measure with beta = 1 over the same tokens: the F1 of LCS-precision
  ``lcs / len(hyp)`` and LCS-recall ``lcs / len(ref)``, where ``lcs`` is the length of the longest common
  subsequence; empty token lists as for ``token-f1``. Symmetric.
- ``bleu`` -- sacrebleu's sentence BLEU with effective order, divided by 100. Not symmetric.
- ``chrf`` -- sacrebleu's sentence chrF (character n-gram F-score, beta = 2), divided by 100. Not
  symmetric. ``bleu`` and ``chrf`` need the optional ``sacrebleu`` package (``pip install
  "callwise[text]"``) and loop over pairs in Python (sacrebleu has no batch API), so for them the cache is
  what keeps MBR affordable. Both give 0 when either string is empty, even for two empty strings.
- ``closeness`` -- for answers that are numbers written as strings (use the ``number`` normaliser first):
  with ``a = float(hyp)`` and ``b = float(ref)``, ``1 - min(1, |a - b| / max(|a|, |b|))``, and 1 when
  both are 0. Symmetric.

:func:`get_utility` resolves one of these names, passes a :class:`Utility` through, or wraps a user
function ``f(hyp, ref) -> float`` (called once per pair). :func:`utility_matrices` builds, for many
queries at once, the matrix of utilities between each query's distinct candidates -- the input of an MBR
decision.

How the ROUGE-L dynamic program is vectorised: the classic LCS recurrence over hyp position ``i`` and
ref position ``j`` is ``L[i][j] = L[i-1][j-1] + 1`` if ``hyp_i == ref_j`` else
``max(L[i-1][j], L[i][j-1])``. Since ``L[i-1][j] <= L[i-1][j-1] + 1``, both cases are
``L[i][j] = max(t[j], L[i][j-1])`` with ``t[j] = L[i-1][j-1] + 1`` on a match and ``L[i-1][j]`` otherwise,
and unrolling that over ``j`` (with ``L[i][0] = 0``) gives ``L[i][1:] = cummax(t)``. Row ``i`` is thus a
few whole-array operations over all pairs at once; the loop runs only over token positions. Padding
tokens never match (distinct negative ids for the two sides), and as the rows are non-decreasing the
last column of the padded table is the LCS of the unpadded sequences.
"""

from __future__ import annotations

import abc
import math
import numbers
import re
import string
from typing import Any, Callable, Hashable, Sequence, Union

import numpy as np
import pandas as pd

from ..core.errors import PolicyError

#: The names :func:`get_utility` knows.
UTILITIES: tuple[str, ...] = ("exact", "token-f1", "rouge-l", "bleu", "chrf", "closeness")

#: Elements (pairs x padded width) per chunk of the vectorised LCS / sparse work: bounds memory.
_CHUNK_ELEMENTS = 1 << 21

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def tokens(text: str) -> list[str]:
    """SQuAD-style answer normalisation, as tokens: lower-case, remove ASCII punctuation, remove the
    articles ``a``, ``an`` and ``the``, split on whitespace. ``token-f1`` and ``rouge-l`` compare these, so
    ``"The cat."`` and ``"cat"`` are the same answer."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def _short(x: Any, limit: int = 60) -> str:
    """``repr(x)`` truncated to about ``limit`` characters, for error messages."""
    r = repr(x)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _as_str_array(x: Any, what: str) -> np.ndarray:
    """``x`` as a 1-D object array (no copy when it already is one)."""
    arr = np.asarray(x, dtype=object)
    if arr.ndim != 1:
        raise PolicyError(f"{what} must be a 1-D array of strings, got shape {arr.shape}")
    return arr


def _distinct(hyp: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct strings of ``hyp`` and ``ref`` together, and each side's indices into them.

    Utilities work per distinct string (tokenise or parse each once), then per pair on integer indices.
    Raises :class:`PolicyError` if a value is not a string."""
    both = np.concatenate([hyp, ref]) if len(hyp) or len(ref) else np.empty(0, dtype=object)
    codes, uniques = pd.factorize(both)
    uniques = np.asarray(uniques, dtype=object)
    if (codes < 0).any():
        raise PolicyError(f"utilities compare strings, got {_short(both[codes < 0][0])}")
    for s in uniques:
        if not isinstance(s, str):
            raise PolicyError(f"utilities compare strings, got {_short(s)} ({type(s).__name__})")
    codes = codes.astype(np.intp, copy=False)
    return uniques, codes[: len(hyp)], codes[len(hyp):]


class Utility(abc.ABC):
    """A batched pairwise utility: ``utility(hyp, ref)`` scores each candidate ``hyp[p]`` against the
    sample ``ref[p]``, higher is better (the built-ins give values in ``[0, 1]``).

    Subclass it to add a vectorised utility of your own; :func:`get_utility` wraps plain per-pair
    functions. ``symmetric`` declares ``u(a, b) == u(b, a)``, which lets :class:`UtilityCache` store one
    order of each pair. The cache tells utilities apart by :attr:`key` (the name by default), so two
    different utilities must not share a name.
    """

    name: str = "utility"
    symmetric: bool = False

    @property
    def key(self) -> Hashable:
        """What :class:`UtilityCache` files this utility's values under (its name by default)."""
        return self.name

    @abc.abstractmethod
    def __call__(self, hyp: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Utilities of ``hyp[p]`` against ``ref[p]``: 1-D object arrays of ``str`` of equal length P in,
        a float64 array of shape (P,) out."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, symmetric={self.symmetric})"


class _Exact(Utility):
    """1 where the strings are equal, else 0."""

    name = "exact"
    symmetric = True

    def __call__(self, hyp: np.ndarray, ref: np.ndarray) -> np.ndarray:
        hyp, ref = _as_str_array(hyp, "hyp"), _as_str_array(ref, "ref")
        if len(hyp) == 0:
            return np.zeros(0)
        _, ih, ir = _distinct(hyp, ref)  # distinct strings get distinct codes: compare codes
        return (ih == ir).astype(np.float64)


class _TokenVocab:
    """Token sequences as integer ids over their joint vocabulary: ``flat[offsets[k]:offsets[k] + lengths[k]]``
    are the token ids of sequence ``k``."""

    def __init__(self, seqs: Sequence[Sequence[Hashable]]) -> None:
        vocab: dict[Hashable, int] = {}
        self.lengths = np.fromiter((len(x) for x in seqs), dtype=np.intp, count=len(seqs))
        self.flat = np.fromiter((vocab.setdefault(t, len(vocab)) for x in seqs for t in x), dtype=np.int32,
                                count=int(self.lengths.sum()))
        self.size = len(vocab)
        self.offsets = np.zeros(len(seqs), dtype=np.intp)
        np.cumsum(self.lengths[:-1], out=self.offsets[1:])

    @classmethod
    def of_strings(cls, uniques: np.ndarray) -> _TokenVocab:
        """The :func:`tokens` of each (distinct) string."""
        return cls([tokens(s) for s in uniques])


def _f_measure(overlap: np.ndarray, lh: np.ndarray, lr: np.ndarray) -> np.ndarray:
    """F1 of precision ``overlap / lh`` and recall ``overlap / lr`` (= ``2 overlap / (lh + lr)``), 0 when
    the overlap is 0; 1 when both lengths are 0 and 0 when only one is."""
    total = lh + lr
    out = np.where(overlap > 0, 2.0 * overlap / np.maximum(total, 1), 0.0)
    out[total == 0] = 1.0
    return out


class _OverlapF1(Utility):
    """F-measure of a token overlap (``_overlap``) between the :func:`tokens` of hyp and ref, computed per
    distinct string pair of the batch."""

    symmetric = True

    def __call__(self, hyp: np.ndarray, ref: np.ndarray) -> np.ndarray:
        hyp, ref = _as_str_array(hyp, "hyp"), _as_str_array(ref, "ref")
        if len(hyp) == 0:
            return np.zeros(0)
        uniques, ih, ir = _distinct(hyp, ref)
        tv = _TokenVocab.of_strings(uniques)
        overlap = self._overlap(tv, ih, ir).astype(np.float64)
        return _f_measure(overlap, tv.lengths[ih].astype(np.float64), tv.lengths[ir].astype(np.float64))

    def _overlap(self, tv: "_TokenVocab", ih: np.ndarray, ir: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _TokenF1(_OverlapF1):
    """SQuAD token F1 over :func:`tokens`; the multiset intersection is a sparse element-wise minimum."""

    name = "token-f1"

    def _overlap(self, tv: "_TokenVocab", ih: np.ndarray, ir: np.ndarray) -> np.ndarray:
        import scipy.sparse as sp  # on first use, so that importing callwise stays light

        indptr = np.concatenate([[0], np.cumsum(tv.lengths)])
        counts = sp.csr_matrix((np.ones(len(tv.flat), dtype=np.int32), tv.flat, indptr),
                               shape=(len(tv.lengths), max(tv.size, 1)))
        counts.sum_duplicates()  # one entry per (string, token): the token's count
        common = np.empty(len(ih), dtype=np.float64)
        mean_len = max(1.0, float(tv.lengths.mean()))
        step = max(1, int(_CHUNK_ELEMENTS / mean_len))  # bounds the nnz of the gathered rows
        for s in range(0, len(ih), step):
            a, b = counts[ih[s:s + step]], counts[ir[s:s + step]]
            common[s:s + step] = np.asarray(a.minimum(b).sum(axis=1)).ravel()
        return common


def _lcs_indexed(tv: _TokenVocab, ia: np.ndarray, ib: np.ndarray, chunk_elements: int | None = None
                 ) -> np.ndarray:
    """LCS lengths of the token sequences ``ia[p]`` and ``ib[p]`` of ``tv``, vectorised over pairs.

    LCS is symmetric, so each pair loops over its shorter sequence and spreads along the longer. Pairs are
    bucketed by the longer length (powers of two, to limit padding), sorted by the shorter within a
    bucket, and processed in chunks of at most about ``chunk_elements`` table cells (default
    ``_CHUNK_ELEMENTS``)."""
    chunk_elements = _CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    out = np.zeros(len(ia), dtype=np.int64)
    la, lb = tv.lengths[ia], tv.lengths[ib]
    swap = la > lb
    short_i, long_i = np.where(swap, ib, ia), np.where(swap, ia, ib)
    short_l, long_l = np.minimum(la, lb), np.maximum(la, lb)
    todo = np.flatnonzero(short_l > 0)  # an empty side has LCS 0
    if len(todo) == 0:
        return out
    bucket = np.ceil(np.log2(long_l[todo])).astype(np.int64)  # pad widths within a factor of 2
    order = np.lexsort((short_l[todo], bucket))
    todo, bucket = todo[order], bucket[order]
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(todo)]
    last = max(len(tv.flat) - 1, 0)
    for s0, e0 in zip(starts, ends):
        width = int(long_l[todo[s0:e0]].max())
        rows = max(1, chunk_elements // (width + 1))
        for s in range(s0, e0, rows):
            sel = todo[s:min(s + rows, e0)]
            depth = int(short_l[sel].max())  # sorted by short length, but take the max to be safe
            a = _padded(tv, short_i[sel], depth, -1, last)
            b = _padded(tv, long_i[sel], width, -2, last)
            out[sel] = _lcs_table(a, b)
    return out


def _padded(tv: _TokenVocab, idx: np.ndarray, width: int, pad: int, last: int) -> np.ndarray:
    """Token ids of the distinct strings ``idx`` as an (n, width) int32 array padded with ``pad``."""
    cols = np.arange(width)
    valid = cols[None, :] < tv.lengths[idx][:, None]
    pos = np.minimum(tv.offsets[idx][:, None] + cols[None, :], last)
    return np.where(valid, tv.flat[pos] if len(tv.flat) else 0, pad).astype(np.int32, copy=False)


def _lcs_table(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """LCS length of each row pair of the padded id arrays ``a`` (n, S) and ``b`` (n, W), whose pads never
    match: the row-by-row cumulative-max form of the LCS recurrence (see the module docstring)."""
    n, width = b.shape
    dtype = np.int16 if max(width, a.shape[1]) < np.iinfo(np.int16).max else np.int32  # LCS <= both lengths
    prev = np.zeros((n, width + 1), dtype=dtype)
    cur = np.zeros_like(prev)
    one = dtype(1)
    for i in range(a.shape[1]):
        t = np.where(a[:, i:i + 1] == b, prev[:, :-1] + one, prev[:, 1:])
        np.maximum.accumulate(t, axis=1, out=cur[:, 1:])
        prev, cur = cur, prev
    return prev[:, width].astype(np.int64)


def _lcs_lengths(a: Sequence[Sequence[Hashable]], b: Sequence[Sequence[Hashable]],
                 chunk_elements: int | None = None) -> np.ndarray:
    """LCS lengths of the sequence pairs ``(a[p], b[p])`` by the vectorised DP (for tests and reuse)."""
    if len(a) != len(b):
        raise PolicyError(f"need as many first as second sequences, got {len(a)} and {len(b)}")
    tv = _TokenVocab(list(a) + list(b))
    return _lcs_indexed(tv, np.arange(len(a)), np.arange(len(a), 2 * len(a)), chunk_elements)


class _RougeL(_OverlapF1):
    """ROUGE-L F-measure (beta = 1) over :func:`tokens`, with the LCS DP vectorised over pairs."""

    name = "rouge-l"

    def _overlap(self, tv: "_TokenVocab", ih: np.ndarray, ir: np.ndarray) -> np.ndarray:
        return _lcs_indexed(tv, ih, ir)


class _SacreBleuUtility(Utility):
    """A sacrebleu sentence metric divided by 100, looped over the distinct pairs of the batch."""

    symmetric = False

    def __init__(self) -> None:
        self._metric: Any = None

    @abc.abstractmethod
    def _make_metric(self, metrics: Any) -> Any:
        """The sacrebleu metric object, from the ``sacrebleu.metrics`` module."""

    def _get_metric(self) -> Any:
        if self._metric is None:
            try:
                from sacrebleu import metrics
            except ImportError as e:
                raise PolicyError(f"the {self.name!r} utility needs sacrebleu: pip install \"callwise[text]\" "
                                  f"(or pip install sacrebleu)") from e
            self._metric = self._make_metric(metrics)
        return self._metric

    def __call__(self, hyp: np.ndarray, ref: np.ndarray) -> np.ndarray:
        hyp, ref = _as_str_array(hyp, "hyp"), _as_str_array(ref, "ref")
        metric = self._get_metric()
        if len(hyp) == 0:
            return np.zeros(0)
        uniques, ih, ir = _distinct(hyp, ref)
        pair_codes, first = np.unique(ih * len(uniques) + ir, return_index=True)
        inverse = np.searchsorted(pair_codes, ih * len(uniques) + ir)
        scores = np.fromiter((metric.sentence_score(uniques[ih[k]], [uniques[ir[k]]]).score for k in first),
                             dtype=np.float64, count=len(first))
        return np.clip(scores / 100.0, 0.0, 1.0)[inverse]  # clip: BLEU can read 100.00000000000004


class _Bleu(_SacreBleuUtility):
    """sacrebleu sentence BLEU with effective order, / 100."""

    name = "bleu"

    def _make_metric(self, metrics: Any) -> Any:
        return metrics.BLEU(effective_order=True)


class _Chrf(_SacreBleuUtility):
    """sacrebleu sentence chrF, / 100."""

    name = "chrf"

    def _make_metric(self, metrics: Any) -> Any:
        return metrics.CHRF()


class _Closeness(Utility):
    """Relative closeness of two numbers: ``1 - min(1, |a - b| / max(|a|, |b|))``, 1 when both are 0."""

    name = "closeness"
    symmetric = True

    def __call__(self, hyp: np.ndarray, ref: np.ndarray) -> np.ndarray:
        hyp, ref = _as_str_array(hyp, "hyp"), _as_str_array(ref, "ref")
        if len(hyp) == 0:
            return np.zeros(0)
        uniques, ih, ir = _distinct(hyp, ref)
        values = np.empty(len(uniques), dtype=np.float64)
        for k, s in enumerate(uniques):
            try:
                values[k] = float(s)
            except ValueError:
                raise PolicyError(f"the 'closeness' utility needs numeric answers, got {_short(s)}; "
                                  f"normalise the answers with 'number' first") from None
            if not math.isfinite(values[k]):
                raise PolicyError(f"the 'closeness' utility needs finite numbers, got {_short(s)}")
        a, b = values[ih], values[ir]
        scale = np.maximum(np.abs(a), np.abs(b))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 1.0 - np.minimum(1.0, np.abs(a - b) / scale)
        out[scale == 0] = 1.0
        return out


class _FunctionUtility(Utility):
    """A user function ``f(hyp, ref) -> float``, called once per pair; its values are checked."""

    symmetric = False

    def __init__(self, fn: Callable[[str, str], float]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)

    @property
    def key(self) -> Hashable:
        """The function itself: two functions that share a ``__name__`` (lambdas) never share cached values."""
        return ("function", self.fn)

    def __call__(self, hyp: np.ndarray, ref: np.ndarray) -> np.ndarray:
        hyp, ref = _as_str_array(hyp, "hyp"), _as_str_array(ref, "ref")
        out = np.empty(len(hyp), dtype=np.float64)
        for p, (h, r) in enumerate(zip(hyp, ref)):
            v = self.fn(h, r)
            if isinstance(v, numbers.Real) and math.isfinite(v):
                out[p] = float(v)
                continue
            raise PolicyError(f"utility {self.name!r} returned {_short(v)} for hyp={_short(h)}, ref={_short(r)}; "
                              f"expected a finite number (higher is better)")
        return out


_BUILTIN_TYPES: dict[str, type[Utility]] = {
    "exact": _Exact, "token-f1": _TokenF1, "rouge-l": _RougeL, "bleu": _Bleu, "chrf": _Chrf, "closeness": _Closeness,
}
_BUILTINS: dict[str, Utility] = {}

UtilitySpec = Union[str, Callable[[str, str], float], Utility]


def get_utility(spec: UtilitySpec) -> Utility:
    """Resolve a utility: a name from :data:`UTILITIES` (case and ``_`` / ``-`` do not matter), a
    :class:`Utility` (returned as it is), or a user function ``f(hyp, ref) -> float``, wrapped so that it is
    called once per pair, named by its ``__name__`` and not assumed symmetric. A wrapped function that
    returns a non-number or a non-finite value raises :class:`PolicyError` naming the pair.

    Raises :class:`PolicyError` for an unknown name (listing the known ones) or anything else."""
    if isinstance(spec, Utility):
        return spec
    if isinstance(spec, str):
        name = spec.strip().lower().replace("_", "-")
        if name not in _BUILTIN_TYPES:
            raise PolicyError(f"unknown utility {spec!r}; known utilities: {', '.join(UTILITIES)} "
                              f"(or pass a Utility or a function f(hyp, ref) -> float)")
        if name not in _BUILTINS:
            _BUILTINS[name] = _BUILTIN_TYPES[name]()
        return _BUILTINS[name]
    if callable(spec):
        return _FunctionUtility(spec)
    raise PolicyError(f"a utility must be a name ({', '.join(UTILITIES)}), a Utility or a function "
                      f"f(hyp, ref) -> float, got {_short(spec)}")


class UtilityCache:
    """Remembers utility values of (hyp, ref) string pairs, per utility, so that each pair is computed once.

    MBR over N samples needs N^2 utilities per query, and the same answers recur across a query's samples,
    across Monte-Carlo draws and across repeated calls. :meth:`values` looks every pair up and computes only
    the missing ones, in one batched call of the utility. Strings are interned to integer ids and each
    utility's values live in a sorted int64 array of pair keys, so the lookups are vectorised (searchsorted)
    rather than a Python dict access per pair. A symmetric utility's pairs are stored in one canonical order,
    so ``(b, a)`` hits the value computed for ``(a, b)``.

    At most ``max_pairs`` values are stored (over all utilities); once full the cache stops storing but
    :meth:`values` still returns correct values (computing what it does not hold).

    ``hits`` counts requested pairs whose value was reused (stored earlier, or an identical pair earlier in
    the same call); ``misses`` counts the pairs the utility was evaluated on. Each requested pair is one
    or the other.
    """

    def __init__(self, max_pairs: int = 5_000_000) -> None:
        if max_pairs < 0:
            raise PolicyError(f"max_pairs must be >= 0, got {max_pairs}")
        self.max_pairs = int(max_pairs)
        self.hits = 0
        self.misses = 0
        self._ids: dict[str, int] = {}
        self._stores: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}
        self._size = 0

    def __len__(self) -> int:
        """Number of stored values, over all utilities."""
        return self._size

    def clear(self) -> None:
        """Forget every stored value and reset the counters."""
        self.__init__(self.max_pairs)  # type: ignore[misc]

    def _string_ids(self, hyp: np.ndarray, ref: np.ndarray, intern: bool) -> tuple[np.ndarray, np.ndarray]:
        """Integer ids of each side's strings: interned ids for known strings; new strings get the ids they
        would be interned under (and are interned when ``intern``), so keys are well defined either way."""
        uniques, ih, ir = _distinct(hyp, ref)
        ids = np.fromiter((self._ids.get(s, -1) for s in uniques), dtype=np.int64, count=len(uniques))
        new = np.flatnonzero(ids < 0)
        ids[new] = len(self._ids) + np.arange(len(new))
        if intern and len(self._ids) + len(new) < (1 << 31):
            for k in new:
                self._ids[uniques[k]] = int(ids[k])
        return ids[ih], ids[ir]

    def values(self, utility: Utility, hyp: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Utilities of ``hyp[p]`` against ``ref[p]`` (1-D arrays of ``str``, equal length P) as a float64
        array (P,): stored values are reused, the missing distinct pairs computed in one batched call of
        ``utility`` and stored while there is room."""
        hyp, ref = _as_str_array(hyp, "hyp"), _as_str_array(ref, "ref")
        if len(hyp) != len(ref):
            raise PolicyError(f"hyp and ref must have the same length, got {len(hyp)} and {len(ref)}")
        if len(hyp) == 0:
            return np.zeros(0)
        room = self.max_pairs - self._size
        idh, idr = self._string_ids(hyp, ref, intern=room > 0)
        if utility.symmetric:
            idh, idr = np.minimum(idh, idr), np.maximum(idh, idr)
        keys = (idh << 32) | idr
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
        skeys, svals = self._stores.get(utility.key, empty)
        out = np.empty(len(hyp), dtype=np.float64)
        found = np.zeros(len(keys), dtype=bool)
        if len(skeys):
            pos = np.minimum(np.searchsorted(skeys, keys), len(skeys) - 1)
            found = skeys[pos] == keys
            out[found] = svals[pos[found]]
        missing = np.flatnonzero(~found)
        n_computed = 0
        if len(missing):
            new_keys, first, inverse = np.unique(keys[missing], return_index=True, return_inverse=True)
            rows = missing[first]  # one representative position per distinct missing pair
            computed = np.asarray(utility(hyp[rows], ref[rows]), dtype=np.float64)
            if computed.shape != (len(rows),):
                raise PolicyError(f"utility {utility.name!r} returned shape {computed.shape} for {len(rows)} "
                                  f"pairs; expected ({len(rows)},)")
            if not np.isfinite(computed).all():
                bad = rows[np.flatnonzero(~np.isfinite(computed))[0]]
                raise PolicyError(f"utility {utility.name!r} returned a non-finite value for "
                                  f"hyp={_short(hyp[bad])}, ref={_short(ref[bad])}; expected a finite number")
            out[missing] = computed[inverse.ravel()]
            n_computed = len(rows)
            if room > 0:  # store what fits; pairs with strings that were not interned cannot be stored
                n_ids = len(self._ids)
                keep = np.flatnonzero((idh[rows] < n_ids) & (idr[rows] < n_ids))[:room]
                if len(keep):
                    at = np.searchsorted(skeys, new_keys[keep])
                    self._stores[utility.key] = (np.insert(skeys, at, new_keys[keep]),
                                                 np.insert(svals, at, computed[keep]))
                    self._size += len(keep)
        self.misses += n_computed
        self.hits += len(hyp) - n_computed
        return out


def utility_matrices(candidates: list[list[str]], utility: UtilitySpec, cache: UtilityCache | None = None
                     ) -> np.ndarray:
    """Utility matrices between each query's distinct candidates, for MBR.

    ``candidates[q]`` holds the distinct candidate strings of query ``q`` (at least one). Returns a float64
    array of shape ``(Q, Umax, Umax)`` with ``M[q, i, j] = utility(hyp=candidates[q][i],
    ref=candidates[q][j])`` for ``i, j < len(candidates[q])`` and 0 in the padding. Every (i, j) pair of
    every query, the diagonal included (``u(a, a)`` is computed, not assumed to be 1), is built at once and
    evaluated in one batched call through ``cache`` (a fresh private cache when None), so pairs shared by
    several queries, or seen in an earlier call with the same cache, are computed once.
    """
    util = get_utility(utility)
    sizes = np.array([len(c) for c in candidates], dtype=np.int64)
    if len(sizes) and sizes.min() < 1:
        raise PolicyError(f"query {int(np.argmin(sizes))} has no candidates; every query needs at least one")
    n_q = len(sizes)
    u_max = int(sizes.max()) if n_q else 0
    out = np.zeros((n_q, u_max, u_max), dtype=np.float64)
    if n_q == 0:
        return out
    flat = np.empty(int(sizes.sum()), dtype=object)
    flat[:] = [s for c in candidates for s in c]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_pairs = sizes * sizes
    q = np.repeat(np.arange(n_q), n_pairs)
    k = np.arange(int(n_pairs.sum())) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
    u = sizes[q]
    i, j = k // u, k % u
    cache = cache if cache is not None else UtilityCache()
    out[q, i, j] = cache.values(util, flat[starts[q] + i], flat[starts[q] + j])
    return out


__all__ = ["UTILITIES", "Utility", "UtilityCache", "get_utility", "tokens", "utility_matrices"]
