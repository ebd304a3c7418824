"""Every registered policy: ``cheaper(p)`` never costs more as the pressure p rises (offline).

A server moves a key's policy with ``cheaper(pressure)`` as the key's budget runs low; if any
setting it moves to cost more, a key low on budget would spend faster (issue 20, defect 1). Each
registered policy is fitted on real recorded data and run on held-out prompts at pressures 0 to 1;
the mean cost per query must be non-increasing, and full pressure must be no dearer than none.
"""

from __future__ import annotations

import numpy as np
import pytest
from policykit import BUILD, mot, rational  # noqa: F401  (the fixtures BUILD names)

import callwise
from callwise import Replay

PRESSURES = np.linspace(0.0, 1.0, 6)


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
