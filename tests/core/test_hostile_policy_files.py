"""Malformed and hostile policy files get one clear error naming the file and what is wrong (issue 20, defect 10).

Each case starts from a real file written by callwise (``data/policies-0.1.0``), changes one thing
the way a broken or hostile file would, re-signs the arrays (the sha256 in the JSON matches, as a
crafted file's would) and must be refused by ``load_policy`` with a ``PolicyFileError``.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from callwise import load_policy
from callwise.core.policy_files import (
    MAX_ARRAY_BYTES,
    PolicyFileError,
    read_policy_file,
)

HERE = Path(__file__).parent / "data" / "policies-0.1.0"


def _copy(name: str, tmp: Path) -> Path:
    for ext in (".json", ".npz"):
        shutil.copy(HERE / f"{name}{ext}", tmp / f"{name}{ext}")
    return tmp / f"{name}.json"


def _rewrite(path: Path, *, doc=None, arrays=None) -> None:
    """Write new arrays (and/or JSON fields) and re-sign them."""
    d = json.loads(path.read_text())
    if arrays is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        blob = buf.getvalue()
        (path.parent / d["arrays"]["file"]).write_bytes(blob)
        d["arrays"]["sha256"] = hashlib.sha256(blob).hexdigest()
        d["arrays"]["keys"] = sorted(arrays)
    if doc is not None:
        doc(d)
    path.write_text(json.dumps(d))


def _arrays(path: Path) -> dict[str, np.ndarray]:
    return dict(np.load(path.with_suffix(".npz")))


def test_every_saved_policy_passes_the_checks() -> None:
    for p in sorted(HERE.glob("*.json")):
        load_policy(p)


@pytest.mark.parametrize("name, array, value, message", [
    ("confidence-cascade", "cost", np.nan,
     r"confidence-cascade.json: array 'cost' in confidence-cascade.npz holds NaN"),
    ("knn", "router/prior", np.inf, "array 'router/prior' in knn.npz holds an infinity"),  # outside a λ grid
])
def test_a_non_finite_array_value(tmp_path: Path, name: str, array: str, value: float, message: str) -> None:
    p = _copy(name, tmp_path)
    a = _arrays(p)
    a[array] = a[array].astype(float)
    a[array][0] = value
    _rewrite(p, arrays=a)
    with pytest.raises(PolicyFileError, match=message):
        load_policy(p)


@pytest.mark.parametrize("name, field, value, message", [
    ("confidence-cascade", "fitted", {"models": [1, 2]}, "fitted 'models' must be a list of model names"),
    ("confidence-cascade", "settings", {"models": ["a", 7]}, "settings 'models' must be a list of model names"),
    ("confidence-cascade", "settings", {"warmup": "soon"}, "settings: confidence-cascade warmup must be a whole number"),
    ("vote", "settings", {"k": -3}, r"settings: vote: k \(the number of calls\) must be an integer >= 1"),
    ("single", "settings", {"model": 42}, "settings 'model' must be a model name"),
])
def test_bad_settings_and_fitted_state(tmp_path: Path, name: str, field: str, value: dict, message: str) -> None:
    p = _copy(name, tmp_path)
    _rewrite(p, doc=lambda d: d[field].update(value))
    with pytest.raises(PolicyFileError, match=message):
        load_policy(p)


def test_arrays_that_unpack_past_the_limit(tmp_path: Path) -> None:
    p = _copy("knn", tmp_path)
    a = _arrays(p)
    a["padding"] = np.zeros(2_000_000)  # 16 MB of zeros, a few kB compressed
    _rewrite(p, arrays=a)
    assert p.with_suffix(".npz").stat().st_size < 200_000
    with pytest.raises(PolicyFileError, match=r"knn.npz unpacks to 16,\d{3},\d{3} bytes, over the limit of 1,000,000"):
        read_policy_file(p, max_bytes=1_000_000)
    assert MAX_ARRAY_BYTES <= 256 * 1024 * 1024  # the default bound (a 1 GiB npz was accepted before)


def test_links_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    inside = tmp_path / "inside"
    inside.mkdir()
    src = _copy("knn", outside)
    shutil.copy(src, inside / "knn.json")
    (inside / "knn.npz").symlink_to(outside / "knn.npz")  # an npz that is a link out of the folder
    with pytest.raises(PolicyFileError, match="its arrays file knn.npz is a link"):
        load_policy(inside / "knn.json")
    (tmp_path / "link.json").symlink_to(src)
    with pytest.raises(PolicyFileError, match="link.json: is a link"):
        load_policy(tmp_path / "link.json")


def test_an_object_array_is_refused(tmp_path: Path) -> None:
    p = _copy("knn", tmp_path)
    a = _arrays(p)
    a["router/prior"] = a["router/prior"].astype(np.complex128)
    _rewrite(p, arrays=a)
    with pytest.raises(PolicyFileError, match="array 'router/prior' in knn.npz has dtype complex128"):
        load_policy(p)
