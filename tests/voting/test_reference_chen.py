"""Reference tests: callwise's vote scaling model against the authors' procedure (lchen001/CompoundAIScalingLaws).

``authors_fit_onepoint`` and ``authors_predict`` re-implement ``fitscalelaws_onepoint``,
``fit_parameters`` (scipy ``minimize`` with the bounds) and ``ScaleLaws.predict`` of
``analysis/analysis.py``: a query whose true answer is the unique mode is fitted with G_1, one
that ties with m − 1 others for the mode with G_1 to m × its accuracy (the prediction divided by
m), any other with G_2. callwise fits all queries at once (projected Levenberg–Marquardt); given
the same simulated accuracies the predicted curves must agree.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy.optimize import minimize

from callwise.voting.engine import encode, vote_curve
from callwise.voting.scaling import (
    FIT_GRIDS,
    fit_scaling,
    mode_ties,
    sparse_vote_accuracy,
    theorem1_shape,
    two_level,
)
from callwise.voting.scaling import shape as curve_shape


def G_1(K, a1, a2, a3):
    return 1 - np.exp(-a1 * K - a2 * np.sqrt(K) - a3)


def G_2(K, a1, a2, a3):
    return np.exp(np.clip(-a1 * K - a2 * np.sqrt(K) - a3, a_min=-70, a_max=70))


def fit_parameters(K, G_actual, G):
    def loss(params):
        return np.sum((np.array(G_actual) - np.array([G(k, *params) for k in K])) ** 2)
    res = minimize(loss, [1, 1, 1], bounds=[(1e-6, None), (1e-6, None), (None, None)])
    return tuple(res.x)


def authors_fit_onepoint(counts: dict, label, perf_at: list[float], M: list[int]):
    """fitscalelaws_onepoint, with the simulated accuracies ``perf_at`` given (the authors simulate them)."""
    max_value = max(counts.values())
    max_keys = [k for k, v in counts.items() if v == max_value]
    scale = 1
    if label in max_keys:
        G = G_1
        if len(max_keys) == 1:
            perf = list(perf_at)
        else:
            perf = [len(max_keys) * x for x in perf_at]
            scale = len(max_keys)
    else:
        G = G_2
        perf = list(perf_at)
    return G, fit_parameters(M, perf, G), scale


def authors_predict(params, M):
    """ScaleLaws.predict: the mean over queries of G(k)/scale."""
    return np.mean(np.stack([np.array([G(k, *p) / scale for k in M]) for G, p, scale in params]), axis=0)


def tied_answers(seed: int, n_q: int = 40, n_s: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n_q, n_s), dtype=object)
    for i in range(n_q):
        kind = i % 4
        if kind == 0:  # the correct answer ties with one other for the mode
            row = ["right"] * 4 + ["w1"] * 4 + ["w2"] * 4
        elif kind == 1:  # a three-way tie
            row = ["right"] * 4 + ["w1"] * 4 + ["w2"] * 2 + ["w3"] * 2
        else:
            row = list(rng.choice(["right", "w1", "w2"], n_s, p=[0.5, 0.3, 0.2] if kind == 2 else [0.2, 0.5, 0.3]))
        out[i] = row
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_ties_for_the_mode_are_scaled_as_the_authors_do(seed):
    answers = tied_answers(seed)
    s = encode(answers, (answers == "right").astype(float))
    ks = FIT_GRIDS["paper"]
    model = fit_scaling(s, fit_ks=ks, reps=300, seed=seed)
    acc = model.observed  # the simulated accuracies both fits start from
    params = []
    for i, row in enumerate(answers):
        params.append(authors_fit_onepoint(dict(Counter(row)), "right", list(acc[i]), list(ks)))
    # the same m per query as the authors' len(max_keys)
    np.testing.assert_array_equal(model.scale, [p[2] for p in params])
    assert sorted(set(model.scale.tolist())) == [1.0, 2.0, 3.0]
    # the two optimisers minimise the same squared error per query (a non-convex one: each may stop in
    # another local minimum), so ours is about as good on it, query by query and in total...
    from callwise.voting.scaling import g_curves

    ours = g_curves(model.params, model.easy, ks)
    total_ours = total_theirs = 0.0
    for i, (G, p, m) in enumerate(params):
        target = m * acc[i]
        sse_ours = float(np.sum((target - ours[i]) ** 2))
        sse_theirs = float(np.sum((target - np.array([G(k, *p) for k in ks])) ** 2))
        assert sse_ours <= 1.5 * sse_theirs + 1e-4, (i, sse_ours, sse_theirs)
        total_ours, total_theirs = total_ours + sse_ours, total_theirs + sse_theirs
    assert total_ours <= 1.05 * total_theirs
    # ...and the system curves agree over the fitting grid and beyond it (below K = 2 both extrapolate)
    M = [2, 5, 10, 20, 50, 100, 300, 1000]
    np.testing.assert_allclose(model.curve(M), authors_predict(params, M), atol=0.01)
    # the prediction of a tied query tends to 1/m, as its vote accuracy does
    tied = model.scale > 1
    np.testing.assert_allclose(model.per_query([10**9])[tied, 0], 1.0 / model.scale[tied], atol=1e-3)
    raw = fit_scaling(s, fit_ks=ks, reps=300, seed=seed, ties="raw")
    assert (raw.per_query([10**9])[tied, 0] > 0.99).all()  # without the rule they are predicted to reach 1


def test_mode_ties_counts_answers_at_the_top_for_easy_queries_only():
    answers = np.array([["a", "b", "a", "b"], ["a", "a", "b", "c"], ["b", "b", "a", "c"], ["a", "b", "c", "d"]],
                       dtype=object)
    s = encode(answers, (answers == "a").astype(float))
    _, easy = __import__("callwise.voting.scaling", fromlist=["difficulty"]).difficulty(s)
    assert mode_ties(s, easy).tolist() == [2.0, 1.0, 1.0, 4.0]


def test_sparse_vote_accuracy_matches_the_prefix_engine():
    rng = np.random.default_rng(1)
    answers = rng.choice(np.array(["a", "b", "c"], dtype=object), size=(30, 15), p=[0.45, 0.35, 0.2])
    s = encode(answers, (answers == "a").astype(float))
    ks = [1, 3, 10, 40]
    exact = vote_curve(s, ks, draws="with-replacement", reps=4000, seed=0)
    sparse = sparse_vote_accuracy(s, ks, reps=4000, seed=1)
    np.testing.assert_allclose(sparse.mean(axis=0), exact.mean(axis=0), atol=0.015)
    big = sparse_vote_accuracy(s, [10000], reps=50)  # the authors' grid reaches 10,000 calls
    mode_right = np.take_along_axis(s.value, s.distribution().argmax(axis=1)[:, None], axis=1)[:, 0] > 0.5
    assert big.shape == (30, 1) and np.abs(big[:, 0] - mode_right).max() <= 0.5


def test_authors_code_grid_fits_k1():
    rng = np.random.default_rng(2)
    answers = rng.choice(np.array(["a", "b", "c"], dtype=object), size=(40, 20), p=[0.5, 0.3, 0.2])
    s = encode(answers, (answers == "a").astype(float))
    m = fit_scaling(s, fit_ks="authors-code", reps=200)
    assert m.fit_ks == (1, 10, 100, 1000, 10000)
    k1 = vote_curve(s, [1]).mean()
    assert abs(m.curve([1])[0] - k1) < 0.03  # fitted at K = 1, not extrapolated to it
    with pytest.raises(ValueError, match="unknown fitting grid"):
        fit_scaling(s, fit_ks="fine")


def test_theorem1_consistent_reading_agrees_with_the_closed_form():
    """Theorem 1 as written disagrees with the paper's own F(K) on every setting; with the two cases of
    p1 + p2 exchanged it agrees on all (checked over odd K up to 4001)."""
    rng = np.random.default_rng(0)
    ks = np.arange(1, 4002, 2)
    n = stated = consistent = 0
    for _ in range(200):
        a, p1, p2 = rng.uniform(0.02, 0.98), rng.uniform(0.55, 0.97), rng.uniform(0.03, 0.45)
        t = p2 * (1 - p2) * (0.5 - p2) / (p1 * (1 - p1) * (p1 - 0.5)) + 1
        if abs(a - (1 - 1 / t)) < 0.02 or abs(p1 + p2 - 1) < 0.03:
            continue  # too near a boundary for a finite K range to show the shape
        n += 1
        s = curve_shape(two_level(ks, a, p1, p2), tol=1e-12)
        consistent += theorem1_shape(a, p1, p2) == s
        stated += theorem1_shape(a, p1, p2, statement="as-stated") == s
    assert n > 150 and consistent == n and stated == 0
    # METHODS.md's reference values: p1 = 0.9, p2 = 0.3, alpha = 0.9 has best K = 7 (an inverse-U)
    assert theorem1_shape(0.9, 0.9, 0.3) == "inverse-u" and theorem1_shape(0.4, 0.9, 0.3) == "decreasing"
    assert theorem1_shape(0.9, 0.9, 0.3, statement="as-stated") == "increasing"
    assert theorem1_shape(0.5, 0.4, 0.3) == "not-applicable"
