"""Budget -> share -> threshold: the quantile rule offline and on a stream, the guard, the n-tier search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callwise.cascades import thresholds
from callwise.cascades.thresholds import (
    QuantileThreshold,
    StreamingThreshold,
    ThresholdError,
    candidates,
    escalation_share,
    guard,
    running_positions,
    search_chain_shares,
)


def test_escalation_share_cascade_and_routing():
    b = np.array([1.0, 2.0, 6.0, 11.0, 20.0])
    np.testing.assert_allclose(escalation_share(b, 1.0, 10.0), [0.0, 0.1, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(escalation_share(b, 1.0, 11.0, routing=True), [0.0, 0.1, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(escalation_share([0.5], 1.0, 10.0), [0.0])  # below c_S: nothing
    # escalating costs nothing: take L always
    np.testing.assert_allclose(escalation_share([1.0, 3.0], 2.0, 2.0, routing=True), [1.0, 1.0])
    with pytest.raises(ThresholdError, match="finite and >= 0"):
        escalation_share(1.0, -1.0, 2.0)
    with pytest.raises(ThresholdError, match="budgets must be finite"):
        escalation_share([np.nan], 1.0, 2.0)


def test_offline_positions_split_ties_and_escalate_the_share():
    ref = QuantileThreshold.calibrate(np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]))
    # a tied block of 4 out of 8: position = (0 + u * 4) / 8, so share 0.25 takes half of the block
    pos = ref.positions(np.zeros(4), np.array([0.1, 0.4, 0.6, 0.9]))
    np.testing.assert_allclose(pos, [0.05, 0.2, 0.3, 0.45])
    assert (pos < 0.25).tolist() == [True, True, False, False]
    np.testing.assert_allclose(ref.positions(np.array([2.5, -1.0, 9.0]), np.zeros(3)), [6 / 8, 0.0, 1.0])
    # -inf (log of a zero probability) is ordered, NaN is refused with where it is
    assert ref.positions(np.array([-np.inf]), np.zeros(1))[0] == 0.0
    with pytest.raises(ThresholdError, match=r"1 NaN value\(s\) \(at positions \[1\]\)"):
        ref.positions(np.array([0.0, np.nan]), np.zeros(2))
    with pytest.raises(ThresholdError, match="zero confidences"):
        QuantileThreshold.calibrate(np.array([]))


def test_on_its_own_calibration_data_the_rule_escalates_the_share():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, size=4000).astype(float)  # heavy ties
    u = rng.random(4000)
    ref = QuantileThreshold.calibrate(s)
    for p in (0.1, 0.33, 0.5, 0.9):
        assert abs(np.mean(ref.positions(s, u) < p) - p) < 0.03


def _naive_running(s: np.ndarray, u: np.ndarray) -> np.ndarray:
    out = []
    for i in range(len(s)):
        seen = s[: i + 1]
        out.append((np.sum(seen < s[i]) + u[i] * np.sum(seen == s[i])) / (i + 1))
    return np.array(out)


def test_running_positions_match_a_loop_across_blocks(monkeypatch):
    rng = np.random.default_rng(1)
    s, u = rng.integers(0, 7, 53).astype(float), rng.random(53)
    monkeypatch.setattr(thresholds, "_BLOCK", 8)
    np.testing.assert_allclose(running_positions(s, u), _naive_running(s, u))


def test_guard_stops_at_the_first_escalation_that_does_not_fit():
    cand = np.array([[True, True, False, True, True]])
    extra = np.array([2.0, 3.0, 100.0, 1.0, 1.0])
    np.testing.assert_array_equal(guard(cand, extra, np.array([5.0]))[0], [True, True, False, False, False])
    # 4 fits the first escalation only; the 1-dollar ones later are not taken either (the guard has tripped)
    np.testing.assert_array_equal(guard(cand, extra, np.array([4.0]))[0], [True, False, False, False, False])
    assert not guard(cand, extra, np.array([-1.0])).any()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0.0, 10.0)), min_size=1, max_size=40), st.floats(0.0, 50.0))
def test_guard_never_spends_more_than_the_slack(items, slack):
    cand = np.array([[c for c, _ in items]])
    extra = np.array([e for _, e in items])
    esc = guard(cand, extra, np.array([slack]))[0]
    assert extra[esc].sum() <= slack * (1 + 1e-9) + 1e-12
    assert not (esc & ~cand[0]).any()


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5, 1.0])
def test_streaming_object_matches_the_vectorised_rule_and_keeps_the_budget(share):
    rng = np.random.default_rng(2)
    n, c_s, c_l = 300, 1.0, 4.0
    s, u = rng.normal(size=n).round(1), rng.random(n)
    budget = c_s + share * c_l * 0.8  # the guard binds for the larger shares
    live = StreamingThreshold(share, warmup=10, budget_total=budget * n, horizon=n, reserve_per_query=c_s)
    got = np.array([live.step(s[i], u[i], c_s, c_l) for i in range(n)])
    cand = candidates(running_positions(s, u), np.array([share]), warmup=10)
    want = guard(cand, np.full(n, c_l), np.array([budget * n - c_s * n]))[0]
    np.testing.assert_array_equal(got, want)
    assert not got[:10].any()
    assert live.spent <= budget * n + 1e-9
    assert live.spent == pytest.approx(n * c_s + got.sum() * c_l)
    live.charge(-0.5)  # the escalations cost less than estimated
    assert live.spent == pytest.approx(n * c_s + got.sum() * c_l - 0.5)


def test_streaming_object_errors():
    with pytest.raises(ThresholdError, match="share must be in"):
        StreamingThreshold(1.5)
    with pytest.raises(ThresholdError, match="needs the stream's length"):
        StreamingThreshold(0.5, budget_total=10.0)
    with pytest.raises(ThresholdError, match="no confidence"):
        StreamingThreshold(0.5).step(float("nan"), 0.5, 1.0, 1.0)


def test_chain_search_finds_the_best_combination_within_each_budget():
    rng = np.random.default_rng(3)
    n = 200
    pos = rng.random((n, 2))
    q = (rng.random((n, 3)) < [0.4, 0.6, 0.9]).astype(float)
    c = np.tile([1.0, 3.0, 10.0], (n, 1)) * (1 + 0.1 * rng.random((n, 3)))
    budgets = np.array([0.5, 1.5, 4.0, 9.0, 20.0])
    got = search_chain_shares(pos, q, c, budgets, max_cells=n * 121)  # an 11 x 11 grid
    levels = np.linspace(0, 1, 11)

    def run(f1: float, f2: float) -> tuple[float, float]:
        e1 = pos[:, 0] < f1
        e2 = e1 & (pos[:, 1] < f2)
        final = np.where(e2, 2, np.where(e1, 1, 0))
        return q[np.arange(n), final].mean(), (c[:, 0] + e1 * c[:, 1] + e2 * c[:, 2]).mean()

    for b, (f1, f2) in zip(budgets, got):
        acc, cost = run(f1, f2)
        feasible = [run(a, b2) for a, b2 in itertools.product(levels, levels) if run(a, b2)[1] <= b]
        if not feasible:
            assert (f1, f2) == (0.0, 0.0)
            continue
        assert cost <= b
        assert acc == pytest.approx(max(a for a, _ in feasible), abs=1e-6)


def test_chain_search_shape_errors():
    with pytest.raises(ThresholdError, match=r"3-model chain needs quality and cost of shape \(4, 3\)"):
        search_chain_shares(np.zeros((4, 2)), np.zeros((4, 2)), np.zeros((4, 3)), np.array([1.0]))
