"""Allocation search: which model each module of a pipeline should use (LLMSelector and baselines).

An *evaluator* scores allocations on the training queries: per query, the end-to-end quality and
the dollar cost. Two ship: :class:`OutcomesEvaluator` scores ensemble-vote allocations exactly and
vectorised from recorded answers; :class:`RunEvaluator` runs any pipeline on any backend (replay
or live; a live backend's response cache makes a re-run free). Every search goes through a
:class:`Ledger` that caches each allocation's scores and counts *evaluations*: distinct
allocations scored on the training set, the unit the evaluation budget is spent in.

**LLMSelector** (Chen et al. 2025, arXiv 2502.14815, as in the authors' code): start from a random
(or given) allocation; visit modules round-robin; for module l, score every allocation that
changes only module l on every training query, optionally adding ``alpha`` x a diagnoser's
verdict that module l was not at fault; each query votes for all candidates that reach its best
score; the most-voted candidate becomes the allocation. Stop when the last ``patience`` entries of
the allocation trace (which starts with the initial allocation) are the same (default L + 1, the
authors' rule: a whole sweep over the modules changed nothing), when the next round would overrun
the evaluation budget, or after ``max_rounds``. Vote ties go to the higher mean score, then the
cheaper candidate, then the current model, then model order (the authors' code takes the
first-counted candidate, which ignores cost: an ensemble whose extra slots never change the vote
would keep paying for them).

**Two-stage LLMSelector** (``llmselector-2stage``, the authors' ``OptimizerLLMDiagnoser2Stage``):
stage 1 walks a seeded half of the training queries (``sample_ratio``) one at a time; for each
module in turn it asks the diagnoser, for every model in that module, whether the module was at
fault on that query, and moves the query's allocation to the last model the diagnoser cleared;
each module then takes the model cleared most often over the sample (the coordinate-wise mode),
and of the one-module changes of that allocation the one with the best mean score on the sample
starts stage 2, the round-robin vote above on the whole training set (``alpha`` as given; the
authors' stage 2 runs with 0).

Baselines at the same budget: the same model in every module, exhaustive search, random search
and coordinate ascent (the same sweep choosing the best *mean* score instead of the per-query
vote). Every method can be cost-aware: ``max_cost`` (dollars per query, mean on the training set)
excludes allocations that cost more.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from ..core.errors import PolicyError
from ..core.money import usd
from .ensemble import all_allocations

METHODS: tuple[str, ...] = ("llmselector", "llmselector-2stage", "coordinate", "random", "exhaustive", "single")


class Evaluator(Protocol):
    """Scores allocations (int arrays of model indices, one per module) on the training queries."""

    models: tuple[str, ...]
    n_slots: int

    def evaluate(self, allocs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A, Q) per-query quality and (A, Q) per-query cost of each of (A, L) allocations."""
        ...


def _key(alloc: Sequence[int]) -> tuple[int, ...]:
    """An allocation as a hashable tuple of model indices."""
    return tuple(int(x) for x in alloc)


class BudgetSpent(Exception):
    """The evaluation budget cannot pay for what was asked (searches stop on it)."""


class Ledger:
    """Caches each allocation's per-query scores and counts evaluations against a budget.

    ``evaluations`` counts distinct allocations scored; asking again for one already scored is
    free. :meth:`scores` raises :class:`BudgetSpent` before scoring anything it cannot pay for.
    """

    def __init__(self, evaluator: Evaluator, budget: int | None = None, alpha: float = 0.0) -> None:
        self.evaluator = evaluator
        self.budget = budget
        self.alpha = float(alpha)
        self._cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._diag: dict[tuple[tuple[int, ...], int], np.ndarray] = {}
        self.means: dict[tuple[int, ...], tuple[float, float]] = {}

    @property
    def evaluations(self) -> int:
        return len(self.means)

    def left(self) -> float:
        return np.inf if self.budget is None else self.budget - self.evaluations

    @contextmanager
    def unbudgeted(self) -> Iterator[None]:
        """Score without spending the budget (reference baselines: exhaustive, single models)."""
        saved, self.budget = self.budget, None
        try:
            yield
        finally:
            self.budget = saved

    def missing(self, allocs: np.ndarray) -> int:
        return sum(_key(a) not in self.means for a in allocs)

    def scores(self, allocs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(A, Q) quality and cost of the allocations, scoring only those not seen before."""
        allocs = np.atleast_2d(np.asarray(allocs, dtype=np.int64))
        keys = [_key(a) for a in allocs]
        new_keys = list(dict.fromkeys(k for k in keys if k not in self._cache))
        fresh = [k for k in new_keys if k not in self.means]
        if len(fresh) > self.left():
            raise BudgetSpent(f"{len(fresh)} new evaluations asked, {self.left()} left")
        if new_keys:
            q, c = self.evaluator.evaluate(np.array(new_keys, dtype=np.int64))
            for k, qi, ci in zip(new_keys, q, c):
                self._cache[k] = (np.asarray(qi, float), np.asarray(ci, float))
                self.means[k] = (float(np.mean(qi)), float(np.mean(ci)))
        q = np.stack([self._cache[k][0] for k in keys])
        c = np.stack([self._cache[k][1] for k in keys])
        return q, c

    def record_means(self, allocs: np.ndarray, quality: np.ndarray, cost: np.ndarray) -> None:
        """Record allocations scored in bulk (exhaustive search keeps means only)."""
        for a, q, c in zip(allocs, quality, cost):
            self.means[_key(a)] = (float(q), float(c))

    def diagnosis(self, allocs: np.ndarray, slot: int) -> np.ndarray:
        """(A, Q) the diagnoser's verdict that ``slot`` was not at fault (1) or was (0)."""
        diag = getattr(self.evaluator, "diagnose", None)
        if diag is None:
            raise PolicyError("alpha > 0 needs a diagnoser; this evaluator has none")
        keys = [(_key(a), slot) for a in allocs]
        new = [k for k in dict.fromkeys(keys) if k not in self._diag]
        if new:
            got = diag(np.array([k[0] for k in new], dtype=np.int64), slot)
            for k, g in zip(new, got):
                self._diag[k] = np.asarray(g, float)
        return np.stack([self._diag[k] for k in keys])


@dataclass
class SearchResult:
    """What a search chose and what it spent.

    ``allocation`` holds model indices (``models`` names them); ``trace`` the allocation after
    each round (LLMSelector and coordinate ascent; the first entry is the start); ``evaluated``
    the mean (quality, cost) on the training set of every allocation the search scored.
    """

    method: str
    allocation: tuple[int, ...]
    models: tuple[str, ...]
    quality: float
    cost: float
    evaluations: int
    rounds: int = 0
    stopped: str = ""
    trace: list[tuple[int, ...]] = field(default_factory=list)
    evaluated: dict[tuple[int, ...], tuple[float, float]] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.models[i] for i in self.allocation)


def _affordable(cost: float, max_cost: float | None) -> bool:
    return max_cost is None or cost <= max_cost + 1e-15


def _best(means: Mapping[tuple[int, ...], tuple[float, float]], max_cost: float | None) -> tuple[int, ...]:
    """The highest mean quality among affordable allocations; ties to the cheaper, then the first."""
    ok = [(k, q, c) for k, (q, c) in means.items() if _affordable(c, max_cost)]
    if not ok:
        raise PolicyError(f"no allocation found costs at most {usd(max_cost)} per query on the training set; "
                          f"the cheapest found costs {usd(min(c for _, c in means.values()))}")
    return max(ok, key=lambda t: (t[1], -t[2]))[0]


def _result(method: str, ledger: Ledger, alloc: tuple[int, ...], **kw: Any) -> SearchResult:
    q, c = ledger.means[alloc]
    return SearchResult(method, alloc, ledger.evaluator.models, q, c, ledger.evaluations,
                        evaluated=dict(ledger.means), **kw)


def _start(M: int, L: int, rng: np.random.Generator, start: Sequence[int] | None) -> tuple[int, ...]:
    if start is not None:
        s = _key(start)
        if len(s) != L or not all(0 <= x < M for x in s):
            raise PolicyError(f"start allocation {list(start)} must hold {L} model indices in [0, {M})")
        return s
    return _key(rng.integers(0, M, size=L))


#: How a sweep's final allocation is chosen: the cheapest one scored at the same training quality as
#: the last (callwise's default), or the last one as the authors' optimizer returns it.
FINAL_CHOICES = ("cheapest-tie", "last")


def _sweep(method: str, ledger: Ledger, *, seed: int, start: Sequence[int] | None, max_cost: float | None,
           patience: int | None, max_rounds: int, progress: Callable[[int, tuple[int, ...]], None] | None,
           final: str = "cheapest-tie") -> SearchResult:
    ev = ledger.evaluator
    M, L = len(ev.models), ev.n_slots
    if final not in FINAL_CHOICES:
        raise PolicyError(f"final must be one of {FINAL_CHOICES}, got {final!r}")
    patience = L + 1 if patience is None else patience
    if patience < 1:
        raise PolicyError(f"patience must be >= 1, got {patience}")
    rng = np.random.default_rng(seed)
    cur = _start(M, L, rng, start)
    try:
        ledger.scores(np.array([cur]))
    except BudgetSpent:
        raise PolicyError("the evaluation budget is 0: nothing can be scored") from None
    trace = [cur]
    rounds = 0
    while True:
        if len(trace) >= patience and len(set(trace[-patience:])) == 1:
            stopped = "converged"
            break
        if rounds >= max_rounds:
            stopped = "max-rounds"
            break
        slot = rounds % L
        cands = np.array([cur[:slot] + (m,) + cur[slot + 1:] for m in range(M)], dtype=np.int64)
        if ledger.missing(cands) > ledger.left():
            stopped = "budget"
            break
        q, c = ledger.scores(cands)
        score = q
        if ledger.alpha:
            score = q + ledger.alpha * ledger.diagnosis(cands, slot)
        mean_c = c.mean(axis=1)
        ok = np.array([_affordable(x, max_cost) for x in mean_c])
        if ok.any():
            s = np.where(ok[:, None], score, -np.inf)
            if method == "llmselector":
                top = s.max(axis=0)
                votes = (s >= top[None, :] - 1e-12).sum(axis=1).astype(float)
            else:
                votes = s.mean(axis=1)
            votes = np.where(ok, votes, -np.inf)
            # ties: the higher mean score, the cheaper, the current model, then model order
            key = [(votes[m], score[m].mean(), -mean_c[m], m == cur[slot], -m) for m in range(M)]
            choice = max(range(M), key=lambda m: key[m])
            cur = _key(cands[choice])
        trace.append(cur)
        rounds += 1
        if progress is not None:
            progress(rounds, cur)
    # with a diagnoser (alpha > 0) its verdicts broke the ties on purpose: the vote's choice stands
    chosen = _cheapest_tie(ledger.means, cur, max_cost) if final == "cheapest-tie" and not ledger.alpha else cur
    if chosen != cur:
        trace.append(chosen)
    return _result(method, ledger, chosen, rounds=rounds, stopped=stopped, trace=trace)


def _cheapest_tie(means: Mapping[tuple[int, ...], tuple[float, float]], cur: tuple[int, ...],
                  max_cost: float | None) -> tuple[int, ...]:
    """The cheapest scored allocation whose training quality ties with ``cur``'s (``cur`` itself if none is cheaper).

    The sweep breaks ties toward the cheaper model within a round; this carries the same rule to
    the final choice, so the search never returns an allocation that costs more than another it
    scored just as well (e.g. four times the best single model's cost for its quality).
    """
    q0, c0 = means[cur]
    tied = [(c, k) for k, (q, c) in means.items() if abs(q - q0) <= 1e-12 and c < c0 and _affordable(c, max_cost)]
    return min(tied, key=lambda t: t[0])[1] if tied else cur


def llmselector(ledger: Ledger, *, seed: int = 0, start: Sequence[int] | None = None, max_cost: float | None = None,
                patience: int | None = None, max_rounds: int = 1000,
                progress: Callable[[int, tuple[int, ...]], None] | None = None,
                final: str = "cheapest-tie") -> SearchResult:
    """LLMSelector's round-robin per-query vote (see the module docstring); ``ledger.alpha`` weighs the diagnoser.

    ``final``: ``cheapest-tie`` (default) returns the cheapest allocation scored at the same
    training quality as the sweep's last one (without a diagnoser); ``last`` returns the last one,
    as the authors' optimizer does (it knows no costs).
    """
    return _sweep("llmselector", ledger, seed=seed, start=start, max_cost=max_cost, patience=patience,
                  max_rounds=max_rounds, progress=progress, final=final)


#: Where the diagnoser clears a module (the authors' diagnoser answers error 0 or 1; recorded
#: verdicts are qualities in [0, 1], so a module is cleared when its verdict is above this).
CLEARED = 0.5  # strictly above: an unreadable judge answer (0.5) does not clear


def _sample_rows(n: int, ratio: float, seed: int) -> np.ndarray:
    """The rows ``pandas.DataFrame.sample(frac=ratio, random_state=seed)`` draws from ``n``, in its order."""
    if not 0 < ratio <= 1:
        raise PolicyError(f"sample_ratio must be in (0, 1], got {ratio}")
    size = round(ratio * n)
    if size < 1:
        raise PolicyError(f"sample_ratio {ratio} of {n} training queries draws none")
    return np.random.RandomState(seed).choice(n, size=size, replace=False)


def _cleared_by_query(ledger: Ledger, start: tuple[int, ...], rows: np.ndarray) -> list[np.ndarray]:
    """Stage 1 of the two-stage search: per module, the (n, M) models the diagnoser cleared per sampled query.

    Each sampled query walks the modules in order from ``start``; at module l it asks the
    diagnoser about every model there (the others as the query's walk left them) and moves to the
    last model cleared (staying put when none is). Queries at the same allocation share one
    diagnoser call per candidate, so the walk costs one call per distinct (allocation, module).
    """
    M, L = len(ledger.evaluator.models), ledger.evaluator.n_slots
    cur = np.tile(np.asarray(start, dtype=np.int64), (len(rows), 1))
    cleared: list[np.ndarray] = []
    for slot in range(L):
        ok = np.zeros((len(rows), M), dtype=bool)
        uniq, inverse = np.unique(cur, axis=0, return_inverse=True)
        for u, alloc in enumerate(uniq):
            members = np.flatnonzero(inverse.ravel() == u)
            cands = np.repeat(alloc[None, :], M, axis=0)
            cands[:, slot] = np.arange(M)
            verdict = ledger.diagnosis(cands, slot)[:, rows[members]]  # (M, members)
            ok[members] = verdict.T > CLEARED
        last = M - 1 - np.argmax(ok[:, ::-1], axis=1)
        has = ok.any(axis=1)
        cur[has, slot] = last[has]
        cleared.append(ok)
    return cleared


def _coordinate_mode(cleared: list[np.ndarray], start: tuple[int, ...]) -> tuple[int, ...]:
    """Per module, the model cleared most often; ties to the one cleared first (query order, then model order).

    ``Counter.most_common`` over the per-query lists, as the authors count; a module no model was
    cleared for keeps its start model (the authors' code would put ``None`` there).
    """
    out = []
    for slot, ok in enumerate(cleared):
        counts = ok.sum(axis=0)
        if not counts.any():
            out.append(int(start[slot]))
            continue
        n, M = ok.shape
        flat = np.where(ok, np.arange(n)[:, None] * M + np.arange(M)[None, :], n * M)
        first = flat.min(axis=0)
        out.append(int(min(range(M), key=lambda m: (-counts[m], first[m]))))
    return tuple(out)


def llmselector_two_stage(ledger: Ledger, *, seed: int = 0, start: Sequence[int] | None = None,
                          max_cost: float | None = None, sample_ratio: float = 0.5, patience: int | None = None,
                          max_rounds: int = 1000, progress: Callable[[int, tuple[int, ...]], None] | None = None,
                          final: str = "cheapest-tie") -> SearchResult:
    """The authors' two-stage LLMSelector: a diagnoser-built start on a sample, then the round-robin vote.

    Stage 1 (see the module docstring) needs a diagnoser whatever ``alpha`` is; its verdicts are
    not evaluations (they cost diagnoser calls, not pipeline runs over the training set). The
    one-module changes scored on the sample are evaluations, shared with stage 2 through the
    ledger. With ``max_cost``, unaffordable changes are skipped. The trace holds the start, the
    coordinate-wise mode, the sample's best change, then stage 2's rounds.
    """
    ev = ledger.evaluator
    if getattr(ev, "diagnose", None) is None:
        raise PolicyError("llmselector-2stage needs a diagnoser (stage 1 asks it about every module); "
                          "this evaluator has none")
    M, L = len(ev.models), ev.n_slots
    init = _start(M, L, np.random.default_rng(seed), start)
    try:
        q0, _ = ledger.scores(np.array([init]))
    except BudgetSpent:
        raise PolicyError("the evaluation budget is 0: nothing can be scored") from None
    rows = _sample_rows(q0.shape[1], sample_ratio, seed)
    mode = _coordinate_mode(_cleared_by_query(ledger, init, rows), init)
    best_per_slot: list[tuple[float, tuple[int, ...]]] = []
    for slot in range(L):
        cands = np.repeat(np.array([mode], dtype=np.int64), M, axis=0)
        cands[:, slot] = np.arange(M)
        if ledger.missing(cands) > ledger.left():
            break
        q, c = ledger.scores(cands)
        sample_q = q[:, rows].mean(axis=1)
        ok = [m for m in range(M) if _affordable(float(c[m].mean()), max_cost)]
        if ok:  # the first best, as the authors' strict '>' keeps it
            m = max(ok, key=lambda m: (sample_q[m], -m))
            best_per_slot.append((float(sample_q[m]), _key(cands[m])))
    begin = max(best_per_slot, key=lambda t: t[0])[1] if best_per_slot else mode
    res = _sweep("llmselector", ledger, seed=seed, start=begin, max_cost=max_cost, patience=patience,
                 max_rounds=max_rounds, progress=progress, final=final)
    res.method = "llmselector-2stage"
    res.trace = [init, mode] + res.trace
    return res


def coordinate_ascent(ledger: Ledger, *, seed: int = 0, start: Sequence[int] | None = None,
                      max_cost: float | None = None, patience: int | None = None, max_rounds: int = 1000,
                      progress: Callable[[int, tuple[int, ...]], None] | None = None,
                      final: str = "cheapest-tie") -> SearchResult:
    """The same round-robin sweep, each module taking the model with the best mean training score."""
    return _sweep("coordinate", ledger, seed=seed, start=start, max_cost=max_cost, patience=patience, final=final,
                  max_rounds=max_rounds, progress=progress)


def random_search(ledger: Ledger, *, seed: int = 0, max_cost: float | None = None, **_: Any) -> SearchResult:
    """Score ``ledger.budget`` distinct allocations drawn uniformly at random; keep the best affordable one."""
    ev = ledger.evaluator
    M, L = len(ev.models), ev.n_slots
    if ledger.budget is None:
        raise PolicyError("random search needs an evaluation budget")
    total = M ** L
    n = int(min(ledger.budget, total))
    rng = np.random.default_rng(seed)
    if total <= 4 * n or total <= 1 << 20:
        idx = rng.choice(total, size=n, replace=False)
    else:  # a huge space: rejection-sample distinct indices
        seen: set[int] = set()
        while len(seen) < n:
            seen.update(int(x) for x in rng.integers(0, total, size=n - len(seen)))
        idx = np.array(sorted(seen))[rng.permutation(n)]
    allocs = _unravel(idx, M, L)
    for chunk in np.array_split(allocs, max(1, len(allocs) // 256)):
        ledger.scores(chunk)
    return _result("random", ledger, _best(ledger.means, max_cost))


def _unravel(idx: np.ndarray, M: int, L: int) -> np.ndarray:
    out = np.empty((len(idx), L), dtype=np.int64)
    rest = np.asarray(idx, dtype=np.int64).copy()
    for j in range(L - 1, -1, -1):
        out[:, j] = rest % M
        rest //= M
    return out


#: The most allocations exhaustive search scores by running the pipeline (vectorised evaluators have no limit).
EXHAUSTIVE_RUN_LIMIT = 10_000


def exhaustive(ledger: Ledger, *, max_cost: float | None = None, chunk: int = 4096, **_: Any) -> SearchResult:
    """Score every allocation (the budget is ignored: this is the reference optimum)."""
    ev = ledger.evaluator
    M, L = len(ev.models), ev.n_slots
    if not hasattr(ev, "mean_scores") and M ** L > EXHAUSTIVE_RUN_LIMIT:
        raise PolicyError(f"exhaustive search would run the pipeline under {M}^{L} = {M ** L:,} allocations, over "
                          f"the limit of {EXHAUSTIVE_RUN_LIMIT:,}; use llmselector, coordinate or random with a budget")
    allocs = all_allocations(M, L)
    bulk = getattr(ev, "mean_scores", None)
    if bulk is not None:
        q, c = bulk(allocs)
        ledger.record_means(allocs, q, c)
    else:
        with ledger.unbudgeted():
            for i in range(0, len(allocs), chunk):
                ledger.scores(allocs[i:i + chunk])
    return _result("exhaustive", ledger, _best(ledger.means, max_cost))


def single_model(ledger: Ledger, *, max_cost: float | None = None, **_: Any) -> SearchResult:
    """The same model in every module, for each model; the best affordable one."""
    ev = ledger.evaluator
    allocs = np.repeat(np.arange(len(ev.models))[:, None], ev.n_slots, axis=1)
    with ledger.unbudgeted():
        ledger.scores(allocs)
    means = {k: v for k, v in ledger.means.items() if len(set(k)) == 1}
    return _result("single", ledger, _best(means, max_cost))


SEARCHES: dict[str, Callable[..., SearchResult]] = {
    "llmselector": llmselector,
    "llmselector-2stage": llmselector_two_stage,
    "coordinate": coordinate_ascent,
    "random": random_search,
    "exhaustive": exhaustive,
    "single": single_model,
}


def search(evaluator: Evaluator, method: str = "llmselector", *, budget: int | None = None, alpha: float = 0.0,
           seed: int = 0, max_cost: float | None = None, **options: Any) -> SearchResult:
    """Run one allocation search on ``evaluator`` (see :data:`METHODS`) with an evaluation budget."""
    if method not in SEARCHES:
        raise PolicyError(f"unknown search method {method!r}; expected one of {list(METHODS)}")
    if budget is not None and budget < 1:
        raise PolicyError(f"the evaluation budget must be >= 1, got {budget}")
    if alpha < 0:
        raise PolicyError(f"alpha (the diagnoser's weight) must be >= 0, got {alpha}")
    ledger = Ledger(evaluator, budget, alpha)
    return SEARCHES[method](ledger, seed=seed, max_cost=max_cost, **options)


def pareto_allocations(evaluated: Mapping[tuple[int, ...], tuple[float, float]]) -> list[tuple[int, ...]]:
    """The allocations no other evaluated one beats on both quality and cost, cheapest first."""
    from ..core.frontier import pareto_front

    keys = list(evaluated)
    if not keys:
        return []
    q = np.array([evaluated[k][0] for k in keys])
    c = np.array([evaluated[k][1] for k in keys])
    idx = pareto_front(c, q)
    return [keys[i] for i in idx]


# --------------------------------------------------------------------------------------------
# evaluators


class OutcomesEvaluator:
    """Exact, vectorised scores of ensemble-vote allocations from recorded answers (one per model).

    Wraps :class:`~callwise.pipelines.ensemble.EnsembleOutcomes` restricted to ``rows``; the
    diagnoser signal for a slot is whether that slot's own answer was right.
    """

    def __init__(self, outcomes: Any, n_slots: int, rows: np.ndarray | None = None) -> None:
        self.outcomes = outcomes if rows is None else outcomes.take(np.asarray(rows))
        self.models = tuple(outcomes.models)
        self.n_slots = int(n_slots)

    def evaluate(self, allocs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.outcomes.score(allocs)

    def mean_scores(self, allocs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.outcomes.mean_scores(allocs)

    def diagnose(self, allocs: np.ndarray, slot: int) -> np.ndarray:
        return self.outcomes.slot_quality(allocs, slot)


class RunEvaluator:
    """Scores allocations by running the pipeline on a backend (replay or live) over the queries.

    Each allocation is one :func:`~callwise.pipelines.run.run_pipeline` over every query, scored
    against ``references`` under ``metric``. Runs are kept so a ``diagnoser`` can read them.
    """

    def __init__(self, pipeline: Any, backend: Any, queries: Any, references: Sequence[Any] | np.ndarray, *,
                 models: Sequence[str] | None = None, metric: str = "exact-match", normalise: Any = "text",
                 diagnoser: Any = None) -> None:
        self.pipeline = pipeline
        self.backend = backend
        self.queries = queries
        self.references = np.asarray(references, dtype=object)
        self.models = tuple(models if models is not None else backend.models)
        self.n_slots = len(pipeline.modules)
        self.metric = metric
        self.normalise = normalise
        self.diagnoser = diagnoser
        self.runs: dict[tuple[int, ...], Any] = {}

    def run(self, alloc: Sequence[int]) -> Any:
        from .run import run_pipeline

        key = _key(alloc)
        if key not in self.runs:
            self.runs[key] = run_pipeline(self.pipeline, [self.models[i] for i in key], self.backend, self.queries,
                                          references=self.references, metric=self.metric, normalise=self.normalise)
        return self.runs[key]

    def evaluate(self, allocs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        runs = [self.run(a) for a in allocs]
        return np.stack([r.quality for r in runs]), np.stack([r.cost for r in runs])

    def diagnose(self, allocs: np.ndarray, slot: int) -> np.ndarray:
        if self.diagnoser is None:
            raise PolicyError("alpha > 0 and llmselector-2stage need a diagnoser "
                              "(RunEvaluator(..., diagnoser=LLMDiagnoser(...)); on the command line --diagnoser MODEL)")
        return np.stack([self.diagnoser(self.run(a), self.pipeline.modules[slot], self.references) for a in allocs])


__all__ = ["METHODS", "BudgetSpent", "Evaluator", "Ledger", "OutcomesEvaluator", "RunEvaluator", "SearchResult",
           "all_allocations", "coordinate_ascent", "exhaustive", "llmselector", "llmselector_two_stage", "pareto_allocations",
           "random_search", "search", "single_model"]
