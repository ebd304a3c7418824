"""The verdict on the test split, read once after the choice: frontier, AIQ, what the choice saves.

Every figure here comes from the test split; nothing here feeds back into the choice.

- **The cross-family frontier**: the hull over every configuration of every candidate, each
  vertex labelled by its configuration; per candidate its own hull and AIQ (paper normalisation,
  over the shared cost range of everything plotted, oracle included) and the share of the
  zero-to-oracle gap it closes. The zero router here is the hull of the single models' *test*
  points, as in ``callwise bench`` (a hindsight baseline: it knows which models are best on test).
- **The recommendation**: test cost and quality with percentile bootstrap intervals over test
  prompts; whether the budget (or floor) held on the test split, and in what share of bootstrap
  resamples of the test prompts it held.
- **What it saves**, with paired bootstrap intervals: against the baseline model (``--baseline``,
  default the best single model on the training split: "the model you use today") the cost saved
  and the quality gained; against the single models' frontier, the cost saved at equal quality
  (what the zero router pays to reach the recommendation's quality, minus what the recommendation
  pays) and the quality gained at equal cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.frontier import (
    NORMALISATIONS,
    Curve,
    aiq,
    cost_to_reach,
    ndch,
    oracle_curve,
    quality_at_budget,
    shared_range,
)
from .crossfit import Evaluated
from .select import Pick


def _ci(boot: np.ndarray, level: float) -> list[float]:
    b = np.asarray(boot, float)
    b = b[np.isfinite(b)]
    if not len(b):
        return [float("nan"), float("nan")]
    a = (1 - level) / 2
    lo, hi = np.quantile(b, [a, 1 - a])
    return [float(lo), float(hi)]


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def frontier(evs: list[Evaluated], q0: np.ndarray, c0: np.ndarray, singles: list[str],
             oracle: str = "callwise") -> dict[str, Any]:
    """Test points, hulls, AIQ and gap closed of every candidate, the zero router, the oracle and the
    cross-family hull."""
    pts = {ev.name: np.column_stack([ev.test_cost.mean(axis=0), ev.test_quality.mean(axis=0)])  # type: ignore[union-attr]
           for ev in evs if ev.test_cost is not None}
    oc = oracle_curve(q0, c0, oracle)
    sp = np.column_stack([c0.mean(axis=0), q0.mean(axis=0)])
    zero = ndch(sp[:, 0], sp[:, 1])
    lo, hi = shared_range([p[:, 0] for p in pts.values()] + [oc.cost, sp[:, 0]])
    labels = [(ev.name, k) for ev in evs if ev.name in pts for k in range(len(ev.values))]
    allp = np.vstack([pts[n][k] for n, k in labels]) if labels else np.empty((0, 2))
    cross = ndch(allp[:, 0], allp[:, 1]) if len(allp) else Curve(np.array([np.nan]), np.array([np.nan]))
    z_aiq = {n: aiq(zero, lo, hi, n) for n in NORMALISATIONS}
    o_aiq = {n: aiq(oc, lo, hi, n) for n in NORMALISATIONS}

    def gap(a: float) -> float | None:
        d = o_aiq["paper"] - z_aiq["paper"]
        return (a - z_aiq["paper"]) / d if d > 1e-12 else None

    per = {}
    for ev in evs:
        if ev.name not in pts:
            continue
        curve = ndch(pts[ev.name][:, 0], pts[ev.name][:, 1])
        a = {n: aiq(curve, lo, hi, n) for n in NORMALISATIONS}
        per[ev.name] = {"family": ev.family, "points": pts[ev.name].tolist(), "hull": curve.to_list(), "aiq": a,
                        "gap_closed": gap(a["paper"])}
    vertices = []
    for c, q in zip(cross.cost, cross.quality):
        hit = [(n, k) for n, k in labels if abs(pts[n][k, 0] - c) < 1e-15 and abs(pts[n][k, 1] - q) < 1e-12]
        if hit:
            n, k = hit[0]
            ev = next(e for e in evs if e.name == n)
            vertices.append({"cost": float(c), "quality": float(q), "candidate": n, "family": ev.family,
                             "value": ev.values[k]})
    cross_aiq = {n: aiq(cross, lo, hi, n) for n in NORMALISATIONS}
    return {"data": "test split", "cost_range": [lo, hi], "candidates": per,
            "zero": {"points": sp.tolist(), "hull": zero.to_list(), "aiq": z_aiq, "models": singles},
            "oracle": {"hull": oc.to_list(), "aiq": o_aiq},
            "cross_family": {"vertices": vertices, "aiq": cross_aiq, "gap_closed": gap(cross_aiq["paper"])}}


def recommendation(pick: Pick, base: Evaluated, q0: np.ndarray, c0: np.ndarray, *, budget: float | None,
                   quality: float | None, n_boot: int, seed: int, level: float) -> dict[str, Any]:
    """The chosen configuration on test: figures with intervals, the target's fate, and the savings."""
    ev = pick.ev
    assert ev.test_cost is not None and ev.test_quality is not None
    assert base.test_cost is not None and base.test_quality is not None
    c, q = ev.test_cost[:, pick.k], ev.test_quality[:, pick.k]
    bc, bq = base.test_cost[:, 0], base.test_quality[:, 0]
    P = len(c)
    W = np.random.default_rng(seed).multinomial(P, np.full(P, 1.0 / P), size=max(n_boot, 1)) / P  # (B, P)
    mc, mq, mbc, mbq = W @ c, W @ q, W @ bc, W @ bq
    msc, msq = W @ c0, W @ q0  # (B, M): single models' resampled means

    def at_equal_quality(zc: np.ndarray, zq: np.ndarray, cost: float, qual: float) -> tuple[float, float]:
        curve = ndch(zc, zq)
        need = cost_to_reach(curve, qual)
        return need - cost, qual - float(quality_at_budget(curve, cost))

    sav, gain = at_equal_quality(c0.mean(axis=0), q0.mean(axis=0), float(c.mean()), float(q.mean()))
    boot = np.array([at_equal_quality(msc[b], msq[b], mc[b], mq[b]) for b in range(len(W))])
    out: dict[str, Any] = {
        "data": "test split (read once, after the choice)", **pick.to_dict(),
        "test": {"cost": float(c.mean()), "cost_ci": _ci(mc, level), "quality": float(q.mean()),
                 "quality_ci": _ci(mq, level), "n_prompts": int(P)},
        "against_baseline": {
            "model": base.fitted.params().get("model"), "cost": float(bc.mean()), "quality": float(bq.mean()),
            "cost_saved": float(bc.mean() - c.mean()), "cost_saved_ci": _ci(mbc - mc, level),
            "cost_saved_share": _num((bc.mean() - c.mean()) / bc.mean()) if bc.mean() > 0 else None,
            "quality_gained": float(q.mean() - bq.mean()), "quality_gained_ci": _ci(mq - mbq, level)},
        "against_single_model_frontier": {
            "rule": "the hull of the single models' test points (the zero router, with hindsight)",
            "cost_saved_at_equal_quality": _num(sav), "cost_saved_at_equal_quality_ci": _ci(boot[:, 0], level),
            "cost_saved_at_equal_quality_note": None if np.isfinite(sav) else
            "no single model or mix of them reaches this quality on test",
            "quality_gained_at_equal_cost": _num(gain), "quality_gained_at_equal_cost_ci": _ci(boot[:, 1], level)},
        "bootstrap": {"resamples": int(len(W)), "level": level, "over": "test prompts"},
    }
    if budget is not None:
        out["target_held"] = {"budget": budget, "held": bool(c.mean() <= budget + 1e-15),
                              "share_of_resamples_held": float(np.mean(mc <= budget + 1e-15))}
    else:
        out["target_held"] = {"quality": quality, "held": bool(q.mean() >= quality - 1e-12),  # type: ignore[operator]
                              "share_of_resamples_held": float(np.mean(mq >= quality - 1e-12))}  # type: ignore[operator]
    return out


__all__ = ["frontier", "recommendation"]
