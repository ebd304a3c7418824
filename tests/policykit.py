"""Every registered policy, built on real recorded data: the harness of the invariant tests that must
hold for each of them (tests/test_cheaper_invariant.py, tests/test_columns_read.py). Importable
from any test (tests/ is on sys.path); a test module imports the fixtures it uses by name."""

from __future__ import annotations

from pathlib import Path

import pytest

import callwise
from callwise import make


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
