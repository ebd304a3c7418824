"""Compare two snapshots of scripts/snapshot_outputs.sh: every JSON file (results, fit reports, policy files),
the policy files' arrays and route's printed JSON must be equal, apart from ``created`` timestamps.

Dicts are compared by key (a different key order is counted and reported, not failed); lists and
numbers exactly. Exit 1 when anything differs.

    python scripts/compare_outputs.py BEFORE AFTER
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

IGNORED_KEYS = {"created"}


def _strip(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if k not in IGNORED_KEYS}
    if isinstance(o, list):
        return [_strip(x) for x in o]
    return o


def differences(x: Any, y: Any, path: str = "") -> tuple[list[str], int]:
    """(differences, dicts whose keys are the same in another order) between two parsed JSON values."""
    if type(x) is not type(y):
        return [f"{path}: {type(x).__name__} vs {type(y).__name__}"], 0
    if isinstance(x, dict):
        if set(x) != set(y):
            return [f"{path}: keys only on one side {sorted(set(x) ^ set(y))}"], 0
        out, reordered = [], int(list(x) != list(y))
        for k in x:
            d, r = differences(x[k], y[k], f"{path}/{k}")
            out, reordered = out + d, reordered + r
        return out, reordered
    if isinstance(x, list):
        if len(x) != len(y):
            return [f"{path}: {len(x)} vs {len(y)} items"], 0
        out, reordered = [], 0
        for i, (u, v) in enumerate(zip(x, y)):
            d, r = differences(u, v, f"{path}[{i}]")
            out, reordered = out + d, reordered + r
        return out, reordered
    same = x == y or (isinstance(x, float) and x != x and y != y)
    return ([] if same else [f"{path}: {str(x)[:60]} vs {str(y)[:60]}"]), 0


def main(a: Path, b: Path) -> int:
    files = sorted(p.relative_to(a) for p in a.rglob("*.json"))
    bad = 0
    for rel in files:
        if not (b / rel).exists():
            print(f"MISSING {rel}")
            bad += 1
            continue
        diff, reordered = differences(_strip(json.loads((a / rel).read_text())), _strip(json.loads((b / rel).read_text())))
        npz = (a / rel).with_suffix(".npz")
        if npz.exists():
            za, zb = np.load(npz), np.load((b / rel).with_suffix(".npz"))
            for k in sorted(set(za.files) | set(zb.files)):
                if k not in za.files or k not in zb.files or not np.array_equal(
                        za[k], zb[k], equal_nan=za[k].dtype.kind == "f"):
                    diff.append(f"array {k} differs")
        note = f"  ({reordered} dicts list the same keys in another order)" if reordered else ""
        print(f"{'OK  ' if not diff else 'DIFF'} {rel}{note}")
        for line in diff[:10]:
            print("     ", line)
        bad += bool(diff)
    for name in ("route-mlp.stdout",):
        same = (a / name).read_text() == (b / name).read_text()
        print(f"{'OK  ' if same else 'DIFF'} {name}")
        bad += not same
    n = len(files) + 1
    print(f"{n - bad} of {n} outputs identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
