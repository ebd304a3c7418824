"""The non-predictive cascade with a noisy judge (cascade-judge) on small hand-built tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import callwise
from callwise import OutcomeTable, Replay
from callwise.core.backend import Calls
from callwise.core.errors import PolicyError
from callwise.core.policy import make, registry
from callwise.core.split import split_outcomes
from callwise.routing.cascade_judge import CascadeJudge, judge_uniforms

#: Chain used by most tests; alphabetical order (the backend's column order) differs from it.
CHAIN = ["cheap", "mid", "big"]
PRICE = {"cheap": 0.01, "mid": 0.1, "big": 1.0}


def table(quality: dict[str, list[float]], cost: dict[str, float | list[float]] | None = None,
          extra: dict[str, dict[str, list]] | None = None) -> OutcomeTable:
    """Prompts p0, p1, … with the given per-model qualities and costs (a float: the same for all)."""
    cost = cost or PRICE
    rows = []
    for m, qs in quality.items():
        cs = cost[m] if isinstance(cost[m], list) else [cost[m]] * len(qs)
        for i, (q, c) in enumerate(zip(qs, cs)):
            row = {"prompt_id": f"p{i}", "model": m, "quality": q, "cost": c}
            for col, per_model in (extra or {}).items():
                row[col] = per_model[m][i]
            rows.append(row)
    return OutcomeTable.from_frame(pd.DataFrame(rows))


def run(policy: CascadeJudge, t: OutcomeTable) -> callwise.Decisions:
    rep = Replay(t)
    return policy.decide(rep.queries(), rep)


def col(d: callwise.Decisions, model: str) -> int:
    return d.models.index(model)


# p0: cheap right; p1: mid first right; p2: only big right; p3: none right; p4: mid right, big wrong
STAIRS = {"cheap": [1, 0, 0, 0, 0], "mid": [1, 1, 0, 0, 1], "big": [1, 1, 1, 0, 0]}


def test_perfect_judge_stops_at_the_first_accepted_answer_and_adds_costs():
    d = run(CascadeJudge(CHAIN, tau=1.0), table(STAIRS))
    last = ["cheap", "mid", "big", "big", "mid"]
    assert [d.models[c] for c in d.chosen] == last
    np.testing.assert_array_equal(d.quality, [1, 1, 1, 0, 1])
    np.testing.assert_allclose(d.cost, [0.01, 0.11, 1.11, 1.11, 0.11])
    expected_calls = {"cheap": [1, 1, 1, 1, 1], "mid": [0, 1, 1, 1, 1], "big": [0, 0, 1, 1, 0]}
    for m, calls in expected_calls.items():
        np.testing.assert_array_equal(d.calls[:, col(d, m)], calls)
    assert d.models == ("big", "cheap", "mid")  # columns in the backend's order, not the chain's


def test_threshold_is_a_quantile_of_all_training_qualities():
    # 21 distinct qualities 0, 0.05, ..., 1 spread over 7 prompts x 3 models
    grid = np.linspace(0, 1, 21).reshape(7, 3)
    t = table({m: grid[:, j].tolist() for j, m in enumerate(CHAIN)})
    assert CascadeJudge(CHAIN).fit(t).tau_ == pytest.approx(0.95)
    assert CascadeJudge(CHAIN, tau_quantile=0.5).fit(t).tau_ == pytest.approx(0.5)
    # tau given: the judge uses it (the quantile is still recorded but not used)
    p = CascadeJudge(CHAIN, tau=0.3).fit(t)
    d = run(p, t)
    # rows 0-1 (qualities up to 0.25) never pass and end at the last model; rows 2-6 pass at the first
    assert [d.models[c] for c in d.chosen] == ["big", "big"] + ["cheap"] * 5


def test_cost_cap_stops_before_a_model_that_would_exceed_it():
    t = table(STAIRS)
    p = CascadeJudge(CHAIN, tau=1.0, max_cost=0.11).fit(t)
    d = run(p, t)
    assert (d.calls[:, col(d, "big")] == 0).all()
    assert [d.models[c] for c in d.chosen] == ["cheap", "mid", "mid", "mid", "mid"]
    np.testing.assert_allclose(d.cost, [0.01, 0.11, 0.11, 0.11, 0.11])
    np.testing.assert_array_equal(d.quality, [1, 1, 0, 0, 1])
    for cap in (0.05, 0.0):  # below the second model; the first model is always called
        d = run(p.with_params(max_cost=cap), t)
        assert (d.chosen == col(d, "cheap")).all() and d.calls.sum() == 5
        np.testing.assert_allclose(d.cost, 0.01)


def test_cost_cap_counts_actual_spend_plus_the_next_models_expected_cost():
    # cheap costs 0.01 on p0 and 0.03 on p1 (mean 0.02); both wrong. Cap 0.12: p0 has spent 0.01 and
    # mid is expected to cost 0.1 -> 0.11 <= 0.12, go on; p1: 0.03 + 0.1 = 0.13 > 0.12, stop.
    t = table({"cheap": [0, 0], "mid": [1, 1]}, {"cheap": [0.01, 0.03], "mid": 0.1})
    p = CascadeJudge(["cheap", "mid"], tau=1.0, max_cost=0.12).fit(t)
    assert p.expected_cost_ == pytest.approx({"cheap": 0.02, "mid": 0.1})
    d = run(p, t)
    assert [d.models[c] for c in d.chosen] == ["mid", "cheap"]
    np.testing.assert_allclose(d.cost, [0.11, 0.03])


def test_a_judge_that_is_always_wrong_flips_every_verdict():
    d = run(CascadeJudge(CHAIN, tau=1.0, epsilon=1.0), table(STAIRS))
    # a wrong answer is accepted; a right one is rejected and the query moves on (big is last anyway)
    assert [d.models[c] for c in d.chosen] == ["big", "cheap", "cheap", "cheap", "cheap"]
    np.testing.assert_array_equal(d.quality, [1, 0, 0, 0, 0])
    np.testing.assert_allclose(d.cost, [1.11, 0.01, 0.01, 0.01, 0.01])


def many(n: int = 4000) -> OutcomeTable:
    """n prompts: cheap is right on even prompts, wrong on odd ones; big is always right."""
    cheap = (np.arange(n) % 2 == 0).astype(float).tolist()
    return table({"cheap": cheap, "big": [1.0] * n})


def test_judge_errs_at_about_the_rate_epsilon():
    t = many()
    d = run(CascadeJudge(["cheap", "big"], tau=1.0, epsilon=0.2), t)
    escalated = d.calls[:, col(d, "big")] == 1
    right_first = t.dense().quality[:, col(d, "cheap"), 0] == 1
    assert right_first.sum() == len(d) // 2
    # right answers wrongly rejected, wrong answers wrongly accepted: each about 20% (sd ~0.009)
    assert escalated[right_first].mean() == pytest.approx(0.2, abs=0.04)
    assert (~escalated[~right_first]).mean() == pytest.approx(0.2, abs=0.04)
    assert d.quality.mean() == pytest.approx(0.9, abs=0.03)  # only wrong acceptances lose quality
    u = judge_uniforms(np.array([f"q{i}" for i in range(20000)], dtype=object), ["a", "b"], seed=3)
    assert u.shape == (20000, 2) and (u >= 0).all() and (u < 1).all()
    assert u.mean(axis=0) == pytest.approx([0.5, 0.5], abs=0.01)
    assert abs(np.corrcoef(u.T)[0, 1]) < 0.03


def test_judge_noise_is_fixed_by_seed_and_query_ids_not_by_batching():
    t = many(600)
    rep = Replay(t)
    qs = rep.queries()
    p = CascadeJudge(["cheap", "big"], tau=1.0, epsilon=0.3, seed=7)
    whole = p.decide(qs, rep)
    np.testing.assert_array_equal(whole.chosen, p.decide(qs, rep).chosen)
    # two batches in reverse order give each query the same verdicts
    idx = np.arange(len(qs))
    back, front = p.decide(qs.take(idx[300:][::-1]), rep), p.decide(qs.take(idx[:300]), rep)
    np.testing.assert_array_equal(np.concatenate([front.chosen, back.chosen[::-1]]), whole.chosen)
    other = p.with_params(seed=8).decide(qs, rep)
    assert (other.chosen != whole.chosen).any()


def test_sweep_traces_from_the_cheapest_model_to_the_full_cascade():
    t = table(STAIRS)
    p = CascadeJudge(CHAIN, tau=1.0).fit(t)
    configs = p.sweep()
    assert [c.max_cost for c in configs] == pytest.approx([0.01, 0.11, 1.11, None])
    assert all(c.tau_ == p.tau_ and c.expected_cost_ is p.expected_cost_ for c in configs)  # shared state
    points = [run(c, t).point() for c in configs]
    costs = [c for c, _ in points]
    assert costs[0] == pytest.approx(0.01) and np.all(np.diff(costs[:3]) > 0)
    assert points[-1] == points[-2] == run(p, t).point()  # equal costs: the total cap admits everything
    assert p.params() == {"models": CHAIN, "epsilon": 0.0, "tau": 1.0, "tau_quantile": 0.95, "max_cost": None,
                          "seed": 0, "chain": "hull", "cap_cost": "expected"}


def test_chain_defaults_to_the_hull_models_by_training_cost():
    # mean (cost, quality): m1 (1, .2), m2 (2, .8), m3 (3, .85) under the hull, m4 (4, 1), m5 (5, .5) dominated
    means = {"m4": (4.0, 1.0), "m2": (2.0, 0.8), "m5": (5.0, 0.5), "m1": (1.0, 0.2), "m3": (3.0, 0.85)}
    t = table({m: [q] * 4 for m, (_, q) in means.items()}, {m: c for m, (c, _) in means.items()})
    p = CascadeJudge().fit(t)
    assert p.chain_ == ("m1", "m2", "m4")
    assert p.expected_cost_ == pytest.approx({m: c for m, (c, _) in means.items()})
    assert [c.max_cost for c in p.sweep()] == pytest.approx([1.0, 3.0, 7.0, None])
    assert "chain_" not in p.params() and p.params()["models"] is None


def test_fitted_state_round_trips_through_to_state():
    t = table(STAIRS)
    p = CascadeJudge(epsilon=0.1, max_cost=0.2, seed=3).fit(t)
    fitted, arrays = p.to_state()
    # big (mean quality 0.6) is no better than mid (0.6) at ten times the cost: off the hull
    assert arrays == {} and fitted == {"chain_": ["cheap", "mid"], "expected_cost_": pytest.approx(PRICE),
                                       "tau_": 1.0}
    back = CascadeJudge.from_state(p.params(), json.loads(json.dumps(fitted)), arrays)
    assert back.params() == p.params() and back.chain_ == p.chain_ and back.tau_ == p.tau_
    a, b = run(p, t), run(back, t)
    np.testing.assert_array_equal(a.calls, b.calls)
    np.testing.assert_array_equal(a.cost, b.cost)
    assert CascadeJudge(CHAIN, tau=1.0).to_state() == ({"chain_": None, "expected_cost_": None, "tau_": None}, {})


def test_answers_and_latency_come_from_the_calls_made():
    extra = {"answer": {"cheap": ["a0", "a1"], "big": ["b0", "b1"]},
             "latency": {"cheap": [1.0, 2.0], "big": [10.0, 20.0]}}
    t = table({"cheap": [1, 0], "big": [1, 1]}, extra=extra)
    d = run(CascadeJudge(["cheap", "big"], tau=1.0), t)
    assert d.answers.tolist() == ["a0", "b1"]
    np.testing.assert_allclose(d.latency, [1.0, 22.0])


def test_registry_default_and_single_model_data():
    assert registry()["cascade-judge"] is CascadeJudge
    assert CascadeJudge.family == "cascade" and CascadeJudge.knob == "max_cost"
    assert make("cascade-judge", epsilon=0.1).epsilon == 0.1
    d = CascadeJudge.default(table(STAIRS))
    assert isinstance(d, CascadeJudge) and d.epsilon == 0.05 and d.models is None
    assert CascadeJudge.default(table({"cheap": [1, 0]})) is None


class NoQuality:
    """A live-like backend: it answers but cannot score the answers (quality NaN)."""

    models = ("cheap", "big")

    def call(self, model, queries, sample=0):
        n = len(queries)
        return Calls(model, np.full(n, np.nan), np.full(n, 0.01))


def test_errors_name_the_problem():
    t = table(STAIRS)
    qs = Replay(t).queries()
    with pytest.raises(PolicyError, match=r"\['huge'\] are not available.*'big', 'cheap', 'mid'"):
        run(CascadeJudge(["cheap", "huge"], tau=1.0), t)
    with pytest.raises(PolicyError, match=r"\['huge'\] are not in the training data"):
        CascadeJudge(["cheap", "huge"]).fit(t)
    for eps in (-0.1, 1.5, float("nan"), "0.1"):
        with pytest.raises(PolicyError, match=rf"epsilon .* must be in \[0, 1\], got {eps!r}"):
            CascadeJudge(CHAIN, epsilon=eps).fit(t)
    for tq in (0.0, 1.2):
        with pytest.raises(PolicyError, match=rf"tau_quantile must be in \(0, 1\], got {tq}"):
            CascadeJudge(CHAIN, tau_quantile=tq).fit(t)
    with pytest.raises(PolicyError, match="max_cost must be"):
        run(CascadeJudge(CHAIN, tau=1.0, max_cost=-1.0), t)
    with pytest.raises(PolicyError, match="more than once"):
        run(CascadeJudge(["cheap", "cheap"], tau=1.0), t)
    with pytest.raises(PolicyError, match="quality signal .* without recorded quality"):
        CascadeJudge(["cheap", "big"], tau=1.0).decide(qs, NoQuality())
    # decide or sweep before fit, wherever fitted state is needed
    for unfitted in (CascadeJudge(), CascadeJudge(CHAIN), CascadeJudge(CHAIN, tau=1.0, max_cost=0.5)):
        with pytest.raises(PolicyError, match=r"call fit\(train\) first"):
            run(unfitted, t)
    with pytest.raises(PolicyError, match=r"call fit\(train\) first"):
        CascadeJudge(CHAIN, tau=1.0).sweep()
    run(CascadeJudge(CHAIN, tau=1.0), t)  # no fitted state needed: runs unfitted


@pytest.mark.slow
def test_perfect_judge_on_rational_cascades_beats_every_single_model(shared_data):
    table_ = callwise.load(shared_data / "rational-cascades")
    for task in ("mmlu-llama", "medmcqa-qwen_oai"):
        train, test, _ = split_outcomes(table_.for_task(task))
        p = CascadeJudge().fit(train)
        assert p.tau_ == 1.0 and len(p.chain_) >= 2  # quality is 0/1 correctness
        d = run(p, test)
        v = test.dense()
        q = v.quality[:, :, 0]
        # a perfect judge with tau = 1 returns a right answer whenever some chain model has one
        chain_cols = [v.models.index(m) for m in p.chain_]
        np.testing.assert_array_equal(d.quality, q[:, chain_cols].max(axis=1))
        assert d.quality.mean() > q.mean(axis=0).max()
        costs = [run(c, test).point()[0] for c in p.sweep()]
        assert np.all(np.diff(costs) >= 0) and costs[-1] > costs[0]
