"""Money as a person reads it: the one formatter of dollars (``evaluation.tables`` re-exports it).

:func:`usd` prints dollars with three significant digits in plain decimals (never ``$4.9252e-05``),
:func:`per_1k` a per-query cost as dollars per 1,000 queries.
"""

from __future__ import annotations

import math
from typing import Any


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def usd(x: float | None, missing: str = "-") -> str:
    """Dollars with three significant digits in plain decimals: ``$3.86``, ``$0.0845``, ``-$0.000566``,
    ``$1,500``; ``$0`` below a billionth of a dollar."""
    if not _finite(x):
        return missing
    x = float(x)  # type: ignore[arg-type]
    if abs(x) < 5e-10:
        return "$0"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    text = f"{abs(x):,.{digits}f}"
    if float(text.replace(",", "")) >= 10 ** (3 - digits) and digits > 0:  # rounding carried a digit
        text = f"{abs(x):,.{digits - 1}f}"
    return ("-$" if x < 0 else "$") + text


def per_1k(x: float | None, missing: str = "-") -> str:
    """A per-query cost as dollars per 1,000 queries (:func:`usd` of 1000 x)."""
    return usd(float(x) * 1000, missing) if _finite(x) else missing  # type: ignore[arg-type]


__all__ = ["per_1k", "usd"]
