"""MetricAware: ask one model K times and return the answer that is best for the metric you are judged by.

The knob is K (the samples per query, N in Lukasik et al.). The answers are combined with the
metric's Bayes-optimal rule (:mod:`callwise.aggregation.metrics`): the mean for squared error, the median for
absolute error, a quantile for pinball loss, the mode for exact match, MBR for a text utility.

Offline, on recorded samples (:class:`~callwise.core.replay.Replay`), a decision's quality is the
metric's expected per-query score over draws of K samples (``draws`` as in :mod:`.vote`: with or
without replacement, or the first K) against the table's ``reference`` answers: minus the squared
error, minus the absolute error, 1/0 for exact match, the utility for MBR metrics. Only samples that
read in the metric's terms count (numbers for numeric metrics; an unreadable answer abstains,
as a failed call would). Live, the policy makes the same calls as :class:`~.vote.Vote` (samples
0..K-1 of the model, so a response cache serves both) and returns the aggregate as text.

A query with no usable sample gets ``fallback`` as its answer when one is given, else an error
naming the queries.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..core.backend import Backend, Queries
from ..core.errors import PolicyError
from ..core.policy import Decisions, register
from ..voting import MultiCall
from .metrics import Metric, get_metric, rule_for
from .rules import SampleSet, check_usable, draw_predictions, from_numbers, to_numbers


@register
class MetricAware(MultiCall):
    """Sample one model K times and return the Bayes-optimal aggregate for ``metric``."""

    name = "metric-aware"
    reads = frozenset({"answer", "reference"})

    def __init__(self, model: str | None = None, k: int = 8, metric: str = "exact-match",
                 normalise: str | Callable[[Any], Any] | None = None, draws: str = "with-replacement",
                 reps: int = 200, seed: int = 0, k_max: int | None = None, fallback: str | None = None) -> None:
        super().__init__(model, k, normalise, draws, reps, seed, k_max)  # type: ignore[arg-type]
        self.metric = metric
        self.fallback = fallback

    # -- settings ------------------------------------------------------------------------------
    def _metric(self) -> Metric:
        if isinstance(self.metric, Metric):
            return self.metric
        return get_metric(self.metric)

    def _normaliser(self) -> str | Callable[[Any], Any]:
        if self.normalise is not None:
            return self.normalise
        return "number" if self._metric().numeric else "text"

    def _kind(self) -> str:
        return "date" if self._normaliser() == "date" else "number"

    def _check(self) -> None:
        super()._check()
        m = self._metric()
        if m.numeric and self._normaliser() not in ("number", "date"):
            raise PolicyError(f"{self.name}: metric {m.name!r} compares numbers; use normalise='number' or 'date', "
                              f"got {self._normaliser()!r}")

    # -- shared --------------------------------------------------------------------------------
    def _sample_set(self, answers: np.ndarray, recorded: np.ndarray | None) -> SampleSet:
        ss = SampleSet.from_samples(answers, normalise=self._normaliser(), recorded=recorded)
        return ss.usable_where(self._kind()) if self._metric().numeric else ss

    def _empty(self, ss: SampleSet, queries: Queries) -> np.ndarray:
        """Queries with no usable sample: allowed only with a fallback answer."""
        empty = ss.n < 1
        if empty.any() and self.fallback is None:
            ids = queries.ids[empty][:5].tolist()
            raise PolicyError(f"{self.name}: {int(empty.sum())} queries have no sample that reads as "
                              f"{'a ' + self._kind() if self._metric().numeric else 'an answer'} (e.g. {ids}); "
                              "pass fallback= to answer them anyway")
        if empty.any() and self._metric().numeric and not np.isfinite(to_numbers([self.fallback], self._kind())[0]):
            raise PolicyError(f"{self.name}: fallback {self.fallback!r} is not a {self._kind()}, "
                              f"but metric {self._metric().name!r} compares numbers")
        return empty

    def score_answers(self, answers: Any, references: Any) -> np.ndarray:
        """Per-query metric scores (higher is better) of returned ``answers`` against ``references``."""
        m = self._metric()
        refs = np.asarray([None if r is None else str(r) for r in references], dtype=object)
        ans = np.asarray(answers, dtype=object)
        from ..core.normalise import normalise_array

        refs_n = normalise_array(refs, self._normaliser())
        ans_n = normalise_array(ans, self._normaliser())
        kind = self._kind()
        return m.scores(ans_n, to_numbers(ans_n, kind), refs_n, to_numbers(refs_n, kind))

    # -- offline -------------------------------------------------------------------------------
    def _decide_offline(self, queries: Queries, backend: Any, model: str) -> Decisions:
        rec = backend.samples(model, queries)
        if rec.answers is None:
            raise PolicyError(f"{self.name} needs recorded answers; the data has no 'answer' column")
        refs = backend.references(queries)
        m = self._metric()
        ss = self._sample_set(rec.answers, np.isfinite(rec.quality))
        empty = self._empty(ss, queries)
        kind = self._kind()
        refs_n = SampleSet.from_samples(refs[:, None], normalise=self._normaliser()).values[:, 0]
        ref_num = to_numbers(refs_n, kind)
        if m.numeric and not np.isfinite(ref_num).all():
            bad = queries.ids[~np.isfinite(ref_num)][:5].tolist()
            raise PolicyError(f"{self.name}: metric {m.name!r} needs numeric references; "
                              f"{int((~np.isfinite(ref_num)).sum())} are not {kind}s (e.g. {bad})")
        quality = np.empty(len(queries))
        ok = np.flatnonzero(~empty)
        if ok.size:
            p = draw_predictions(ss.take(ok), rule_for(m), int(self.k), draws=self.draws, reps=self.reps,
                                 seed=self.seed, kind=kind)
            quality[ok] = m.scores(p.answers, p.numbers, refs_n[ok], ref_num[ok]).mean(axis=1)
        if empty.any():
            fb = np.full((int(empty.sum()),), self.fallback, dtype=object)
            quality[empty] = m.scores(fb, to_numbers(fb, kind), refs_n[empty], ref_num[empty])
        cost_per = np.nanmean(rec.cost, axis=1)
        if self.draws == "first":
            cost = np.nansum(rec.cost[:, :self.k], axis=1)
        else:
            cost = self.k * np.nan_to_num(cost_per)
        return self._decisions(queries, backend, model, cost, quality, None)

    # -- live ----------------------------------------------------------------------------------
    def _decide_live(self, queries: Queries, backend: Backend, model: str) -> Decisions:
        answers, quality, cost = self._generate(queries, backend, model)
        ss = self._sample_set(answers, None)
        empty = self._empty(ss, queries)
        out = np.full(len(queries), self.fallback, dtype=object)
        q = np.full(len(queries), np.nan)
        ok = np.flatnonzero(~empty)
        if ok.size:
            sub = ss.take(ok)
            check_usable(sub)
            p = draw_predictions(sub, rule_for(self._metric()), int(self.k), draws="first", kind=self._kind())
            out[ok] = p.answers[:, 0]
            picked = p.index[:, 0] >= 0  # a rule that picked a sample: that sample's recorded quality, if any
            if picked.any():
                origin = sub.origin[np.arange(len(ok)), np.argmax(sub.codes == p.index[:, :1], axis=1)]
                q[ok[picked]] = quality[ok[picked], origin[picked]]
        if self._metric().numeric and self._kind() == "number":
            out = np.where(out == None, None, from_numbers(to_numbers(out, "number"), "number"))  # noqa: E711
        return self._decisions(queries, backend, model, cost.sum(axis=1), q, out)

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if isinstance(self.metric, Metric):
            raise PolicyError(f"{self.name} with a Metric object cannot be saved; register it and pass its name")
        get_metric(self.metric)
        return super().to_state()
