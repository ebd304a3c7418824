"""Counter-based random numbers keyed by query id: the same query draws the same number everywhere.

Policies that randomise (a judge's mistakes, a tie between equal confidences, a random mixture)
draw from a hash of (seed, salt, query id) instead of a sequential generator, so a query's draw
does not depend on batching, stream order or the other queries — and every point of a budget
sweep sees the same draws (common random numbers, so curves are not jittered by fresh noise).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

_U64 = np.uint64


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, vectorised over uint64: a bijective, well-scrambling hash."""
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def texts_digest(texts: Sequence[object]) -> str:
    """One SHA-256 hex digest of a sequence of texts (order matters): the key of in-process memos of a
    batch's features or predictions."""
    return hashlib.sha256("\x1f".join(map(str, texts)).encode("utf-8", "surrogatepass")).hexdigest()


def hash_strings(values: np.ndarray | Sequence[object]) -> np.ndarray:
    """A stable uint64 hash of each value's string form (vectorised by pandas)."""
    return pd.util.hash_array(np.asarray(values).astype(str).astype(object))


def _to_unit(bits: np.ndarray) -> np.ndarray:
    return (bits >> _U64(11)).astype(np.float64) * 2.0**-53


def _seed_key(seed: int) -> np.ndarray:
    return mix64(np.asarray([int(seed) % 2**64], dtype=np.uint64))


def query_uniforms(ids: np.ndarray | Sequence[object], seed: int = 0, salt: str = "") -> np.ndarray:
    """One uniform in [0, 1) per query id, fixed by (seed, salt, id)."""
    key = _seed_key(seed) ^ hash_strings([salt])
    return _to_unit(mix64(hash_strings(ids) ^ key))


def pair_uniforms(ids: np.ndarray | Sequence[object], columns: Sequence[str], seed: int = 0) -> np.ndarray:
    """Uniforms in [0, 1), shape (len(ids), len(columns)): one per (query id, column name)."""
    per_id = mix64(hash_strings(ids) ^ _seed_key(seed))
    per_col = hash_strings(list(columns))
    return _to_unit(mix64(per_id[:, None] ^ per_col[None, :]))
