"""RouteLLM's two-model metrics: performance gap recovered against the share of calls to the strong model.

RouteLLM (arXiv 2406.18665) routes between a weak and a strong model and plots quality against the
percentage of calls sent to the strong model. With q_w and q_s the two models' own qualities:

- PGR(r) = (q(r) − q_w) / (q_s − q_w): the share of the weak-to-strong gap a router point recovers;
- APGR: the area under PGR as a function of the strong-call share over [0, 1] (trapezoids between
  the measured points, the curve anchored at (0, 0) = all weak and (1, 1) = all strong). A
  random router scores 0.5;
- CPT(x%): the least strong-call share at which the piecewise-linear curve first reaches PGR x%
  (RouteLLM interpolates with np.interp, which assumes a monotone curve; the first crossing is
  the same on monotone curves and well defined on the others).

These complement AIQ (the cost–quality area) and are reported next to it for two-model data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ShareCurve:
    """Points (strong-call share in [0, 1], quality) sorted by share, anchored at both ends."""

    share: np.ndarray
    quality: np.ndarray
    weak_quality: float
    strong_quality: float

    @property
    def pgr(self) -> np.ndarray:
        gap = self.strong_quality - self.weak_quality
        if gap == 0:
            return np.zeros_like(self.quality)
        return (self.quality - self.weak_quality) / gap


def share_curve(share: np.ndarray, quality: np.ndarray, weak_quality: float, strong_quality: float) -> ShareCurve:
    """Build the curve from a router's points, adding the all-weak and all-strong anchors."""
    s = np.concatenate([[0.0], np.asarray(share, float), [1.0]])
    q = np.concatenate([[weak_quality], np.asarray(quality, float), [strong_quality]])
    ok = np.isfinite(s) & np.isfinite(q)
    s, q = s[ok], q[ok]
    order = np.lexsort((q, s))
    s, q = s[order], q[order]
    # several points at one share: keep their mean (a router measured twice at one share)
    us, inv = np.unique(s, return_inverse=True)
    uq = np.bincount(inv, weights=q) / np.bincount(inv)
    return ShareCurve(us, uq, float(weak_quality), float(strong_quality))


def apgr(curve: ShareCurve) -> float:
    """Average performance gap recovered: area under PGR(share) over [0, 1]."""
    p, s = curve.pgr, curve.share
    return float(np.sum((p[1:] + p[:-1]) * np.diff(s)) / 2.0)


def cpt(curve: ShareCurve, target_pgr: float) -> float:
    """Least strong-call share at which PGR first reaches ``target_pgr`` (NaN if never)."""
    p, s = curve.pgr, curve.share
    hit = np.flatnonzero(p >= target_pgr - 1e-12)
    if not len(hit):
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(s[0])
    t = (target_pgr - p[i - 1]) / (p[i] - p[i - 1])
    return float(s[i - 1] + t * (s[i] - s[i - 1]))


def oracle_share_curve(q_weak: np.ndarray, q_strong: np.ndarray) -> ShareCurve:
    """The best any two-model router can do at each share: send the prompts where strong gains most first."""
    gain = np.asarray(q_strong, float) - np.asarray(q_weak, float)
    n = len(gain)
    order = np.argsort(-gain, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(np.maximum(gain[order], 0.0))])
    share = np.arange(n + 1) / n
    qw = float(np.mean(q_weak))
    return ShareCurve(share, qw + cum / n, qw, float(np.mean(q_strong)))


def routellm_metrics(curve: ShareCurve) -> dict[str, float | None]:
    """APGR, CPT(50%) and CPT(80%) of a share curve (None where a level is never reached)."""
    out: dict[str, float | None] = {"apgr": apgr(curve)}
    for level in (0.5, 0.8):
        v = cpt(curve, level)
        out[f"cpt{int(level * 100)}"] = None if not np.isfinite(v) else v
    return out
