"""The compositions: each equals its components in the limits, round-trips through a policy file,
and keeps its budget."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import callwise
from callwise import Replay, make
from callwise.plan.compositions import majority_first


@pytest.fixture(scope="module")
def rational(shared_data: Path):
    t = callwise.load(shared_data / "rational-cascades").for_task("gsm8k-llama")
    train, test, _ = callwise.split_outcomes(t, fraction=0.6, seed=0)
    return train, test


@pytest.fixture(scope="module")
def mot(shared_data: Path):
    t = callwise.load(shared_data / "mot-cascade-samples", drop_incomplete=True).for_task("date_cot1")
    t = t.select(t.frame["model"].isin(["gpt-3.5-turbo", "gpt-4"]).to_numpy())
    train, test, _ = callwise.split_outcomes(t, fraction=0.5, seed=0)
    return train, test


def _same(a, b) -> None:
    assert np.array_equal(a.calls, b.calls) and np.allclose(a.cost, b.cost) and np.allclose(a.quality, b.quality)


def test_route_escalate_without_escalation_is_the_router(rational) -> None:
    train, test = rational
    rep = Replay(test)
    p = make("route-escalate", router_budget=3e-4).fit(train)
    router = p.router_.with_params(budget=3e-4, lam=None, quality_target=None)
    _same(p.with_params(escalate=0.0).decide(rep.queries(), rep), router.decide(rep.queries(), rep))
    # and escalating on confidence changes some answers at a cost
    more = p.with_params(escalate=0.5).decide(rep.queries(), rep)
    assert more.cost.sum() > router.decide(rep.queries(), rep).cost.sum()


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_route_escalate_without_a_router_is_the_cascade(rational, share: float) -> None:
    train, test = rational
    rep = Replay(test)
    p = make("route-escalate", router=None, escalate=share).fit(train)
    chain = list(p.models_)
    cc = make("confidence-cascade", models=chain).fit(train)
    cc.shares = lambda b: np.full((1, len(chain) - 1), share)  # the same share at every stage
    big = float(test.frame["cost"].sum()) * 10  # a budget the guard never binds
    _same(p.decide(rep.queries(), rep), cc.with_params(budget=big).decide(rep.queries(), rep))


def test_majority_first_puts_the_vote_first() -> None:
    a = np.array([["x", "y", "y"], ["a", "b", "c"], [None, "z", None]], dtype=object)
    assert majority_first(a)[:, 0].tolist() == [1, 0, 1]


def test_vote_agreement_cascade_limits(mot) -> None:
    train, test = mot
    rep = Replay(test)
    p = make("vote-agreement-cascade", models=["gpt-3.5-turbo", "gpt-4"], samples=5).fit(train)
    lo, hi = p.budget_range()
    # no escalation: the majority of the cheap model's first five samples, computed here literally
    d = p.with_params(budget=lo).decide(rep.queries(), rep)
    v = test.dense()
    j = v.models.index("gpt-3.5-turbo")
    want = []
    for i in range(len(v.prompt_ids)):
        row = list(v.answers[i, j, :5])
        got = Counter(x for x in row if isinstance(x, str))
        if not got:
            want.append(v.quality[i, j, 0])
            continue
        top = got.most_common(1)[0][1]
        first = next(k for k, x in enumerate(row) if isinstance(x, str) and got[x] == top)
        want.append(v.quality[i, j, first])
    assert np.allclose(d.quality, want)
    assert np.allclose(d.cost, v.cost[:, j, :5].sum(axis=1))
    # every query escalated: GPT-4's answer, after paying for the five samples too
    d = p.with_params(budget=hi * 1.001).decide(rep.queries(), rep)
    k = v.models.index("gpt-4")
    assert np.allclose(d.quality, v.quality[:, k, 0])
    # in between the guard keeps the budget
    mid = (lo + hi) / 2
    d = p.with_params(budget=mid).decide(rep.queries(), rep)
    assert d.cost.sum() <= mid * len(d) * (1 + 1e-9)


def test_learned_escalation_keeps_the_budget_and_uses_the_signals(rational) -> None:
    train, test = rational
    rep = Replay(test)
    p = make("learned-escalation", models=["llama3.2-3b", "llama3.1-405b"]).fit(train)
    assert p.used_ == ["confidence", "router-gain", "prompt"]
    lo, hi = p.budget_range()
    for b in np.linspace(lo, hi, 5):
        d = p.with_params(budget=float(b)).decide(rep.queries(), rep)
        assert d.cost.sum() <= b * len(d) * (1 + 1e-9) + 1e-12
    with pytest.raises(callwise.PolicyError, match="cannot give the signal"):
        make("learned-escalation", models=["llama3.2-3b", "llama3.1-405b"], signals=["agreement"]).fit(train)


@pytest.mark.parametrize("name, settings, data", [
    ("route-escalate", {"router_budget": 3e-4, "escalate": 0.3}, "rational"),
    ("learned-escalation", {"models": ["llama3.2-3b", "llama3.1-405b"], "budget": 2e-4}, "rational"),
    ("vote-agreement-cascade", {"models": ["gpt-3.5-turbo", "gpt-4"], "budget": 1e-3}, "mot"),
])
def test_compositions_round_trip_through_policy_files(name, settings, data, request, tmp_path: Path) -> None:
    train, test = request.getfixturevalue(data)
    rep = Replay(test)
    p = make(name, **settings).fit(train)
    callwise.save_policy(p, tmp_path / "p.json")
    q = callwise.load_policy(tmp_path / "p.json")
    _same(p.decide(rep.queries(), rep), q.decide(rep.queries(), rep))


def test_plan_candidates_on_sampled_data(mot) -> None:
    """Where samples exist: votes, metric-aware aggregation for --metric, the vote-agreement cascade
    and agreement-signal cascades over hull chains."""
    from callwise.plan.candidates import build_candidates

    train, _ = mot
    cands, notes = build_candidates(train, metric="exact-match")
    by = {c.name: c for c in cands}
    assert {"vote", "metric-aware", "vote-agreement-cascade", "cascade[agreement@5]:gpt-3.5-turbo>gpt-4"} <= set(by)
    assert by["metric-aware"].policy.metric == "exact-match"
    # offline, Filter-Vote's filter and best-of-K's ranker are simulated from correctness: not deployable
    assert not {"filter-vote", "best-of-k"} & set(by)
    assert any(n.startswith("best-of-k left out") for n in notes) and any(n.startswith("filter-vote left out")
                                                                           for n in notes)


def test_route_escalate_variants_share_one_fit(rational) -> None:
    from callwise.plan.candidates import build_candidates

    train, _ = rational
    cands, _ = build_candidates(train, include=["composition"])
    variants = [c for c in cands if c.name.startswith("route-escalate[")]
    assert len(variants) == 3 and len({id(c.policy) for c in variants}) == 1
    memo: dict = {}
    fitted = [c.fitted(train, memo) for c in variants]
    assert len(memo) == 1 and len({id(f.router_) for f in fitted}) == 1
    assert sorted(f.router_budget for f in fitted) == sorted(c.derive["router_budget"] for c in variants)


def test_learned_escalation_takes_infinite_log_probabilities(rational) -> None:
    """Recorded log-probabilities reach -inf (triviaqa-qwen_oai has 35): the regression still fits."""
    train, test = rational
    f = train.frame.copy()
    f.loc[f.index[::7], "confidence"] = -np.inf
    t = callwise.OutcomeTable(f, train.meta)
    p = make("learned-escalation", models=["llama3.2-3b", "llama3.1-405b"], budget=2e-4).fit(t)
    d = p.decide(Replay(test).queries(), Replay(test))
    assert np.isfinite(d.cost).all()
