"""Multi-call policies: ask one model K times and combine the answers (Vote, Filter-Vote, best-of-K).

The knob is K, the number of calls, counted as Chen et al. (2024) count them: Vote makes K
generations; Filter-Vote's K calls are K/2 generations plus K/2 filter (judge) calls; best-of-K
makes K generations plus one ranking call.

Offline, on a backend with recorded samples (:class:`~callwise.core.replay.Replay`), a decision's
quality is the *expected* quality over draws of K samples from each query's recorded samples
(``draws``: with replacement — the plug-in answer distribution, which reaches beyond the recorded
count; without replacement; or the first K recorded, which is what a live run sees). How each
expectation is computed (exact or seeded Monte Carlo) is in :mod:`callwise.voting`. Live, the
policy calls the backend K times with distinct sample indices (so a response cache keeps the
samples apart), votes over the normalised answers and returns the winning sample's text.

Filters and rankers:

- Filter-Vote's filter is ``judge`` live (an LLM asked whether the answer is correct, through
  the backend); offline ``recorded`` (a ``keep`` column of the outcome table) or ``simulated`` (a
  judge that keeps right answers with probability ``tpr`` and wrong ones with ``fpr``);
  ``auto`` picks ``recorded`` when the training data has verdicts, else ``simulated``.
- Best-of-K's ranker is ``perfect`` (picks a correct sample when one exists: an upper bound),
  ``noisy`` (picks the best with probability ``ranker_accuracy``, else a random one) or ``judge``
  (live: an LLM picks the best of the K numbered candidates).
"""

from __future__ import annotations

import re
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd

from ..core.backend import Backend, Queries
from ..core.errors import PolicyError
from ..core.hashing import query_uniforms
from ..core.outcomes import OutcomeTable
from ..core.policy import Decisions, Policy, register
from .engine import (
    DRAWS,
    Samples,
    best_of_curve,
    check_k,
    encode,
    expected_cost,
    filter_vote_curve,
    plurality,
    vote_curve,
)

JUDGE_TEMPLATE = ("Question:\n{question}\n\nProposed answer:\n{answer}\n\n"
                  "Is the proposed answer correct? Reply with yes or no.")
RANK_TEMPLATE = ("Question:\n{question}\n\nCandidate answers:\n{candidates}\n\n"
                 "Which candidate answer is best? Reply with its number only.")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")


def parse_verdict(text: Any) -> bool | None:
    """A judge's keep verdict: the first 'yes' or 'no' in its reply (None when it says neither)."""
    m = _YES_NO.search(text) if isinstance(text, str) else None
    return None if m is None else m.group(1).lower() == "yes"


def parse_choice(text: Any, k: int) -> int | None:
    """A ranker's pick: the first number 1..k in its reply, as a 0-based index (None when absent)."""
    for m in _NUMBER.finditer(text if isinstance(text, str) else ""):
        v = int(m.group())
        if 1 <= v <= k:
            return v - 1
    return None


def samples_per_model(frame: pd.DataFrame) -> pd.Series:
    """The fewest recorded samples any prompt has, per model."""
    return frame.groupby(["model", "prompt_id"], observed=True)["sample"].nunique().groupby(level=0).min()


class MultiCall(Policy):
    """Shared machinery: one model, K calls, offline expectations from recorded samples, live calls."""

    family = "multi-call"
    knob = "k"
    calls_per_k: ClassVar[int] = 1  # generations per unit of K (Filter-Vote: 1 per 2 calls)

    def __init__(self, model: str | None = None, k: int = 5, normalise: str | Callable[[Any], Any] = "text",
                 draws: str = "with-replacement", reps: int = 400, seed: int = 0, k_max: int | None = None) -> None:
        self.model = model
        self.k = k
        self.normalise = normalise
        self.draws = draws
        self.reps = reps
        self.seed = seed
        self.k_max = k_max

    # -- settings ------------------------------------------------------------------------------
    def generations(self, k: int | None = None) -> int:
        """Generations made for ``k`` calls (all of them, or half for Filter-Vote)."""
        k = self.k if k is None else k
        return int(k)

    def _check(self) -> None:
        if self.draws not in DRAWS:
            raise PolicyError(f"{self.name}: draws must be one of {list(DRAWS)}, got {self.draws!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise PolicyError(f"{self.name}: k (the number of calls) must be an integer >= 1, got {self.k!r}")

    def fit(self, train: OutcomeTable) -> "MultiCall":
        """Pick the model (the one with the most recorded samples, ties to the better) and K's range."""
        f = train.frame
        per = samples_per_model(f)
        if self.model is None:
            q = f[f["sample"] == 0].groupby("model", observed=True)["quality"].mean()
            self.model_ = str(sorted(per.index, key=lambda m: (-per[m], -q.get(m, 0.0), m))[0])
        else:
            if self.model not in per.index:
                raise PolicyError(f"{self.name}: model {self.model!r} is not in the training data; it has {sorted(per.index)}")
            self.model_ = self.model
        self.samples_ = int(per[self.model_])
        self.models_ = [self.model_]
        self._cache: dict[Any, Any] = {}
        return self

    def _model(self) -> str:
        m = getattr(self, "model_", None) or self.model
        if m is None:
            raise PolicyError(f"{self.name} has no model: pass model= or fit it on training data")
        return str(m)

    def _k_top(self) -> int:
        """The largest K the sweep reaches: ``k_max``, else the recorded samples per query (>= k)."""
        top = self.k_max or getattr(self, "samples_", None) or self.k
        return int(max(top, self.k))

    def sweep(self) -> list[Policy]:
        step = 2 if self.calls_per_k == 2 else 1
        return [self.with_params(k=int(k)) for k in range(step, self._k_top() + 1, step)]

    def cheaper(self, pressure: float) -> Policy:
        lo = 2 if self.calls_per_k == 2 else 1
        k = int(round(self.k - min(max(pressure, 0.0), 1.0) * (self.k - lo)))
        k -= k % lo
        return self.with_params(k=max(lo, k))

    # -- decide ----------------------------------------------------------------------------------
    def decide(self, queries: Queries, backend: Backend) -> Decisions:
        self._check()
        model = self._model()
        if model not in backend.models:
            raise PolicyError(f"model {model!r} is not available; the backend has {list(backend.models)}")
        if hasattr(backend, "samples"):
            return self._decide_offline(queries, backend, model)
        return self._decide_live(queries, backend, model)

    def _offline_samples(self, queries: Queries, backend: Any, model: str) -> tuple[Samples, np.ndarray | None]:
        rec = backend.samples(model, queries)
        if rec.answers is None and self.needs_answers:
            raise PolicyError(f"{self.name} needs recorded answers to count votes; the data has no 'answer' column")
        answers = rec.answers if rec.answers is not None else np.full(rec.quality.shape, None, dtype=object)
        s = encode(answers, rec.quality, rec.cost, recorded=np.isfinite(rec.quality), normalise=self.normalise)
        return s, rec.keep

    needs_answers: ClassVar[bool] = True

    def _curves(self, s: Samples, keep: np.ndarray | None, ks: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _extra_cost(self, s: Samples, gens: int) -> np.ndarray:
        """Cost beyond the generations (filter or ranker calls), per query."""
        return np.zeros(s.n_queries)

    def _decide_offline(self, queries: Queries, backend: Any, model: str) -> Decisions:
        gens = self.generations()
        cache = getattr(self, "_cache", None)
        if cache is None:
            cache = self._cache = {}
        key = (id(backend), model, self.settings_key(), hash(tuple(map(str, queries.ids))))
        top = max(self.generations(self._k_top()), gens)
        hit = cache.get(key)
        if hit is None or hit[0] < gens:
            s, keep = self._offline_samples(queries, backend, model)
            check_k(s, top, self.draws)
            ks = np.arange(1, top + 1)
            hit = (top, s, self._curves(s, keep, ks))
            cache.clear()  # keep one batch's curves: a sweep decides the same batch at every K
            cache[key] = hit
        _, s, curves = hit
        quality = curves[:, gens - 1]
        cost = expected_cost(s, [gens], self.draws)[:, 0] + self._extra_cost(s, gens)
        return self._decisions(queries, backend, model, cost, quality, None, self._offline_extra_calls(model, gens, backend))

    def _offline_extra_calls(self, model: str, gens: int, backend: Any) -> dict[str, int]:
        """Calls beyond the generations offline, per model (Filter-Vote's filter calls)."""
        return {}

    def settings_key(self) -> tuple:
        return tuple((k, repr(v)) for k, v in sorted(self.params().items()) if k not in ("k", "k_max"))

    def _decisions(self, queries: Queries, backend: Backend, model: str, cost: np.ndarray, quality: np.ndarray,
                   answers: np.ndarray | None, extra_calls: dict[str, int] | None = None) -> Decisions:
        n = len(queries)
        models = tuple(backend.models)
        calls = np.zeros((n, len(models)), dtype=np.int64)
        j = models.index(model)
        calls[:, j] = self.generations()
        for m, c in (extra_calls or {}).items():
            calls[:, models.index(m)] += c
        return Decisions(queries.ids, models, calls, cost, quality, np.full(n, j, dtype=np.int64), answers)

    # -- live ------------------------------------------------------------------------------------
    def _generate(self, queries: Queries, backend: Backend, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(answers, quality, cost), each (Q, generations): samples 0..g-1 of the model."""
        g = self.generations()
        n = len(queries)
        answers = np.empty((n, g), dtype=object)
        quality, cost = np.full((n, g), np.nan), np.zeros((n, g))
        for s in range(g):
            got = backend.call(model, queries, sample=s)
            answers[:, s] = got.answers if got.answers is not None else None
            quality[:, s], cost[:, s] = got.quality, got.cost
        return answers, quality, cost

    def _decide_live(self, queries: Queries, backend: Backend, model: str) -> Decisions:
        raise NotImplementedError

    def _pick(self, answers: np.ndarray, quality: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(len(answers))
        ok = idx >= 0
        picked = np.where(ok, answers[rows, np.maximum(idx, 0)], None)
        q = np.where(ok, quality[rows, np.maximum(idx, 0)], 0.0)
        return picked, q

    # -- policy files ----------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        if callable(self.normalise):
            raise PolicyError(f"{self.name} with a user normaliser function cannot be saved; use a named normaliser")
        return {"model": self._model(), "samples": getattr(self, "samples_", None)}, {}

    @classmethod
    def from_state(cls, settings: dict[str, Any], fitted: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Policy":
        self = super().from_state(settings, fitted, arrays)
        assert isinstance(self, MultiCall)
        self.model_ = str(fitted["model"])
        self.models_ = [self.model_] + [m for m in [getattr(self, "judge_model", None)] if m and m != self.model_]
        if fitted.get("samples") is not None:
            self.samples_ = int(fitted["samples"])
        return self


@register
class Vote(MultiCall):
    """Ask one model K times; return the most common normalised answer (ties: the first seen)."""

    name = "vote"
    reads = frozenset({"answer"})

    def _curves(self, s: Samples, keep: np.ndarray | None, ks: np.ndarray) -> np.ndarray:
        return vote_curve(s, ks, draws=self.draws, reps=self.reps, seed=self.seed)

    def _decide_live(self, queries: Queries, backend: Backend, model: str) -> Decisions:
        answers, quality, cost = self._generate(queries, backend, model)
        win = plurality(answers, self.normalise)
        picked, q = self._pick(answers, quality, win)
        return self._decisions(queries, backend, model, cost.sum(axis=1), q, picked)

    @classmethod
    def default(cls, train: OutcomeTable) -> "Vote | None":
        """Bench's Vote: on data with at least two recorded samples (with answers) per prompt."""
        f = train.frame
        has_answers = "answer" in f.columns and f["answer"].notna().any()
        return cls() if has_answers and int(samples_per_model(f).max()) >= 2 else None


@register
class FilterVote(MultiCall):
    """Vote over the answers a filter keeps; K calls = K/2 generations + K/2 filter calls.

    ``filter``: ``auto``, ``recorded``, ``simulated`` (offline) or ``judge`` (live; the judge is
    ``judge_model``, by default the generating model). Offline each filter call costs
    ``judge_cost`` dollars (None: the same as a generation of the query, as the paper counts calls).
    When the filter keeps nothing the vote falls back to all generated answers.
    """

    name = "filter-vote"
    reads = frozenset({"answer", "keep"})
    calls_per_k = 2
    FILTERS = ("auto", "recorded", "simulated", "judge")

    def __init__(self, model: str | None = None, k: int = 6, filter: str = "auto", tpr: float = 0.9,
                 fpr: float = 0.2, judge_model: str | None = None, judge_cost: float | None = None,
                 template: str = JUDGE_TEMPLATE, normalise: str | Callable[[Any], Any] = "text",
                 draws: str = "with-replacement", reps: int = 400, seed: int = 0, k_max: int | None = None) -> None:
        super().__init__(model, k, normalise, draws, reps, seed, k_max)
        self.filter = filter
        self.tpr = tpr
        self.fpr = fpr
        self.judge_model = judge_model
        self.judge_cost = judge_cost
        self.template = template

    def generations(self, k: int | None = None) -> int:
        return int(self.k if k is None else k) // 2

    def _check(self) -> None:
        super()._check()
        if self.k < 2 or self.k % 2:
            raise PolicyError(f"filter-vote: k counts generations plus filter calls, so it must be even and >= 2, "
                              f"got {self.k}")
        if self.filter not in self.FILTERS:
            raise PolicyError(f"filter-vote: filter must be one of {list(self.FILTERS)}, got {self.filter!r}")

    def _k_top(self) -> int:
        top = self.k_max or 2 * (getattr(self, "samples_", None) or self.k)
        return int(max(top, self.k))

    def fit(self, train: OutcomeTable) -> "FilterVote":
        super().fit(train)
        if self.filter == "auto":
            f = train.frame
            has = "keep" in f.columns and f.loc[f["model"] == self.model_, "keep"].notna().all()
            self.filter = "recorded" if has else "simulated"
        if self.judge_model and self.judge_model != self.model_:
            self.models_ = [self.model_, self.judge_model]
        return self

    def _curves(self, s: Samples, keep: np.ndarray | None, ks: np.ndarray) -> np.ndarray:
        mode = self.filter if self.filter != "auto" else ("recorded" if keep is not None else "simulated")
        if mode == "judge":
            raise PolicyError("filter-vote: filter='judge' calls a live judge; offline use 'recorded' or 'simulated'")
        if mode == "recorded":
            rec = np.isfinite(s.quality)
            if keep is None or not np.isfinite(s.compacted(keep)[rec]).all():
                raise PolicyError("filter-vote: filter='recorded' needs a 'keep' verdict for every recorded sample; "
                                  "the data has none (use filter='simulated' with tpr/fpr)")
            return filter_vote_curve(s, ks, keep, draws=self.draws, reps=self.reps, seed=self.seed)
        return filter_vote_curve(s, ks, None, tpr=self.tpr, fpr=self.fpr, draws=self.draws, reps=self.reps,
                                 seed=self.seed)

    def _extra_cost(self, s: Samples, gens: int) -> np.ndarray:
        per = np.nanmean(s.cost, axis=1) if self.judge_cost is None else np.full(s.n_queries, float(self.judge_cost))
        return gens * per

    def _offline_extra_calls(self, model: str, gens: int, backend: Any) -> dict[str, int]:
        # a simulated or recorded filter is counted on the judge model when the data has it, else on the
        # generating model (the paper filters with the same LM)
        judge = self.judge_model if self.judge_model in backend.models else model
        return {judge: gens}

    def _decide_live(self, queries: Queries, backend: Backend, model: str) -> Decisions:
        if self.filter not in ("judge", "auto"):
            raise PolicyError(f"filter-vote: filter={self.filter!r} is offline only; live runs use filter='judge'")
        judge = self.judge_model or model
        if judge not in backend.models:
            raise PolicyError(f"filter-vote: judge model {judge!r} is not available; the backend has {list(backend.models)}")
        answers, quality, cost = self._generate(queries, backend, model)
        n, g = answers.shape
        keep = np.zeros((n, g), dtype=bool)
        jcost = np.zeros(n)
        for s in range(g):
            prompts = np.array([self.template.format(question=queries.prompts[i], answer=answers[i, s] or "")
                                for i in range(n)], dtype=object)
            jq = Queries(np.array([f"{q}#judge" for q in queries.ids], dtype=object), prompts, queries.tasks)
            got = backend.call(judge, jq, sample=s)
            keep[:, s] = [parse_verdict(a) is True for a in (got.answers if got.answers is not None else [None] * n)]
            jcost += got.cost
        kept = np.where(keep, answers, None)
        win = plurality(kept, self.normalise)
        win = np.where(win >= 0, win, plurality(answers, self.normalise))
        picked, q = self._pick(answers, quality, win)
        extra = {judge: g} if judge != model else {model: g}
        return self._decisions(queries, backend, model, cost.sum(axis=1) + jcost, q, picked, extra)


@register
class BestOfK(MultiCall):
    """Ask one model K times and let a ranker pick one answer (best-of-K).

    ``ranker``: ``perfect`` (offline bound: a correct sample when one exists), ``noisy`` (the best
    with probability ``ranker_accuracy``, else a random sample) or ``judge`` (live: ``judge_model``
    picks among the K numbered candidates; an unreadable pick falls back to the plurality vote).
    Offline the ranking costs ``ranker_cost`` dollars per query.
    """

    name = "best-of-k"
    reads = frozenset()
    RANKERS = ("perfect", "noisy", "judge")
    needs_answers = False

    def __init__(self, model: str | None = None, k: int = 5, ranker: str = "perfect", ranker_accuracy: float = 0.8,
                 judge_model: str | None = None, ranker_cost: float = 0.0, template: str = RANK_TEMPLATE,
                 normalise: str | Callable[[Any], Any] = "text", draws: str = "with-replacement", reps: int = 400,
                 seed: int = 0, k_max: int | None = None) -> None:
        super().__init__(model, k, normalise, draws, reps, seed, k_max)
        self.ranker = ranker
        self.ranker_accuracy = ranker_accuracy
        self.judge_model = judge_model
        self.ranker_cost = ranker_cost
        self.template = template

    def _check(self) -> None:
        super()._check()
        if self.ranker not in self.RANKERS:
            raise PolicyError(f"best-of-k: ranker must be one of {list(self.RANKERS)}, got {self.ranker!r}")

    def _curves(self, s: Samples, keep: np.ndarray | None, ks: np.ndarray) -> np.ndarray:
        if self.ranker == "judge":
            raise PolicyError("best-of-k: ranker='judge' calls a live judge; offline use 'perfect' or 'noisy'")
        acc = 1.0 if self.ranker == "perfect" else float(self.ranker_accuracy)
        return best_of_curve(s, ks, accuracy=acc, draws=self.draws)

    def _extra_cost(self, s: Samples, gens: int) -> np.ndarray:
        return np.full(s.n_queries, float(self.ranker_cost))

    def _decide_live(self, queries: Queries, backend: Backend, model: str) -> Decisions:
        judge = self.judge_model or model
        if self.ranker == "judge" and judge not in backend.models:  # before any generation is paid for
            raise PolicyError(f"best-of-k: judge model {judge!r} is not available; the backend has "
                              f"{list(backend.models)}")
        answers, quality, cost = self._generate(queries, backend, model)
        n, k = answers.shape
        rows = np.arange(n)
        extra: dict[str, int] = {}
        if self.ranker == "judge":
            prompts = np.array([self.template.format(
                question=queries.prompts[i],
                candidates="\n".join(f"{j + 1}. {answers[i, j] or ''}" for j in range(k))) for i in range(n)],
                dtype=object)
            jq = Queries(np.array([f"{q}#rank" for q in queries.ids], dtype=object), prompts, queries.tasks)
            got = backend.call(judge, jq)
            picks = [parse_choice(a, k) for a in (got.answers if got.answers is not None else [None] * n)]
            fallback = plurality(answers, self.normalise)
            idx = np.array([p if p is not None else fallback[i] for i, p in enumerate(picks)], dtype=np.int64)
            cost = cost.sum(axis=1) + got.cost
            extra = {judge: 1}
        else:
            if not np.isfinite(quality).all():
                raise PolicyError(f"best-of-k: ranker={self.ranker!r} needs each sample's quality, which this backend "
                                  "does not report; live use ranker='judge'")
            best = np.argmax(quality, axis=1)
            if self.ranker == "perfect":
                idx = best
            else:
                u = query_uniforms(queries.ids, self.seed, "best-of-k")
                rand = np.minimum((query_uniforms(queries.ids, self.seed, "best-of-k-pick") * k).astype(np.int64), k - 1)
                idx = np.where(u < self.ranker_accuracy, best, rand)
            cost = cost.sum(axis=1)
        picked, q = answers[rows, idx], quality[rows, idx]
        return self._decisions(queries, backend, model, cost, q, picked, extra)
