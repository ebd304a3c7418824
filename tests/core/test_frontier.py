"""Frontier math: hull, AIQ, oracle, budgets, bootstrap — unit and hypothesis property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callwise.core import frontier as F

# points with costs/qualities on a grid of "nice" floats so that exact comparisons are meaningful
coord = st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False)
qual = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)
points = st.lists(st.tuples(coord, qual), min_size=1, max_size=40)


def brute_force_ndch(c: np.ndarray, q: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Best quality at mean cost <= x by mixing at most two points (enough on a line), by enumeration."""
    out = np.full(len(at), np.nan)
    for k, x in enumerate(at):
        best = -np.inf
        for i in range(len(c)):
            if c[i] <= x:
                best = max(best, q[i])
            for j in range(len(c)):
                if c[i] <= x < c[j]:
                    best = max(best, q[i] + (q[j] - q[i]) * (x - c[i]) / (c[j] - c[i]))
        out[k] = best if np.isfinite(best) else np.nan
    return out


@given(points)
@settings(max_examples=150, deadline=None)
def test_hull_is_nondecreasing_concave_and_dominates_every_point(pts):
    c, q = np.array(pts).T
    h = F.ndch(c, q)
    assert np.all(np.diff(h.cost) > 0) and np.all(np.diff(h.quality) > 0)
    if len(h) >= 3:
        slopes = np.diff(h.quality) / np.diff(h.cost)
        assert np.all(np.diff(slopes) < 1e-9 * np.maximum(1, np.abs(slopes[:-1])))
    assert h.cost[0] == c.min()
    # every vertex is an input point
    assert all(np.any((c == x) & (q == y)) for x, y in zip(h.cost, h.quality))
    # every input point lies on or under the hull
    assert np.all(F.quality_at_budget(h, c) >= q - 1e-9)


@given(points, st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_hull_and_aiq_invariant_to_point_order(pts, rnd):
    c, q = np.array(pts).T
    perm = list(range(len(c)))
    rnd.shuffle(perm)
    h1, h2 = F.ndch(c, q), F.ndch(c[perm], q[perm])
    np.testing.assert_array_equal(h1.cost, h2.cost)
    np.testing.assert_array_equal(h1.quality, h2.quality)
    lo, hi = c.min(), c.max() + 1.0
    for norm in F.NORMALISATIONS:
        assert F.aiq(h1, lo, hi, norm) == F.aiq(h2, lo, hi, norm)


@given(points, st.lists(coord, min_size=1, max_size=10))
@settings(max_examples=80, deadline=None)
def test_hull_matches_brute_force_mixing(pts, budgets):
    c, q = np.array(pts).T
    at = np.array(budgets)
    expect = brute_force_ndch(c, q, at)
    got = F.quality_at_budget(F.ndch(c, q), at)
    np.testing.assert_allclose(got, expect, atol=1e-9)


@given(points)
@settings(max_examples=100, deadline=None)
def test_aiq_bounds_and_normalisations(pts):
    c, q = np.array(pts).T
    h = F.ndch(c, q)
    lo, hi = c.min(), c.max() + 1.0
    paper = F.aiq(h, lo, hi, "paper")
    code = F.aiq(h, lo, hi, "routerbench-code")
    assert h.quality[0] - 1e-12 <= paper <= h.quality[-1] + 1e-12
    assert 0.0 <= code <= h.quality[-1] + 1e-12
    # the code normalisation divides the same area (from the hull's own start, which is c_min here) by c_max
    assert code == pytest.approx(paper * (hi - lo) / hi, rel=1e-9, abs=1e-12)


def test_worked_example_both_normalisations():
    """docs/frontier.md's worked example: A(1, .5), B(2, .8), C(4, .9) on the hull, D(3, .6) under it."""
    h = F.ndch([1, 2, 4, 3], [0.5, 0.8, 0.9, 0.6])
    np.testing.assert_array_equal(h.cost, [1, 2, 4])
    np.testing.assert_array_equal(h.quality, [0.5, 0.8, 0.9])
    # area over [1, 4] = (.5+.8)/2*1 + (.8+.9)/2*2 = 2.35
    assert F.aiq(h, 1, 4, "paper") == pytest.approx(2.35 / 3)
    assert F.aiq(h, 1, 4, "routerbench-code") == pytest.approx(2.35 / 4)
    # another compared router reaches cost 5: flat extension adds .9 * 1
    assert F.aiq(h, 1, 5, "paper") == pytest.approx(3.25 / 4)
    assert F.aiq(h, 1, 5, "routerbench-code") == pytest.approx(3.25 / 5)
    # another router starts at 0.5: nothing is achievable below 1 under 'paper'; 'code' starts at the hull's own 1
    assert F.aiq(h, 0.5, 5, "paper") == pytest.approx(3.25 / 4.5)
    assert F.aiq(h, 0.5, 5, "routerbench-code") == pytest.approx(3.25 / 5)
    with pytest.raises(ValueError, match="unknown AIQ normalisation"):
        F.aiq(h, 1, 4, "area")


def test_budget_and_target():
    h = F.ndch([1, 2, 4], [0.5, 0.8, 0.9])
    assert np.isnan(F.quality_at_budget(h, 0.5))
    assert F.quality_at_budget(h, 1.5) == pytest.approx(0.65)
    assert F.quality_at_budget(h, 10) == pytest.approx(0.9)
    assert F.cost_to_reach(h, 0.65) == pytest.approx(1.5)
    assert F.cost_to_reach(h, 0.3) == 1.0
    assert F.cost_to_reach(h, 0.95) == float("inf")


def test_pareto_front():
    c = np.array([1.0, 2.0, 2.0, 3.0, 0.5, np.nan])
    q = np.array([0.5, 0.7, 0.6, 0.7, 0.1, 0.9])
    assert F.pareto_front(c, q).tolist() == [4, 0, 1]


@st.composite
def tables(draw):
    P = draw(st.integers(1, 25))
    M = draw(st.integers(1, 5))
    q = np.array(draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=P * M, max_size=P * M))).reshape(P, M)
    c = np.array(draw(st.lists(st.floats(0.01, 5.0), min_size=P * M, max_size=P * M))).reshape(P, M)
    return q, c


@given(tables())
@settings(max_examples=80, deadline=None)
def test_oracle_curve_dominates_zero_router_and_ends_at_oracle_point(qc):
    q, c = qc
    curve = F.oracle_curve(q, c)
    zero = F.zero_router(c.mean(axis=0), q.mean(axis=0))
    grid = np.linspace(zero.cost[0], zero.cost[-1] * 1.5, 50)
    assert np.all(F.quality_at_budget(curve, grid) >= F.quality_at_budget(zero, grid) - 1e-9)
    oc, oq = F.oracle_point(q, c)
    assert curve.quality[-1] == pytest.approx(oq)
    assert curve.cost[-1] == pytest.approx(oc)
    lo, hi = min(curve.cost[0], zero.cost[0]), max(curve.cost[-1], zero.cost[-1], c.mean(axis=0).max())
    for norm in F.NORMALISATIONS:
        assert F.aiq(curve, lo, hi, norm) >= F.aiq(zero, lo, hi, norm) - 1e-9


@given(tables(), st.floats(0.0, 100.0))
@settings(max_examples=80, deadline=None)
def test_lambda_choices_lie_on_the_exact_oracle_curve(qc, lam):
    q, c = qc
    curve = F.oracle_curve(q, c)
    ch = F.lambda_choice(q, c, lam)
    pc, pq = F.take(c, ch).mean(), F.take(q, ch).mean()
    assert pq <= F.quality_at_budget(curve, pc) + 1e-9


def test_oracle_rules():
    q = np.array([[0, 1, 1], [0, 0, 0], [1, np.nan, 1]], float)
    c = np.array([[1, 3, 2], [5, 1, 2], [4, 0.1, 3]], float)
    # best quality, ties to the cheapest; nobody right -> the cheapest; NaN never chosen
    assert F.oracle_choice(q, c).tolist() == [2, 1, 2]
    assert F.oracle_point(q, c) == pytest.approx(((2 + 1 + 3) / 3, 2 / 3))
    with pytest.raises(ValueError, match="at least one model"):
        F.oracle_curve(np.full((1, 2), np.nan), np.ones((1, 2)))


def test_bootstrap_intervals():
    rng = np.random.default_rng(0)
    v = rng.random(400)
    lo, hi = F.mean_ci(v, n_boot=500, seed=1)
    assert lo < v.mean() < hi and hi - lo < 0.1
    lo2, hi2 = F.bootstrap_ci(lambda idx: v[idx].mean(), len(v), n_boot=300, seed=1)
    assert lo2 < v.mean() < hi2
    both = F.mean_ci(np.column_stack([v, 2 * v]), n_boot=200, seed=2)
    assert both.shape == (2, 2) and both[1, 1] == pytest.approx(2 * both[1, 0])
