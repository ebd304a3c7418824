"""Every registered policy reads only the optional columns it declares (``Policy.reads``).

A command loads only the optional columns its policies declare (``load(columns=...)``), so a
declaration that leaves out a column the policy does read would silently change its results.
Each registered policy is built, fitted and run over its sweep twice, on the whole table and on
the table projected to its declared columns, and must decide the same calls at the same cost and
quality; ``default(train)``, which bench evaluates, must build the same configuration from both.
The tables carry every optional column (the ones the recorded data lacks are added with seeded
values), so a column read but not declared always shows.
"""

from __future__ import annotations

import numpy as np
import pytest
from policykit import BUILD, mot, rational  # noqa: F401  (the fixtures BUILD names)

import callwise
from callwise import OutcomeTable, Replay
from callwise.core.outcomes import OPTIONAL_COLUMNS
from callwise.core.policy import columns_read_by
from callwise.evaluation.bench import bench_columns, default_policies


def _every_column(table: OutcomeTable, seed: int) -> OutcomeTable:
    """The table with each optional column it lacks, filled with seeded values."""
    f = table.frame.copy()
    rng = np.random.default_rng(seed)
    n = len(f)
    fill = {"latency": lambda: rng.uniform(0.1, 3.0, n), "confidence": lambda: rng.uniform(0.0, 1.0, n),
            "keep": lambda: (rng.random(n) < 0.7).astype(float),
            "input_tokens": lambda: rng.integers(10, 500, n), "output_tokens": lambda: rng.integers(1, 300, n),
            "answer": lambda: rng.choice(["1", "2", "3"], n).astype(object),
            "prompt": lambda: f["prompt_id"].astype(str).radd("question ").to_numpy(dtype=object)}
    for col, make_values in fill.items():
        if col not in f.columns:
            f[col] = make_values()
    if "reference" not in f.columns:  # a prompt's gold answer: one of its recorded answers
        f["reference"] = f.groupby("prompt_id", observed=True)["answer"].transform("first").astype(object)
    got = OutcomeTable.from_frame(f, meta=table.meta)
    assert set(OPTIONAL_COLUMNS) <= set(got.frame.columns)
    return got


@pytest.fixture(scope="module")
def whole(rational, mot):  # noqa: F811
    return {name: tuple(_every_column(t, seed) for seed, t in enumerate(pair))
            for name, pair in (("rational", rational), ("mot", mot))}


def _spread(configs: list, n: int = 6) -> list:
    return [configs[i] for i in np.unique(np.linspace(0, len(configs) - 1, n).round().astype(int))]


@pytest.mark.parametrize("name", sorted(BUILD))
def test_a_policy_decides_the_same_on_only_the_columns_it_declares(name: str, whole) -> None:
    data, build = BUILD[name]
    cls = callwise.registry()[name]
    assert cls.reads <= set(OPTIONAL_COLUMNS), f"{name} declares columns that are not optional: {cls.reads}"
    train, test = whole[data]
    ptrain, ptest = train.project(cls.reads), test.project(cls.reads)
    assert set(ptrain.frame.columns).isdisjoint(set(OPTIONAL_COLUMNS) - cls.reads)
    a, b = build(train).fit(train), build(ptrain).fit(ptrain)
    ra, rb = Replay(test), Replay(ptest)
    sa, sb = a.sweep(), b.sweep()
    assert len(sa) == len(sb)
    for pa, pb in zip(_spread(sa), _spread(sb)):
        da, db = pa.decide(ra.queries(), ra), pb.decide(rb.queries(), rb)
        np.testing.assert_array_equal(da.calls, db.calls, err_msg=f"{name}: {pa!r}")
        np.testing.assert_array_equal(da.cost, db.cost, err_msg=f"{name}: {pa!r}")
        np.testing.assert_array_equal(da.quality, db.quality, err_msg=f"{name}: {pa!r}")
    full, part = cls.default(train), cls.default(ptrain)
    assert (full is None) == (part is None), f"{name}: default() builds on one table and not the other"
    if full is not None:
        assert full.params() == part.params()


def test_a_column_read_but_not_declared_shows(whole) -> None:
    """The check above can fail: a policy that reads the answers, run without them, decides otherwise
    or says what it lacks."""
    train, test = whole["mot"]
    vote = callwise.make("vote", model="gpt-3.5-turbo", k=9)
    bare = train.project(vote.reads - {"answer"})
    with pytest.raises(callwise.CallwiseError, match="answer"):
        rep = Replay(test.project(vote.reads - {"answer"}))
        vote.fit(bare).decide(rep.queries(), rep)


def test_bench_reads_its_policies_columns_and_latency() -> None:
    assert bench_columns(["random-mix"]) == {"latency"}  # the fixed baselines read no optional column either
    assert bench_columns(["vote", "knn"]) == {"latency"} | columns_read_by(["vote", "knn"])
    assert bench_columns(None) == {"latency"} | columns_read_by(default_policies())
    with pytest.raises(callwise.PolicyError, match="unknown policy 'nope' for bench"):
        bench_columns(["nope"])


@pytest.mark.parametrize("candidates", [["single", "zero", "linear"], ["single", "cascade"],
                                        ["single", "route-escalate", "vote"]],
                         ids=["routers", "cascades", "compositions"])
def test_plan_on_only_plan_columns_is_the_plan_of_the_whole_table(candidates, whole) -> None:
    """plan_columns names what plan reads for these candidates: the plan on the projected table is
    the plan on the whole one (cross-fitting, the choice and the test report alike)."""
    from callwise.plan import plan, plan_columns

    data = "mot" if "vote" in candidates else "rational"
    if candidates == ["single", "cascade"]:  # and without a single model to measure the savings against:
        with pytest.raises(callwise.DataError, match="include 'single' in --candidate"):
            plan(whole[data][0], test=whole[data][1], budget=1.0, candidates=["cascade"], folds=2, n_boot=5)
    train, test = whole[data]
    cols = plan_columns(candidates)
    kw = dict(budget=float(train.frame["cost"].mean()), candidates=candidates, folds=2, n_boot=5, seed=0)
    a = plan(train, test=test, **kw).to_dict()
    b = plan(train.project(cols), test=test.project(cols), **kw).to_dict()
    assert a["tasks"] == b["tasks"] and a["overall"] == b["overall"]
    assert a["data"]["fingerprint"] == b["data"]["fingerprint"]
