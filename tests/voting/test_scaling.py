"""The vote-scaling math: the two-level closed form (METHODS.md reference values), shapes, the
per-query G fit, and the few-sample prediction."""

from __future__ import annotations

import numpy as np
import pytest

from callwise.voting.engine import encode, vote_curve
from callwise.voting.scaling import (
    FIT_KS,
    best_k,
    binary_vote_accuracy,
    difficulty,
    fit_g,
    fit_scaling,
    g_curves,
    shape,
    two_level,
)

ODD = np.arange(1, 202, 2)


@pytest.mark.parametrize("alpha,k,value,form", [
    (0.4, 1, 0.54, "decreasing"), (0.7, 3, 0.7452, "inverse-u"), (0.8, 5, 0.8258, "inverse-u"),
    (0.9, 7, 0.9101, "inverse-u")])
def test_two_level_reference_values(alpha, k, value, form):
    F = two_level(ODD, alpha, 0.9, 0.3)
    assert best_k(ODD, F) == (k, pytest.approx(value, abs=5e-5))
    assert shape(F) == form


def test_two_level_matches_methods_formula_for_odd_k():
    from scipy.special import betainc

    K = ODD.astype(float)
    want = 0.7 * betainc((K + 1) / 2, (K + 1) / 2, 0.9) + 0.3 * betainc((K + 1) / 2, (K + 1) / 2, 0.3)
    np.testing.assert_allclose(two_level(ODD, 0.7, 0.9, 0.3), want, rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7, 12, 25])
def test_closed_form_against_monte_carlo(k):
    rng = np.random.default_rng(k)
    n = 200_000
    alpha, p1, p2 = 0.7, 0.8, 0.35
    easy = rng.random(n) < alpha
    p = np.where(easy, p1, p2)
    seq = rng.random((n, k)) < p[:, None]  # each call right or wrong, in order
    r = seq.sum(axis=1)
    # a tie (even K) goes to the answer seen first
    won = (r > k - r) | ((r == k - r) & seq[:, 0])
    mc = won.mean()
    se = np.sqrt(mc * (1 - mc) / n)
    assert abs(two_level([k], alpha, p1, p2)[0] - mc) < 4.5 * se


def test_binary_vote_accuracy_limits():
    assert binary_vote_accuracy([1], 0.37)[0] == pytest.approx(0.37)
    assert binary_vote_accuracy([999], 0.6)[0] > 0.99
    assert binary_vote_accuracy([999], 0.4)[0] < 0.01
    assert binary_vote_accuracy([2], 0.6)[0] == pytest.approx(0.36 + 0.5 * 2 * 0.6 * 0.4)


@pytest.mark.parametrize("alpha,p1,p2,form", [
    (1.0, 0.7, 0.3, "increasing"), (0.4, 0.9, 0.3, "decreasing"), (0.8, 0.9, 0.3, "inverse-u"),
    (0.5, 0.55, 0.1, "u")])
def test_easy_hard_mixture_gives_each_shape(alpha, p1, p2, form):
    # closed form, and the same mixture as recorded samples through the per-query machinery
    assert shape(two_level(ODD, alpha, p1, p2)) == form
    n_q, n_s = 200, 2000
    n_easy = int(round(alpha * n_q))
    answers = np.empty((n_q, n_s), dtype=object)
    for i in range(n_q):
        p = p1 if i < n_easy else p2
        n_right = int(round(p * n_s))
        answers[i, :n_right], answers[i, n_right:] = "right", "wrong"
    quality = (answers == "right").astype(float)
    s = encode(answers, quality)
    curve = vote_curve(s, ODD, draws="with-replacement").mean(axis=0)
    assert shape(curve, tol=1e-6) == form


def test_shape_names():
    assert shape(np.ones(5)) == "flat"
    assert shape(np.array([0.1, 0.3, 0.2, 0.4])) == "other"
    assert shape(np.array([0.5, 0.5, 0.6])) == "increasing"


def test_fit_recovers_parameters_of_synthetic_curves():
    rng = np.random.default_rng(0)
    Q = 300
    true = np.column_stack([rng.uniform(0.001, 0.05, Q), rng.uniform(0.01, 0.5, Q), rng.uniform(0.2, 1.5, Q)])
    easy = rng.random(Q) < 0.5
    ks = np.array(FIT_KS)
    est = fit_g(g_curves(true, easy, ks), easy, ks)
    np.testing.assert_allclose(est, true, atol=1e-5)
    far = np.arange(1, 1001)
    np.testing.assert_allclose(g_curves(est, easy, far), g_curves(true, easy, far), atol=1e-6)


def test_fit_with_noise_and_degenerate_queries():
    rng = np.random.default_rng(1)
    Q = 200
    true = np.column_stack([rng.uniform(0.001, 0.02, Q), rng.uniform(0.05, 0.3, Q), rng.uniform(0.0, 1.0, Q)])
    easy = rng.random(Q) < 0.6
    ks = np.array(FIT_KS)
    y = np.clip(g_curves(true, easy, ks) + rng.normal(0, 0.01, (Q, len(ks))), 0, 1)
    y[0], easy[0] = 1.0, True    # always right
    y[1], easy[1] = 0.0, False   # never right
    est = fit_g(y, easy, ks)
    assert (est[:, :2] >= 1e-6).all()
    fitted = g_curves(est, easy, ks)
    assert np.sqrt(np.mean((fitted - y) ** 2)) < 0.012
    assert fitted[0].min() > 0.999 and fitted[1].max() < 1e-3
    # G stays a probability even where it extrapolates below the grid
    g1 = g_curves(est, easy, [1])
    assert (g1 >= 0).all() and (g1 <= 1).all()


def test_difficulty_indicator():
    answers = np.array([["a", "a", "b", "c"],     # correct a is the mode: easy, d = 0.25 - 0.5
                        ["a", "b", "b", "c"],     # b beats correct a: hard, d = 0.5 - 0.25
                        ["b", "b", "c", "c"],     # no sample right: hard
                        ["a", "b", "a", "b"]],    # tie with the correct answer: a mode, easy (d = 0)
                       dtype=object)
    quality = (answers == "a").astype(float)
    d, easy = difficulty(encode(answers, quality))
    np.testing.assert_allclose(d, [-0.25, 0.25, 0.5, 0.0])
    assert easy.tolist() == [True, False, False, True]


def test_per_query_model_predicts_a_two_level_mixture():
    # 80% easy (p = 0.9), 20% hard (p = 0.3), many samples: the fitted system curve tracks the closed form
    n_q, n_s = 100, 1000
    answers = np.empty((n_q, n_s), dtype=object)
    for i in range(n_q):
        r = int(0.9 * n_s) if i < 80 else int(0.3 * n_s)
        answers[i, :r], answers[i, r:] = "right", "wrong"
    s = encode(answers, (answers == "right").astype(float))
    model = fit_scaling(s)
    ks = np.arange(1, 101)
    truth = two_level(ks, 0.8, 0.9, 0.3)
    assert np.abs(model.curve(ks[1:]) - truth[1:]).max() < 0.02
    assert model.easy.mean() == pytest.approx(0.8)
    k_hat, _ = model.best_k(1000)
    assert 2 <= k_hat <= 10  # the closed form's best odd K is 5


def test_few_sample_prediction_uses_only_the_first_samples():
    rng = np.random.default_rng(3)
    answers = rng.choice(np.array(["a", "b", "c"], dtype=object), size=(50, 20), p=[0.5, 0.3, 0.2])
    s = encode(answers, (answers == "a").astype(float))
    few = s.head(4)
    assert few.n.max() == 4 and few.codes.shape[1] == 4
    d_few, _ = difficulty(few)
    manual = encode(answers[:, :4], (answers[:, :4] == "a").astype(float))
    np.testing.assert_allclose(d_few, difficulty(manual)[0])
