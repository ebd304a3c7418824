"""`callwise fit` / `callwise route` end to end, RouteLLM's metrics, and routers inside bench results."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import callwise
from callwise.cli import app
from callwise.core.split import split_outcomes
from callwise.evaluation.bench import bench
from callwise.evaluation.fit import fit_policy
from callwise.routing.apgr import (
    apgr,
    cpt,
    oracle_share_curve,
    routellm_metrics,
    share_curve,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLWISE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def sample_file(tmp_path):
    """The bundled sample's MT-Bench part (small, two models) as a long Parquet file."""
    t = callwise.load_sample().for_task("mt_bench")
    path = tmp_path / "mt.parquet"
    t.to_parquet(path)
    return path


def test_fit_then_route_on_the_command_line(sample_file, tmp_path):
    pol = tmp_path / "pol" / "knn.json"
    rep = tmp_path / "fit.json"
    r = runner.invoke(app, ["fit", str(sample_file), "--policy", "knn", "--budget", "0.005", "--save", str(pol),
                            "--param", "folds=3", "--report", str(rep)])
    assert r.exit_code == 0, r.output
    assert "calibrated lam=" in r.output and "held-out (48 prompts)" in r.output
    doc = json.loads(pol.read_text())
    assert doc["policy"] == "knn" and doc["settings"]["budget"] == 0.005 and doc["settings"]["folds"] == 3
    assert doc["fitted"]["calibration"]["goal"] == "budget"
    assert doc["data"]["fingerprint"] and pol.with_suffix(".npz").is_file()
    report = json.loads(rep.read_text())
    assert report["calibration"]["calibration_cost"] <= 0.005 and report["test"]["n_prompts"] == 48
    lo, hi = report["test"]["quality_ci"]
    assert lo <= report["test"]["quality"] <= hi
    r = runner.invoke(app, ["route", str(pol), "Write a haiku about routers", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["model"] in out["predicted_quality"] and set(out["expected_cost"]) == set(out["predicted_quality"])
    r = runner.invoke(app, ["route", str(pol), "a", "b"])
    assert r.exit_code == 0 and r.output.count("predicted quality") == 2


def test_fit_and_route_errors_exit_2_and_write_nothing(sample_file, tmp_path):
    pol = tmp_path / "p.json"
    cases = [
        (["--policy", "knn", "--budget", "0.0000001"], "below the cheapest reachable mean cost"),
        (["--policy", "nope"], "no policy named 'nope'"),
        (["--policy", "knn", "--task", "gsm9k"], "no task 'gsm9k'"),
        (["--policy", "knn", "--param", "models=[\"gpt-5\"]"], "unknown model 'gpt-5'"),
        (["--policy", "knn", "--param", "colour=red"], "bad settings for policy 'knn'"),
        (["--policy", "knn", "--budget", "0.01", "--quality", "0.8"], "not both"),
        (["--policy", "knn", "--param", "oops"], "--param expects KEY=VALUE"),
    ]
    for extra, message in cases:
        r = runner.invoke(app, ["fit", str(sample_file), "--save", str(pol), *extra])
        assert r.exit_code == 2, (extra, r.output)
        assert message in r.output, (extra, r.output)
        assert not pol.exists() and not pol.with_suffix(".npz").exists()
    r = runner.invoke(app, ["fit", str(sample_file), "--policy", "knn", "--save", str(tmp_path / "p.pkl")])
    assert r.exit_code == 2 and "must end in .json" in r.output
    (tmp_path / "old.json").write_text(json.dumps({"format": "callwise-policy", "format_version": 0}))
    r = runner.invoke(app, ["route", str(tmp_path / "old.json"), "hi"])
    assert r.exit_code == 2 and "missing field(s)" in r.output


def test_fit_policy_api_matches_the_cli_and_flags_a_test_overspend(sample_file):
    t = callwise.load(sample_file)
    rep = fit_policy(t, "linear", params={"folds": 3}, budget=0.004)
    d = rep.to_dict()
    assert d["split"]["method"] == "seeded" and d["calibration"]["calibration_cost"] <= 0.004
    assert d["test"]["best_single_model"]["model"] == "gpt-4-1106-preview"
    if d["test"]["cost"] > 0.004:
        assert any("exceeds the budget" in n for n in d["notes"])
    nohold = fit_policy(t, "linear", params={"folds": 3}, holdout=False)
    assert nohold.test is None and nohold.data["n_prompts"] == 160


# ---- RouteLLM metrics -------------------------------------------------------------------------


def test_apgr_and_cpt_on_hand_computed_curves():
    # the random router: the chord from weak to strong
    chord = share_curve(np.array([0.5]), np.array([0.75]), 0.5, 1.0)
    assert apgr(chord) == pytest.approx(0.5)
    assert cpt(chord, 0.5) == pytest.approx(0.5) and cpt(chord, 0.8) == pytest.approx(0.8)
    # a router that recovers the whole gap with 20% strong calls
    good = share_curve(np.array([0.2]), np.array([1.0]), 0.5, 1.0)
    assert apgr(good) == pytest.approx(0.1 + 0.8)  # triangle to 0.2, then flat at PGR 1
    assert cpt(good, 0.5) == pytest.approx(0.1) and cpt(good, 0.8) == pytest.approx(0.16)
    never = share_curve(np.array([0.5]), np.array([0.5]), 0.5, 1.0)
    assert routellm_metrics(never)["cpt50"] == pytest.approx(0.75)  # only the line to the all-strong anchor
    flat = share_curve(np.empty(0), np.empty(0), 0.6, 0.6)
    assert apgr(flat) == 0.0


def test_oracle_share_curve_sends_the_biggest_gains_first():
    qw = np.array([1, 0, 0, 1.0])
    qs = np.array([1, 1, 0, 0.0])
    c = oracle_share_curve(qw, qs)
    # one prompt gains 1: at 25% strong calls the oracle reaches 0.75 and stays there
    np.testing.assert_allclose(c.share, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(c.quality, [0.5, 0.75, 0.75, 0.75, 0.75])


def test_bench_reports_routers_gap_and_routellm_metrics_on_two_model_data():
    t = callwise.load_sample().for_task("mt_bench")
    tr, te, info = split_outcomes(t)
    res = bench(tr, te, policies=["knn", "threshold", "random-mix"], n_boot=20, split_info=info).to_dict()
    pols = res["tasks"]["mt_bench"]["policies"]
    assert pols["zero"]["gap_closed"] == 0.0 and pols["oracle"]["gap_closed"] == 1.0
    for name in ("knn", "threshold"):
        assert pols[name]["family"] == "router" and len(pols[name]["points"]) >= 3
        m = pols[name]["routellm"]
        assert m["strong"] == "gpt-4-1106-preview" and 0 <= m["apgr"] <= 1.5
    assert pols["zero"]["routellm"]["apgr"] == pytest.approx(0.5)
    assert pols["oracle"]["routellm"]["apgr"] >= max(pols[n]["routellm"]["apgr"] for n in ("knn", "threshold"))
    assert "routellm" not in pols["gpt-4-1106-preview"]


def test_token_price_and_length_cost_models(sample_file):
    from pathlib import Path

    from callwise.core.policy import make

    t = callwise.load(sample_file)
    prices = Path(__file__).resolve().parents[2] / "docs" / "examples" / "routellm_prices.yaml"
    pol = make("linear", folds=3, cost_model="token-price", prices=str(prices)).fit(t)
    gpt4 = pol.models_.index("gpt-4-1106-preview")
    # (input + output per token) + per-call / mean output tokens: 10/1e6 + 30/1e6 for GPT-4
    assert pol.costs_.coef[0, gpt4] == pytest.approx(40e-6)
    assert pol.route(["hi"]).chosen[0] in pol.models_
    ln = make("linear", folds=3, cost_model="length").fit(t)
    short, long_ = ln.costs_.predict(np.array(["x", "x" * 4000], dtype=object))
    # a per-model linear fit in prompt length (slopes may be negative: clipped at 0)
    assert (short >= 0).all() and (long_ >= 0).all() and not np.allclose(short, long_)
