"""Answer normalisers: turn a model's extracted answer into a canonical string, so votes can count it.

Votes (plurality, filtered vote, consistency checks in cascades) compare answers *after*
normalisation: ``"$1,234.50"`` and ``1234.5`` are one answer, ``"5/1/2021"`` and ``"May 1, 2021"``
are one date, ``"Less likely."`` and ``"less likely"`` are one phrase. A normaliser returns a
canonical ``str``, or ``None`` when it cannot read an answer in its input; a ``None`` answer is an
*abstention*: it casts no vote (and is never correct).

The normalisers (all accept any scalar; ``None``, NaN and values of the wrong kind give ``None``):

- :func:`number` -- the **last** number in the input, with thousands commas, currency signs,
  percent signs, units and surrounding words ignored, and ``a/b`` read as a fraction. Canonical
  form: integer values without a decimal point (``18.0`` -> ``"18"``), other values rounded to 9
  significant digits and written as the shortest ``repr`` (``0.1 + 0.2`` -> ``"0.3"``), so float
  noise from program outputs does not split votes. Booleans are not numbers.
- :func:`choice` -- a multiple-choice letter A-J (``"(B)"``, ``"Answer: (c)"``, ``"C) blue"`` ->
  ``"B"``, ``"C"``, ``"C"``). A letter after "answer is" / "answer:" wins, then a leading
  ``"C)"``-style label, then a letter in parentheses, then a bare one-letter answer.
- :func:`date` -- the **last** date in the input as ``MM/DD/YYYY`` (BIG-bench's DATE task format):
  ``5/1/2021``, ``05-01-2021``, ``2021-05-01``, ``May 1, 2021`` and ``1 May 2021`` all read as
  ``05/01/2021``; a month outside 1-12 or a day outside 1-31 gives ``None``.
- :func:`text` -- free text: stripped, lower-cased, inner whitespace collapsed, surrounding quotes
  and trailing ``.``, ``!`` and ``,`` removed (``"  Less likely. "`` -> ``"less likely"``).
- ``"none"`` -- ``str(x)`` as it is (``None`` for ``None``, NaN and the empty string).

All of them are idempotent (normalising a canonical answer again gives it back), so a table whose
answers a loader already normalised can be normalised again by a vote at no harm.

:func:`get_normaliser` resolves a name or wraps a user function; :func:`normalise_array` applies
one to an array of any shape, calling it once per distinct value (answers repeat a lot: a vote
over 40 samples of 369 questions holds a few thousand distinct strings among 15 thousand).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import PolicyError

Normaliser = Callable[[Any], "str | None"]


def _is_missing(x: Any) -> bool:
    """None, or a float NaN (Python or numpy), or pandas' NA / NaT."""
    if x is None or x is pd.NA or x is pd.NaT:
        return True
    return isinstance(x, (float, np.floating)) and math.isnan(x)


# --------------------------------------------------------------------------------------------
# numbers

_NUMBER = re.compile(
    r"""
    (?P<neg>(?<![\w.)\]])[-\u2212]\s?(?:[$\u20ac\u00a3]\s?)?   # -5, - $5
          | [$\u20ac\u00a3]\s?[-\u2212])?                      # $-5
    (?<![\d.])
    (?P<mant>\d{1,3}(?:,\d{3})+(?:\.\d+)?                      # 1,234.50
           | \d+(?:\.\d+)?                                     # 1234.5
           | \.\d+)                                            # .5
    (?:[eE](?P<exp>[-+]?\d+))?                                 # 1.5e-3
    (?:\s?/\s?(?P<den>\d+(?:\.\d+)?)(?![\d.]))?                # 1/2
    """,
    re.VERBOSE,
)


def canonical_float(v: float) -> str | None:
    if not math.isfinite(v):
        return None
    r = round(v)
    if abs(v - r) <= 1e-9 * abs(v):  # integer up to float noise: 109.00000000000001 -> "109"
        return str(int(r))
    v9 = float(f"{v:.9g}")
    if v9 == round(v9):
        return str(int(v9))
    return repr(v9)


def _number_from_match(m: re.Match[str]) -> str | None:
    mant, exp, den = m["mant"].replace(",", ""), m["exp"], m["den"]
    neg = m["neg"] is not None
    if exp is None and den is None and "." not in mant:
        value: int | float = int(mant)  # exact, however many digits
        return str(-value if neg else value)
    value = float(mant + (f"e{exp}" if exp is not None else ""))
    if den is not None:
        d = float(den)
        if d == 0:
            return None
        value /= d
    return canonical_float(-value if neg else value)


def number(x: Any) -> str | None:
    """The last number in ``x``, canonical (see the module docstring); None if there is none."""
    if _is_missing(x) or isinstance(x, (bool, np.bool_)):
        return None
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return canonical_float(float(x))
    if not isinstance(x, str):
        return None
    last = None
    for last in _NUMBER.finditer(x):
        pass
    return None if last is None else _number_from_match(last)


# --------------------------------------------------------------------------------------------
# multiple choice

_CHOICE_ALONE = re.compile(r"\s*[(\[]?\s*([A-Ja-j])\s*[)\]]?\s*[.!]?\s*")
_CHOICE_ANSWER = re.compile(
    r"(?i:answer)(?:\s+(?i:is)|\s*:)\s*:?\s*"
    r"(?:\(\s*([A-Ja-j])\s*\)|\[\s*([A-Ja-j])\s*\]|([A-J])(?![A-Za-z])|([a-j])(?=\s*(?:[.)\],;:!?]|$)))"
)
_CHOICE_LEAD = re.compile(r"\s*\(?([A-Ja-j])\s*[).:\]]")
_CHOICE_PAREN = re.compile(r"\(\s*([A-Ja-j])\s*\)")


def choice(x: Any) -> str | None:
    """A multiple-choice letter A-J, upper-case; None if ``x`` names none."""
    if not isinstance(x, str):
        return None
    m = _CHOICE_ALONE.fullmatch(x)
    if m:
        return m[1].upper()
    found = list(_CHOICE_ANSWER.finditer(x))
    if found:
        return next(g for g in found[-1].groups() if g).upper()
    m = _CHOICE_LEAD.match(x)
    if m:
        return m[1].upper()
    found = list(_CHOICE_PAREN.finditer(x))
    if found:
        return found[-1][1].upper()
    return None


# --------------------------------------------------------------------------------------------
# dates

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DATE = re.compile(
    rf"""
      (?<!\d)(?P<nm>\d{{1,2}})(?P<sep>[/.-])(?P<nd>\d{{1,2}})(?P=sep)(?P<ny>\d{{4}})(?!\d)       # 5/1/2021
    | (?<!\d)(?P<iy>\d{{4}})(?P<isep>[/-])(?P<im>\d{{1,2}})(?P=isep)(?P<id>\d{{1,2}})(?!\d)    # 2021-05-01
    | \b(?P<tm>{_MONTH})\b\.?\s+(?P<td>\d{{1,2}})(?:st|nd|rd|th)?\b,?\s+(?P<ty>\d{{4}})(?!\d)  # May 1, 2021
    | (?<!\d)(?P<ed>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<em>{_MONTH})\b\.?,?\s+(?P<ey>\d{{4}})(?!\d)  # 1 May 2021
    """,
    re.VERBOSE | re.IGNORECASE,
)


def _ymd(m: re.Match[str]) -> tuple[int, int, int]:
    if m["nm"] is not None:
        return int(m["ny"]), int(m["nm"]), int(m["nd"])
    if m["iy"] is not None:
        return int(m["iy"]), int(m["im"]), int(m["id"])
    if m["tm"] is not None:
        return int(m["ty"]), _MONTHS[m["tm"][:3].lower()], int(m["td"])
    return int(m["ey"]), _MONTHS[m["em"][:3].lower()], int(m["ed"])


def date(x: Any) -> str | None:
    """The last date in ``x`` as MM/DD/YYYY; None if there is none or it is not a valid month/day."""
    if isinstance(x, (_dt.date, _dt.datetime)) and not _is_missing(x):
        return x.strftime("%m/%d/%Y")
    if not isinstance(x, str):
        return None
    last = None
    for last in _DATE.finditer(x):
        pass
    if last is None:
        return None
    year, month, day = _ymd(last)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{month:02d}/{day:02d}/{year:04d}"


# --------------------------------------------------------------------------------------------
# free text

_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
_TRAILING = ".!,"


def text(x: Any) -> str | None:
    """Stripped, lower-cased text with whitespace collapsed and surrounding quotes and trailing
    ``.``, ``!``, ``,`` removed; None for missing or empty input. Non-strings go through ``str``."""
    if _is_missing(x):
        return None
    s = " ".join((x if isinstance(x, str) else str(x)).split()).lower()
    while True:
        t = s.strip(_QUOTES).rstrip(_TRAILING).strip()
        if t == s:
            break
        s = t
    return s or None


def none(x: Any) -> str | None:
    """No normalisation: ``str(x)``; None for missing input or the empty string."""
    if _is_missing(x):
        return None
    return (x if isinstance(x, str) else str(x)) or None


NORMALISERS: dict[str, Normaliser] = {"number": number, "choice": choice, "date": date, "text": text, "none": none}


def get_normaliser(spec: str | Callable[[Any], Any]) -> Normaliser:
    """The normaliser named ``spec`` (a key of :data:`NORMALISERS`), or ``spec`` itself when it is a
    function. A user function is not called on missing values (None, NaN: they stay None); its
    result None stays None and anything else becomes ``str(result)``."""
    if isinstance(spec, str):
        try:
            return NORMALISERS[spec]
        except KeyError:
            raise PolicyError(f"unknown answer normaliser {spec!r}; expected one of {sorted(NORMALISERS)} "
                              "or a function value -> str | None") from None
    if not callable(spec):
        raise PolicyError(f"an answer normaliser must be one of {sorted(NORMALISERS)} or a function, "
                          f"got {type(spec).__name__}")
    fn = spec
    label = getattr(fn, "__name__", repr(fn))

    def user(x: Any) -> str | None:
        if _is_missing(x):
            return None
        try:
            out = fn(x)
        except Exception as e:
            raise PolicyError(f"answer normaliser {label} failed on {x!r}: {type(e).__name__}: {e}") from e
        return None if _is_missing(out) else str(out)

    user.__name__ = label
    return user


def normalise_array(values: Any, spec: str | Callable[[Any], Any]) -> np.ndarray:
    """``values`` (any shape) normalised with ``spec``: an object array of the same shape holding
    canonical strings, and None where a value is missing or cannot be read.

    The normaliser runs once per distinct value. Values that compare equal but differ in type
    (``1``, ``1.0``, ``True``) are kept apart, since a normaliser may read them differently.
    """
    fn = get_normaliser(spec)
    arr = np.asarray(values, dtype=object)
    flat = arr.reshape(-1)
    if flat.size == 0:
        return np.empty(arr.shape, dtype=object)
    try:
        codes, uniques = pd.factorize(flat, use_na_sentinel=True)
    except TypeError:  # an unhashable value (a list, a dict): no grouping
        return _normalise_each(flat, fn).reshape(arr.shape)
    uniques = np.asarray(uniques, dtype=object)
    table = np.empty(len(uniques) + 1, dtype=object)  # the last slot (code -1) is a missing value
    table[:-1] = [fn(u) for u in uniques]
    table[-1] = None
    out = table[codes]
    # factorize merges 1, 1.0 and True (they are equal); recompute where a value's type is not its
    # group's representative's type
    numeric = np.fromiter((isinstance(u, (int, float, complex, np.number, np.bool_)) for u in uniques),
                          dtype=bool, count=len(uniques))
    if numeric.any():
        idx = np.flatnonzero((codes >= 0) & numeric[np.maximum(codes, 0)])
        if idx.size:
            rep_type = np.frompyfunc(type, 1, 1)(uniques)
            mismatch = idx[np.frompyfunc(type, 1, 1)(flat[idx]) != rep_type[codes[idx]]]
            cache: dict[tuple[type, Any], str | None] = {}
            for i in mismatch:
                v = flat[i]
                key = (type(v), v)
                if key not in cache:
                    cache[key] = fn(v)
                out[i] = cache[key]
    return out.reshape(arr.shape)


def _normalise_each(flat: np.ndarray, fn: Normaliser) -> np.ndarray:
    out = np.empty(flat.shape, dtype=object)
    cache: dict[tuple[type, Any], str | None] = {}
    for i, v in enumerate(flat):
        if _is_missing(v):
            out[i] = None
            continue
        try:
            key = (type(v), v)
            hash(key)
        except TypeError:
            out[i] = fn(v)
            continue
        if key not in cache:
            cache[key] = fn(v)
        out[i] = cache[key]
    return out


__all__ = ["NORMALISERS", "choice", "date", "get_normaliser", "none", "normalise_array", "number", "text"]
