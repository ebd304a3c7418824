"""Save and load fitted policies in an open format: ``NAME.json`` plus ``NAME.npz`` (never a pickle).

The JSON file says what the policy is and how it was made; the npz file holds its arrays::

    {"format": "callwise-policy", "format_version": 1, "callwise_version": "0.1.0",
     "created": "...", "policy": "knn", "family": "router",
     "settings": {...constructor settings...},
     "fitted": {...JSON-able fitted state: models, feature settings, CV, calibration...},
     "arrays": {"file": "policy.npz", "sha256": "...", "keys": [...]},
     "data": {"fingerprint": "...", "n_prompts": 1234, "tasks": [...]}}

Loading checks everything before building the policy: the format name and version, every
required field, the npz file's presence, hash and keys; an error names the file and the field.
The npz is read with ``allow_pickle=False``, so a policy file cannot execute code; neither file
may be a link, the arrays may unpack to at most ``MAX_ARRAY_BYTES``, and no array may hold NaN
(or an infinity, except a router's λ grid). Once built, the policy's settings are checked as its
constructor's checks would (types and ranges) and its models must be non-empty strings.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PolicyError
from .files import atomic_write, json_default
from .policy import Policy, check_settings, get_policy
from .version import __version__

FORMAT = "callwise-policy"
FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "policy", "settings", "fitted", "arrays")
#: The most bytes a policy's arrays may unpack to (a compressed npz can expand a thousandfold).
MAX_ARRAY_BYTES = 256 * 1024 * 1024
#: Arrays that may hold an infinity: a λ grid ends at ∞, and a router's default λ may be ∞ (the best predicted model).
INF_OK = ("lambdas", "default_lam")


class PolicyFileError(PolicyError):
    """A policy file that cannot be loaded; the message names the file and the field."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")


def pack(prefix: str, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Split a state dict: arrays and lists of strings go to ``arrays`` under ``prefix/key``; the rest is returned."""
    out: dict[str, Any] = {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            arrays[f"{prefix}/{k}"] = v
            out[k] = {"__array__": f"{prefix}/{k}"}
        elif isinstance(v, (list, tuple)) and len(v) > 16 and all(isinstance(t, str) for t in v):
            arrays[f"{prefix}/{k}"] = np.asarray(v, dtype=str)
            out[k] = {"__array__": f"{prefix}/{k}", "as": "list"}
        else:
            out[k] = v
    return out


def unpack(state: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Inverse of :func:`pack`."""
    out: dict[str, Any] = {}
    for k, v in state.items():
        if isinstance(v, dict) and "__array__" in v:
            a = arrays[v["__array__"]]
            out[k] = a.tolist() if v.get("as") == "list" else a
        else:
            out[k] = v
    return out


def _encode_floats(o: Any) -> Any:
    """JSON has no infinity: non-finite floats (λ = ∞ routes everything to the cheapest model) as {"__float__": "inf"}."""
    if isinstance(o, dict):
        return {k: _encode_floats(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_encode_floats(v) for v in o]
    if isinstance(o, (float, np.floating)) and not np.isfinite(o):
        return {"__float__": repr(float(o))}
    return o


def _decode_floats(o: Any) -> Any:
    if isinstance(o, dict):
        if set(o) == {"__float__"} and o["__float__"] in ("inf", "-inf", "nan"):
            return float(o["__float__"])
        return {k: _decode_floats(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_decode_floats(v) for v in o]
    return o


def save_policy(policy: Policy, path: str | Path, *, data: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``policy`` (fitted) to ``path`` (.json) and its arrays next to it (.npz); returns both paths."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise PolicyError(f"a policy file must end in .json, got {path}")
    fitted, arrays = policy.to_state()
    npz_path = path.with_suffix(".npz")
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    blob = buf.getvalue()
    doc = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "callwise_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "policy": policy.name, "family": policy.family, "settings": _encode_floats(policy.params()), "fitted": _encode_floats(fitted),
        "arrays": {"file": npz_path.name, "sha256": hashlib.sha256(blob).hexdigest(), "keys": sorted(arrays)},
        "data": data or {},
    }
    text = json.dumps(doc, indent=1, default=json_default, allow_nan=False)
    atomic_write(npz_path, lambda f: f.write(blob))
    atomic_write(path, lambda f: f.write(text.encode()))
    return path, npz_path


def read_policy_file(path: str | Path, *, max_bytes: int = MAX_ARRAY_BYTES
                     ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The checked JSON document and arrays of a policy file (see the module docstring)."""
    path = Path(path)
    if path.is_symlink():
        raise PolicyFileError(path, "is a link; give the policy file itself")
    if not path.is_file():
        raise PolicyFileError(path, "no such policy file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PolicyFileError(path, f"not a JSON policy file ({e})") from None
    if not isinstance(doc, dict):
        raise PolicyFileError(path, f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise PolicyFileError(path, f"field 'format' must be {FORMAT!r}, got {doc.get('format')!r}: not a callwise policy file")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise PolicyFileError(path, f"missing field(s) {missing}; a policy file needs {list(REQUIRED)}")
    v = doc["format_version"]
    if v != FORMAT_VERSION:
        raise PolicyFileError(path, f"format_version {v!r} was written by callwise {doc.get('callwise_version', '?')}; "
                                    f"this callwise ({__version__}) reads version {FORMAT_VERSION}: refit the policy "
                                    "with this version")
    for k, t in (("settings", dict), ("fitted", dict), ("arrays", dict), ("policy", str)):
        if not isinstance(doc[k], t):
            raise PolicyFileError(path, f"field {k!r} must be a {t.__name__}, got {type(doc[k]).__name__}")
    meta = doc["arrays"]
    for k in ("file", "sha256", "keys"):
        if k not in meta:
            raise PolicyFileError(path, f"missing field 'arrays.{k}'")
    npz = path.parent / str(meta["file"])
    if Path(str(meta["file"])).name != str(meta["file"]):
        raise PolicyFileError(path, f"field 'arrays.file' must be a file name next to the policy, got {meta['file']!r}")
    if npz.is_symlink():
        raise PolicyFileError(path, f"its arrays file {npz.name} is a link; it must be a file next to the .json")
    if not npz.is_file():
        raise PolicyFileError(path, f"its arrays file {npz.name} is missing (it must sit next to the .json)")
    blob = npz.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise PolicyFileError(path, f"{npz.name} does not match the sha256 recorded in 'arrays.sha256' "
                                    "(the two files come from different saves)")
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            unpacked = sum(i.file_size for i in zf.infolist())
    except zipfile.BadZipFile as e:
        raise PolicyFileError(path, f"unreadable arrays file {npz.name}: {e}") from None
    if unpacked > max_bytes:
        raise PolicyFileError(path, f"its arrays file {npz.name} unpacks to {unpacked:,} bytes, over the limit of "
                                    f"{max_bytes:,}")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:
        raise PolicyFileError(path, f"unreadable arrays file {npz.name}: {e}") from None
    lacking = [k for k in meta["keys"] if k not in arrays]
    if lacking:
        raise PolicyFileError(path, f"{npz.name} lacks array(s) {lacking[:5]}")
    for k, a in arrays.items():
        if a.dtype.kind not in "biufU":
            raise PolicyFileError(path, f"array {k!r} in {npz.name} has dtype {a.dtype}; expected numbers or text")
        if a.dtype.kind == "f":
            if np.isnan(a).any():
                raise PolicyFileError(path, f"array {k!r} in {npz.name} holds NaN")
            if np.isinf(a).any() and not k.endswith(INF_OK):
                raise PolicyFileError(path, f"array {k!r} in {npz.name} holds an infinity")
    return doc, arrays


def _check_built(path: Path, policy: Policy) -> None:
    """The built policy's settings as its own checks see them, and its models as strings."""
    for name in ("models", "models_"):
        ms = getattr(policy, name, None)
        if ms is not None and (not isinstance(ms, (list, tuple)) or not all(isinstance(m, str) and m for m in ms)):
            raise PolicyFileError(path, f"{'settings' if name == 'models' else 'fitted'} '{name.rstrip('_')}' must be "
                                        f"a list of model names (non-empty strings), got {ms!r}")
    one = getattr(policy, "model", None)
    if one is not None and not (isinstance(one, str) and one):
        raise PolicyFileError(path, f"settings 'model' must be a model name (a non-empty string), got {one!r}")
    try:
        check_settings(policy)
    except PolicyError as e:
        raise PolicyFileError(path, f"settings: {e}") from None


def load_policy(path: str | Path) -> Policy:
    """Rebuild a fitted policy saved by :func:`save_policy`; it routes exactly as before saving."""
    doc, arrays = read_policy_file(path)
    try:
        cls = get_policy(doc["policy"])
    except PolicyError:
        raise PolicyFileError(path, f"field 'policy' names {doc['policy']!r}, which this callwise does not have") from None
    try:
        policy = cls.from_state(_decode_floats(doc["settings"]), _decode_floats(doc["fitted"]), arrays)
        _check_built(Path(path), policy)
        return policy
    except PolicyFileError:
        raise
    except KeyError as e:
        raise PolicyFileError(path, f"field 'fitted' lacks {e.args[0]!r}") from None
    except PolicyError as e:
        raise PolicyFileError(path, str(e)) from None
    except (TypeError, ValueError, IndexError, AttributeError) as e:
        raise PolicyFileError(path, f"inconsistent policy state: {e}") from None
