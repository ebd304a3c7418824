"""Confidence signals on hand-made logprob payloads, recorded confidences and sample answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from callwise.cascades.signals import (
    Margin,
    RecordedConfidence,
    SampleAgreement,
    SignalError,
    first_token_candidates,
    is_surface_variant,
    make_signal,
    margin,
)

LN = math.log


def chat(top: list[tuple[str, float]], chosen: tuple[str, float] | None = None) -> dict:
    """An OpenAI chat-completions logprobs payload whose first token has these top_logprobs (probabilities)."""
    tok, p = chosen or top[0]
    return {"content": [{"token": tok, "logprob": LN(p),
                         "top_logprobs": [{"token": t, "logprob": LN(q)} for t, q in top]},
                        {"token": "x", "logprob": -0.1, "top_logprobs": []}]}


def test_probability_and_logit_margins_of_the_top_two():
    p = chat([("Paris", 0.7), ("Lyon", 0.2), ("Nice", 0.05)])
    assert margin(p, space="prob") == pytest.approx(0.5)
    assert margin(p, space="logit") == pytest.approx(LN(0.7) - LN(0.2))


def test_legacy_completions_payload_and_bare_list():
    legacy = {"tokens": ["B", "x"], "token_logprobs": [LN(0.6), -1.0],
              "top_logprobs": [{"B": LN(0.6), "A": LN(0.3)}, {"x": -1.0}]}
    assert margin(legacy) == pytest.approx(0.3)
    bare = [{"token": "yes", "logprob": LN(0.9)}, {"token": "no", "logprob": LN(0.05)}]
    assert margin(bare) == pytest.approx(0.85)


def test_open_answers_skip_surface_variants_of_the_top_token():
    p = chat([("Paris", 0.5), (" paris", 0.2), ("Par", 0.1), ("Lyon", 0.08)])
    assert margin(p) == pytest.approx(0.5 - 0.08)
    assert is_surface_variant("Paris", " PARIS ") and is_surface_variant("Par", "Paris")
    assert not is_surface_variant("Paris", "Lyon")


def test_label_margin_renormalised_over_the_labels():
    """The paper's probability margin of a classification: a softmax over the label tokens' logits."""
    p = chat([("A", 0.3), ("The", 0.4), ("B", 0.15), (" A", 0.05)])
    labels = ["A", "B"]
    want = (0.3 - 0.15) / (0.3 + 0.15)
    assert margin(p, labels=labels, renormalise=True) == pytest.approx(want)
    logits = np.log([0.3, 0.15])  # the same from raw label logits shifted by any constant
    soft = np.exp(logits + 7.0) / np.exp(logits + 7.0).sum()
    assert margin(p, labels=labels, renormalise=True) == pytest.approx(soft[0] - soft[1])
    assert margin(p, labels=labels, space="logit", renormalise=True) == margin(p, labels=labels, space="logit")
    assert margin(p, labels=labels) == pytest.approx(0.3 - 0.15)  # the default: the returned probabilities
    assert Margin(labels=labels, renormalise=True).scores(logprobs=[p])[0] == pytest.approx(want)


def test_labels_restrict_candidates_and_merge_surface_forms():
    p = chat([("The", 0.4), ("B", 0.3), (" B", 0.1), ("A", 0.15), ("C", 0.05)])
    # label tokens only; "B" and " B" are one label (the likelier form counts)
    assert margin(p, labels=["A", "B", "C", "D"]) == pytest.approx(0.3 - 0.15)
    with pytest.raises(SignalError, match="none of the labels"):
        margin(chat([("The", 0.9), ("It", 0.1)]), labels=["A", "B"])


def test_ties_give_zero_margin():
    p = chat([("A", 0.45), ("B", 0.45), ("C", 0.1)])
    assert margin(p, labels=["A", "B", "C"]) == pytest.approx(0.0)
    assert margin(p, space="logit") == pytest.approx(0.0)


def test_single_returned_token_uses_the_declared_bound_or_refuses():
    p = chat([("42", 0.8)])
    # the runner-up is at most the mass not returned: 0.2
    assert margin(p) == pytest.approx(0.6)
    assert margin(p, space="logit") == pytest.approx(LN(0.8) - LN(0.2))
    with pytest.raises(SignalError, match="runner-up token is not among the returned"):
        margin(p, fallback="error")
    # every alternative a surface variant: bounded by the least likely returned token
    v = chat([("Yes", 0.6), ("yes", 0.3), (" Yes", 0.05)])
    assert margin(v) == pytest.approx(0.6 - 0.05)
    # all mass returned and nothing else: probability margin = p_top, logit margin capped
    full = [{"token": "A", "logprob": 0.0}]
    assert margin(full) == pytest.approx(1.0) and margin(full, space="logit") == 50.0


def test_the_chosen_token_counts_even_if_top_logprobs_omit_it():
    p = chat([("B", 0.3)], chosen=("A", 0.6))
    assert [t for t, _ in first_token_candidates(p)] == ["A", "B"]
    assert margin(p) == pytest.approx(0.3)


@pytest.mark.parametrize("payload, message", [
    (None, "no logprobs were recorded"),
    ({"content": []}, "'content' is empty"),
    ({"tokens": ["a"], "token_logprobs": [-1.0], "top_logprobs": []}, "no top_logprobs for the first token"),
    ("logprobs", "unrecognised logprobs payload"),
    ([], "no candidate tokens"),
])
def test_missing_or_malformed_logprobs_are_errors_not_zeros(payload, message):
    with pytest.raises(SignalError, match=message):
        margin(payload)


def test_margin_signal_names_the_query_in_errors_and_scores_a_batch():
    sig = Margin(space="prob", labels=["A", "B"])
    ok = sig.scores(logprobs=[chat([("A", 0.9), ("B", 0.1)]), chat([("B", 0.5), ("A", 0.4)])])
    np.testing.assert_allclose(ok, [0.8, 0.1])
    with pytest.raises(SignalError, match="query 'q2': no logprobs were recorded"):
        sig.scores(logprobs=[chat([("A", 0.9), ("B", 0.1)]), None], ids=["q1", "q2"])
    with pytest.raises(SignalError, match="needs logprob payloads"):
        sig.scores(confidence=np.ones(2))


def test_recorded_confidence_and_its_missing_values():
    assert RecordedConfidence().scores(confidence=np.array([-0.1, -2.0])).tolist() == [-0.1, -2.0]
    with pytest.raises(SignalError, match=r"1 answer\(s\) have no recorded confidence, e.g. queries \['b'\]"):
        RecordedConfidence().scores(confidence=np.array([0.5, np.nan]), ids=["a", "b"])
    with pytest.raises(SignalError, match="records no confidence column"):
        RecordedConfidence().scores()


def test_sample_agreement_is_the_majority_share():
    answers = np.array([["4", "4", "5", "4"], ["a", "b", "c", "d"], ["x", None, "x", None]], dtype=object)
    np.testing.assert_allclose(SampleAgreement().scores(answers=answers), [0.75, 0.25, 1.0])
    # no parsable answer at all (MoT DATE has such queries): the least sure, 0, not an error that
    # would make the cascade unusable on the whole task
    np.testing.assert_allclose(SampleAgreement().scores(answers=np.array([[None, np.nan]], dtype=object), ids=["q0"]),
                               [0.0])
    with pytest.raises(SignalError, match=">= 2 samples"):
        SampleAgreement().scores(answers=np.array([["a"]], dtype=object))


def test_make_signal_by_name():
    assert make_signal("margin", space="logit").settings() == {"signal": "margin", "space": "logit", "labels": None,
                                                               "fallback": "bound", "renormalise": False}
    with pytest.raises(SignalError, match="no signal 'entropy'"):
        make_signal("entropy")
    with pytest.raises(SignalError, match="bad settings for signal 'recorded'"):
        make_signal("recorded", space="prob")
    with pytest.raises(SignalError, match="space must be 'prob' or 'logit'"):
        margin(chat([("a", 0.5), ("b", 0.5)]), space="log")
