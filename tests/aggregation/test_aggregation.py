"""Aggregation rules: closed forms against brute force, MBR = mode under exact match, weights = duplicates,
label distributions, draws, and clear errors on bad input."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from callwise import aggregation as A
from callwise.aggregation.metrics import get_metric
from callwise.core.errors import PolicyError


def _random_rows(rng: np.random.Generator, q: int = 40, s: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued samples (so ties and repeats happen) and integer weights (0 included)."""
    x = rng.integers(-6, 12, size=(q, s)).astype(float)
    w = rng.integers(0, 4, size=(q, s)).astype(float)
    w[:, 0] = np.maximum(w[:, 0], 1)  # every row keeps some weight
    return x, w


def _expected_loss(loss, pred: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(Q, G) expected loss of each grid prediction under each row's weighted empirical distribution."""
    return (loss(pred[:, :, None], x[:, None, :]) * w[:, None, :]).sum(axis=2) / w.sum(axis=1)[:, None]


LOSSES = {
    "mean": lambda p, y: (p - y) ** 2,
    "median": lambda p, y: np.abs(p - y),
    "quantile:0.2": lambda p, y: np.maximum(0.2 * (y - p), (0.2 - 1) * (y - p)),
    "quantile:0.85": lambda p, y: np.maximum(0.85 * (y - p), (0.85 - 1) * (y - p)),
}


@pytest.mark.parametrize("rule", sorted(LOSSES))
def test_closed_forms_minimise_their_loss_over_a_grid(rule):
    rng = np.random.default_rng(7)
    x, w = _random_rows(rng)
    grid = np.broadcast_to(np.linspace(-8, 14, 2201), (len(x), 2201))  # step 0.01: holds every sample value
    ss = A.SampleSet.from_samples(x.astype(object), w, normalise="number")
    pred = A.draw_predictions(ss, rule, draws="first").numbers[:, 0]
    loss = LOSSES[rule]
    best = _expected_loss(loss, grid, x, w).min(axis=1)
    got = _expected_loss(loss, pred[:, None], x, w)[:, 0]
    assert np.all(got <= best + 1e-9)
    # and the unweighted forms are numpy's
    if rule == "mean":
        assert A.mean(x) == pytest.approx(x.mean(axis=1))
    if rule == "median":
        assert A.median(x) == pytest.approx(np.median(x, axis=1))
    if rule.startswith("quantile"):
        tau = float(rule.split(":")[1])
        assert A.quantile(x, tau) == pytest.approx(np.quantile(x, tau, axis=1, method="inverted_cdf"))


def test_mode_maximises_expected_exact_match_over_the_candidates_and_breaks_ties_to_the_first_seen():
    rng = np.random.default_rng(3)
    x, w = _random_rows(rng, s=7)
    got = A.mode(x.astype(int).astype(str).astype(object), w)
    for i in range(len(x)):
        mass = Counter()
        for v, wt in zip(x[i].astype(int).astype(str), w[i]):
            mass[v] += wt
        top = max(mass.values())
        # first seen among the samples that carry weight (a weight-0 sample is not there at all)
        first_top = next(v for v, wt in zip(x[i].astype(int).astype(str), w[i]) if wt > 0 and mass[v] == top)
        assert got[i] == first_top
    assert A.mode([["b", "a", "a", "b"], ["x", "y"]]).tolist() == ["b", "x"]


def test_mbr_with_exact_match_utility_is_the_mode():
    rng = np.random.default_rng(11)
    for _ in range(5):
        answers = rng.choice(list("abcdef"), size=(60, 8)).astype(object)
        w = rng.integers(0, 3, size=answers.shape).astype(float)
        w[:, 0] = 1
        assert A.mbr(answers, "exact", w).tolist() == A.mode(answers, w, normalise="none").tolist()


@pytest.mark.parametrize("rule", ["mean", "median", "quantile:0.3", "mode", "mbr:token-f1", "mbr:closeness"])
def test_weighting_by_counts_equals_duplicating_samples(rule):
    rng = np.random.default_rng(5)
    x = rng.integers(1, 9, size=(30, 5))
    w = rng.integers(0, 4, size=(30, 5))
    w[:, 0] = np.maximum(w[:, 0], 1)
    dup = [[str(v) for v, k in zip(row, wr) for _ in range(k)] for row, wr in zip(x, w)]
    weighted = A.aggregate(x.astype(str).astype(object), rule, weights=w.astype(float), normalise="number")
    duplicated = A.aggregate(dup, rule, normalise="number")
    assert weighted.tolist() == duplicated.tolist()


def test_a_label_distribution_is_aggregated_like_weighted_samples():
    labels = [1, 2, 3, 4, 5]
    probs = np.array([[0.1, 0.2, 0.3, 0.2, 0.2], [0.5, 0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.1, 0.9]])
    ss = A.SampleSet.from_distribution(labels, probs)
    assert A.mean(ss) == pytest.approx(probs @ np.arange(1, 6))
    assert A.median(ss).tolist() == [3.0, 3.0, 5.0]  # row 2: lower median 1, upper median 5 -> 3
    assert A.aggregate(ss, "mode").tolist() == ["3", "1", "5"]
    assert A.quantile(ss, 0.05).tolist() == [1.0, 1.0, 4.0]
    with pytest.raises(PolicyError, match=r"probs must be \(queries, 5\) for 5 labels"):
        A.SampleSet.from_distribution(labels, np.ones((2, 4)))


def test_rating_distribution_reads_top_logprobs_in_both_formats():
    top = [{"4": np.log(0.6), " 5": np.log(0.3), "x": np.log(0.1)},
           [{"token": "1", "logprob": np.log(0.2)}, {"token": "2", "logprob": np.log(0.2)}]]
    p = A.rating_distribution(top)
    assert p[0] == pytest.approx([0, 0, 0, 2 / 3, 1 / 3])
    assert p[1] == pytest.approx([0.5, 0.5, 0, 0, 0])
    with pytest.raises(PolicyError, match=r"query 0: none of the top tokens is a rating label"):
        A.rating_distribution([{"yes": -0.1}])


def test_probability_weights_count_each_distinct_sample_once():
    lp = np.log(np.array([[0.5, 0.5, 0.25, np.nan]]))
    w = A.probability_weights(lp, keys=np.array([["a", "a", "b", "c"]], dtype=object))
    assert w[0] == pytest.approx([2 / 3, 0, 1 / 3, 0])
    assert A.probability_weights(lp)[0] == pytest.approx([0.4, 0.4, 0.2, 0])
    with pytest.raises(PolicyError, match=r"query 0, sample 1: log-probability 0.5 is positive"):
        A.probability_weights([[-1.0, 0.5]])


def test_dates_are_aggregated_as_days():
    s = [["01/30/2020", "02/01/2020", "02/03/2020", "12/31/2021"]]
    assert A.aggregate(s, "median", kind="date", normalise="date").tolist() == ["02/02/2020"]
    days = A.to_numbers(np.array(["01/01/2020", "01/11/2020"], dtype=object), "date")
    assert days[1] - days[0] == 10
    assert A.from_numbers(days, "date").tolist() == ["01/01/2020", "01/11/2020"]


def test_draws_first_with_and_without_replacement():
    x = np.array([[1, 2, 5, 5], [10, 0, 0, 0]], dtype=object)
    ss = A.SampleSet.from_samples(x, normalise="number")
    first2 = A.draw_predictions(ss, "mean", 2, draws="first").numbers[:, 0]
    assert first2.tolist() == [1.5, 5.0]
    # every sample without replacement: any order gives the mean of all
    allw = A.draw_predictions(ss, "mean", 4, draws="without-replacement", reps=20).numbers
    assert np.allclose(allw, [[3.25], [2.5]])
    # with replacement: E[(mean_k - y)^2] = (xbar - y)^2 + var / k, checked on many draws
    p = A.draw_predictions(ss, "mean", 3, draws="with-replacement", reps=20000, seed=1).numbers
    xs = np.array([[1, 2, 5, 5], [10, 0, 0, 0]], float)
    y = np.array([4.0, 1.0])
    expect = (xs.mean(axis=1) - y) ** 2 + xs.var(axis=1) / 3
    assert ((p - y[:, None]) ** 2).mean(axis=1) == pytest.approx(expect, rel=0.03)
    # the same seed gives every rule the same draws: mode and first agree where a draw holds one distinct value
    with pytest.raises(PolicyError, match=r"needs 5 distinct usable samples per query"):
        A.draw_predictions(ss, "mean", 5, draws="without-replacement")


def test_mode_over_random_draws_breaks_ties_to_the_first_sample_of_the_draw():
    ss = A.SampleSet.from_samples(np.array([["a", "b"]], dtype=object))
    p = A.draw_predictions(ss, "mode", 2, draws="without-replacement", reps=4000, seed=0)
    # each draw holds a and b once: the winner is whichever came first, so each wins about half the time
    assert abs((p.answers == "a").mean() - 0.5) < 0.03
    first = A.draw_predictions(ss, "first", 2, draws="without-replacement", reps=4000, seed=0)
    assert (p.answers == first.answers).all()


def test_abstentions_carry_no_weight():
    assert A.mean([[1, None, "n/a", 3]]).tolist() == [2.0]
    assert A.mode([["", None, "x"]]).tolist() == ["x"]


# --------------------------------------------------------------------------------------------
# bad input


def test_no_parsable_sample_is_an_error_naming_the_query():
    with pytest.raises(PolicyError, match=r"1 query has no parsable sample \(queries \[1\]\)"):
        A.mean([[1, 2], ["abc", None]])


def test_an_empty_sample_list_is_an_error():
    with pytest.raises(PolicyError, match=r"no samples: every query's sample list is empty"):
        A.median([[], []])
    with pytest.raises(PolicyError, match=r"no queries: answers is empty"):
        A.mode([])
    with pytest.raises(PolicyError, match=r"got a flat list of 3 values; wrap it as \[samples\]"):
        A.mean([1, 2, 3])


def test_unknown_metric_and_rule_are_errors_listing_the_choices():
    with pytest.raises(PolicyError, match=r"unknown metric 'rmsle'; expected one of \[.*'absolute-error'.*'pinball:<tau>'"):
        get_metric("rmsle")
    with pytest.raises(PolicyError, match=r"unknown aggregation rule 'average'; expected one of \['mean', 'median'"):
        A.get_rule("average")
    with pytest.raises(PolicyError, match=r"a quantile level tau must be a number in \(0, 1\), got 1.5"):
        A.quantile([[1, 2]], 1.5)


def test_bad_weights_are_errors_naming_the_sample():
    with pytest.raises(PolicyError, match=r"query 0, sample 1: weight -1.0 is not a finite number >= 0"):
        A.mean([[1, 2]], [[1, -1]])
    with pytest.raises(PolicyError, match=r"weights must have the answers' shape \(1, 2\), got \(1, 3\)"):
        A.mean(np.array([[1, 2]], dtype=object), np.ones((1, 3)))
