"""Policies on the Replay backend, splitting, and bench results on real and synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from benchkit import three_models

import callwise
from callwise import OutcomeTable, Replay
from callwise.core import frontier
from callwise.core.errors import DataError, PolicyError
from callwise.core.fixed import Oracle, RandomMix, SingleModel
from callwise.core.policy import make, registry
from callwise.core.split import split_outcomes
from callwise.evaluation.bench import bench

synthetic = three_models


def test_single_model_and_oracle_decisions_on_replay():
    t = synthetic()
    rep = Replay(t)
    qs = rep.queries()
    v = t.dense()
    d = SingleModel("mid").decide(qs, rep)
    j = v.models.index("mid")
    np.testing.assert_array_equal(d.quality, v.quality[:, j, 0])
    np.testing.assert_array_equal(d.cost, v.cost[:, j, 0])
    assert d.calls.sum() == len(qs) and (d.calls[:, j] == 1).all()
    o = Oracle().decide(qs, rep)
    assert o.point() == pytest.approx(frontier.oracle_point(v.quality[:, :, 0], v.cost[:, :, 0]))
    assert o.to_frame()["model"].notna().all()
    with pytest.raises(PolicyError, match="not available"):
        SingleModel("nope").decide(qs, rep)


def test_oracle_refuses_a_backend_without_truth():
    class Blind:
        models = ("m",)

        def call(self, model, queries, sample=0):  # pragma: no cover - never reached
            raise AssertionError

    t = synthetic()
    with pytest.raises(PolicyError, match="needs recorded outcomes"):
        Oracle().decide(Replay(t).queries(), Blind())


def test_replay_rejects_unknown_queries_and_samples():
    t = synthetic()
    rep = Replay(t)
    q = rep.queries()
    bad = callwise.Queries(np.array(["zzz"], dtype=object), np.array(["?"], dtype=object), np.array(["a"], dtype=object))
    with pytest.raises(PolicyError, match="no recorded outcomes"):
        rep.call("mid", bad)
    with pytest.raises(PolicyError, match="sample 3 was not recorded"):
        rep.call("mid", q, sample=3)


def test_random_mix_default_sweep_and_seed():
    t = synthetic()
    rm = RandomMix.default(t)
    assert rm.models == ["small", "large"]
    configs = rm.sweep()
    assert [c.weight for c in configs] == pytest.approx(np.linspace(0, 1, 11))
    rep = Replay(t)
    q = rep.queries()
    first, last = configs[0].decide(q, rep), configs[-1].decide(q, rep)
    assert (first.calls[:, t.dense().models.index("small")] == 1).all()
    assert (last.calls[:, t.dense().models.index("large")] == 1).all()
    mid1, mid2 = configs[5].decide(q, rep), configs[5].decide(q, rep)
    np.testing.assert_array_equal(mid1.chosen, mid2.chosen)
    with pytest.raises(PolicyError, match="weights must be"):
        RandomMix(["small", "large"], weights=[0.7, 0.7]).decide(q, rep)


def test_registry_and_make():
    assert {"single", "oracle", "random-mix"} <= set(registry())
    assert make("single", model="x").model == "x"
    with pytest.raises(PolicyError, match="no policy named"):
        make("nope")
    with pytest.raises(PolicyError, match="has no setting"):
        SingleModel("x").with_params(temperature=1)


def test_seeded_split_is_per_task_and_reproducible():
    t = synthetic(n_prompts=50)
    tr, te, info = split_outcomes(t, fraction=0.7, seed=3)
    assert info["method"] == "seeded"
    for task in ("a", "b"):
        assert tr.for_task(task).frame["prompt_id"].nunique() == 35
        assert te.for_task(task).frame["prompt_id"].nunique() == 15
    tr2, _, _ = split_outcomes(t, fraction=0.7, seed=3)
    assert set(tr.prompt_ids()) == set(tr2.prompt_ids())
    tr3, _, _ = split_outcomes(t, fraction=0.7, seed=4)
    assert set(tr.prompt_ids()) != set(tr3.prompt_ids())
    assert not set(tr.prompt_ids()) & set(te.prompt_ids())
    with pytest.raises(DataError, match="strictly between 0 and 1"):
        split_outcomes(t, fraction=1.5)


def test_origin_split_is_used_unless_a_fraction_is_given():
    t = synthetic(n_prompts=30, split=True)
    tr, te, info = split_outcomes(t)
    assert info["method"] == "origin"
    assert (tr.frame["split"] == "train").all() and (te.frame["split"] == "test").all()
    _, _, info2 = split_outcomes(t, fraction=0.5)
    assert info2["method"] == "seeded"


def test_test_file_must_be_held_out():
    t = synthetic()
    with pytest.raises(DataError, match="both the data and the --test set"):
        split_outcomes(t, test=t)


def test_bench_on_synthetic_data_structure():
    t = synthetic()
    tr, te, info = split_outcomes(t, seed=0)
    res = bench(tr, te, n_boot=50, split_info=info).to_dict()
    assert res["aiq_shown_first"] == "paper" and set(res["aiq_normalisations"]) == {"paper", "routerbench-code"}
    assert res["split"]["method"] == "seeded" and res["seed"] == 0
    assert res["data"]["fingerprint"] and res["data"]["costs_estimated"] is False
    for scope in [*res["tasks"].values(), res["overall"]]:
        names = set(scope["policies"])
        assert {"oracle", "zero", "small", "mid", "large", "random-mix"} <= names
        for p in scope["policies"].values():
            assert set(p["aiq"]) == {"paper", "routerbench-code"}
            assert "points" in p and "name" in p
    a = res["tasks"]["a"]["policies"]
    lo, hi = a["oracle"]["aiq_ci"]["paper"]
    assert lo <= a["oracle"]["aiq"]["paper"] + 1e-9 and hi >= lo
    # overall AIQ is the mean of the per-task AIQs
    for name in ("oracle", "zero", "mid"):
        per_task = [res["tasks"][k]["policies"][name]["aiq"]["paper"] for k in ("a", "b")]
        assert res["overall"]["policies"][name]["aiq"]["paper"] == pytest.approx(np.mean(per_task))


def test_bench_rejects_unknown_policy():
    t = synthetic()
    tr, te, _ = split_outcomes(t)
    with pytest.raises(PolicyError, match="unknown policy"):
        bench(tr, te, policies=["nope"], n_boot=0)


@pytest.mark.slow
def test_bench_on_routerbench_slice_orders_oracle_zero_best_single(shared_data):
    table = callwise.load(shared_data / "routerbench-subset")
    tr, te, info = split_outcomes(table)
    assert info["method"] == "origin"
    res = bench(tr, te, policies=["random-mix"], n_boot=20, split_info=info).to_dict()
    assert set(res["tasks"]) == {"arc-challenge", "mbpp", "winogrande"}
    for task, r in res["tasks"].items():
        pols = r["policies"]
        singles = [p for p in pols.values() if p["family"] == "single"]
        assert len(singles) == 11
        for norm in ("paper", "routerbench-code"):
            best_single = max(p["aiq"][norm] for p in singles)
            assert pols["oracle"]["aiq"][norm] >= pols["zero"]["aiq"][norm] >= best_single, (task, norm)
        # the oracle tops out at least as high as any model
        assert pols["oracle"]["hull"][-1][1] >= max(p["points"][0][1] for p in singles)


def _latency_table(with_latency: bool = True) -> OutcomeTable:
    rng = np.random.default_rng(4)
    rows = []
    for i in range(80):
        for j, m in enumerate(("fast", "mid", "slow")):
            row = {"prompt_id": f"p{i}", "task": "t", "prompt": f"question {i}", "model": m,
                   "quality": float(rng.random() < 0.4 + 0.2 * j), "cost": 0.001 * (j + 1) * (0.5 + rng.random()),
                   "split": "train" if i % 2 else "test"}
            if with_latency:
                row["latency"] = (0.2 + j) * (0.5 + rng.random())
            rows.append(row)
    return OutcomeTable.from_frame(pd.DataFrame(rows))


def test_bench_places_policies_in_the_quality_latency_plane():
    train, test, info = split_outcomes(_latency_table())
    r = bench(train, test, policies=["random-mix"], n_boot=0, split_info=info, axis="latency")
    assert r.meta["axis"] == "latency"
    task = r.tasks["t"]
    lat = task.latency["entries"]
    assert {"oracle", "zero", "fast", "mid", "slow", "random-mix"} <= set(lat)
    v = test.dense()
    j = v.models.index("slow")
    assert lat["slow"]["points"][0][0] == pytest.approx(v.latency[:, j, 0].mean())
    # a single-call policy's latency is its calls' recorded latency
    assert task.entries["random-mix"].extra["latency_points"][0] == pytest.approx(lat["random-mix"]["points"][0][0])
    assert lat["oracle"]["aiq"]["paper"] >= max(e["aiq"]["paper"] for e in lat.values()) - 1e-12
    with pytest.raises(PolicyError, match="--axis latency needs a recorded latency"):
        bench(*split_outcomes(_latency_table(False))[:2], policies=["random-mix"], n_boot=0, axis="latency")
    with pytest.raises(PolicyError, match="axis must be 'cost' or 'latency'"):
        bench(train, test, policies=["random-mix"], n_boot=0, axis="tokens")
