"""Uncertainty cascades: policies, the evaluation protocol and ``callwise cascade``, on synthetic and real data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from callwise import OutcomeTable, Replay, load, load_policy, save_policy
from callwise.cascades.escalation import ConfidenceCascade, OracleCascade
from callwise.cascades.learned import FrugalCascade, TwoTierRouter
from callwise.cascades.protocol import (
    METHODS,
    evaluate_chain,
    evaluate_pair,
    pairs_by_cost,
    plan_cascades,
    simulate,
    stream_orders,
)
from callwise.cascades.thresholds import escalation_share
from callwise.cli import app
from callwise.core.errors import PolicyError
from callwise.core.split import split_outcomes
from callwise.evaluation.bench import bench

runner = CliRunner()
MODELS = {"small": (0.001, 0.55), "mid": (0.004, 0.7), "large": (0.02, 0.9)}


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLWISE_CACHE_DIR", str(tmp_path / "cache"))


def cascade_data(n: int = 240, seed: int = 0, constant_costs: bool = False, tasks=("t",)) -> OutcomeTable:
    """Three models; each answer's confidence is informative (right answers tend to be surer)."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in tasks:
        for i in range(n):
            hard = rng.random()
            for m, (cost, acc) in MODELS.items():
                right = rng.random() < acc * (1.3 - 0.6 * hard)
                conf = -abs(rng.normal(0.3 if right else 1.2, 0.5))
                rows.append({"prompt_id": f"{t}-{i}", "task": t, "prompt": f"{'hard ' * int(4 * hard)}question {i}",
                             "model": m, "quality": float(right), "answer": f"ans{int(right)}{i % 3}",
                             "confidence": round(conf, 2),
                             "cost": cost if constant_costs else cost * (0.5 + rng.random()),
                             "split": "train" if i % 2 else "test"})
    return OutcomeTable.from_frame(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def split():
    train, test, _ = split_outcomes(cascade_data())
    return train, test


@pytest.fixture(scope="module")
def constant_split():
    train, test, _ = split_outcomes(cascade_data(constant_costs=True))
    return train, test


@pytest.mark.parametrize("mode", ["offline", "streaming"])
@pytest.mark.parametrize("frac", [0.0, 0.05, 0.3, 0.7, 1.0])
def test_confidence_cascade_keeps_the_budget(constant_split, mode, frac):
    """The guard is exact when the cost of a call is known before it is made (constant prices here);
    with per-query costs the protocol's simulation, which reads the recorded costs, is exact instead."""
    train, test = constant_split
    p = ConfidenceCascade(["small", "large"], mode=mode, warmup=5, stream_rule="guarded").fit(train)
    rep = Replay(test)
    qs = rep.queries()
    c_s, c_l = test.dense(["small", "large"]).cost[:, :, 0].mean(axis=0)
    budget = c_s + frac * c_l
    d = p.with_params(budget=budget).decide(qs, rep)
    assert d.cost.sum() <= budget * len(qs) * (1 + 1e-9)
    assert set(np.unique(d.calls.sum(axis=1))) <= {1, 2}
    small, large = d.models.index("small"), d.models.index("large")
    assert (d.calls[:, small] == 1).all()  # a cascade always calls the small model
    if frac == 1.0:
        assert d.calls[:, large].sum() > 0.5 * len(qs)


def test_at_the_small_models_cost_the_cascade_is_the_small_model(constant_split):
    train, test = constant_split
    rep = Replay(test)
    v = test.dense(["small", "large"])
    for mode in ("offline", "streaming"):
        p = ConfidenceCascade(["small", "large"], mode=mode, budget=float(v.cost[0, 0, 0]), stream_rule="guarded").fit(train)
        d = p.decide(rep.queries(), rep)
        np.testing.assert_array_equal(d.quality, v.quality[:, 0, 0])
        assert d.calls[:, d.models.index("large")].sum() == 0


def test_policy_decisions_equal_the_vectorised_protocol_with_constant_costs(constant_split):
    train, test = constant_split
    rep = Replay(test)
    v = rep.view
    small, large = v.models.index("small"), v.models.index("large")
    q, c = v.quality[:, [small, large], 0], v.cost[:, [small, large], 0]
    identity = np.arange(len(v.prompt_ids))[None, :]
    for mode in ("offline", "streaming"):
        p = ConfidenceCascade(["small", "large"], mode=mode, warmup=7, cost_model="mean", stream_rule="guarded").fit(train)
        budgets = np.linspace(c[0, 0], c[0, 0] + c[0, 1], 9)
        shares = p.shares(budgets)
        conf = v.confidence[:, small, 0]
        from callwise.cascades.escalation import tie_uniforms
        from callwise.cascades.thresholds import QuantileThreshold

        u = tie_uniforms(v.prompt_ids, "small", 0)
        if mode == "streaming":
            sim = simulate(q, c, shares, budgets, identity, stream_scores=conf, u=u, warmup=7)
        else:
            sim = simulate(q, c, shares, budgets, identity,
                           positions=QuantileThreshold(p.reference_[0]).positions(conf, u))
        for k, b in enumerate(budgets):
            d = p.with_params(budget=float(b)).decide(rep.queries(), rep)
            assert d.point() == pytest.approx((sim.cost[k], sim.accuracy[k]))


def test_offline_cascade_escalates_about_the_share_it_is_given(split):
    train, test = split
    p = ConfidenceCascade(["small", "large"]).fit(train)
    rep = Replay(test)
    c_s, c_l = p.cost_
    d = p.with_params(budget=float(c_s + 0.4 * c_l)).decide(rep.queries(), rep)
    assert 0.25 < d.calls[:, d.models.index("large")].mean() <= 0.45  # the quantile of training confidences, capped by the guard


def test_n_tier_chain_keeps_the_budget_and_beats_its_first_model(split):
    train, test = split
    p = ConfidenceCascade(["small", "mid", "large"]).fit(train)
    rep = Replay(test)
    lo, hi = p.budget_range()
    assert hi == pytest.approx(p.cost_.sum())
    for b in np.linspace(lo, hi, 5)[1:]:
        d = p.with_params(budget=float(b)).decide(rep.queries(), rep)
        assert d.cost.sum() <= b * len(d) * 1.05  # the guard uses expected costs here; actual ones vary
        # a query only reaches a stage after every earlier one
        mid, large = d.models.index("mid"), d.models.index("large")
        assert ((d.calls[:, large] == 0) | (d.calls[:, mid] == 1)).all()
    shares = p.shares(np.array([lo, hi]))
    assert shares.shape == (2, 2) and (shares[0] == 0).all()


def test_learned_baselines_and_the_oracle_fit_decide_and_round_trip(split, tmp_path):
    train, test = split
    rep = Replay(test)
    qs = rep.queries()
    for p in (FrugalCascade(["small", "large"]), TwoTierRouter(["small", "large"]),
              TwoTierRouter(["small", "large"], target="not-worse"), ConfidenceCascade(["small", "mid", "large"])):
        p.fit(train)
        lo, hi = p.budget_range()
        p = p.with_params(budget=(lo + hi) / 2)
        d = p.decide(qs, rep)
        if p.routing:
            assert (d.calls.sum(axis=1) == 1).all()
        path = tmp_path / f"{p.name}.json"
        save_policy(p, path)
        back = load_policy(path)
        np.testing.assert_array_equal(back.decide(qs, rep).quality, d.quality)
    o = OracleCascade(["small", "large"]).fit(train)
    lo, hi = o.budget_range()
    d = o.with_params(budget=hi).decide(qs, rep)
    v = test.dense(["small", "large"])
    np.testing.assert_array_equal(d.quality, v.quality[:, :, 0].max(axis=1))


def test_bench_shows_the_cascades(split):
    train, test = split
    res = bench(train, test, policies=["confidence-cascade", "frugal-cascade", "two-tier-router"], n_boot=0)
    entries = res.tasks["t"].entries
    assert {"confidence-cascade", "frugal-cascade", "two-tier-router"} <= set(entries)
    assert len(entries["confidence-cascade"].points) > 5


def test_policy_errors_name_what_is_wrong(split):
    train, test = split
    rep = Replay(test)
    with pytest.raises(PolicyError, match="needs a budget"):
        ConfidenceCascade(["small", "large"]).fit(train).decide(rep.queries(), rep)
    with pytest.raises(PolicyError, match="streaming thresholds are for two tiers"):
        ConfidenceCascade(["small", "mid", "large"], mode="streaming", budget=1.0).fit(train).decide(rep.queries(), rep)
    with pytest.raises(PolicyError, match=r"'large' \(mean \$.*\) costs more than the next, 'small'"):
        ConfidenceCascade(["large", "small"]).fit(train)
    with pytest.raises(PolicyError, match=r"models \['gpt'\] are not in the training data"):
        ConfidenceCascade(["small", "gpt"]).fit(train)
    with pytest.raises(PolicyError, match="agreement signal needs samples >= 2"):
        ConfidenceCascade(["small", "large"], signal="agreement").fit(train)
    with pytest.raises(PolicyError, match="no signal 'entropy'"):
        ConfidenceCascade(["small", "large"], signal="entropy").fit(train)
    with pytest.raises(PolicyError, match="mode must be one of"):
        ConfidenceCascade(["small", "large"], mode="online").fit(train)
    with pytest.raises(PolicyError, match="budget must be a number of dollars"):
        ConfidenceCascade(["small", "large"], budget=-1).fit(train)
    with pytest.raises(PolicyError, match="exactly two models"):
        TwoTierRouter(["small", "mid", "large"]).fit(train)
    with pytest.raises(PolicyError, match="target must be"):
        TwoTierRouter(["small", "large"], target="better").fit(train)
    f = train.frame.copy()
    f.loc[f.index[3], "confidence"] = np.nan
    f.loc[f["model"] == "small", "confidence"] = np.where(f.loc[f["model"] == "small"].index == f.index[3], np.nan,
                                                          f.loc[f["model"] == "small", "confidence"])
    holes = OutcomeTable(f, train.meta)
    bad_model = f.loc[f.index[3], "model"]
    if bad_model != "large":
        with pytest.raises(PolicyError, match=rf"model '{bad_model}': 1 answer\(s\) have no recorded confidence"):
            ConfidenceCascade([bad_model, "large"]).fit(holes)


def test_oracle_cascade_refuses_a_live_backend(split):
    train, test = split

    class Live:
        models = ("small", "large")

        def call(self, model, queries, sample=0):
            return Replay(test).call(model, queries)

    o = OracleCascade(["small", "large"], budget=1.0).fit(train)
    with pytest.raises(PolicyError, match="needs an offline backend"):
        o.decide(Replay(test).queries(), Live())


# -- the evaluation protocol ---------------------------------------------------------------------


def test_protocol_checks_of_methods_md(split):
    train, test = split
    r = evaluate_pair(train, test, "small", "large", warmup=5, protocol="extended")
    v = test.dense(["small", "large"])
    acc_s = v.quality[:, 0, 0].mean()
    assert list(r.methods) == [m for m in METHODS if m in r.methods] and len(r.methods) == len(METHODS)
    for name, m in r.methods.items():
        assert m.accuracy[0] == pytest.approx(acc_s), name  # at b = c_S every method is the small model
        assert m.max_spend_ratio <= 1 + 1e-9, name  # never over budget, with per-query costs
        assert len(m.accuracy) == 100 and 0 <= m.aiq <= 1
    assert r.methods["oracle"].auc >= max(m.auc for m in r.methods.values())
    assert r.methods["confidence"].auc > r.methods["random"].auc  # the synthetic confidence is informative


def test_an_oracle_ordered_signal_scores_at_least_as_high_as_a_random_one(split):
    train, test = split

    def with_confidence(t: OutcomeTable, how: str) -> OutcomeTable:
        f = t.frame.copy()
        rng = np.random.default_rng(5)
        f["confidence"] = f["quality"] + 0.01 * rng.random(len(f)) if how == "oracle" else rng.random(len(f))
        return OutcomeTable(f, t.meta)

    auc = {how: evaluate_pair(with_confidence(train, how), with_confidence(test, how), "small", "large",
                              methods=("confidence", "confidence@offline"), warmup=5)
           for how in ("oracle", "random")}
    for m in ("confidence", "confidence@offline"):
        assert auc["oracle"].methods[m].auc >= auc["random"].methods[m].auc + 0.02


def test_simulate_respects_the_budget_for_routing_and_cascades():
    rng = np.random.default_rng(4)
    n = 500
    q = (rng.random((n, 2)) < [0.5, 0.8]).astype(float)
    c = np.column_stack([rng.uniform(0.5, 1.5, n), rng.uniform(5, 15, n)])
    budgets = np.linspace(c[:, 0].mean(), c.sum(axis=1).mean(), 20)
    orders = stream_orders(n, 3, 0)
    for routing in (False, True):
        shares = escalation_share(budgets, 1.0, 10.0, routing=routing)
        sim = simulate(q, c, shares, budgets, orders, positions=rng.random(n), routing=routing)
        assert sim.max_spend_ratio <= 1 + 1e-9
        assert np.all(np.diff(sim.cost) >= -1e-9)


def test_chain_evaluation_keeps_the_budget(split):
    train, test = split
    r = evaluate_chain(train, test, ["small", "mid", "large"])
    assert set(r.methods) == {"chain@offline", "oracle", "two-tier@offline"}
    for m in r.methods.values():
        assert m.max_spend_ratio <= 1 + 1e-9
    assert r.methods["oracle"].auc >= r.methods["chain@offline"].auc


def test_pairs_and_plans(split):
    train, test = split
    assert pairs_by_cost(train) == [("small", "mid"), ("small", "large"), ("mid", "large")]
    plan = plan_cascades(train, test, all_pairs=True, chains=True)
    assert [m for _, m in plan] == [("small", "mid"), ("small", "large"), ("mid", "large"), ("small", "mid", "large")]
    with pytest.raises(PolicyError, match="name a pair"):
        plan_cascades(train, test)
    with pytest.raises(PolicyError, match="no task has outcomes of both 'small' and 'gpt'"):
        plan_cascades(train, test, pairs=[("small", "gpt")])
    with pytest.raises(PolicyError, match="task 'x' is not in the test data"):
        plan_cascades(train, test, all_pairs=True, tasks=["x"])


# -- the command line ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("casc") / "outcomes.parquet"
    cascade_data(n=120, tasks=("a", "b")).to_parquet(path)
    return path


def test_cascade_command_writes_results_and_plots(data_file, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["cascade", str(data_file), "--all-pairs", "--chain", "--task", "a", "--budgets", "20",
                            "--warmup", "5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "confidence cascade beats every baseline" in r.output
    res = json.loads((out / "results.json").read_text())
    assert res["summary"]["pairs"] == 3 and res["summary"]["chains"] == 1
    pair = res["pairs"][0]
    assert set(pair["methods"]) == set(METHODS)
    assert len(pair["methods"]["confidence"]["accuracy"]) == 20
    assert {"auc", "aiq", "cost", "max_spend_ratio"} <= set(pair["methods"]["confidence"])
    assert (out / "summary.png").stat().st_size > 1000
    assert len(list((out / "curves").glob("*.png"))) == 4
    # the paper's protocol by default: budgets from c_S to c_L, the last one L's accuracy for every method
    assert res["meta"]["protocol"]["name"] == "paper" and pair["protocol"] == "paper"
    c_s, c_l = (pair["model_cost"][m] for m in pair["models"])
    assert pair["budgets"][0] == pytest.approx(c_s) and pair["budgets"][-1] == pytest.approx(c_l)
    acc_l = pair["model_accuracy"][pair["models"][1]]
    assert all(m["accuracy"][-1] == pytest.approx(acc_l) for k, m in pair["methods"].items() if k != "oracle")


def test_cascade_command_extended_range_and_fixed_cost_ratio(data_file, tmp_path):
    out = tmp_path / "ext"
    r = runner.invoke(app, ["cascade", str(data_file), "--small", "small", "--large", "large", "--task", "a",
                            "--range", "extended", "--budgets", "10", "--warmup", "5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    pair = json.loads((out / "results.json").read_text())["pairs"][0]
    c_s, c_l = (pair["model_cost"][m] for m in pair["models"])
    assert pair["protocol"] == "extended" and pair["budgets"][-1] == pytest.approx(c_s + c_l)
    out = tmp_path / "ratio"
    r = runner.invoke(app, ["cascade", str(data_file), "--small", "small", "--large", "large", "--task", "a",
                            "--cost-ratio", "1:25", "--budgets", "10", "--warmup", "5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["pairs"][0]["budgets"][0] == 1.0 and res["pairs"][0]["budgets"][-1] == 25.0
    assert res["meta"]["protocol"]["costs"] == "fixed ratio c_S = 1, c_L = 25"


def test_cascade_command_one_pair_with_a_test_file(data_file, tmp_path):
    t = load(data_file)
    train_ids = t.frame.loc[t.frame["split"] == "train", "prompt_id"]
    tr, te = tmp_path / "train.parquet", tmp_path / "test.parquet"
    t.select(t.frame["prompt_id"].isin(train_ids)).to_parquet(tr)
    t.select(~t.frame["prompt_id"].isin(train_ids)).to_parquet(te)
    r = runner.invoke(app, ["cascade", str(tr), "--test", str(te), "--small", "small", "--large", "large",
                            "--method", "confidence", "--method", "random", "--budgets", "10"])
    assert r.exit_code == 0, r.output
    assert "confidence" in r.output and "random" in r.output  # full column heads
    assert "c@off" not in r.output and "small model" in r.output and "large model" in r.output


@pytest.mark.parametrize("args, message", [
    (["--small", "small"], "give both --small and --large"),
    (["--small", "small", "--large", "gpt"], "no task has outcomes of both"),
    (["--all-pairs", "--budgets", "1"], "--budgets must be >= 2"),
    (["--all-pairs", "--signal", "margin"], "--signal must be 'recorded' or 'agreement'"),
    (["--all-pairs", "--method", "magic"], "unknown cascade method 'magic'"),
    ([], "name a pair"),
    (["--all-pairs", "--range", "wide"], "--range must be one of ['paper', 'extended'], got 'wide'"),
    (["--all-pairs", "--cost-ratio", "10:1"], "--cost-ratio must read 1:R with a number R > 1 (e.g. 1:10), got '10:1'"),
    (["--all-pairs", "--cost-ratio", "1:x"], "--cost-ratio must read 1:R"),
    (["--all-pairs", "--cost-ratio", "1:1"], "--cost-ratio must read 1:R"),
    (["--all-pairs", "--cost-mode", "tokens"], "cost mode must be one of ('dollars', 'time')"),
    (["--all-pairs", "--cost-mode", "time"], "cost mode 'time' needs recorded latencies"),
    (["--all-pairs", "--chain", "--cost-ratio", "1:10"], "chains are priced in recorded dollars"),
    (["--all-pairs", "--range", "extended", "--cost-ratio", "1:10"], "the extended protocol prices calls in"),
])
def test_cascade_command_errors_exit_non_zero_and_write_nothing(data_file, tmp_path, args, message):
    out = tmp_path / "out"
    r = runner.invoke(app, ["cascade", str(data_file), *args, "--out", str(out)])
    assert r.exit_code != 0
    assert message in r.output
    assert not out.exists()


# -- real data ---------------------------------------------------------------------------------------


def test_real_rational_cascades_pair_meets_the_protocol_checks(shared_data):
    table = load(shared_data / "rational-cascades")
    train, test, _ = split_outcomes(table)
    tr, te = train.for_task("triviaqa-qwen_oai"), test.for_task("triviaqa-qwen_oai")
    r = evaluate_pair(tr, te, "gpt-4o-mini", "gpt-4o", methods=("oracle", "confidence", "confidence@offline", "random"),
                      protocol="extended")
    acc_s = r.model_accuracy["gpt-4o-mini"]
    for name, m in r.methods.items():
        assert m.accuracy[0] == pytest.approx(acc_s), name
        assert m.max_spend_ratio <= 1 + 1e-9, name
    # the self-rated confidence of gpt-4o-mini is informative on TriviaQA
    assert r.methods["confidence"].auc > r.methods["random"].auc
    assert r.methods["oracle"].auc > r.methods["confidence"].auc


def test_margin_signal_reads_the_payloads_the_backend_returns(constant_split):
    """A backend that returns OpenAI-style logprobs: the cascade escalates the answers with small margins."""
    from callwise.core.backend import Calls

    train, test = constant_split
    replay = Replay(test)

    def payload(p_top: float) -> dict:
        return {"content": [{"token": "A", "logprob": float(np.log(p_top)),
                             "top_logprobs": [{"token": "A", "logprob": float(np.log(p_top))},
                                              {"token": "B", "logprob": float(np.log(1 - p_top))}]}]}

    class WithLogprobs:
        models = replay.models

        def call(self, model, queries, sample=0):
            got = replay.call(model, queries, sample)
            p_top = np.where(got.quality > 0, 0.95, 0.55)  # right answers are surer
            return Calls(got.model, got.quality, got.cost, got.answers, got.latency, got.confidence,
                         [payload(p) for p in p_top])

    f = train.frame.copy()
    from callwise.cascades.signals import margin

    # recorded margins for calibration, as the live payloads give them
    f["confidence"] = np.where(f["quality"] > 0, margin(payload(0.95)), margin(payload(0.55)))
    cal = OutcomeTable(f, train.meta)
    v = test.dense(["small", "large"])
    c_s, c_l = v.cost[0, 0, 0], v.cost[0, 1, 0]
    wrong = v.quality[:, 0, 0] == 0
    share = float((train.dense(["small"]).quality[:, 0, 0] == 0).mean())  # = the low-margin share of calibration
    p = ConfidenceCascade(["small", "large"], signal="margin", budget=float(c_s + share * c_l)).fit(cal)
    d = p.decide(replay.queries(), WithLogprobs())
    escalated = d.calls[:, d.models.index("large")] == 1
    assert not (escalated & ~wrong).any()  # never a confident (right) answer
    assert abs(int(escalated.sum()) - min(int(wrong.sum()), int(share * len(wrong)))) <= 1
    with pytest.raises(PolicyError, match="needs logprob payloads"):
        p.decide(replay.queries(), replay)
    bare = OutcomeTable(train.frame.drop(columns=["confidence"]), train.meta)
    with pytest.raises(PolicyError, match="margins recorded in the training data's 'confidence' column"):
        ConfidenceCascade(["small", "large"], signal="margin").fit(bare)


def test_agreement_signal_samples_the_small_model_and_pays_for_every_sample():
    rng = np.random.default_rng(7)
    rows = []
    for i in range(80):
        for m, cost in (("s", 1.0), ("l", 5.0)):
            for k in range(3):
                right = rng.random() < (0.5 if m == "s" else 0.9)
                rows.append({"prompt_id": f"q{i}", "task": "t", "prompt": f"q {i}", "model": m, "sample": k,
                             "quality": float(right), "answer": "yes" if right else f"no{rng.integers(3)}",
                             "cost": cost, "split": "train" if i % 2 else "test"})
    train, test, _ = split_outcomes(OutcomeTable.from_frame(pd.DataFrame(rows)))
    p = ConfidenceCascade(["s", "l"], signal="agreement", samples=3, budget=3 + 0.5 * 5.0).fit(train)
    rep = Replay(test)
    d = p.decide(rep.queries(), rep)
    s, l = d.models.index("s"), d.models.index("l")
    assert (d.calls[:, s] == 3).all()  # three samples of the small model for every query
    assert set(np.unique(d.calls[:, l])) == {0, 1}  # the last model answers once: its confidence decides nothing
    assert d.cost.sum() <= (3 + 0.5 * 5.0) * len(d) + 1e-9
    np.testing.assert_allclose(d.cost, np.where(d.calls[:, l] == 1, 8.0, 3.0))
    assert p.budget_range() == (3.0, 8.0)


def test_fit_command_fits_and_saves_a_confidence_cascade(data_file, tmp_path):
    pol = tmp_path / "cascade.json"
    r = runner.invoke(app, ["fit", str(data_file), "--policy", "confidence-cascade", "--task", "a",
                            "--param", 'models=["small", "large"]', "--budget", "0.01", "--save", str(pol)])
    assert r.exit_code == 0, r.output
    assert "policy confidence-cascade fitted" in r.output
    back = load_policy(pol)
    assert back.budget == 0.01 and back.models_ == ("small", "large")


def test_per_query_shares_add_up_to_the_auc_and_give_a_difference_interval(split):
    train, test = split
    r = evaluate_pair(train, test, "small", "large", methods=("confidence", "frugal", "hybrid", "random"), warmup=5)
    for m in r.methods.values():
        assert m.per_query.mean() == pytest.approx(m.auc)
    d, lo, hi = r.difference_ci("streaming")
    best = r.best_baseline("streaming")[1]
    assert d == pytest.approx(r.methods["confidence"].auc - best)
    assert lo <= d <= hi and hi - lo < 0.2
    assert r.difference_ci("offline") is None  # no offline baselines were run


def test_time_cost_mode_prices_calls_by_recorded_latency(tmp_path):
    """--cost-mode time: the budget axis runs over mean test latencies and every call is charged its own."""
    t = cascade_data(n=120)
    f = t.frame.copy()
    rng = np.random.default_rng(3)
    f["latency"] = np.where(f["model"] == "small", 0.5, np.where(f["model"] == "mid", 1.0, 4.0)) * (0.5 + rng.random(len(f)))
    train, test, _ = split_outcomes(OutcomeTable(f, t.meta))
    r = evaluate_pair(train, test, "small", "large", methods=("confidence", "random"), cost_mode="time", warmup=5)
    lat = test.dense(["small", "large"]).latency[:, :, 0]
    assert r.budgets[0] == pytest.approx(lat[:, 0].mean()) and r.budgets[-1] == pytest.approx(lat[:, 1].mean())
    assert r.methods["confidence"].cost[-1] == pytest.approx(lat[:, 1].mean())  # the last point: L for every query
    dollars = evaluate_pair(train, test, "small", "large", methods=("confidence",), warmup=5)
    assert dollars.budgets[-1] == pytest.approx(test.dense(["small", "large"]).cost[:, 1, 0].mean())
    with pytest.raises(PolicyError, match="cost mode 'time' needs recorded latencies"):
        evaluate_pair(*split_outcomes(t)[:2], "small", "large", methods=("confidence",), cost_mode="time")
