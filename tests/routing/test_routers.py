"""Predictive routers on a small real slice: fit, sweep, budget/quality calibration, save/load, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import callwise
from callwise import OutcomeTable, Replay
from callwise.core.errors import PolicyError
from callwise.core.policy import make
from callwise.core.policy_files import PolicyFileError, load_policy, save_policy
from callwise.core.split import split_outcomes
from callwise.routing.router import lambda_grid, route_lambda, sweep_outcomes
from callwise.routing.scorers import SCORERS, make_scorer

ROUTERS = ("knn", "linear", "mlp", "mf")


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLWISE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def winogrande(shared_data) -> tuple[OutcomeTable, OutcomeTable]:
    """RouterBench winogrande, origin split, first 160 train and 80 test prompts (fast, real)."""
    t = callwise.load(shared_data / "routerbench-subset").for_task("winogrande")
    tr, te, _ = split_outcomes(t)
    return tr.for_prompts(np.sort(tr.prompt_ids())[:160]), te.for_prompts(np.sort(te.prompt_ids())[:80])


@pytest.mark.parametrize("name", ROUTERS)
def test_router_fits_sweeps_and_routes_on_real_slice(name, winogrande):
    tr, te = winogrande
    pol = make(name, folds=3).fit(tr)
    assert pol.cv_["folds"] == 3 and "shrink" in pol.cv_["chosen"] and pol.cv_["candidates"]
    rep = Replay(te)
    qhat, chat = pol.predict(rep.queries().prompts)
    assert qhat.shape == (80, 11) and np.isfinite(qhat).all() and (qhat >= 0).all() and (qhat <= 1).all()
    assert chat.shape == qhat.shape
    configs = pol.sweep()
    assert len(configs) >= 3
    costs = [c.decide(rep.queries(), rep).point()[0] for c in configs]
    # λ = 0 takes the cheapest model everywhere; a larger λ never spends less in expectation on train costs
    assert costs[0] == pytest.approx(rep.truth(rep.queries())[1].mean(axis=0).min(), rel=0.2)
    assert costs[-1] > costs[0]
    d = pol.decide(rep.queries(), rep)
    assert d.calls.sum() == 80 and np.isfinite(d.quality).all()
    r = pol.route(["Which is heavier, a feather or a brick?"])
    assert r.chosen[0] in pol.models_ and r.predicted_quality.shape == (1, 11)


def test_budget_calibration_holds_on_calibration_data(winogrande):
    tr, _ = winogrande
    means = tr.dense().cost[:, :, 0].mean(axis=0)
    for budget in (float(means.min()) * 1.5, float(np.median(means)), float(means.max())):
        pol = make("knn", folds=3, budget=budget).fit(tr)
        cal = pol.calibration_
        assert cal.goal == "budget" and cal.target == budget
        assert cal.calibration_cost <= budget + 1e-12
        # recompute the calibration point from the kept out-of-fold predictions: one λ, or the
        # expected cost and quality of the calibrated mixture of two
        oof, chat, Q, C = pol._calibration_data
        lams = [cal.value] + ([cal.mix_value] if cal.mix_value is not None else [])
        c, q = sweep_outcomes(oof, chat, Q, C, np.array(lams))
        w = np.array([1 - cal.mix_share, cal.mix_share][: len(lams)])
        assert c.mean(axis=0) @ w == pytest.approx(cal.calibration_cost)
        assert q.mean(axis=0) @ w == pytest.approx(cal.calibration_quality)
        # the hashed share of prompts that takes the second λ is close to the calibrated share
        if cal.mix_value is not None:
            d = pol.decide(Replay(tr).queries(), Replay(tr))
            assert abs(d.cost.mean() - budget) / budget < 0.5


def test_quality_target_takes_the_cheapest_lambda_reaching_it(winogrande):
    tr, _ = winogrande
    pol = make("linear", folds=3, quality_target=0.7).fit(tr)
    cal = pol.calibration_
    assert cal.goal == "quality" and cal.calibration_quality >= 0.7
    cheaper = make("linear", folds=3, quality_target=0.6).fit(tr).calibration_
    assert cheaper.calibration_cost <= cal.calibration_cost


def test_router_bad_inputs_have_clear_errors(winogrande):
    tr, _ = winogrande
    with pytest.raises(PolicyError, match="unknown model 'gpt-5'.*training data has"):
        make("knn", models=["gpt-5", "claude-v1"]).fit(tr)
    with pytest.raises(PolicyError, match="empty training set"):
        make("knn").fit(tr.select(np.zeros(len(tr), dtype=bool)))
    with pytest.raises(PolicyError, match=r"budget \$0\.000000100 per query is below the cheapest reachable mean cost \$0\.[0-9]+ on"):
        make("knn", folds=3, budget=1e-7).fit(tr)
    with pytest.raises(PolicyError, match="quality target 1.01 is above the best quality"):
        make("knn", folds=3, quality_target=1.01).fit(tr)
    with pytest.raises(PolicyError, match="set at most one of lam, budget and quality_target"):
        make("knn", budget=0.001, lam=3.0).fit(tr)
    with pytest.raises(PolicyError, match="not fitted"):
        make("mf").route(["x"])
    with pytest.raises(PolicyError, match="cost_model must be one of"):
        make("knn", cost_model="guess").fit(tr)
    with pytest.raises(PolicyError, match="needs prices"):
        make("knn", cost_model="token-price").fit(tr)


def test_router_refuses_a_backend_without_its_models(winogrande):
    tr, te = winogrande
    pol = make("knn", folds=3).fit(tr)
    small = te.select(te.frame["model"].isin(["claude-v1", "claude-v2"]).to_numpy())
    rep = Replay(small)
    with pytest.raises(PolicyError, match="is not available; the backend has"):
        pol.decide(rep.queries(), rep)


@pytest.mark.parametrize("name", [*ROUTERS, "threshold"])
def test_policy_file_round_trip_routes_identically(name, winogrande, tmp_path):
    tr, te = winogrande
    pol = make(name, folds=3, **({"budget": 0.0004} if name != "threshold" else {"strong_share": 0.3})).fit(tr)
    path, npz = save_policy(pol, tmp_path / "p.json", data={"fingerprint": tr.fingerprint()})
    doc = json.loads(path.read_text())
    assert doc["format"] == "callwise-policy" and doc["policy"] == name
    assert doc["data"]["fingerprint"] == tr.fingerprint()
    inner = doc["fitted"]["inner"]["fitted"] if name == "threshold" else doc["fitted"]
    assert inner["features"]["settings"]["kind"] == "tfidf"
    assert b"pickle" not in npz.read_bytes()[:0]  # npz is read back with allow_pickle=False
    back = load_policy(path)
    rep = Replay(te)
    a, b = pol.decide(rep.queries(), rep), back.decide(rep.queries(), rep)
    np.testing.assert_array_equal(a.chosen, b.chosen)
    assert pol.route(["hello there"]).to_dicts() == back.route(["hello there"]).to_dicts()
    if name != "threshold":
        assert back.calibration_ == pol.calibration_


def test_policy_file_errors_name_the_file_and_field(winogrande, tmp_path):
    tr, _ = winogrande
    path, npz = save_policy(make("knn", folds=3).fit(tr), tmp_path / "p.json")
    doc = json.loads(path.read_text())

    def variant(change, name="v.json"):
        d = json.loads(json.dumps(doc))
        change(d)
        p = tmp_path / name
        p.write_text(json.dumps(d))
        return p

    with pytest.raises(PolicyFileError, match="format_version 99 was written by callwise"):
        load_policy(variant(lambda d: d.update(format_version=99)))
    with pytest.raises(PolicyFileError, match=r"missing field\(s\) \['fitted'\]"):
        load_policy(variant(lambda d: d.pop("fitted")))
    with pytest.raises(PolicyFileError, match="not a callwise policy file"):
        load_policy(variant(lambda d: d.update(format="something")))
    with pytest.raises(PolicyFileError, match="names 'nope', which this callwise does not have"):
        load_policy(variant(lambda d: d.update(policy="nope")))
    with pytest.raises(PolicyFileError, match="field 'fitted' lacks 'shrink'"):
        load_policy(variant(lambda d: d["fitted"].pop("shrink")))
    with pytest.raises(PolicyFileError, match="does not match the sha256"):
        load_policy(variant(lambda d: d["arrays"].update(sha256="0" * 64)))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PolicyFileError, match="bad.json: not a JSON policy file"):
        load_policy(tmp_path / "bad.json")
    with pytest.raises(PolicyFileError, match="no such policy file"):
        load_policy(tmp_path / "absent.json")
    npz.unlink()
    with pytest.raises(PolicyFileError, match="p.npz is missing"):
        load_policy(path)


def test_threshold_router_calibrates_share_and_budget(winogrande):
    tr, _ = winogrande
    th = make("threshold", scorer="knn", folds=3, strong_share=0.25).fit(tr)
    weak, strong = th.pair_
    assert strong == "gpt-4-1106-preview"
    rep = Replay(tr)
    # on the calibration scores, the threshold sends about a quarter to the strong model
    s = th.calibration_scores_
    assert np.mean(s >= th.effective_threshold()) == pytest.approx(0.25, abs=0.03)
    shares = [c.decide(rep.queries(), rep).calls[:, rep.models.index(strong)].mean() for c in th.sweep()]
    assert shares[0] == 0 and shares[-1] == 1 and np.all(np.diff(shares) >= -0.05)
    b = make("threshold", scorer="knn", folds=3, budget=0.001).fit(tr)
    assert b.calibration_.calibration_cost <= 0.001
    with pytest.raises(PolicyError, match="must differ"):
        make("threshold", strong="claude-v1", weak="claude-v1").fit(tr)
    with pytest.raises(PolicyError, match="unknown strong model"):
        make("threshold", strong="gpt-9").fit(tr)


# ---- scorers on planted signals -------------------------------------------------------------


def _planted(n=300, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Q = np.column_stack([(X[:, 0] > 0), (X[:, 0] <= 0), np.full(n, 0.5)]).astype(float)
    return X, Q


@pytest.mark.parametrize("kind", sorted(SCORERS))
def test_scorers_learn_a_planted_signal_and_round_trip(kind):
    X, Q = _planted()
    s = make_scorer(kind).fit(X[:200], Q[:200])
    pred = s.predict(X[200:])
    assert pred.shape == (100, 3)
    acc = np.mean((pred[:, 0] > pred[:, 1]) == (Q[200:, 0] == 1))
    assert acc > 0.85, (kind, acc)
    back = type(s).from_state(s.settings(), s.state())
    np.testing.assert_allclose(back.predict(X[200:]), pred, rtol=1e-5, atol=1e-6)


def test_scorer_errors():
    with pytest.raises(PolicyError, match="knn scorer has no setting 'depth'"):
        make_scorer("knn", depth=3)
    with pytest.raises(PolicyError, match="no scorer 'tree'"):
        make_scorer("tree")
    with pytest.raises(PolicyError, match="empty training set"):
        make_scorer("mf").fit(np.zeros((0, 3)), np.zeros((0, 2)))
    with pytest.raises(PolicyError, match="contain NaN"):
        make_scorer("linear").fit(np.zeros((2, 3)), np.array([[np.nan, 1], [0, 1]]))
    s = make_scorer("knn").fit(np.eye(3), np.eye(3))
    with pytest.raises(PolicyError, match="features have 2 dimensions; the scorer was fitted on 3"):
        s.predict(np.zeros((1, 2)))


def test_lambda_grid_covers_every_decision_of_constant_predictions():
    qhat = np.tile([0.5, 0.7, 0.9], (4, 1))
    chat = np.tile([1.0, 2.0, 10.0], (4, 1))
    lams = lambda_grid(qhat, chat, 40)
    chosen = {int(route_lambda(qhat, chat, lam)[0]) for lam in lams}
    assert chosen == {0, 1, 2}  # the zero router's three hull vertices


def test_router_on_constant_text_falls_back_to_the_prior():
    rows = []
    rng = np.random.default_rng(1)
    for i in range(60):
        for m, (c, a) in {"s": (1.0, 0.5), "l": (5.0, 0.8)}.items():
            rows.append({"prompt_id": f"p{i}", "task": "t", "prompt": f"same words {i % 2}", "model": m,
                         "quality": float(rng.random() < a), "cost": c})
    t = OutcomeTable.from_frame(pd.DataFrame(rows))
    pol = make("knn", folds=3).fit(t)
    assert 0.0 <= pol.shrink_ <= 1.0
    assert set(pol.route(["same words 0"]).chosen) <= {"s", "l"}


def test_policy_file_keeps_infinite_lambda(tmp_path):
    """A budget mixture whose second λ is ∞ (always the cheapest model) saves and loads (JSON has no inf)."""
    from callwise.core.policy_files import (
        _decode_floats,
        _encode_floats,
        read_policy_file,
    )

    state = {"calibration": {"mix_value": float("inf"), "value": 0.5}, "grid": [1.0, float("-inf")]}
    enc = _encode_floats(state)
    assert enc["calibration"]["mix_value"] == {"__float__": "inf"}
    assert _decode_floats(json.loads(json.dumps(enc, allow_nan=False))) == state
    from callwise.core.fixed import SingleModel

    p = SingleModel("m")
    p.weird = float("inf")  # a setting that is not finite also survives
    path, _ = save_policy(p, tmp_path / "p.json")
    doc, _ = read_policy_file(path)
    assert doc["settings"]["weird"] == {"__float__": "inf"}


def test_fast_cv_equals_refit_cv_on_small_training_sets(winogrande):
    """cv="fast" (default) only trims the MLP's fold fits above 1,000 training prompts: on a slice it
    chooses, calibrates and routes exactly as cv="refit" (every fold fitted as the final fit)."""
    tr, te = winogrande
    fast, refit = make("mlp", folds=3).fit(tr), make("mlp", folds=3, cv="refit").fit(tr)
    assert fast.cv_["mode"] == "fast" and refit.cv_["mode"] == "refit"
    assert fast.cv_["candidates"] == refit.cv_["candidates"] and fast.cv_["chosen"] == refit.cv_["chosen"]
    prompts = Replay(te).queries().prompts
    np.testing.assert_array_equal(fast.predict(prompts)[0], refit.predict(prompts)[0])
    assert fast.default_lam_ == refit.default_lam_
    with pytest.raises(PolicyError, match="cv must be one of 'fast', 'refit'"):
        make("mlp", cv="warm").fit(tr)


def _record_max_iter(monkeypatch, cls, method: str) -> list[int]:
    """The ``max_iter`` of every fit that goes through ``cls.method`` from now on, in order."""
    seen: list[int] = []
    real = getattr(cls, method)

    def spy(self, *args):
        seen.append(int(self._settings["max_iter"]))
        return real(self, *args)

    monkeypatch.setattr(cls, method, spy)
    return seen


def test_fast_cv_caps_the_mlp_fold_fits_not_the_final_fit(monkeypatch, winogrande):
    """Above CV_SAMPLE_BUDGET / max_iter training prompts a fold fit runs fewer epochs (its cost stops
    growing with the table); the deployed scorer is fitted with every epoch of its settings."""
    from callwise.routing.scorers import MlpScorer

    assert MlpScorer.cv_settings({"hidden": [100]}, 1000) == {"hidden": [100], "max_iter": 200}
    assert MlpScorer.cv_settings({"hidden": [100]}, 10_000)["max_iter"] == 20
    assert MlpScorer.cv_settings({"max_iter": 30}, 100)["max_iter"] == 30  # never more than asked
    assert SCORERS["knn"].cv_settings({"k": 5}, 10**6) == {"k": 5}  # the other scorers fit folds as asked
    seen = _record_max_iter(monkeypatch, MlpScorer, "_net")
    monkeypatch.setattr(MlpScorer, "CV_SAMPLE_BUDGET", 1000)  # 1000 / ~107 training prompts a fold: 10 epochs
    tr, _ = winogrande
    pol = make("mlp", folds=3, hyper={"hidden": [8], "alpha": 1e-2}).fit(tr)
    assert seen[:-1] == [10, 10, 10] and seen[-1] == 200
    assert pol.scorer_.settings()["max_iter"] == 200


@pytest.mark.parametrize("kind", sorted(SCORERS))
def test_grid_predictions_equal_one_fit_per_candidate(kind):
    """The CV's grid pass (knn: one similarity matrix for every k) gives each candidate's own fit exactly."""
    X, Q = _planted()
    grid = SCORERS[kind].grid
    got = SCORERS[kind].grid_predictions(grid, X[:200], Q[:200], X[200:])
    for g, pred in zip(grid, got, strict=True):
        np.testing.assert_array_equal(pred, make_scorer(kind, **g).fit(X[:200], Q[:200]).predict(X[200:]))


@pytest.mark.parametrize("kind", sorted(SCORERS))
def test_fold_predictions_equal_one_fit_per_fold_and_candidate(kind):
    """The CV's pass over folds (mf: every fold x candidate in one Adam loop) gives each fold fit's own
    predictions: exactly for the scorers that fit fold by fold, up to floating-point sums for mf."""
    from callwise.routing.router import _folds

    X, Q = _planted()
    fold = _folds(len(X), 3, 0)
    grid = SCORERS[kind].grid
    fits = [[SCORERS[kind].cv_settings(g, int((fold != f).sum())) for g in grid] for f in range(3)]
    got = SCORERS[kind].fold_predictions(fits, X, Q, fold)
    assert len(got) == len(grid)
    for c, pred in enumerate(got):
        want = np.empty_like(pred)
        for f in range(3):
            want[fold == f] = make_scorer(kind, **fits[f][c]).fit(X[fold != f], Q[fold != f]).predict(X[fold == f])
        if kind == "mf":
            np.testing.assert_allclose(pred, want, rtol=0, atol=1e-6)
        else:
            np.testing.assert_array_equal(pred, want)


def test_knn_max_reference_searches_a_seeded_sample_of_the_training_prompts():
    """Above max_reference the neighbours come from a seeded uniform sample of that many training prompts
    (the same numbers as an uncapped fit on that sample); at or below it nothing changes."""
    X, Q = _planted(n=400)
    full = make_scorer("knn", k=7, max_reference=None).fit(X[:300], Q[:300]).predict(X[300:])
    np.testing.assert_array_equal(make_scorer("knn", k=7, max_reference=300).fit(X[:300], Q[:300]).predict(X[300:]), full)
    capped = make_scorer("knn", k=7, max_reference=120, seed=3).fit(X[:300], Q[:300])
    keep = np.sort(np.random.default_rng(3).choice(300, 120, replace=False))
    want = make_scorer("knn", k=7, max_reference=None).fit(X[:300][keep], Q[:300][keep]).predict(X[300:])
    np.testing.assert_array_equal(capped.predict(X[300:]), want)
    assert capped.state()["X"].shape == (120, X.shape[1])
    grid = [{"k": k, "max_reference": 120, "seed": 3} for k in (5, 7)]
    for g, pred in zip(grid, SCORERS["knn"].grid_predictions(grid, X[:300], Q[:300], X[300:]), strict=True):
        np.testing.assert_array_equal(pred, make_scorer("knn", **g).fit(X[:300], Q[:300]).predict(X[300:]))
    for bad in (0, 2.5, True):
        with pytest.raises(PolicyError, match="max_reference must be a whole number >= 1 or None"):
            make_scorer("knn", max_reference=bad).fit(X, Q)


def test_mf_scorer_is_the_textbook_factorisation():
    """A literal MF (H = X Aᵀ, Z = H Uᵀ + b, hand-derived cross-entropy gradients, Adam) gives the scorer's fit."""
    X, Q = _planted(n=120, d=6)
    Q = np.column_stack([Q, np.linspace(0, 1, len(Q))])  # a soft label column too
    s = {"rank": 4, "l2": 1e-3, "steps": 60, "lr": 0.03, "seed": 5}
    rng = np.random.default_rng(s["seed"])
    P, d = X.shape
    M = Q.shape[1]
    X64 = X.astype(np.float64)
    mean = np.clip(Q.mean(axis=0), 1e-3, 1 - 1e-3)
    A, U = rng.normal(0, 1 / np.sqrt(d), (s["rank"], d)), rng.normal(0, 1 / np.sqrt(s["rank"]), (M, s["rank"]))
    b = np.log(mean / (1 - mean))
    state = {"A": A, "U": U, "b": b}
    m = {k: np.zeros_like(v) for k, v in state.items()}
    v = {k: np.zeros_like(x) for k, x in state.items()}
    for t in range(1, s["steps"] + 1):
        H = X64 @ state["A"].T
        Z = H @ state["U"].T + state["b"]
        G = (1 / (1 + np.exp(-np.clip(Z, -30, 30))) - Q) / (P * M)
        grads = {"U": G.T @ H + s["l2"] * state["U"], "b": G.sum(axis=0),
                 "A": (G @ state["U"]).T @ X64 + s["l2"] * state["A"]}
        for k, g in grads.items():
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            state[k] = state[k] - s["lr"] * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v[k] / (1 - 0.999 ** t)) + 1e-8)
    got = make_scorer("mf", **s).fit(X, Q).state()
    np.testing.assert_allclose(got["A"], state["A"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["U"], state["U"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["b"], state["b"], rtol=1e-9, atol=1e-10)


def test_lambda_choices_equal_route_lambda_per_lambda():
    """The blocked sweep picks what route_lambda picks for each λ, ties (to the cheaper model) and λ = ∞ included."""
    from callwise.routing.router import lambda_choices

    rng = np.random.default_rng(3)
    qhat = np.round(rng.random((2500, 5)), 1)  # many exact ties; more prompts than one block of the sorted path
    chat = np.round(rng.random((2500, 5)), 1) + 0.01  # and exact ties in cost
    chat[1] = 0.5  # every model of a prompt at one cost
    lams = np.r_[0.0, np.sort(rng.random(37)) * 10, np.inf]
    for nan in (False, True):  # all finite: the sorted-cost path; a NaN: the masked path
        if nan:
            qhat[0, 2] = np.nan
        want = np.stack([route_lambda(qhat, chat, lam) for lam in lams], axis=1)
        np.testing.assert_array_equal(lambda_choices(qhat, chat, lams), want)
        np.testing.assert_array_equal(lambda_choices(qhat, chat, lams, block=1), want)


def test_fast_cv_caps_the_svm_fold_fits_not_the_final_fit(monkeypatch, winogrande):
    """The SVM router's fold fits get at most CV_SAMPLE_BUDGET / n_train solver passes (all 1,000 up to
    500 training prompts; on a slice's task the solver converges well before its cap, so the slices fit
    as before); its deployed fit keeps every pass."""
    from callwise.routing.scorers import SvmScorer

    assert SvmScorer.cv_settings({"C": 1.0}, 500) == {"C": 1.0, "max_iter": 1000}
    assert SvmScorer.cv_settings({"C": 1.0}, 10_000)["max_iter"] == 50
    assert SvmScorer.cv_settings({"C": 1.0, "max_iter": 30}, 100)["max_iter"] == 30  # never more than asked
    tr, te = winogrande
    fast, refit = make("svm", folds=3).fit(tr), make("svm", folds=3, cv="refit").fit(tr)
    assert fast.cv_["candidates"] == refit.cv_["candidates"] and fast.cv_["chosen"] == refit.cv_["chosen"]
    prompts = Replay(te).queries().prompts
    np.testing.assert_array_equal(fast.predict(prompts)[0], refit.predict(prompts)[0])
    monkeypatch.setattr(SvmScorer, "CV_SAMPLE_BUDGET", 1000)  # ~107 training prompts a fold: 10 passes
    seen = _record_max_iter(monkeypatch, SvmScorer, "_fit")
    pol = make("svm", folds=3, hyper={"C": 1.0}).fit(tr)
    assert set(seen[:-1]) == {10} and seen[-1] == 1000
    assert pol.scorer_.settings()["max_iter"] == 1000
