"""Tests of callwise.aggregation.utilities: the pairwise utilities of MBR aggregation, their cache and utility matrices."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from callwise.aggregation.utilities import (
    UTILITIES,
    Utility,
    UtilityCache,
    _lcs_lengths,
    get_utility,
    tokens,
    utility_matrices,
)
from callwise.core.errors import PolicyError


def arr(*xs: str) -> np.ndarray:
    out = np.empty(len(xs), dtype=object)
    out[:] = list(xs)
    return out


def u1(name: str, hyp: str, ref: str) -> float:
    return float(get_utility(name)(arr(hyp), arr(ref))[0])


# ---------------------------------------------------------------------------------------------
# reference implementations (plain Python, one pair at a time)


def ref_f1(h: list[str], r: list[str]) -> float:
    if not h or not r:
        return float(h == r)
    common = sum((Counter(h) & Counter(r)).values())
    if common == 0:
        return 0.0
    p, rc = common / len(h), common / len(r)
    return 2 * p * rc / (p + rc)


def ref_lcs(a: list, b: list) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    return table[len(a)][len(b)]


def ref_rouge_l(h: list[str], r: list[str]) -> float:
    if not h or not r:
        return float(h == r)
    lcs = ref_lcs(h, r)
    if lcs == 0:
        return 0.0
    p, rc = lcs / len(h), lcs / len(r)
    return 2 * p * rc / (p + rc)


def random_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Random answers over a small vocabulary (with articles, case and punctuation), some empty."""
    rng = random.Random(seed)
    vocab = ["cat", "dog", "sat", "mat", "on", "The", "a", "red", "Blue", "x", "y", "z"]

    def one() -> str:
        n_tok = rng.choice([0, 0, 1, 2, 3, 5, 8, 13, 21])
        words = [rng.choice(vocab) + rng.choice(["", "", "", ".", ","]) for _ in range(n_tok)]
        return " ".join(words)

    return [one() for _ in range(n)], [one() for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# tokens and the built-in utilities on hand-computed examples


def test_tokens_squad_normalisation():
    assert tokens("The cat, sat!") == ["cat", "sat"]
    assert tokens("  A  an THE apple ") == ["apple"]
    assert tokens("") == []
    assert tokens("theatre anchor") == ["theatre", "anchor"]  # articles only as whole words


def test_exact():
    u = get_utility("exact")
    assert u.symmetric
    np.testing.assert_array_equal(u(arr("a", "a", "", "A"), arr("a", "b", "", "a")), [1.0, 0.0, 1.0, 0.0])
    assert u(arr(), arr()).shape == (0,)


def test_token_f1_examples():
    assert u1("token-f1", "the cat sat", "a cat sat down") == pytest.approx(0.8)  # P=1, R=2/3
    assert u1("token-f1", "cat cat dog", "cat dog dog") == pytest.approx(2 / 3)  # common = 2 (multiset)
    assert u1("token-f1", "Cat.", "the cat") == 1.0
    assert u1("token-f1", "", "") == 1.0
    assert u1("token-f1", "the", "") == 1.0  # both normalise to no tokens
    assert u1("token-f1", "cat", "") == 0.0
    assert u1("token-f1", "cat", "dog") == 0.0


def test_rouge_l_examples():
    # LCS of [cat, sat, on, mat] and [cat, on, sat, mat] is 3: P = R = 3/4
    assert u1("rouge-l", "the cat sat on the mat", "a cat on sat the mat") == pytest.approx(0.75)
    # LCS([x, y, z], [z, y, x, w]) = 1 -> P = 1/3, R = 1/4, F = 2/7
    assert u1("rouge-l", "x y z", "z y x w") == pytest.approx(2 / 7)
    assert u1("rouge-l", "", "") == 1.0
    assert u1("rouge-l", "", "cat") == 0.0
    assert u1("rouge-l", "cat", "dog") == 0.0


def test_vectorised_token_f1_and_rouge_l_match_reference():
    hyp, ref = random_pairs(300, seed=1)
    hyp += ["", "cat", ""]
    ref += ["", "", "cat"]
    f1 = get_utility("token-f1")(arr(*hyp), arr(*ref))
    rl = get_utility("rouge-l")(arr(*hyp), arr(*ref))
    want_f1 = [ref_f1(tokens(h), tokens(r)) for h, r in zip(hyp, ref)]
    want_rl = [ref_rouge_l(tokens(h), tokens(r)) for h, r in zip(hyp, ref)]
    np.testing.assert_allclose(f1, want_f1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rl, want_rl, rtol=0, atol=1e-12)
    assert f1.dtype == np.float64 and rl.dtype == np.float64
    assert ((rl >= 0) & (rl <= 1)).all() and (rl <= f1 + 1e-12).all()  # LCS <= multiset overlap


@pytest.mark.parametrize("chunk_elements", [1 << 21, 7])  # 7 forces many small chunks
def test_lcs_cummax_dp_equals_classic_dp(chunk_elements):
    rng = random.Random(2)
    a = [[rng.randrange(4) for _ in range(rng.randrange(0, 30))] for _ in range(300)]
    b = [[rng.randrange(4) for _ in range(rng.randrange(0, 30))] for _ in range(300)]
    a.append(list(range(40)))
    b.append(list(range(40))[::-1])
    got = _lcs_lengths(a, b, chunk_elements=chunk_elements)
    assert got.tolist() == [ref_lcs(x, y) for x, y in zip(a, b)]
    assert _lcs_lengths(b, a).tolist() == got.tolist()


def test_bleu_and_chrf():
    pytest.importorskip("sacrebleu")
    hyp, ref = random_pairs(40, seed=3)
    for name in ("bleu", "chrf"):
        u = get_utility(name)
        assert not u.symmetric
        same = u(arr("the cat sat on the mat", "x"), arr("the cat sat on the mat", "x"))
        np.testing.assert_array_equal(same, [1.0, 1.0])
        vals = u(arr(*hyp), arr(*ref))
        assert vals.shape == (40,) and ((vals >= 0) & (vals <= 1)).all()
        assert u1(name, "", "") == 0.0  # sacrebleu's edge case: computed, not assumed 1
    import sacrebleu.metrics

    want = sacrebleu.metrics.BLEU(effective_order=True).sentence_score("the cat sat", ["the cat sat down"]).score
    assert u1("bleu", "the cat sat", "the cat sat down") == pytest.approx(want / 100)
    want = sacrebleu.metrics.CHRF().sentence_score("the cat sat", ["the cat sat down"]).score
    assert u1("chrf", "the cat sat", "the cat sat down") == pytest.approx(want / 100)


def test_closeness():
    u = get_utility("closeness")
    assert u.symmetric
    got = u(arr("10", "0", "0", "-5", "3", "1e3"), arr("8", "0", "2", "5", "3.0", "999"))
    np.testing.assert_allclose(got, [0.8, 1.0, 0.0, 0.0, 1.0, 0.999])
    with pytest.raises(PolicyError, match=r"closeness.*numeric answers.*'twelve'.*'number'"):
        u(arr("12", "twelve"), arr("12", "12"))
    with pytest.raises(PolicyError, match="finite"):
        u(arr("inf"), arr("1"))


# ---------------------------------------------------------------------------------------------
# get_utility


def test_get_utility_names_and_errors():
    assert set(UTILITIES) == {"exact", "token-f1", "rouge-l", "bleu", "chrf", "closeness"}
    for name in UTILITIES:
        u = get_utility(name)
        assert isinstance(u, Utility) and u.name == name
        assert get_utility(u) is u
    assert get_utility("Token_F1").name == "token-f1"
    with pytest.raises(PolicyError) as err:
        get_utility("bertscore")
    msg = str(err.value)
    assert "'bertscore'" in msg
    assert "exact, token-f1, rouge-l, bleu, chrf, closeness" in msg
    with pytest.raises(PolicyError, match="a utility must be"):
        get_utility(3)  # type: ignore[arg-type]


def test_user_function_bad_values():
    def gives_nan(h: str, r: str) -> float:
        return math.nan

    def gives_text(h: str, r: str) -> float:
        return "high"  # type: ignore[return-value]

    long = "y" * 500
    with pytest.raises(PolicyError) as err:
        get_utility(gives_nan)(arr("x"), arr(long))
    msg = str(err.value)
    assert "'gives_nan' returned nan" in msg and "hyp='x'" in msg and "expected a finite number" in msg
    assert len(msg) < 300  # the long string's repr is truncated
    with pytest.raises(PolicyError, match=r"'gives_text' returned 'high' for hyp='a', ref='b'.*finite number"):
        get_utility(gives_text)(arr("a"), arr("b"))


# ---------------------------------------------------------------------------------------------
# the cache


def test_cache_second_call_computes_nothing():
    cache = UtilityCache()
    hyp, ref = random_pairs(50, seed=4)
    u = get_utility("rouge-l")
    first = cache.values(u, arr(*hyp), arr(*ref))
    misses, hits = cache.misses, cache.hits
    assert misses > 0 and hits + misses == 50
    again = cache.values(u, arr(*hyp), arr(*ref))
    np.testing.assert_array_equal(first, again)
    assert cache.misses == misses and cache.hits == hits + 50
    np.testing.assert_array_equal(first, u(arr(*hyp), arr(*ref)))


def test_cache_symmetric_reverse_hits_and_asymmetric_does_not():
    cache = UtilityCache()
    f1 = get_utility("token-f1")
    cache.values(f1, arr("the cat sat", "x"), arr("a cat sat down", "y"))
    assert cache.misses == 2
    rev = cache.values(f1, arr("a cat sat down", "y"), arr("the cat sat", "x"))
    assert cache.misses == 2 and cache.hits == 2
    np.testing.assert_allclose(rev, [0.8, 0.0])

    def asym(h: str, r: str) -> float:
        return len(h) / (1 + len(r))

    u = get_utility(asym)
    a = cache.values(u, arr("ab"), arr("c"))
    b = cache.values(u, arr("c"), arr("ab"))
    assert (a[0], b[0]) == (1.0, 1 / 3) and cache.misses == 4


def test_cache_user_function_called_once_per_distinct_pair():
    calls: list[tuple[str, str]] = []

    def overlap(h: str, r: str) -> float:
        calls.append((h, r))
        return float(len(set(h) & set(r)))

    cache = UtilityCache()
    hyp, ref = arr("ab", "ab", "bc", "ab"), arr("bc", "bc", "ab", "bc")
    np.testing.assert_array_equal(cache.values(get_utility(overlap), hyp, ref), [1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(cache.values(get_utility(overlap), hyp, ref), [1.0, 1.0, 1.0, 1.0])
    utility_matrices([["ab", "bc"], ["bc", "ab"]], overlap, cache=cache)
    assert sorted(calls) == sorted({("ab", "bc"), ("bc", "ab"), ("ab", "ab"), ("bc", "bc")})
    # call 1: 2 distinct pairs computed, 2 repeats; call 2: 4 hits; matrices: 2 new diagonal pairs, 6 hits
    assert cache.misses == 4 and cache.hits == 2 + 4 + 6


def test_cache_functions_sharing_a_name_do_not_share_values():
    cache = UtilityCache()
    one, two = get_utility(lambda h, r: 1.0), get_utility(lambda h, r: 2.0)
    assert one.name == two.name == "<lambda>"
    assert cache.values(one, arr("a"), arr("b"))[0] == 1.0
    assert cache.values(two, arr("a"), arr("b"))[0] == 2.0


def test_cache_full_stops_storing_but_stays_correct():
    cache = UtilityCache(max_pairs=3)
    u = get_utility("exact")
    hyp, ref = arr("a", "b", "c", "d", "e"), arr("a", "x", "c", "y", "z")
    np.testing.assert_array_equal(cache.values(u, hyp, ref), [1, 0, 1, 0, 0])
    assert len(cache) == 3
    np.testing.assert_array_equal(cache.values(u, hyp, ref), [1, 0, 1, 0, 0])
    assert len(cache) == 3 and cache.misses == 5 + 2
    np.testing.assert_array_equal(cache.values(u, arr("q", "a"), arr("q", "a")), [1, 1])
    assert len(cache) == 3


def test_cache_rejects_non_strings_and_length_mismatch():
    cache = UtilityCache()
    with pytest.raises(PolicyError, match="strings"):
        cache.values(get_utility("exact"), np.array(["a", None], dtype=object), arr("a", "b"))
    with pytest.raises(PolicyError, match="same length"):
        cache.values(get_utility("exact"), arr("a"), arr("a", "b"))


# ---------------------------------------------------------------------------------------------
# utility matrices


def test_utility_matrices_shape_padding_and_values():
    candidates = [["the cat sat", "a cat sat down", ""], ["12"], ["x y z", "z y x w"]]
    for name in ("exact", "token-f1", "rouge-l"):
        m = utility_matrices(candidates, name)
        assert m.shape == (3, 3, 3) and m.dtype == np.float64
        u = get_utility(name)
        for q, cands in enumerate(candidates):
            n = len(cands)
            for i in range(n):
                want = u(arr(*cands), arr(*[cands[i]] * n))
                np.testing.assert_allclose(m[q, :, i][:n], want, atol=1e-12)
            assert not m[q, n:, :].any() and not m[q, :, n:].any()
    m = utility_matrices(candidates, "token-f1")
    assert m[0, 0, 1] == pytest.approx(0.8) and m[0, 2, 2] == 1.0 and m[1, 0, 0] == 1.0
    assert utility_matrices([], "exact").shape == (0, 0, 0)


def test_utility_matrices_asymmetric_orientation_and_cache_reuse():
    def longer(h: str, r: str) -> float:
        return float(len(h) > len(r))

    cache = UtilityCache()
    m = utility_matrices([["aaa", "b"], ["b", "aaa", "cc"]], longer, cache=cache)
    assert m[0, 0, 1] == 1.0 and m[0, 1, 0] == 0.0  # M[q, i, j] = u(hyp=i, ref=j)
    assert m[1, 1, 2] == 1.0 and m[1, 2, 1] == 0.0
    assert cache.misses == 9  # the 4 pairs of query 0 recur in query 1
    m2 = utility_matrices([["aaa", "b"], ["b", "aaa", "cc"]], longer, cache=cache)
    np.testing.assert_array_equal(m, m2)
    assert cache.misses == 9


def test_utility_matrices_closeness_and_empty_query():
    m = utility_matrices([["10", "8"]], "closeness")
    np.testing.assert_allclose(m[0], [[1.0, 0.8], [0.8, 1.0]])
    with pytest.raises(PolicyError, match="query 1 has no candidates"):
        utility_matrices([["a"], []], "exact")


def test_lcs_long_sequences_use_wide_counters():
    long = [0] * 33000 + [5]
    assert _lcs_lengths([[5], [0, 5, 0]], [long, long]).tolist() == [1, 2]


def test_bleu_without_sacrebleu_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # makes `import sacrebleu` fail
    monkeypatch.setitem(sys.modules, "sacrebleu.metrics", None)
    fresh = type(get_utility("chrf"))()  # the shared instance may already hold a metric
    with pytest.raises(PolicyError, match=r"'chrf' utility needs sacrebleu: pip install \"callwise\[text\]\""):
        fresh(arr("a"), arr("a"))
