"""Set a policy's knob from a dollar budget or a quality target, on calibration data.

Any policy whose knob traces a curve (λ of a router, a threshold, a share of strong calls) is
calibrated the same way: evaluate every candidate knob value on calibration prompts (recorded
outcomes that the fitted predictor did not train on), then pick

- for a budget B: the value with the highest calibration quality among those whose mean cost
  per query is <= B (ties to the cheaper one); with ``mix=True``, if B falls inside a segment
  of the upper hull of the candidates' (cost, quality) points that beats that value, a random
  mixture of the segment's two ends: a share ``mix_share`` of queries (chosen by a hash of the
  query, so a query always gets the same answer) uses ``mix_value``, the rest ``value``, and the
  expected calibration cost is B. Without mixing a knob whose decisions flip together for many
  queries (a router that ignores the prompt, say) can only hit the budget's neighbours;
- for a quality target T: the cheapest value whose calibration quality is >= T.

Impossible requests are errors, never a silent fallback: a budget below the cheapest reachable
mean cost, or a target above the best reachable quality, says what is reachable.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from .errors import PolicyError
from .frontier import ndch
from .money import usd


@dataclass(frozen=True)
class Calibration:
    """The outcome of a calibration: the chosen knob value and what it achieved on calibration data."""

    knob: str
    value: float
    goal: str  # "budget" or "quality"
    target: float
    calibration_cost: float
    calibration_quality: float
    n_prompts: int
    method: str
    mix_value: float | None = None
    mix_share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _means(cost: np.ndarray, quality: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cost, quality, values = np.asarray(cost, float), np.asarray(quality, float), np.asarray(values, float)
    if cost.ndim != 2 or cost.shape != quality.shape or cost.shape[1] != len(values):
        raise PolicyError(f"calibration needs prompts x candidates cost and quality arrays matching {len(values)} "
                          f"candidate values; got {cost.shape} and {quality.shape}")
    if cost.shape[0] == 0:
        raise PolicyError("calibration needs at least one calibration prompt")
    return cost.mean(axis=0), quality.mean(axis=0), values


def calibrate_budget(values: np.ndarray, cost: np.ndarray, quality: np.ndarray, budget: float, *, knob: str,
                     method: str, mix: bool = False) -> Calibration:
    """The knob value with the best calibration quality at mean cost <= ``budget`` dollars per query
    (or a mixture of two values on the hull, with ``mix=True``; see the module docstring)."""
    if not np.isfinite(budget) or budget <= 0:
        raise PolicyError(f"budget must be a positive number of dollars per query, got {budget}")
    mc, mq, values = _means(cost, quality, values)
    ok = mc <= budget * (1 + 1e-9)
    if not ok.any():
        raise PolicyError(f"budget {usd(budget)} per query is below the cheapest reachable mean cost "
                          f"{usd(mc.min())} on the calibration data (the cheapest model alone); raise the budget")
    k = _pick(np.flatnonzero(ok), -mq, mc)
    pure = Calibration(knob, float(values[k]), "budget", float(budget), float(mc[k]), float(mq[k]), cost.shape[0], method)
    if not mix:
        return pure
    hull = ndch(mc, mq)
    if not hull.cost[0] <= budget < hull.cost[-1]:
        return pure
    i = int(np.searchsorted(hull.cost, budget, side="right")) - 1
    (ca, qa), (cb, qb) = (hull.cost[i], hull.quality[i]), (hull.cost[i + 1], hull.quality[i + 1])
    share = (budget - ca) / (cb - ca)
    q_mix = qa + share * (qb - qa)
    if q_mix <= mq[k] + 1e-12:
        return pure
    a = _pick(np.flatnonzero(np.isclose(mc, ca) & np.isclose(mq, qa)), mc, -mq)
    b = _pick(np.flatnonzero(np.isclose(mc, cb) & np.isclose(mq, qb)), mc, -mq)
    return Calibration(knob, float(values[a]), "budget", float(budget), float(budget), float(q_mix), cost.shape[0],
                       method + "; a hashed share of queries uses mix_value (expected cost = budget)",
                       float(values[b]), float(share))


def calibrate_quality(values: np.ndarray, cost: np.ndarray, quality: np.ndarray, target: float, *, knob: str,
                      method: str) -> Calibration:
    """The cheapest knob value whose calibration quality is >= ``target``."""
    mc, mq, values = _means(cost, quality, values)
    ok = mq >= target - 1e-12
    if not ok.any():
        raise PolicyError(f"quality target {target:.4g} is above the best quality this policy reaches on the "
                          f"calibration data ({mq.max():.4g}); lower the target")
    k = _pick(np.flatnonzero(ok), mc, -mq)
    return Calibration(knob, float(values[k]), "quality", float(target), float(mc[k]), float(mq[k]), cost.shape[0], method)


def mix_mask(keys: Sequence[str], share: float) -> np.ndarray:
    """Which queries take the mixture's second value: a stable hash of each key below ``share``."""
    if share <= 0:
        return np.zeros(len(keys), dtype=bool)
    u = np.fromiter((zlib.crc32(str(k).encode()) for k in keys), dtype=np.float64, count=len(keys)) / 2.0**32
    return u < share


def _pick(candidates: np.ndarray, first: np.ndarray, second: np.ndarray) -> int:
    """Among ``candidates`` the index minimising ``first``, ties by ``second``."""
    order = np.lexsort((second[candidates], first[candidates]))
    return int(candidates[order[0]])
