"""Reference tests: callwise's vectorised cascade protocol against the authors' procedure, loop by loop.

The functions below re-implement, from reading guillemram97/margin_llms (``utils_method.py``:
``make_cascade``, ``make_hybrid``, ``return_p``, ``return_p_sakota``; ``plots.py``: the budget
grid, the last point, the stream orders, the AUC), what the authors' code does for one budget and
one stream order, in plain Python over lists. callwise computes every budget at once with arrays;
both must agree exactly on small seeded inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from callwise.cascades.thresholds import (
    ESCALATED,
    LARGE_ONLY,
    SMALL,
    UNAFFORDABLE,
    paper_share,
    paper_stream,
)


def authors_p(budget, cost1, cost2, per1, per2, routing):
    """return_p (cascade) / return_p_sakota (router)."""
    if per2 > per1 and cost1 < cost2:
        return min((budget - cost1) / ((cost2 - cost1) if routing else cost2), 1)
    return min((1 - per1) / 2, 0.6)


def authors_cascade(acc1, acc2, bt, budget, cost1, cost2, charge1, charge2, per1, per2, chance=0.0):
    """make_cascade for one budget and one stream order: (accuracy per query, what each query did, spend)."""
    p = authors_p(budget, cost1, cost2, per1, per2, routing=False)
    aux = []
    total_compute = budget * len(acc1)
    acc_exp, did = [], []
    for idx in range(len(acc1)):
        if total_compute >= cost1:
            if total_compute - (len(acc1) - idx) * cost1 <= 0:
                total_compute -= charge1[idx]
                acc_exp.append(acc1[idx]); did.append(SMALL)
                aux.append(bt[idx]); aux.sort()
            elif total_compute - (len(acc1) - idx) * cost2 >= 0 and per2 > per1:
                total_compute -= charge2[idx]
                acc_exp.append(acc2[idx]); did.append(LARGE_ONLY)
            else:
                total_compute -= charge1[idx]
                aux.append(bt[idx]); aux.sort()
                if len(aux) > 20:
                    T2 = max(aux) + 10 if int(len(aux) * p) >= len(aux) else aux[int(len(aux) * p)]
                else:
                    T2 = -1
                if bt[idx] < T2 and total_compute - cost2 >= 0:
                    total_compute -= charge2[idx]
                    acc_exp.append(acc2[idx]); did.append(ESCALATED)
                else:
                    acc_exp.append(acc1[idx]); did.append(SMALL)
        else:
            acc_exp.append(chance); did.append(UNAFFORDABLE)
    return acc_exp, did, budget * len(acc1) - total_compute


def authors_router(acc1, acc2, out, budget, cost1, cost2, charge1, charge2, per1, per2, chance=0.0):
    """make_hybrid (the routing variant) for one budget and one stream order."""
    p = authors_p(budget, cost1, cost2, per1, per2, routing=True)
    aux = []
    total_compute = budget * len(acc1)
    acc_exp, did = [], []
    for idx in range(len(acc1)):
        if total_compute >= cost1:
            if total_compute - (len(acc1) - idx) * cost1 <= 0:
                total_compute -= charge1[idx]
                acc_exp.append(acc1[idx]); did.append(SMALL)
                aux.append(out[idx]); aux.sort()
            elif total_compute - (len(acc1) - idx) * cost2 >= 0 and per2 > per1:
                total_compute -= charge2[idx]
                acc_exp.append(acc2[idx]); did.append(LARGE_ONLY)
            else:
                aux.append(out[idx]); aux.sort()
                if len(aux) > 20:
                    T2 = max(aux) + 10 if int(len(aux) * p) >= len(aux) else aux[int(len(aux) * p)]
                else:
                    T2 = -1
                if out[idx] > T2 or total_compute - cost2 <= 0:
                    total_compute -= charge1[idx]
                    acc_exp.append(acc1[idx]); did.append(SMALL)
                else:
                    total_compute -= charge2[idx]
                    acc_exp.append(acc2[idx]); did.append(ESCALATED)
        else:
            acc_exp.append(chance); did.append(UNAFFORDABLE)
    return acc_exp, did, budget * len(acc1) - total_compute


def case(seed: int, n: int, mode: str):
    rng = np.random.default_rng(seed)
    acc1 = (rng.random(n) < 0.55).astype(float)
    acc2 = np.maximum(acc1, (rng.random(n) < 0.6)).astype(float)
    # margins (>= 0, as the authors' are), with ties: rounded to a grid
    bt = np.round(np.clip(rng.normal(0.5 + 0.3 * acc1, 0.25), 0, None), 2)
    if mode == "fixed":  # the paper's setups: c_S = 1, c_L = R, charged as such
        cost1, cost2 = 1.0, float(rng.choice([5, 10, 50]))
        charge1, charge2 = np.full(n, cost1), np.full(n, cost2)
    else:  # time / dollars: decisions on mean costs, each query charged its own
        charge1, charge2 = rng.gamma(4, 0.25, n), rng.gamma(4, 2.0, n)
        cost1, cost2 = float(charge1.mean()), float(charge2.mean())
    return acc1, acc2, bt, cost1, cost2, charge1, charge2


@pytest.mark.parametrize("routing", [False, True])
@pytest.mark.parametrize("mode", ["fixed", "per-query"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_branch_stream_equals_the_authors_loop(seed, mode, routing):
    n = 120
    acc1, acc2, bt, cost1, cost2, charge1, charge2 = case(seed, n, mode)
    per1, per2 = float(acc1.mean()), float(acc2.mean())
    budgets = np.linspace(cost1, cost2, 25)[:-1]  # plots.py: the last point is L's accuracy, not a run
    shares = paper_share(budgets, cost1, cost2, per1, per2, routing=routing)
    got = paper_stream(bt, budgets, shares, (cost1, cost2), charge1, charge2, large_is_better=per2 > per1,
                       routing=routing, warmup=20)
    ref = authors_router if routing else authors_cascade
    for k, b in enumerate(budgets):
        acc, did, spent = ref(list(acc1), list(acc2), list(bt), float(b), cost1, cost2, list(charge1),
                              list(charge2), per1, per2)
        np.testing.assert_array_equal(got.outcome[k], did, err_msg=f"budget {k} ({b})")
        assert got.spent[k] == pytest.approx(spent, rel=1e-12, abs=1e-9)
    # all four branches are exercised across the budgets
    assert {SMALL, ESCALATED, LARGE_ONLY} <= set(np.unique(got.outcome).tolist())


def test_when_the_large_model_is_not_better_the_share_is_the_authors_fallback():
    assert paper_share(np.array([1.0, 3.0]), 1.0, 10.0, 0.7, 0.6).tolist() == pytest.approx([0.15, 0.15])
    assert paper_share(np.array([1.0, 3.0]), 1.0, 10.0, 0.0, 0.0).tolist() == pytest.approx([0.5, 0.5])
    assert paper_share(np.array([1.0, 3.0]), 10.0, 10.0, 0.0, 0.9).tolist() == pytest.approx([0.5, 0.5])
    bt = np.linspace(0, 1, 50)
    got = paper_stream(bt, np.array([5.0]), np.array([0.15]), (1.0, 10.0), np.ones(50), np.full(50, 10.0),
                       large_is_better=False)
    assert LARGE_ONLY not in got.outcome  # branch 3 needs L to be the better model


# -- the whole protocol (plots.py) -----------------------------------------------------------------

def margin_table(n: int = 160, seed: int = 3):
    """Two models, fixed-ratio setups need no prices; S's confidence (>= 0, like a margin) is informative."""
    import pandas as pd

    from callwise import OutcomeTable

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        hard = rng.random()
        right_s = rng.random() < 0.8 * (1.2 - hard)
        right_l = right_s or rng.random() < 0.6
        for m, right, cost in (("small", right_s, 0.001), ("large", right_l, 0.01)):
            rows.append({"prompt_id": f"q{i}", "task": "t", "prompt": f"{'hard ' * int(4 * hard)}question {i}",
                         "model": m, "quality": float(right), "cost": cost * (0.5 + rng.random()),
                         "confidence": round(float(np.clip(rng.normal(0.6 if right else 0.3, 0.2), 0, 1)), 2),
                         "split": "train" if i % 2 else "test"})
    return OutcomeTable.from_frame(pd.DataFrame(rows))


@pytest.mark.parametrize("ratio", [5.0, 20.0])
def test_the_paper_protocol_equals_plots_py(ratio):
    """plots.py: 100 budgets from c_S to c_L, 3 stream orders, the last point L's accuracy, sklearn's
    ``auc`` divided by c_L − c_S; the margin cascade (``make_cascade``) and the random mix (its ``rdn``)."""
    from sklearn.metrics import auc as sk_auc

    from callwise.cascades.protocol import evaluate_pair, stream_orders
    from callwise.core.split import split_outcomes

    train, test, _ = split_outcomes(margin_table())
    got = evaluate_pair(train, test, "small", "large", methods=("confidence", "random"), cost_ratio=ratio, seed=0)
    v = test.dense(["small", "large"])
    acc1_all, acc2_all = v.quality[:, 0, 0], v.quality[:, 1, 0]
    bt_all = v.confidence[:, 0, 0]
    tr = train.dense(["small", "large"]).quality[:, :, 0].mean(axis=0)
    per1, per2 = float(tr[0]), float(tr[1])  # callwise decides on training accuracies (see docs/fidelity.md)
    cost1, cost2 = 1.0, ratio
    n = len(acc1_all)
    x = np.linspace(cost1, cost2, 100)
    mine, rdn = [], []
    for x_value in x:
        mine_tmp, rdn_tmp = [], []
        for perm in stream_orders(n, 3, 0):
            if x_value != x[-1]:
                acc1, acc2, bt = list(acc1_all[perm]), list(acc2_all[perm]), list(bt_all[perm])
                acc_exp, _, _ = authors_cascade(acc1, acc2, bt, x_value, cost1, cost2, [cost1] * n, [cost2] * n,
                                                per1, per2)
                mine_tmp.append(sum(acc_exp) / len(acc_exp))
                obj_call = (x_value - cost2) / (cost1 - cost2)
                rdn_tmp.append((sum(acc1[: int(len(acc1) * obj_call)]) + sum(acc2[int(len(acc1) * obj_call):]))
                               / len(acc1))
            else:
                mine_tmp.append(acc2_all.mean())
                rdn_tmp.append(acc2_all.mean())
        mine.append(np.mean(mine_tmp))
        rdn.append(np.mean(rdn_tmp))
    np.testing.assert_allclose(got.methods["confidence"].accuracy, mine, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.methods["random"].accuracy, rdn, rtol=0, atol=1e-12)
    assert got.methods["confidence"].auc == pytest.approx(sk_auc(x, mine) / (cost2 - cost1), abs=1e-12)
    assert got.methods["random"].auc == pytest.approx(sk_auc(x, rdn) / (cost2 - cost1), abs=1e-12)
    np.testing.assert_array_equal(got.budgets, x)


# -- the policy (live and offline) follows the same three branches -------------------------------------

@pytest.mark.parametrize("routing", [False, True])
def test_a_streaming_policy_decides_as_the_authors_stream(routing):
    """ConfidenceCascade / TwoTierRouter with mode='streaming' (stream_rule='paper', the default), one
    query at a time on a backend, make exactly the calls of the authors' loop over the same stream."""
    from callwise import Replay
    from callwise.cascades import ConfidenceCascade, TwoTierRouter
    from callwise.cascades.thresholds import _GUARD_RTOL
    from callwise.core.split import split_outcomes

    train, test, _ = split_outcomes(margin_table(n=200, seed=5))
    cls = TwoTierRouter if routing else ConfidenceCascade
    pol = cls(["small", "large"], mode="streaming", warmup=20).fit(train)
    rep = Replay(test)
    v = rep.view
    qs = rep.queries()
    c1, c2 = pol.cost_
    acc = pol.calibration_data_["quality"].mean(axis=0)
    scores = pol._stage_scores(0, qs, None if routing else rep.call("small", qs))
    budgets = np.linspace(c1, c2, 9)[1:-1]
    small, large = v.models.index("small"), v.models.index("large")
    want = paper_stream(scores, budgets, paper_share(budgets, c1, c2, acc[0], acc[1], routing=routing), (c1, c2),
                        v.cost[:, small, 0], v.cost[:, large, 0], large_is_better=acc[1] > acc[0], routing=routing,
                        warmup=20, afford_rtol=_GUARD_RTOL)
    for k, b in enumerate(budgets):
        d = pol.with_params(budget=float(b)).decide(qs, rep)
        out = want.outcome[k]
        np.testing.assert_array_equal(d.calls[:, small], (out == SMALL) | ((out == ESCALATED) & (not routing)))
        np.testing.assert_array_equal(d.calls[:, large], (out == ESCALATED) | (out == LARGE_ONLY))
        assert d.cost.sum() == pytest.approx(want.spent[k], rel=1e-12)
    assert (want.outcome == LARGE_ONLY).any() and (want.outcome == ESCALATED).any()


def test_at_the_small_models_cost_the_paper_stream_answers_every_query_with_the_small_model():
    from callwise import Replay
    from callwise.cascades import ConfidenceCascade
    from callwise.core.split import split_outcomes

    train, test, _ = split_outcomes(margin_table(n=200, seed=5))
    pol = ConfidenceCascade(["small", "large"], mode="streaming").fit(train)
    rep = Replay(test)
    d = pol.with_params(budget=float(pol.cost_[0])).decide(rep.queries(), rep)
    # the budget is the training mean cost of S: the stream answers with S while it is affordable
    answered = d.chosen >= 0
    assert (d.calls[answered, d.models.index("large")] == 0).all()
    assert d.cost.sum() <= float(pol.cost_[0]) * len(d) * (1 + 1e-9) + d.cost.max()
