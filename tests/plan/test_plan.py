"""callwise plan: selection on training data only, budgets that hold, the verdict, files and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import callwise
from callwise.cli import app
from callwise.core.errors import DataError
from callwise.plan import bounds, plan
from callwise.plan.candidates import build_candidates, chains, hull_models

MODELS = {"cheap": (1e-4, 0.55), "mid": (1e-3, 0.72), "dear": (1e-2, 0.86)}


def synthetic(n: int = 300, seed: int = 0, train_share: float = 0.6) -> callwise.OutcomeTable:
    """Three models of known mean cost and accuracy; costs vary by prompt; the cheap model's
    confidence is informative (higher when it is right)."""
    rng = np.random.default_rng(seed)
    skill = rng.random(n)
    rows = []
    for i in range(n):
        split = "train" if i < train_share * n else "test"
        for m, (c, p) in MODELS.items():
            right = float(skill[i] < p + 0.1 * (rng.random() - 0.5))
            cost = c * rng.uniform(0.5, 1.5)
            conf = float(np.clip(0.35 + 0.4 * right + 0.25 * rng.random(), 0, 1))
            rows.append({"prompt_id": f"p{i}", "task": "t", "model": m, "prompt": f"question {i} topic {i % 7}",
                         "quality": right, "cost": cost, "confidence": conf, "split": split})
    return callwise.OutcomeTable.from_frame(pd.DataFrame(rows))


def test_bounds_cover_the_next_queries_mean() -> None:
    """The t prediction bound holds for the mean of the next h queries at least 1 − δ of the time."""
    rng = np.random.default_rng(1)
    n, h, sims, delta = 200, 100, 4000, 0.1
    draw = lambda size: np.where(rng.random(size) < 0.3, 1.1, 0.1)  # noqa: E731  skewed two-point costs
    cal, fut = draw((n, sims)), draw((h, sims)).mean(axis=0)
    ub = bounds.upper(cal, delta, bound="t", horizon=h)
    assert np.mean(fut > ub) <= delta + 0.015
    # without the future query's own noise (the long-run bound) the next-h mean escapes more often
    assert np.mean(fut > bounds.upper(cal, delta, bound="t")) > np.mean(fut > ub) + 0.02
    # Bernstein bounds the long-run mean (0.4) and is more conservative than t
    eb = bounds.upper(cal, delta, bound="bernstein")
    assert np.mean(0.4 > eb) <= delta and (eb > bounds.upper(cal, delta, bound="t")).all()
    lb = bounds.lower(1 - cal, delta, bound="t", horizon=h)
    assert np.allclose(lb, 1 - ub)


def test_fixed_sequence_stops_at_the_first_failure() -> None:
    assert bounds.admissible_prefix(np.array([True, True, False, True])).tolist() == [True, True, False, False]


def test_bad_bound_settings_are_refused() -> None:
    with pytest.raises(callwise.PolicyError, match="risk must be strictly between 0 and 1"):
        bounds.upper(np.ones(5), 1.5)
    with pytest.raises(callwise.PolicyError, match="unknown bound 'z'"):
        bounds.upper(np.ones(5), 0.1, bound="z")
    with pytest.raises(callwise.PolicyError, match="at least 2 calibration queries"):
        bounds.upper(np.ones(1), 0.1)


def test_candidates_span_the_families() -> None:
    t = synthetic(120)
    train = t.select(t.frame["split"] == "train")
    assert hull_models(train) == ["cheap", "mid", "dear"]
    assert chains(["a", "b", "c"]) == [["a", "b"], ["a", "c"], ["b", "c"], ["a", "b", "c"]]
    cands, notes = build_candidates(train)
    fams = {c.family for c in cands}
    assert {"single", "zero", "router", "cascade"} <= fams
    names = {c.name for c in cands}
    assert "cascade[confidence]:cheap>mid>dear" in names and "zero:cheap+mid" in names
    assert not names & {"oracle", "oracle-cascade", "cascade-judge"}
    assert any("oracle left out" in n for n in notes)


FAST = ["single", "zero", "cascade"]


def _plan(t: callwise.OutcomeTable, **kw):
    kw.setdefault("candidates", FAST)
    kw.setdefault("folds", 3)
    kw.setdefault("n_boot", 100)
    return plan(t, **kw)


def test_the_choice_never_reads_the_test_split() -> None:
    """Poisoning the test split's quality and cost moves the verdict, never the choice."""
    t = synthetic()
    train = t.select(t.frame["split"] == "train")
    test = t.select(t.frame["split"] == "test")
    poisoned = test.frame.copy()
    poisoned["quality"] = 1.0 - poisoned["quality"]
    poisoned["cost"] = poisoned["cost"][::-1].to_numpy()
    a = _plan(train, test=test, budget=0.002).tasks["t"]
    b = _plan(train, test=callwise.OutcomeTable(poisoned, test.meta), budget=0.002).tasks["t"]
    assert a.selection.to_dict() == b.selection.to_dict()
    assert a.verdict is not None and b.verdict is not None
    assert a.verdict["label"] == b.verdict["label"] and a.verdict["cv"] == b.verdict["cv"]
    assert a.verdict["test"]["quality"] != b.verdict["test"]["quality"]


@pytest.mark.parametrize("seed", range(3))
def test_budgets_hold_on_synthetic_data(seed: int) -> None:
    t = synthetic(seed=seed)
    budget = 0.002
    r = _plan(t, budget=budget, risk=0.05).tasks["t"]
    v = r.verdict
    assert v is not None and v["cv"]["cost_upper_bound"] <= budget
    assert v["target_held"]["held"] and v["test"]["cost"] <= budget
    assert v["target_held"]["share_of_resamples_held"] >= 0.9
    # a cheaper-than-bound spend: the bound is what keeps it, the mean alone would allow more
    assert v["cv"]["cost"] < v["cv"]["cost_upper_bound"]


def test_a_quality_floor_holds_and_picks_the_cheapest() -> None:
    r = _plan(synthetic(seed=3), quality=0.7, risk=0.05).tasks["t"]
    v = r.verdict
    assert v is not None and v["cv"]["quality_lower_bound"] >= 0.7 and v["target_held"]["held"]
    table = r.selection.table
    admissible_costs = [c for d in table.values() for c, ok in zip(d["cost"], d["admissible"]) if ok]
    assert v["cv"]["cost"] <= min(admissible_costs) + 1e-12 or v["family"] == "single"


def test_an_unreachable_budget_gets_no_recommendation() -> None:
    r = _plan(synthetic(), budget=1e-6)
    t = r.tasks["t"]
    assert t.verdict is None and t.policy is None
    assert "no configuration keeps the budget $0.00000100/query" in t.selection.message and "e-0" not in t.selection.message
    with pytest.raises(callwise.PolicyError, match="has no recommendation"):
        r.policy()


def test_no_gain_beyond_noise_recommends_the_single_model() -> None:
    """Two models with the same answers: any mix or cascade only adds noise, so the single model wins."""
    t = synthetic(200)
    f = t.frame[t.frame["model"].isin(["cheap", "dear"])].copy()
    cheap = f[f["model"] == "cheap"].set_index("prompt_id")["quality"]
    f.loc[f["model"] == "dear", "quality"] = f.loc[f["model"] == "dear", "prompt_id"].map(cheap).to_numpy()
    f.loc[f["model"] == "dear", "quality"] = np.where(np.arange((f["model"] == "dear").sum()) % 25 == 0, 1.0,
                                                      f.loc[f["model"] == "dear", "quality"])
    r = _plan(callwise.OutcomeTable(f.reset_index(drop=True), t.meta), budget=0.02).tasks["t"]
    assert r.verdict is not None and r.verdict["family"] == "single"


def test_the_policy_file_decides_like_the_plan(tmp_path: Path) -> None:
    t = synthetic()
    out = tmp_path / "plan"
    res = CliRunner().invoke(app, ["plan", str(_write(t, tmp_path)), "--budget", "0.002", "--folds", "3",
                                   "--candidate", "single", "--candidate", "zero", "--candidate", "cascade",
                                   "--bootstrap", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "the recommendation" in res.output and "best admissible configuration of each family" in res.output
    d = json.loads((out / "results.json").read_text())
    task = d["tasks"]["t"]
    assert d["which_data"]["selection"].startswith("out-of-fold") and task["recommendation"]["data"].startswith("test")
    assert (out / "plan-t.png").stat().st_size > 5000
    pol = callwise.load_policy(out / "policy.json")
    test = t.select(t.frame["split"] == "test")
    dec = pol.decide(callwise.Replay(test).queries(), callwise.Replay(test))
    assert np.isclose(dec.cost.mean(), task["recommendation"]["test"]["cost"])
    assert np.isclose(dec.quality.mean(), task["recommendation"]["test"]["quality"])


def _write(t: callwise.OutcomeTable, tmp_path: Path) -> Path:
    p = tmp_path / "data.parquet"
    t.to_parquet(p)
    return p


@pytest.mark.parametrize("args, message", [
    ([], "give exactly one of --budget"),
    (["--budget", "0.01", "--quality", "0.5"], "give exactly one of --budget"),
    (["--budget", "-1"], "--budget must be a positive number"),
    (["--budget", "0.01", "--risk", "1.5"], "--risk must be strictly between 0 and 1"),
    (["--budget", "0.01", "--bound", "hoeffding"], "--bound must be one of"),
    (["--budget", "0.01", "--horizon", "soon"], "--horizon must be 'test'"),
    (["--budget", "0.01", "--task", "nope"], "unknown task(s) ['nope']"),
    (["--budget", "0.01", "--baseline", "gpt-9"], "--baseline 'gpt-9' is not a model of this task"),
    (["--budget", "0.01", "--folds", "1"], "--folds must be a whole number >= 2"),
    (["--budget", "0.01", "--candidate", "nothing"], "no candidate matches ['nothing']"),
])
def test_cli_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    data = _write(synthetic(60), tmp_path)
    res = CliRunner().invoke(app, ["plan", str(data), *args, "--folds" if "--folds" not in args else "--seed",
                                   "3" if "--folds" not in args else "0", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not (tmp_path / "o" / "results.json").exists()


def test_too_few_training_prompts_for_the_folds() -> None:
    with pytest.raises(DataError, match="too few for 5 folds"):
        plan(synthetic(12), budget=0.01, candidates=["single"])
