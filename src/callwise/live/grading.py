"""Grading live answers against references, so live runs produce outcome tables with a quality.

A grader maps (answer, reference) to a quality in [0, 1]:

- ``exact``: equal after normalising (case, surrounding whitespace and punctuation, inner spaces);
- ``contains``: the normalised reference occurs in the normalised answer;
- ``number``: the last number in the answer equals the reference number (relative tolerance 1e-6;
  thousands separators ignored);
- ``choice``: the multiple-choice letter the answer gives (``(B)``, ``answer: B``, ``B.``, or a lone
  letter) equals the reference letter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from ..core.errors import DataError

_NUM = re.compile(r"[-+]?\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_CHOICE = [re.compile(r"(?i:answer\s*(?:is|:)?)\s*\(?([A-J])\)?\b"), re.compile(r"^\(?([A-J])\)?(?:[.:)]|\s|$)"),
           re.compile(r"\(([A-J])\)")]


def normalise(text: str) -> str:
    return " ".join(str(text).casefold().strip().strip(".!?;:,'\"`").split())


def _number(text: str) -> float | None:
    found = _NUM.findall(str(text))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def _choice(text: str) -> str | None:
    t = str(text).strip()
    for p in _CHOICE:
        m = p.search(t)
        if m:
            return m.group(1).upper()
    return None


def _exact(a: str, r: str) -> float:
    return float(normalise(a) == normalise(r))


def _contains(a: str, r: str) -> float:
    return float(normalise(r) in normalise(a))


def _num(a: str, r: str) -> float:
    x, y = _number(a), _number(r)
    if x is None or y is None:
        return 0.0
    return float(abs(x - y) <= 1e-6 * max(1.0, abs(y)))


def _letter(a: str, r: str) -> float:
    got, want = _choice(a), _choice(r) or str(r).strip().upper()
    return float(got is not None and got == want)


GRADERS: dict[str, Callable[[str, str], float]] = {"exact": _exact, "contains": _contains, "number": _num,
                                                   "choice": _letter}


def check_grading(name: str, references: Sequence[str | None], *, ids: Sequence[str] | None = None,
                  file: str | None = None) -> None:
    """An error unless ``name`` is a grader and every query has a reference (runs check before any call)."""
    if name not in GRADERS:
        raise DataError(f"unknown grader {name!r}; graders are {sorted(GRADERS)}", column="grade")
    missing = [i for i, r in enumerate(references) if r is None]
    if missing:
        which = [ids[i] for i in missing[:3]] if ids is not None else missing[:3]
        raise DataError(f"grading with {name!r} needs a 'reference' on every prompt; {len(missing)} have none, "
                        f"e.g. {which}", file=file, column="reference")


def grade(name: str, answers: Sequence[str], references: Sequence[str | None], *, ids: Sequence[str] | None = None,
          file: str | None = None) -> np.ndarray:
    """Quality of each answer under grader ``name``; a missing reference is an error naming the query."""
    check_grading(name, references, ids=ids, file=file)
    g = GRADERS[name]
    return np.array([g(a or "", r) for a, r in zip(answers, references)], dtype=float)  # type: ignore[arg-type]
