"""The metric registry, the MetricAware policy (offline, and live through a replay server over HTTP),
``callwise aggregate`` on the synthetic suite and on real MoT samples, and the reference column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from livekit import live_for
from typer.testing import CliRunner

from callwise import MetricAware, Vote
from callwise.aggregation.comparison import (
    evaluate,
    optimal_predictions,
    synthetic_suite,
    task_kind,
)
from callwise.aggregation.metrics import (
    Metric,
    correlation,
    get_metric,
    register_metric,
    rule_for,
)
from callwise.cli import app
from callwise.core.backend import Queries
from callwise.core.errors import DataError, PolicyError
from callwise.core.outcomes import OutcomeTable
from callwise.core.policy_files import load_policy, save_policy
from callwise.core.replay import Replay
from callwise.io import load
from callwise.live.http_util import BackgroundServer
from callwise.live.replay_server import build_replay_app

# --------------------------------------------------------------------------------------------
# metrics


def test_each_metric_maps_to_its_bayes_optimal_rule_and_aliases_resolve():
    assert {m: rule_for(m).name for m in ("mse", "mae", "em", "pinball:0.9", "token-f1", "rouge-l", "closeness",
                                          "pearson", "spearman")} == {
        "mse": "mean", "mae": "median", "em": "mode", "pinball:0.9": "quantile:0.9", "token-f1": "mbr:token-f1",
        "rouge-l": "mbr:rouge-l", "closeness": "mbr:closeness", "pearson": "mean", "spearman": "mean"}
    assert get_metric("MSE").name == "squared-error" and get_metric("accuracy").name == "exact-match"
    with pytest.raises(PolicyError, match=r"metric 'pinball:2': the pinball level tau must be a number in \(0, 1\)"):
        get_metric("pinball:2")


def test_metric_scores_by_hand():
    p = np.array([1.0, 4.0])
    y = np.array([2.0, 1.0])
    assert get_metric("mse").scores(None, p, None, y).tolist() == [-1.0, -9.0]
    assert get_metric("mae").scores(None, p, None, y).tolist() == [-1.0, -3.0]
    # pinball at 0.9: under-prediction (p < y) costs 0.9 per unit, over-prediction 0.1
    assert get_metric("pinball:0.9").scores(None, p, None, y) == pytest.approx([-0.9, -0.3])
    em = get_metric("em").scores(np.array(["a", None], dtype=object), p, np.array(["a", "b"], dtype=object), y)
    assert em.tolist() == [1.0, 0.0]
    f1 = get_metric("token-f1").scores(np.array(["the cat sat"], dtype=object), p[:1],
                                       np.array(["a cat sat down"], dtype=object), y[:1])
    assert f1 == pytest.approx([0.8])
    assert get_metric("mse").summary(np.array([-1.0, -9.0])) == 5.0
    with pytest.raises(PolicyError, match=r"metric 'squared-error' needs numeric predictions and references; 1 pre"):
        get_metric("mse").scores(None, np.array([np.nan]), None, np.array([1.0]))


def test_correlations_and_the_pearson_optimality_of_the_mean():
    ref = np.array([1.0, 2.0, 3.0, 10.0])
    assert correlation("pearson", 2 * ref + 1, ref) == pytest.approx(1.0)
    assert correlation("spearman", np.array([1.0, 2.0, 3.0, 4.0]), ref) == pytest.approx(1.0)
    # the conditional mean beats the conditional median under Pearson on skewed answer distributions
    rng = np.random.default_rng(0)
    scale = rng.uniform(1, 5, 4000)
    y = rng.exponential(scale)
    assert correlation("pearson", scale, y) > correlation("pearson", np.log(2) * scale ** 1.5, y)


def test_user_metrics_from_a_utility_and_from_a_loss():
    m = register_metric(Metric.from_utility("first-letter", lambda h, r: float(h[:1] == r[:1])))
    assert get_metric("first-letter") is m and rule_for(m).name == "mbr:<lambda>"
    from callwise.aggregation.combine import aggregate

    assert aggregate([["apple", "avocado", "banana"]], "first-letter", normalise="none").tolist() == ["apple"]
    log_loss = Metric.from_loss("abs-log", lambda p, y: np.abs(np.log1p(p) - np.log1p(y)))
    # MBR under a loss picks the sample with the least expected loss: here the middle one
    assert aggregate([["1", "10", "1000"]], rule_for(log_loss), normalise="number").tolist() == ["10"]
    with pytest.raises(PolicyError, match=r"metric 'squared-error' is built in"):
        register_metric(Metric("squared-error", "mean", "squared", "x"))


# --------------------------------------------------------------------------------------------
# the synthetic suite: oracles are exact, the matched rules win where the theory says they must


def test_optimal_predictions_agree_with_brute_force_over_the_support():
    rng = np.random.default_rng(1)
    support = np.arange(12)
    pmf = rng.dirichlet(np.ones(12), size=50)
    for name, loss in (("mse", lambda p, y: (p - y) ** 2), ("mae", lambda p, y: np.abs(p - y)),
                       ("pinball:0.8", lambda p, y: np.maximum(0.8 * (y - p), -0.2 * (y - p))),
                       ("em", lambda p, y: (p != y).astype(float))):
        opt = optimal_predictions(support, pmf, get_metric(name))
        grid = np.linspace(0, 11, 1101) if name != "em" else support.astype(float)
        risk = (loss(grid[None, :, None], support[None, None, :]) * pmf[:, None, :]).sum(axis=2)
        got = (loss(opt[:, None], support[None, :]) * pmf).sum(axis=1)
        assert np.all(got <= risk.min(axis=1) + 1e-9), name


def test_synthetic_suite_each_matched_rule_wins_on_the_light_tailed_tasks():
    table, oracle = synthetic_suite(queries=300, samples=16, seed=2)
    r = evaluate(table, ["mse", "mae", "em"], n=8, reps=60, oracle=oracle, tasks=["synthetic-bimodal",
                                                                                   "synthetic-skewed"])
    df = r.frame()
    for (task, metric), g in df[df.rule != "oracle"].groupby(["task", "metric"]):
        best = g.loc[g["value"].idxmin() if metric != "exact-match" else g["value"].idxmax(), "rule"]
        assert best == rule_for(metric).name, (task, metric)
        oracle_v = df[(df.task == task) & (df.metric == metric) & (df.rule == "oracle")]["value"].item()
        own_v = g[g.rule == best]["value"].item()
        assert (oracle_v <= own_v) if metric != "exact-match" else (oracle_v >= own_v)
    assert all(r["diff_vs_matched"] == 0 for r in r.rows if r["matched"])


# --------------------------------------------------------------------------------------------
# the policy


def _numeric_table() -> OutcomeTable:
    answers = {"p0": ["1", "2", "6", "x"], "p1": ["10", "10", "0", "30"], "p2": ["5", "5", "5", "5"]}
    refs = {"p0": "3", "p1": "10", "p2": "4"}
    rows = [{"prompt_id": p, "model": "m", "sample": s, "answer": a, "reference": refs[p],
             "quality": float(a == refs[p]), "cost": 0.001 * (s + 1)} for p, ans in answers.items()
            for s, a in enumerate(ans)]
    return OutcomeTable.from_frame(pd.DataFrame(rows))


def test_metric_aware_offline_first_k_scores_the_aggregate_against_the_reference():
    t = _numeric_table()
    be = Replay(t)
    q = be.queries()
    d = MetricAware("m", 4, "mse", draws="first").decide(q, be)
    # p0: the unreadable 'x' abstains -> mean(1, 2, 6) = 3 -> error 0; p1: mean 12.5 vs 10; p2: 5 vs 4
    assert d.quality.tolist() == [0.0, -6.25, -1.0]
    assert d.cost == pytest.approx([0.010, 0.010, 0.010])
    d = MetricAware("m", 4, "mae", draws="first").decide(q, be)
    assert d.quality.tolist() == [-1.0, 0.0, -1.0]  # medians 2, 10, 5
    d = MetricAware("m", 2, "em", draws="first").decide(q, be)
    assert d.quality.tolist() == [0.0, 1.0, 0.0]


def test_metric_aware_offline_with_replacement_matches_the_closed_form_expectation():
    t = _numeric_table()
    be = Replay(t)
    d = MetricAware("m", 3, "mse", reps=20000, seed=3).decide(be.queries(), be)
    x = [np.array([1, 2, 6.0]), np.array([10, 10, 0, 30.0]), np.array([5.0] * 4)]
    y = [3.0, 10.0, 4.0]
    expect = [-((xi.mean() - yi) ** 2 + xi.var() / 3) for xi, yi in zip(x, y)]
    assert d.quality == pytest.approx(expect, rel=0.03, abs=1e-9)
    assert d.cost == pytest.approx([3 * 0.0025] * 3)  # K x the mean recorded cost


def test_metric_aware_errors_and_fallback():
    rows = [{"prompt_id": "a", "model": "m", "sample": s, "answer": v, "reference": "1", "quality": 0.0,
             "cost": 0.0} for s, v in enumerate(["n/a", None])]
    t = OutcomeTable.from_frame(pd.DataFrame(rows))
    be = Replay(t)
    with pytest.raises(PolicyError, match=r"1 queries have no sample that reads as a number \(e.g. \['a'\]\); pass fallback="):
        MetricAware("m", 2, "mae").decide(be.queries(), be)
    d = MetricAware("m", 2, "mae", fallback="0").decide(be.queries(), be)
    assert d.quality.tolist() == [-1.0]
    with pytest.raises(PolicyError, match=r"fallback 'zero' is not a number"):
        MetricAware("m", 2, "mae", fallback="zero").decide(be.queries(), be)
    with pytest.raises(PolicyError, match=r"metric 'absolute-error' compares numbers; use normalise='number' or 'date'"):
        MetricAware("m", 2, "mae", normalise="text").decide(be.queries(), be)
    no_ref = OutcomeTable.from_frame(pd.DataFrame([{**r, "reference": None} for r in rows]))
    with pytest.raises(PolicyError, match=r"the data has no reference answers \(a 'reference' column"):
        MetricAware("m", 2, "mae").decide(Replay(no_ref).queries(), Replay(no_ref))


def test_metric_aware_sweeps_k_and_round_trips_through_a_policy_file(tmp_path):
    t = _numeric_table()
    p = MetricAware(k=2, metric="mae", draws="first").fit(t)
    assert [x.k for x in p.sweep()] == [1, 2, 3, 4]
    save_policy(p, tmp_path / "p.json")
    back = load_policy(tmp_path / "p.json")
    be = Replay(t)
    assert back.decide(be.queries(), be).quality.tolist() == p.decide(be.queries(), be).quality.tolist()


def test_the_reference_column_must_agree_within_a_prompt():
    rows = [{"prompt_id": "a", "model": "m", "sample": s, "reference": r, "quality": 0.0, "cost": 0.0}
            for s, r in enumerate(["1", "2"])]
    with pytest.raises(DataError, match=r"prompt 'a' has different reference answers \['1', '2'\]"):
        OutcomeTable.from_frame(pd.DataFrame(rows))


# --------------------------------------------------------------------------------------------
# live: the same calls as Vote (samples 0..K-1), over HTTP


def test_metric_aware_live_makes_votes_calls_and_returns_the_median(tmp_path):
    rng = np.random.default_rng(4)
    ids = [f"q{i}" for i in range(12)]
    vals = rng.integers(0, 50, size=(12, 5))
    rows = [{"prompt_id": p, "prompt": f"How many? ({p})", "model": "gen", "sample": s,
             "answer": f"The answer is {vals[i, s]} apples.", "quality": 0.0, "cost": 0.001}
            for i, p in enumerate(ids) for s in range(5)]
    table = OutcomeTable.from_frame(pd.DataFrame(rows))
    q = Queries(np.array(ids, dtype=object), np.array([f"How many? ({p})" for p in ids], dtype=object),
                np.full(12, "default", dtype=object))
    with BackgroundServer(build_replay_app(table)) as srv:
        be = live_for(srv.url, ["gen"], tmp_path / "c.sqlite", transport="http")
        try:
            d = MetricAware("gen", 3, "mae").decide(q, be)
            calls_after_median = be.stats["calls"]
            v = Vote("gen", 3, draws="first").decide(q, be)  # the same samples: served by the cache
            assert be.stats["calls"] == calls_after_median == 36
            assert len(v.answers) == 12
        finally:
            be.close()
            be.cache.close()
    expect = [str(int(x)) if float(x).is_integer() else str(x) for x in np.median(vals[:, :3], axis=1)]
    assert d.answers.tolist() == expect
    assert d.cost == pytest.approx([0.003] * 12)
    scores = MetricAware("gen", 3, "mae").score_answers(d.answers, [str(x) for x in vals[:, 0]])
    assert scores == pytest.approx(-np.abs(np.median(vals[:, :3], axis=1) - vals[:, 0]))


# --------------------------------------------------------------------------------------------
# callwise aggregate on real data


@pytest.mark.slow
def test_aggregate_cli_on_real_mot_samples(shared_data, tmp_path):
    data = shared_data / "mot-cascade-samples" / "llama2_13B_result" / "date_cot1.json.gz"
    out = tmp_path / "agg"
    res = CliRunner().invoke(app, ["aggregate", str(data), "--metric", "mae", "--metric", "em", "--n", "8",
                                   "--reps", "40", "--out", str(out)])
    assert res.exit_code == 0, res.output
    payload = json.loads((out / "results.json").read_text())
    assert (out / "aggregate.png").stat().st_size > 0
    rows = pd.DataFrame(payload["rows"])
    assert set(rows["rule"]) == {"mean", "median", "mode", "first", "random"}
    assert (rows["kind"] == "date").all() and rows["prompts"].iloc[0] > 300
    acc = rows[rows.metric == "exact-match"].set_index("rule")["value"]
    assert acc["mode"] > acc["first"]  # voting 8 samples beats one on DATE
    assert "date_cot1" in res.output and "MAE" in res.output
    table = load(data)
    assert task_kind(table.dense().references) == "date"


def test_aggregate_cli_errors(tmp_path):
    f = tmp_path / "t.csv"
    pd.DataFrame([{"prompt_id": "a", "model": "m", "sample": 0, "answer": "1", "quality": 1.0, "cost": 0.0}]).to_csv(
        f, index=False)
    res = CliRunner().invoke(app, ["aggregate", str(f)])
    assert res.exit_code == 2 and "the data has no 'reference' column" in res.output
    res = CliRunner().invoke(app, ["aggregate", str(f), "--synthetic"])
    assert res.exit_code == 2 and "give DATA or --synthetic (not both)" in res.output
    res = CliRunner().invoke(app, ["aggregate", "--synthetic", "--metric", "rmsle"])
    assert res.exit_code == 2 and "unknown metric 'rmsle'" in res.output
