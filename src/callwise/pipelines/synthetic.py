"""Synthetic monotone compound systems with a known optimal allocation (tests and benchmarks).

Module l run by model m succeeds on query q when ``skill[l, m] > difficulty[q, l]``; the system
is right on q when every module succeeds (a chain: locate-then-solve, generate-then-refine).
End-to-end quality is then monotone in each module's skill with the others fixed, LLMSelector's
premise, and the allocation that gives each module its most skilled model is optimal on every
query at once, so the optimum is known without search. Costs are per model and add up.
"""

from __future__ import annotations

import numpy as np


class MonotoneSystem:
    """A synthetic evaluator (``models``, ``n_slots``, ``evaluate``) with a known ``optimum``.

    ``skill`` (L, M) in (0, 1) and ``difficulty`` (Q, L) uniform are drawn from ``seed``; model m
    costs ``price[m]`` per call. ``noise`` > 0 flips that share of per-query outcomes at random
    (seeded per allocation), so the optimum is only optimal in expectation.
    """

    def __init__(self, n_models: int = 6, n_slots: int = 3, n_queries: int = 400, *, seed: int = 0,
                 noise: float = 0.0) -> None:
        rng = np.random.default_rng(seed)
        self.models = tuple(f"m{i}" for i in range(n_models))
        self.n_slots = n_slots
        self.skill = rng.uniform(0.2, 0.95, size=(n_slots, n_models))
        self.difficulty = rng.uniform(0.0, 1.0, size=(n_queries, n_slots))
        self.price = np.round(rng.uniform(0.1, 5.0, size=n_models), 3) * 1e-3
        self.noise = float(noise)
        self.seed = seed
        self.calls = 0

    @property
    def optimum(self) -> tuple[int, ...]:
        """The allocation that is best on every query: each module's most skilled model."""
        return tuple(int(m) for m in self.skill.argmax(axis=1))

    def evaluate(self, allocs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        allocs = np.atleast_2d(np.asarray(allocs, dtype=np.int64))
        self.calls += len(allocs)
        sk = self.skill[np.arange(self.n_slots)[None, :], allocs]  # (A, L)
        ok = (sk[:, None, :] > self.difficulty[None, :, :]).all(axis=2).astype(float)  # (A, Q)
        if self.noise:
            for i, a in enumerate(allocs):
                r = np.random.default_rng([self.seed, *a.tolist()])
                flip = r.random(ok.shape[1]) < self.noise
                ok[i, flip] = 1.0 - ok[i, flip]
        cost = np.broadcast_to(self.price[allocs].sum(axis=1)[:, None], ok.shape).copy()
        return ok, cost
