"""The candidates a plan compares: every family's policies, built from the training data alone.

A candidate is an unfitted policy with a knob. Built for a task from its *training* table:

- **single models**, each one a candidate (one configuration);
- **the zero router** made deployable: a seeded random mix of each pair of neighbouring models on
  the training hull of single models (its knob, the mixing weight, walks the hull's edge);
- **every registered policy** whose ``default(train)`` builds one (routers of every scorer,
  RouteLLM's threshold router on the cheapest and best model, confidence, learned and two-tier
  cascades, Vote / Filter-Vote / best-of-K and metric-aware aggregation where samples exist, and
  the compositions of :mod:`callwise.plan.compositions`; route-then-escalate three times, its
  router calibrated to 10%, 25% and 50% of the way from the cheapest to the dearest model's
  mean cost), except those that read the answers' correctness at decision time (the
  oracle, the oracle cascade, the judge cascade: bounds, not policies one can deploy);
- **uncertainty cascades over chains of hull models**: every chain of 2 to ``max_tiers`` models
  taken in cost order from the training hull (plus the whole hull), for every signal the data
  supports (the recorded confidence; sample agreement where several samples per prompt are
  recorded: the vote-agreement cascade of the MoT data's authors).

Nothing here reads a test table.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..core.errors import PolicyError
from ..core.fixed import RandomMix, SingleModel, model_means
from ..core.frontier import ndch
from ..core.money import usd
from ..core.outcomes import OutcomeTable
from ..core.policy import Policy, columns_read_by, make, registry
from ..voting import samples_per_model

#: Registered policies a plan never deploys: they read whether each answer is right when deciding.
HINDSIGHT = {"oracle": "the oracle (an upper bound, reads correctness)",
             "oracle-cascade": "the oracle cascade (escalates on correctness)",
             "cascade-judge": "the judge cascade (its judge is simulated from recorded correctness)",
             "best-of-k": "best-of-K (offline, its ranker is simulated from recorded correctness)",
             "filter-vote": "Filter-Vote (offline, its filter is simulated from recorded correctness)"}
#: The most tiers of a chain built from hull models (the whole hull is always one chain too).
MAX_TIERS = 4
#: Where between the cheapest and the dearest model's mean cost route-then-escalate's router is calibrated.
ROUTER_BUDGET_SHARES = (0.1, 0.25, 0.5)


@dataclass
class Candidate:
    """One compared policy: a name, its family, an unfitted policy and what its settings came from."""

    name: str
    family: str
    policy: Policy
    origin: str = "registered default"
    notes: list[str] = field(default_factory=list)
    #: settings applied after fitting (decide-time settings): candidates that share ``policy`` and
    #: differ only here share one fit per fold
    derive: dict[str, Any] = field(default_factory=dict)

    def fresh(self) -> Policy:
        """A copy to fit (fitting never touches the template)."""
        return copy.deepcopy(self.policy)

    def fitted(self, train: OutcomeTable, memo: dict[int, Policy] | None = None) -> Policy:
        """The candidate fitted on ``train``; ``memo`` (one per training set) shares fits between
        candidates of the same template."""
        key = id(self.policy)
        if memo is not None and key in memo:
            base = memo[key]
        else:
            base = self.fresh().fit(train)
            if memo is not None:
                memo[key] = base
        return base.with_params(**self.derive) if self.derive else base


def hull_models(train: OutcomeTable) -> list[str]:
    """The models on the training hull of single models (mean cost vs mean quality), cheapest first."""
    models, cost, quality = model_means(train)
    curve = ndch(cost, quality)
    on = [m for m, c, q in zip(models, cost, quality)
          if np.any(np.isclose(curve.cost, c, rtol=0, atol=1e-15) & np.isclose(curve.quality, q, rtol=0, atol=1e-12))]
    return sorted(on, key=lambda m: cost[models.index(m)])


def _samples_with_answers(train: OutcomeTable, models: list[str] | None = None) -> int:
    """The fewest sampled answers any prompt has from any of ``models`` (all models when None)."""
    f = train.frame
    if "answer" not in f.columns or not f["answer"].notna().any():
        return 0
    if models is not None:
        f = f[f["model"].isin(models)]
    return int(samples_per_model(f).min())


def _has_confidence(train: OutcomeTable) -> bool:
    f = train.frame
    return "confidence" in f.columns and bool(f["confidence"].notna().all())


def chains(models: list[str], max_tiers: int = MAX_TIERS) -> list[list[str]]:
    """Every chain of 2..max_tiers models in the given (cost) order, and the whole list."""
    out = [list(c) for k in range(2, min(max_tiers, len(models)) + 1) for c in itertools.combinations(models, k)]
    if len(models) > max_tiers:
        out.append(list(models))
    return out


def build_candidates(train: OutcomeTable, *, metric: str | None = None, include: list[str] | None = None,
                     max_tiers: int = MAX_TIERS) -> tuple[list[Candidate], list[str]]:
    """The candidates for one task's training table, and notes on what was left out and why.

    ``include``: only candidates whose name or family is listed (``single`` and ``zero`` name the
    single models and the zero router's mixes).
    """
    notes: list[str] = []
    out: list[Candidate] = []
    models, cost, _ = model_means(train)
    for m in sorted(models, key=lambda m: cost[models.index(m)]):
        out.append(Candidate(f"single:{m}", "single", SingleModel(m), "a single model"))
    hull = hull_models(train)
    for a, b in zip(hull, hull[1:]):
        out.append(Candidate(f"zero:{a}+{b}", "zero", RandomMix([a, b], steps=11),
                             "the zero router: a random mix of two neighbouring hull models"))
    sampled = _samples_with_answers(train) >= 2
    for name, cls in registry().items():
        if name in HINDSIGHT:
            if name not in ("best-of-k", "filter-vote") or sampled:
                notes.append(f"{name} left out: {HINDSIGHT[name]}")
            continue
        if name == "metric-aware" and metric is not None and sampled:
            out.append(Candidate(name, cls.family, make(name, metric=metric), f"metric-aware aggregation for {metric}"))
            continue
        if name == "random-mix" or cls.default.__func__ is Policy.default.__func__:  # type: ignore[attr-defined]
            continue
        try:
            pol = cls.default(train)
        except PolicyError as e:
            notes.append(f"{name} left out: {e}")
            continue
        if pol is None:
            continue
        if name == "metric-aware" and metric is not None:
            pol = pol.with_params(metric=metric)
        if name == "route-escalate":  # the router is worth escalating from when it spends little
            lo, hi = float(cost.min()), float(cost.max())
            for share in ROUTER_BUDGET_SHARES:
                b = lo + share * (hi - lo)
                out.append(Candidate(f"route-escalate[router@{usd(b)}]", cls.family, pol,
                                     f"a linear router calibrated to {usd(b)}/query, then escalation on confidence",
                                     derive={"router_budget": b}))
            continue
        out.append(Candidate(name, cls.family, pol))
    if metric is not None and not any(c.name == "metric-aware" for c in out):
        notes.append(f"metric-aware ({metric}) left out: the data has no sampled answers to aggregate")
    conf = _has_confidence(train)
    if len(hull) >= 2 and (conf or sampled):
        for chain in chains(hull, max_tiers):
            signals: list[tuple[str, dict[str, Any]]] = [("recorded", {})] if conf else []
            k = _samples_with_answers(train, chain[:-1])  # the samples of the models whose confidence decides
            if k >= 2:
                signals.append(("agreement", {"samples": min(k, 5)}))
            for sig, extra in signals:
                label = "confidence" if sig == "recorded" else f"agreement@{extra['samples']}"
                out.append(Candidate(f"cascade[{label}]:{'>'.join(chain)}", "cascade",
                                     make("confidence-cascade", models=chain, signal=sig, **extra),
                                     f"an uncertainty cascade over training-hull models ({sig} signal)"))
    elif len(hull) >= 2:
        notes.append("cascades over hull chains left out: the data records no confidence and no repeated samples")
    if include is not None:
        keep = set(include)
        known = sorted({c.family for c in out} | {c.name.split(":")[0] for c in out})
        out = [c for c in out if c.name in keep or c.family in keep or c.name.split(":")[0] in keep]
        if not out:
            raise PolicyError(f"no candidate matches {sorted(keep)}; families and names here are {known}")
    return out, notes

def plan_columns(candidates: Sequence[str] | None = None, metric: str | None = None) -> frozenset[str]:
    """The optional columns ``plan`` reads for these candidates (names or families, as
    :func:`build_candidates`'s ``include``; None: every one): each included policy's
    :attr:`~callwise.core.policy.Policy.reads`; the answers and the recorded confidence always, since
    they decide which candidates exist (votes, hull cascades) and what the notes say; and with a
    ``metric`` the references its aggregation is scored against. ``callwise plan`` loads only these."""
    # a candidate's own name ("single:m", "cascade[confidence]:a>b", "route-escalate[router@$1]") names
    # its family or policy before the first ":" or "["
    keep = None if candidates is None else {c.split(":")[0].split("[")[0] for c in candidates}
    chosen = [cls for name, cls in registry().items()
              if keep is None or name in keep or cls.family in keep]
    out = {"answer", "confidence"} | columns_read_by(chosen)
    if metric is not None:
        out |= {"answer", "reference"}
    return frozenset(out)


__all__ = ["HINDSIGHT", "MAX_TIERS", "Candidate", "build_candidates", "chains", "hull_models", "plan_columns"]
