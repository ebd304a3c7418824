"""Reference tests: callwise's hull, AIQ and oracle against RouterBench's code, loop by loop.

``rb_hull`` and ``rb_calc_aiq`` re-implement, from reading withmartian/routerbench
(``evaluation/AIQ.py``: ``get_non_descreasing_convex_hull_of``, ``calculate_area_under_curve``,
``calc_AIQ``), what the authors' code computes, in plain Python; ``rb_oracle`` the oracle of
``convertors/common.py`` / ``evaluate_routers.py`` (highest accuracy, then lowest cost; a prompt
no model solves is "no_model_correct" and costs 0). callwise's O(n log n) hull and closed-form
areas must give the same AIQ to 1e-9 on random point sets.
"""

from __future__ import annotations

import numpy as np
import pytest

from callwise.core.frontier import (
    aiq,
    ndch,
    oracle_costs,
    oracle_curve,
    oracle_point,
    quality_at_budget,
)

trapz = getattr(np, "trapezoid", None) or np.trapz  # the authors' np.trapz (renamed in numpy 2)


def rb_hull(points: np.ndarray) -> np.ndarray:
    """get_non_descreasing_convex_hull_of, literally (O(n^3))."""
    pts = points[points[:, 0].argsort()]
    new = []
    for i in range(len(pts)):
        for j in range(i, len(pts)):
            x1, y1 = pts[i]
            x2, y2 = pts[j]
            for k in range(len(pts)):
                x, y = pts[k]
                if x1 < x < x2:
                    yi = np.interp(x, [x1, x2], [y1, y2])
                    if y < yi:
                        if x not in [mx for mx, _ in new]:
                            new.append([x, yi])
                        else:
                            for m in range(len(new)):
                                xn, yn = new[m]
                                if xn == x and yn < yi:
                                    new[m] = [x, yi]
                                    break
                                elif xn == x and yn > yi:
                                    new[m] = [x, yn]
                    if y >= yi:
                        if x not in [mx for mx, _ in new]:
                            new.append([x, y])
                        else:
                            for m in range(len(new)):
                                xn, yn = new[m]
                                if xn == x and yn < y:
                                    new[m] = [x, y]
                                    break
                                elif xn == x and yn > y:
                                    new[m] = [x, yn]
    if pts[-1][0] not in [mx for mx, _ in new]:
        if pts[-1][1] >= new[-1][1]:
            new.append(pts[-1])
    if pts[0][0] not in [mx for mx, _ in new]:
        new = [pts[0]] + new
    hull = np.array(new, dtype=float)
    hull = hull[hull[:, 0].argsort()]
    drop = [i for i in range(1, len(hull)) if hull[i][1] < hull[i - 1][1]]
    return np.delete(hull, drop, axis=0)


def rb_calc_aiq(point_sets: list[np.ndarray]) -> list[float]:
    """calc_AIQ without the plot: hulls, extended flat to the largest hull cost, trapezoid area / that cost."""
    hulls = [rb_hull(p) for p in point_sets]
    max_x = max(np.max(h[:, 0]) for h in hulls)
    hulls = [np.vstack((h, np.array([max_x, h[-1, 1]]))) for h in hulls]
    return [float(trapz(h[:, 1], h[:, 0])) / max_x for h in hulls]


def rb_oracle(quality: np.ndarray, cost: np.ndarray) -> tuple[float, float]:
    """generate_oracle_routing_results + the oracle|total_cost column: mean cost and quality."""
    costs, quals = [], []
    for q, c in zip(quality, cost):
        if not any(q):
            costs.append(0.0)  # "no_model_correct"
            quals.append(0.0)
            continue
        best = max(q)
        j = min((j for j in range(len(q)) if q[j] == best), key=lambda j: c[j])  # highest accuracy, lowest cost
        costs.append(c[j])
        quals.append(q[j])
    return float(np.mean(costs)), float(np.mean(quals))


def random_sets(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(rng.integers(2, 5)):
        n = int(rng.integers(3, 12))
        x = np.sort(rng.random(n)) * 10 ** rng.uniform(-4, 0)  # distinct costs, dollar scales
        y = rng.random(n)
        sets.append(np.column_stack([x, y]))
    return sets


@pytest.mark.parametrize("seed", range(30))
def test_aiq_equals_routerbench_calc_aiq(seed):
    sets = random_sets(seed)
    want = rb_calc_aiq(sets)
    curves = [ndch(p[:, 0], p[:, 1]) for p in sets]
    c_max = max(float(c.cost.max()) for c in curves)  # calc_AIQ's largest *hull* cost
    got = [aiq(c, 0.0, c_max, "routerbench-code") for c in curves]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    for p, c in zip(sets, curves):  # one curve: the authors' hull points all lie on ours
        h = rb_hull(p)
        np.testing.assert_allclose(quality_at_budget(c, h[:, 0]), h[:, 1], rtol=0, atol=1e-12)
        assert c.cost[-1] == h[-1, 0] and c.quality[-1] == h[-1, 1]


@pytest.mark.parametrize("seed", range(30))
def test_paper_aiq_is_the_papers_integral_over_the_shared_range(seed):
    """The paper's normalisation (no code: its formula): (1/(c_max − c_min)) ∫ R̃(c) dc over the
    shared range, R̃ the authors' hull, 0 below its cheapest point and flat after its dearest."""
    sets = random_sets(seed)
    lo = min(float(p[:, 0].min()) for p in sets)
    hi = max(float(p[:, 0].max()) for p in sets)
    for p in sets:
        h = rb_hull(p)
        xs = np.unique(np.concatenate([[lo, hi], h[:, 0]]))
        seg = xs[(xs >= max(lo, h[0, 0])) & (xs <= hi)]  # R̃ = 0 below the hull's cheapest point
        want = float(trapz(np.interp(seg, h[:, 0], h[:, 1]), seg)) / (hi - lo)
        assert aiq(ndch(p[:, 0], p[:, 1]), lo, hi, "paper") == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("seed", range(10))
def test_oracle_conventions(seed):
    rng = np.random.default_rng(seed)
    q = (rng.random((60, 4)) < 0.3).astype(float)
    q[:7] = 0.0  # prompts no model solves
    c = rng.random((60, 4)) * 1e-3
    assert oracle_point(q, c, "routerbench") == pytest.approx(rb_oracle(q, c), abs=1e-15)
    ours = oracle_point(q, c)  # callwise: an unsolved prompt takes the cheapest model, and pays for it
    assert ours[1] == pytest.approx(rb_oracle(q, c)[1])
    assert ours[0] == pytest.approx(rb_oracle(q, c)[0] + c[(q == 0).all(axis=1)].min(axis=1).sum() / len(q))
    rb = oracle_curve(q, c, "routerbench")
    assert (rb.cost[-1], rb.quality[-1]) == pytest.approx(oracle_point(q, c, "routerbench"))
    assert rb.cost[0] == pytest.approx(oracle_costs(q, c, "routerbench").min(axis=1).mean())
    with pytest.raises(ValueError, match="unknown oracle convention"):
        oracle_point(q, c, "martian")


def test_bench_takes_routerbench_oracle_convention():
    import callwise

    table = callwise.load_sample()
    train, test, info = callwise.split_outcomes(table, seed=0)
    ours = callwise.bench(train, test, policies=["random-mix"], n_boot=0, split_info=info)
    rb = callwise.bench(train, test, policies=["random-mix"], n_boot=0, split_info=info, oracle="routerbench")
    assert ours.meta["oracle_convention"] == "callwise" and rb.meta["oracle_convention"] == "routerbench"
    for task in ours.tasks:
        a, b = ours.tasks[task].entries["oracle"].points, rb.tasks[task].entries["oracle"].points
        assert b[-1, 1] == pytest.approx(a[-1, 1]) and b[-1, 0] <= a[-1, 0]  # same quality, never dearer
    with pytest.raises(callwise.PolicyError, match="unknown oracle convention 'x'"):
        callwise.bench(train, test, policies=["random-mix"], n_boot=0, oracle="x")


def test_svm_and_per_model_mlp_scorers_are_routerbench_routers():
    """SVMRouter: a LinearSVR(random_state=1234) per model; MLPRouter: an MLPRegressor per model
    (hidden (100, 100, 100), random_state 1234). callwise's scorers predict what those fits do."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    from sklearn.svm import LinearSVR

    from callwise.routing import make_scorer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    Q = (rng.random((120, 3)) < 1 / (1 + np.exp(-X[:, :3]))).astype(float)
    Xt = rng.normal(size=(20, 6)).astype(np.float32)
    svm = make_scorer("svm").fit(X, Q).predict(Xt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        want = np.column_stack([LinearSVR(random_state=1234).fit(X, Q[:, j]).predict(Xt)
                                for j in range(3)])
        np.testing.assert_allclose(svm, want, atol=1e-5)
        cfg = {"hidden": [100, 100, 100], "alpha": 1e-4, "seed": 1234, "early_stopping": False, "per_model": True,
               "n_iter_no_change": 10}
        mlp = make_scorer("mlp", **cfg).fit(X, Q).predict(Xt)
        want = np.column_stack([MLPRegressor(hidden_layer_sizes=(100, 100, 100), max_iter=200, random_state=1234,
                                             alpha=1e-4).fit(X, Q[:, j]).predict(Xt) for j in range(3)])
    np.testing.assert_allclose(mlp, np.clip(want, 0, 1), atol=1e-4)
