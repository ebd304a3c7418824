"""The vote engine: running plurality winners, exact and Monte Carlo expectations, Filter-Vote,
best-of-K, and the errors on impossible draws."""

from __future__ import annotations

from collections import Counter
from math import comb

import numpy as np
import pytest

from callwise.core.errors import PolicyError
from callwise.voting.engine import (
    best_of_curve,
    encode,
    expected_cost,
    filter_vote_curve,
    plurality,
    prefix_winners,
    vote_curve,
)


def _counter_winner(seq):
    c = Counter(x for x in seq if x >= 0)
    return c.most_common(1)[0][0] if c else -1


def test_prefix_winners_match_counter_first_seen_ties():
    rng = np.random.default_rng(0)
    seq = rng.integers(-1, 5, size=(400, 40)).astype(np.int16)
    w = prefix_winners(seq)
    want = np.array([[_counter_winner(row[:k]) for k in range(1, 41)] for row in seq])
    np.testing.assert_array_equal(w, want)


def test_prefix_winners_edge_cases():
    assert prefix_winners(np.array([[-1, -1, 2, 1, 1]], dtype=np.int16)).tolist() == [[-1, -1, 2, 2, 1]]
    assert prefix_winners(np.array([[3, 4, 4, 3]], dtype=np.int16)).tolist() == [[3, 3, 4, 3]]  # 2-2: first seen
    assert prefix_winners(np.zeros((2, 0), dtype=np.int16)).shape == (2, 0)


def test_encode_normalises_compacts_and_values():
    answers = np.array([["5/1/2021", None, "05/01/2021", "04/30/2021"],
                        ["1/2/2000", "1/3/2000", "01/03/2000", None]], dtype=object)
    quality = np.array([[1, 0, 1, 0], [0, 1, 1, np.nan]], dtype=float)
    s = encode(answers, quality, np.full((2, 4), 0.5), normalise="date")
    assert s.n.tolist() == [4, 3]
    assert s.codes[0].tolist() == [0, -1, 0, 1]          # the two spellings of one date share a category
    assert s.value[0, :2].tolist() == [1.0, 0.0]
    assert s.codes[1, :3].tolist() == [0, 1, 1] and s.codes[1, 3] == -1  # unrecorded sample: not drawn
    np.testing.assert_allclose(s.distribution()[0, :2], [0.5, 0.25])


def _random_samples(seed, q=60, n=12, cats=3, abstain=0.0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(cats), size=q)
    idx = (rng.random((q, n, 1)) > np.cumsum(p, axis=1)[:, None, :]).sum(axis=2)
    answers = np.array([[f"a{v}" for v in row] for row in idx], dtype=object)
    if abstain:
        answers[rng.random((q, n)) < abstain] = None
    quality = np.array([[1.0 if a == "a0" else 0.0 for a in row] for row in answers])
    return encode(answers, quality, np.full((q, n), 0.01)), answers, quality


@pytest.mark.parametrize("draws", ["with-replacement", "without-replacement"])
def test_exact_binary_vote_agrees_with_monte_carlo(draws):
    s, _, _ = _random_samples(1, cats=2)
    assert s.binary().all()
    ks = np.arange(1, 13)
    exact = vote_curve(s, ks, draws=draws).mean(axis=0)
    mc = vote_curve(s, ks, draws=draws, exact=False, reps=3000, seed=5).mean(axis=0)
    np.testing.assert_allclose(mc, exact, atol=0.01)


def test_vote_without_replacement_of_all_samples_is_the_full_vote():
    s, answers, quality = _random_samples(2, n=9, cats=3)
    full = vote_curve(s, [9], draws="without-replacement", reps=50)[:, 0]
    for i, row in enumerate(answers):
        counts = Counter(row).most_common()
        if len(counts) == 1 or counts[0][1] > counts[1][1]:  # a strict winner: no tie to break
            assert full[i] == pytest.approx(float(counts[0][0] == "a0"))


def test_first_draws_are_the_vote_of_the_first_k_samples():
    s, answers, quality = _random_samples(3, cats=4, abstain=0.2)
    got = vote_curve(s, np.arange(1, 13), draws="first")
    for i, row in enumerate(answers):
        for k in range(1, 13):
            c = Counter(a for a in row[:k] if a is not None)
            want = 0.0 if not c else float(c.most_common(1)[0][0] == "a0")
            assert got[i, k - 1] == want


def test_filter_vote_with_a_perfect_filter_is_at_least_one_right():
    s, _, quality = _random_samples(4, cats=3)
    g = np.arange(1, 7)
    got = filter_vote_curve(s, g, tpr=1.0, fpr=0.0, reps=4000, seed=1)
    p = quality.mean(axis=1)[:, None]
    np.testing.assert_allclose(got.mean(axis=0), (1 - (1 - p) ** g).mean(axis=0), atol=0.01)


def test_filter_vote_that_keeps_everything_is_the_vote():
    s, _, _ = _random_samples(5, cats=3)
    ks = np.arange(1, 9)
    fv = filter_vote_curve(s, ks, tpr=1.0, fpr=1.0, reps=3000, seed=2).mean(axis=0)
    np.testing.assert_allclose(fv, vote_curve(s, ks, reps=3000, seed=3).mean(axis=0), atol=0.01)


def test_filter_vote_recorded_verdicts():
    answers = np.array([["w", "r", "w", "w"]], dtype=object)
    quality = (answers == "r").astype(float)
    keep = np.array([[0, 1, 0, 0]], dtype=float)
    s = encode(answers, quality)
    assert filter_vote_curve(s, [4], keep, draws="first")[0, 0] == 1.0  # only the kept right answer votes
    drop_all = np.zeros((1, 4))
    assert filter_vote_curve(s, [4], drop_all, draws="first")[0, 0] == 0.0  # falls back to the plain vote


def test_best_of_k_exact():
    s, _, quality = _random_samples(6, n=10, cats=3)
    ks = np.arange(1, 11)
    p = quality.mean(axis=1)[:, None]
    perfect = best_of_curve(s, ks)
    np.testing.assert_allclose(perfect, 1 - (1 - p) ** ks, atol=1e-12)
    assert (np.diff(perfect.mean(axis=0)) >= -1e-12).all()
    c = quality.sum(axis=1).astype(int)
    wo = best_of_curve(s, ks, draws="without-replacement")
    want = np.array([[1 - comb(10 - ci, k) / comb(10, k) for k in ks] for ci in c])
    np.testing.assert_allclose(wo, want, atol=1e-9)
    noisy = best_of_curve(s, ks, accuracy=0.7)
    np.testing.assert_allclose(noisy, 0.7 * perfect + 0.3 * p, atol=1e-12)


def test_expected_cost():
    s, _, _ = _random_samples(7)
    np.testing.assert_allclose(expected_cost(s, [1, 5]), np.tile([0.01, 0.05], (s.n_queries, 1)))
    np.testing.assert_allclose(expected_cost(s, [3], draws="first")[:, 0], 0.03)


def test_plurality_on_live_answers():
    answers = np.array([["B", "a", "b", "A"], [None, None, None, None], ["x", "y", None, "y"]], dtype=object)
    assert plurality(answers, "text").tolist() == [0, -1, 1]  # 'B'/'b' ties 'a'/'A': first seen wins


def test_impossible_draws_are_clear_errors():
    s, _, _ = _random_samples(8, n=5)
    with pytest.raises(PolicyError, match="needs 6 distinct recorded samples per query"):
        vote_curve(s, [6], draws="without-replacement")
    with pytest.raises(PolicyError, match="at least 1"):
        vote_curve(s, [0])
    with pytest.raises(PolicyError, match="draws must be one of"):
        vote_curve(s, [2], draws="bootstrap")
    with pytest.raises(PolicyError, match="tpr and fpr must be probabilities"):
        filter_vote_curve(s, [2], tpr=1.5)
    with pytest.raises(PolicyError, match="ranker accuracy must be a probability"):
        best_of_curve(s, [2], accuracy=-0.1)
    empty = encode(np.array([["a", "b"]], dtype=object), np.array([[np.nan, np.nan]]), recorded=np.zeros((1, 2), bool))
    with pytest.raises(PolicyError, match="no recorded sample"):
        vote_curve(empty, [1])
