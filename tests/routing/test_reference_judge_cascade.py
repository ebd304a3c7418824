"""Reference test: the non-predictive cascade against RouterBench's ``run_cascading_router_for_eval``.

``authors_cascade`` re-implements ``routers/run_cascading_router.py`` loop by loop for one eval:
models in a given order, each call's recorded cost counted, the chain stopped when the next call
would take the spend to the cap (``>=``), a judge that accepts when quality >= τ and errs with
probability ε, the last answer called returned. The judge's mistakes come from the same uniforms
callwise draws, so both see the same errors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from callwise import OutcomeTable, Replay
from callwise.routing import CascadeJudge
from callwise.routing.cascade_judge import judge_uniforms

MODELS = ["m-small", "m-mid", "m-large", "m-huge"]


def table(seed: int, n: int = 80) -> OutcomeTable:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for j, m in enumerate(MODELS):
            rows.append({"prompt_id": f"p{i}", "task": "t", "model": m,
                         "quality": float(np.clip(rng.normal(0.3 + 0.2 * j, 0.3), 0, 1)),
                         "cost": float((0.5 + rng.random()) * 10.0 ** (j - 5))})
    return OutcomeTable.from_frame(pd.DataFrame(rows))


def authors_cascade(quality, cost, wrong, chain, tau, max_cost):
    """run_cascading_router_for_eval for one (max_cost, error rate): (avg performance, total cost)."""
    total_perf, total_cost = 0.0, 0.0
    for i in range(len(quality)):
        curr_max = max_cost
        sample_cost = 0.0
        for k, j in enumerate(chain):
            if cost[i, j] >= curr_max and sample_cost > 0:
                break
            sample_cost += cost[i, j]
            curr_max -= cost[i, j]
            if wrong[i, k]:
                accepted = quality[i, j] < tau
            else:
                accepted = quality[i, j] >= tau
            last = quality[i, j]
            if accepted:
                break
        total_perf += last
        total_cost += sample_cost
    return total_perf / len(quality), total_cost


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [0.0, 0.05, 0.2, 0.6])
def test_cascade_judge_equals_routerbench_loop(seed, eps):
    t = table(seed)
    rep = Replay(t)
    v = rep.view
    order = [v.models.index(m) for m in MODELS]
    tau = float(np.quantile(v.quality[:, :, 0], 0.95))
    wrong = judge_uniforms(v.prompt_ids, MODELS, seed=7) < eps
    caps = np.quantile(v.cost[:, :, 0].sum(axis=1), [0.1, 0.5, 0.9]).tolist() + [1e9]
    for cap in caps:
        want_perf, want_cost = authors_cascade(v.quality[:, :, 0], v.cost[:, :, 0], wrong, order, tau, cap)
        pol = CascadeJudge(MODELS, epsilon=eps, tau=tau, max_cost=cap, seed=7, cap_cost="actual").fit(t)
        d = pol.decide(rep.queries(), rep)
        assert d.quality.mean() == pytest.approx(want_perf, abs=1e-12)
        assert d.cost.sum() == pytest.approx(want_cost, rel=1e-12)


def test_chain_all_orders_every_model_by_mean_cost_and_actual_cap_needs_an_offline_backend():
    t = table(3)
    pol = CascadeJudge(chain="all").fit(t)
    assert pol.chain_ == tuple(MODELS)  # all four, cheapest first (the hull may drop some)

    class Live:
        models = tuple(MODELS)

        def call(self, model, queries, sample=0):
            return Replay(t).call(model, queries)

    p2 = CascadeJudge(MODELS, max_cost=1.0, cap_cost="actual").fit(t)
    with pytest.raises(Exception, match="cap_cost='actual' reads each call's recorded cost"):
        p2.decide(Replay(t).queries(), Live())
    with pytest.raises(Exception, match="chain must be 'hull' or 'all'"):
        CascadeJudge(chain="every").fit(t)
