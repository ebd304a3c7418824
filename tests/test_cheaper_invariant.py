"""Every registered policy: ``cheaper(p)`` never costs more as the pressure p rises (offline).

A server moves a key's policy with ``cheaper(pressure)`` as the key's budget runs low; if any
setting it moves to cost more, a key low on budget would spend faster (issue 20, defect 1). Each
registered policy is fitted on real recorded data and run on held-out prompts at pressures 0 to 1;
the mean cost per query must be non-increasing, and full pressure must be no dearer than none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import callwise
from callwise import Replay, make

PRESSURES = np.linspace(0.0, 1.0, 6)


@pytest.fixture(scope="module")
def rational(shared_data: Path):
    t = callwise.load(shared_data / "rational-cascades").for_task("gsm8k-llama")
    return callwise.split_outcomes(t, fraction=0.6, seed=0)[:2]


@pytest.fixture(scope="module")
def mot(shared_data: Path):
    t = callwise.load(shared_data / "mot-cascade-samples", drop_incomplete=True).for_task("date_cot1")
    t = t.select(t.frame["model"].isin(["gpt-3.5-turbo", "gpt-4"]).to_numpy())
    return callwise.split_outcomes(t, fraction=0.5, seed=0)[:2]


#: How each registered policy is built (on which data, with which settings); a policy added to the
#: registry without an entry here fails ``test_every_registered_policy_is_covered``.
BUILD = {
    "single": ("rational", lambda tr: make("single", model="llama3.1-8b")),
    "oracle": ("rational", lambda tr: make("oracle")),
    "random-mix": ("rational", lambda tr: make("random-mix", models=["llama3.2-3b", "llama3.1-405b"], weight=0.6)),
    "cascade-judge": ("rational", lambda tr: make("cascade-judge", max_cost=4e-4)),
    **{r: ("rational", lambda tr, r=r: make(r, budget=4e-4)) for r in ("knn", "linear", "mlp", "mf", "svm")},
    "threshold": ("rational", lambda tr: make("threshold", strong_share=0.6)),
    "confidence-cascade": ("rational", lambda tr: make("confidence-cascade", budget=4e-4)),
    "oracle-cascade": ("rational", lambda tr: make("oracle-cascade", budget=4e-4)),
    "frugal-cascade": ("rational", lambda tr: make("frugal-cascade", budget=4e-4)),
    "two-tier-router": ("rational", lambda tr: make("two-tier-router", budget=4e-4)),
    "vote": ("mot", lambda tr: make("vote", model="gpt-3.5-turbo", k=9)),
    "filter-vote": ("mot", lambda tr: make("filter-vote", model="gpt-3.5-turbo", k=10)),
    "best-of-k": ("mot", lambda tr: make("best-of-k", model="gpt-3.5-turbo", k=9)),
    "metric-aware": ("mot", lambda tr: make("metric-aware", model="gpt-3.5-turbo", k=9)),
    "route-escalate": ("rational", lambda tr: make("route-escalate", router_budget=3e-4, escalate=0.6)),
    "vote-agreement-cascade": ("mot", lambda tr: make("vote-agreement-cascade", models=["gpt-3.5-turbo", "gpt-4"],
                                                     budget=1.5e-3)),
    "learned-escalation": ("rational", lambda tr: make("learned-escalation", models=["llama3.2-3b", "llama3.1-405b"],
                                                       budget=4e-4)),
}


def test_every_registered_policy_is_covered() -> None:
    assert set(callwise.registry()) == set(BUILD)


@pytest.mark.parametrize("name", sorted(BUILD))
def test_cheaper_never_costs_more(name: str, request) -> None:
    data, build = BUILD[name]
    train, test = request.getfixturevalue(data)
    policy = build(train).fit(train)
    rep = Replay(test)
    cost = np.array([policy.cheaper(float(p)).decide(rep.queries(), rep).cost.mean() for p in PRESSURES])
    assert np.all(np.diff(cost) <= 1e-12 + 1e-9 * cost[:-1]), f"{name}: mean cost by pressure {cost.tolist()}"
    assert cost[-1] <= cost[0] + 1e-12


@pytest.mark.parametrize("name", sorted(BUILD))
def test_every_registered_policy_round_trips_through_a_policy_file(name: str, request, tmp_path) -> None:
    """The policy-file checks (issue 20, defect 10) accept every policy callwise itself saves."""
    data, build = BUILD[name]
    train, test = request.getfixturevalue(data)
    policy = build(train).fit(train)
    callwise.save_policy(policy, tmp_path / "p.json")
    again = callwise.load_policy(tmp_path / "p.json")
    rep = Replay(test)
    a, b = policy.decide(rep.queries(), rep), again.decide(rep.queries(), rep)
    assert np.allclose(a.cost, b.cost) and np.allclose(a.quality, b.quality, equal_nan=True)
