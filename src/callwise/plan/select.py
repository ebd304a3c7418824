"""Choosing on out-of-fold training outcomes: which configurations are admissible, and the recommendation.

Under a budget B a configuration is admissible when its (1 − δ') upper bound on the mean cost is
at most B and so is every configuration before it on its candidate's knob (see
:mod:`callwise.plan.bounds`); the recommendation is the admissible configuration with the best
out-of-fold mean quality (ties: the cheaper). Under a quality floor Q, admissible means the lower
bound on quality is at least Q (knob descending), and the recommendation is the cheapest. Each
family's best is chosen the same way among its own candidates.

**Beyond noise.** The recommendation must beat the best admissible single model by more than
noise, on the same out-of-fold prompts: under a budget the paired quality gain, under a floor the
paired saving, has a one-sided (1 − δ) t lower bound above 0. Otherwise the plan says so and
recommends that single model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import PolicyError
from ..core.money import usd
from .bounds import BOUND_DESCRIPTIONS, admissible_prefix, lower, upper
from .crossfit import Evaluated


@dataclass
class Pick:
    """One configuration of one candidate, with its out-of-fold figures."""

    ev: Evaluated
    k: int
    cv_cost: float
    cv_quality: float
    cost_bound: float
    quality_bound: float

    @property
    def label(self) -> str:
        v = self.ev.values[self.k]
        return self.ev.name if self.ev.knob is None else f"{self.ev.name}@{self.ev.knob}={v:.6g}"

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.ev.name, "family": self.ev.family, "label": self.label,
                "policy": self.ev.fitted.name, "knob": self.ev.knob, "value": self.ev.values[self.k],
                "settings": self.ev.params[self.k],
                "cv": {"cost": self.cv_cost, "quality": self.cv_quality, "cost_upper_bound": self.cost_bound,
                       "quality_lower_bound": self.quality_bound}}


@dataclass
class Selection:
    """What the training data chose: admissible configurations, per-family bests, the recommendation."""

    target: dict[str, Any]
    table: dict[str, dict[str, np.ndarray]]  # candidate -> cv means, bounds, admissible (per config)
    best_by_family: dict[str, Pick]
    recommended: Pick | None
    best_single: Pick | None
    beats_single: dict[str, Any] | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "message": self.message,
                "recommended": None if self.recommended is None else self.recommended.to_dict(),
                "best_single": None if self.best_single is None else self.best_single.to_dict(),
                "beats_best_single": self.beats_single,
                "best_by_family": {f: p.to_dict() for f, p in self.best_by_family.items()}}


def _best(picks: list[Pick], mode: str) -> Pick | None:
    if not picks:
        return None
    if mode == "budget":
        return max(picks, key=lambda p: (p.cv_quality, -p.cv_cost))
    return min(picks, key=lambda p: (p.cv_cost, -p.cv_quality))


def paired_lower(diff: np.ndarray, delta: float) -> float:
    """One-sided (1 − δ) t lower bound on the mean of paired per-prompt differences."""
    return float(lower(np.asarray(diff, float), delta)[0])


def select(evs: list[Evaluated], *, budget: float | None = None, quality: float | None = None,
           risk: float = 0.05, bound: str = "t", horizon: float = np.inf) -> Selection:
    """Admissible configurations and the recommendation (see the module docstring)."""
    if (budget is None) == (quality is None):
        raise PolicyError("give exactly one of a budget ($/query) and a quality floor")
    if not evs:
        raise PolicyError("no candidate could be evaluated on the training split")
    mode = "budget" if budget is not None else "quality"
    delta = risk / len(evs)
    table: dict[str, dict[str, np.ndarray]] = {}
    picks: list[Pick] = []
    for ev in evs:
        assert ev.cv_cost is not None and ev.cv_quality is not None
        mc, mq = ev.cv_cost.mean(axis=0), ev.cv_quality.mean(axis=0)
        ub = upper(ev.cv_cost, delta, bound=bound, horizon=horizon)
        lb = lower(ev.cv_quality, delta, bound=bound, horizon=horizon)
        if mode == "budget":
            adm = admissible_prefix(ub <= budget + 1e-15)  # knob ascending: cheapest first
        else:
            adm = admissible_prefix((lb >= quality - 1e-12)[::-1])[::-1]  # knob descending: best first
        table[ev.name] = {"cost": mc, "quality": mq, "cost_upper_bound": ub, "quality_lower_bound": lb,
                          "admissible": adm}
        picks += [Pick(ev, k, float(mc[k]), float(mq[k]), float(ub[k]), float(lb[k])) for k in np.flatnonzero(adm)]
    families = list(dict.fromkeys(ev.family for ev in evs))
    by_family = {f: p for f in families if (p := _best([x for x in picks if x.ev.family == f], mode)) is not None}
    rec = _best(picks, mode)
    single = by_family.get("single")
    target = {"mode": mode, "budget": budget, "quality": quality, "risk": risk, "bound": bound,
              "bound_rule": BOUND_DESCRIPTIONS[bound], "horizon": None if np.isinf(horizon) else horizon,
              "per_candidate_level": delta, "candidates": len(evs),
              "correction": "fixed-sequence along each candidate's knob, Bonferroni across candidates",
              "data": "out-of-fold outcomes on the training split"}
    beats = None
    if rec is None:
        if mode == "budget":
            lo = min(evs, key=lambda e: table[e.name]["cost_upper_bound"].min())
            msg = (f"no configuration keeps the budget {usd(budget)}/query at risk {risk:g}: the lowest upper bound on "
                   f"the mean cost is {usd(table[lo.name]['cost_upper_bound'].min())}/query ({lo.name})")
        else:
            hi = max(evs, key=lambda e: table[e.name]["quality_lower_bound"].max())
            msg = (f"no configuration reaches the quality floor {quality:g} at risk {risk:g}: the highest lower "
                   f"bound on the mean quality is {table[hi.name]['quality_lower_bound'].max():.4f} ({hi.name})")
        return Selection(target, table, by_family, None, single, None, msg)
    msg = f"recommended {rec.label} (chosen on out-of-fold training outcomes)"
    if single is not None and rec.ev.family != "single":
        assert rec.ev.cv_quality is not None and single.ev.cv_quality is not None
        assert rec.ev.cv_cost is not None and single.ev.cv_cost is not None
        if mode == "budget":
            diff = rec.ev.cv_quality[:, rec.k] - single.ev.cv_quality[:, single.k]
            what = "quality gain"
        else:
            diff = single.ev.cv_cost[:, single.k] - rec.ev.cv_cost[:, rec.k]
            what = "saving ($/query)"
        lb = paired_lower(diff, risk)
        beats = {"against": single.label, "what": what, "mean": float(diff.mean()), "lower_bound": lb,
                 "level": 1 - risk, "beyond_noise": bool(lb > 0)}
        if lb <= 0:
            msg = (f"no candidate beats the best admissible single model beyond noise (paired {what} of "
                   f"{rec.label}: {diff.mean():+.4g}, one-sided {1 - risk:.0%} lower bound {lb:+.4g} <= 0): "
                   f"recommended {single.label}")
            rec = single
    return Selection(target, table, by_family, rec, single, beats, msg)


__all__ = ["Pick", "Selection", "paired_lower", "select"]
