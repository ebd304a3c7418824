"""One plotting style per policy, fixed across every command's PNG (bench, cascade, scale, aggregate,
allocate, plan).

A policy's **family** (router, cascade, multi-call, composition, fixed) picks its colour range; its
place in the family's fixed list picks the shade and the marker, so ``knn`` looks the same in
``bench`` and ``plan`` whichever other policies are on the plot. Two styles are reserved and used by
nothing else: the **zero router** (mid grey, thick dash-dot) and the **oracle** (black, dashed).
Single models are dark points, each with its own marker. ``NAME@offline`` (the cascade command's
thresholds chosen offline) keeps ``NAME``'s colour and marker with a dashed line; any other
``NAME@setting`` or ``FAMILY:detail`` is styled as ``NAME``.

:func:`log_axis`, :func:`legend_outside` and :func:`save` are the axis, legend and output rules
every plot follows: plain-number log ticks at 1-2-5 with unlabelled minor ticks (labels never
overlap), the legend beside the axes (it hides no curve), the figure cropped to what it draws.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

#: The two reserved styles.
ZERO_STYLE: dict[str, Any] = {"color": "#7f7f7f", "ls": "-.", "lw": 2.6, "marker": None, "zorder": 4}
ORACLE_STYLE: dict[str, Any] = {"color": "black", "ls": "--", "lw": 1.5, "marker": None, "zorder": 4}

#: Colour range of each family (no family uses black or the zero router's grey).
FAMILY_PALETTES: dict[str, tuple[str, ...]] = {
    "router": ("#1f77b4", "#08306b", "#17becf", "#6baed6", "#3949ab", "#00838f", "#5c9ded", "#1a237e", "#4dd0e1"),
    "cascade": ("#ff7f0e", "#d62728", "#a63603", "#fdae6b", "#e7298a", "#8b0000", "#f4a261", "#c2410c"),
    "multi-call": ("#2ca02c", "#006d2c", "#74c476", "#8c9e1a", "#00a676", "#4d7c0f"),
    "composition": ("#9467bd", "#54278f", "#c994c7", "#7b3294", "#e377c2", "#b39ddb"),
    "fixed": ("#bcbd22", "#8c6d31", "#e7ba52"),
    "other": ("#6b6ecf", "#ce6dbd", "#b5cf6b", "#8c564b"),
}
#: One colour per family (the plan's scatter of candidates, legends by family).
FAMILY_COLOURS: dict[str, str] = {"single": "#303030", "zero": ZERO_STYLE["color"], "oracle": ORACLE_STYLE["color"],
                                  **{f: p[0] for f, p in FAMILY_PALETTES.items()}}

#: The members of each family in a fixed order: the index picks shade and marker.
FAMILY_MEMBERS: dict[str, tuple[str, ...]] = {
    "router": ("knn", "linear", "mlp", "mf", "svm", "threshold", "two-tier-router", "hybrid", "router"),
    "cascade": ("cascade-judge", "confidence-cascade", "frugal-cascade", "oracle-cascade", "chain", "two-tier"),
    "multi-call": ("vote", "filter-vote", "best-of-k", "metric-aware"),
    "composition": ("learned-escalation", "route-escalate", "vote-agreement-cascade"),
    "fixed": ("random-mix",),
}
#: Names other commands use for the same policy (the cascade command's method names).
ALIASES: dict[str, str] = {"confidence": "confidence-cascade", "frugal": "frugal-cascade", "random": "random-mix",
                           "chain": "chain", "two-tier": "two-tier"}
_FAMILY_OF = {m: f for f, ms in FAMILY_MEMBERS.items() for m in ms}
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h")
SINGLE_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "h", "p", "*")
OFFLINE_LS: Any = (0, (4, 1.5))


def base_name(name: str) -> str:
    """The policy a label stands for: ``knn@budget=0.002`` -> ``knn``, ``zero:a+b`` -> ``zero``."""
    head = name.split("@", 1)[0]
    head = head.split(":", 1)[0] if ":" in head else head
    return ALIASES.get(head, head)


def family_of(name: str, family: str | None = None) -> str:
    """``family`` when the caller knows it (e.g. a bench entry's), else the fixed table's, else ``other``."""
    b = base_name(name)
    if b in ("zero", "oracle"):
        return b
    if family in ("zero", "oracle", "single") or family in FAMILY_PALETTES:
        return family  # type: ignore[return-value]
    return _FAMILY_OF.get(b, family if family in FAMILY_PALETTES else "other")


def _index(family: str, name: str) -> int:
    members = FAMILY_MEMBERS.get(family, ())
    if name in members:
        return members.index(name)
    return len(members) + zlib.crc32(name.encode()) % 7  # stable for a name outside the list


def style(name: str, family: str | None = None) -> dict[str, Any]:
    """Matplotlib keywords (color, ls, lw, marker, zorder) of a policy; the same for a name in every plot."""
    b = base_name(name)
    fam = family_of(name, family)
    if fam == "zero" or b == "zero":
        return dict(ZERO_STYLE)
    if fam == "oracle" or b == "oracle":
        return dict(ORACLE_STYLE)
    if fam == "single":  # one marker per model of a plot: :func:`single_markers`
        return {"color": FAMILY_COLOURS["single"], "ls": "none", "lw": 0, "marker": "o", "zorder": 4}
    pal = FAMILY_PALETTES[fam]
    i = _index(fam, b)
    out = {"color": pal[i % len(pal)], "ls": "-", "lw": 1.6, "marker": MARKERS[i % len(MARKERS)], "zorder": 2}
    if name.endswith("@offline"):
        out["ls"] = OFFLINE_LS
    return out


def line_kw(s: dict[str, Any]) -> dict[str, Any]:
    """The keywords of a style for ``ax.plot`` of a densified curve (no markers)."""
    return {k: v for k, v in s.items() if k in ("color", "ls", "lw", "zorder")}


def single_markers(names: list[str]) -> dict[str, str]:
    """Distinct markers for the single models of one plot (sorted names, so fixed for a dataset)."""
    return {n: SINGLE_MARKERS[i % len(SINGLE_MARKERS)] for i, n in enumerate(sorted(names))}


#: Fixed colours of the aggregation rules (``callwise aggregate``) and allocation methods (``allocate``).
RULE_COLOURS: dict[str, str] = {"mean": "#1f77b4", "median": "#ff7f0e", "mode": "#2ca02c", "first": "#8c564b",
                                "random": "#c49c6a", "oracle": "black", "quantile": "#9467bd", "mbr": "#d62728"}
METHOD_STYLES: dict[str, dict[str, Any]] = {
    "llmselector": {"color": "#d62728", "marker": "*"}, "llmselector-2stage": {"color": "#e7298a", "marker": "*"},
    "coordinate": {"color": "#2ca02c", "marker": "D"}, "random": {"color": "#c49c6a", "marker": "v"},
    "exhaustive": {"color": "black", "marker": "X"}, "single": {"color": "#1f77b4", "marker": "s"},
}


def rule_colour(rule: str) -> str:
    """``mbr:rouge-l`` -> the MBR colour; an unknown rule gets a stable colour of its own."""
    head = rule.split(":", 1)[0]
    if rule in RULE_COLOURS:
        return RULE_COLOURS[rule]
    if head in RULE_COLOURS:
        return RULE_COLOURS[head]
    pal = FAMILY_PALETTES["other"]
    return pal[zlib.crc32(rule.encode()) % len(pal)]


def method_style(method: str) -> dict[str, Any]:
    return dict(METHOD_STYLES.get(method, {"color": rule_colour(method), "marker": "o"}))


# -- axes, legends, files ---------------------------------------------------------------------------


def _plain(x: float, money: bool) -> str:
    if x <= 0:
        return ""
    txt = f"{x:.6f}".rstrip("0").rstrip(".") if x < 1 else f"{x:,.10g}"
    if x < 1e-6:
        txt = f"{x:.0e}"
    return ("$" + txt) if money else txt


def log_axis(ax: Any, which: str = "x", money: bool = False) -> None:
    """Log scale with labels at 1, 2 and 5 times a power of ten as plain numbers (``$`` for money),
    minor ticks unlabelled. :func:`tidy_log_ticks` (called by :func:`save`) adds 1..9 labels where
    the range spans too little for two 1-2-5 labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
    axis.set_major_formatter(FuncFormatter(lambda x, _: _plain(x, money)))
    axis.set_minor_formatter(NullFormatter())
    axis._callwise_money = money  # type: ignore[attr-defined]


def _labels_overlap(ax: Any, axis: Any) -> bool:
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    lo, hi = sorted(axis.get_view_interval())
    labels = [t for t in axis.get_ticklabels(which="both")
              if t.get_visible() and t.get_text() and lo <= (t.get_position()[0 if axis is ax.xaxis else 1]) <= hi]
    boxes = sorted((t.get_window_extent(r) for t in labels), key=lambda b: b.x0 if axis is ax.xaxis else b.y0)
    if axis is ax.xaxis:
        return any(a.x1 + 2 > b.x0 for a, b in zip(boxes, boxes[1:]))
    return any(a.y1 > b.y0 for a, b in zip(boxes, boxes[1:]))


def _shown(ax: Any, axis: Any) -> int:
    lo, hi = sorted(axis.get_view_interval())
    return sum(1 for t in axis.get_majorticklocs() if lo <= t <= hi)


def tidy_log_ticks(ax: Any) -> None:
    """Pick the densest labelling of each log axis with at least two labels in view that do not
    overlap: 1-2-5 times powers of ten, then powers of ten (every other one over many decades);
    within less than a decade, evenly spaced round numbers."""
    import numpy as np
    from matplotlib.ticker import LogLocator, MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(axis.get_view_interval())
        if not lo > 0:
            continue
        if np.log10(hi / lo) < 1.0:
            options: list[Any] = [MaxNLocator(nbins=n, steps=[1, 2, 2.5, 5, 10]) for n in (6, 4, 3, 2)]
        else:
            options = [LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=99), LogLocator(base=10, numticks=99),
                       LogLocator(base=10, numticks=5), LogLocator(base=10, numticks=3)]
        for loc in options:
            axis.set_major_locator(loc)
            if _shown(ax, axis) >= 2 and not _labels_overlap(ax, axis):
                break


def legend_outside(ax: Any, **kw: Any) -> Any:
    """The legend to the right of the axes, so it covers no curve or point."""
    opts = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "fontsize": 7,
            "frameon": False, "handlelength": 3.0}
    opts.update(kw)
    return ax.legend(**opts)


def save(fig: Any, path: Path) -> None:
    """Tidy the log ticks of every axes, crop to what is drawn (the outside legend included), write, close."""
    import matplotlib.pyplot as plt

    for ax in fig.axes:
        tidy_log_ticks(ax)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def figure(figsize: tuple[float, float], ncols: int = 1, **kw: Any) -> tuple[Any, Any]:
    """A figure with the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=figsize, dpi=110, **kw)


__all__ = ["FAMILY_COLOURS", "FAMILY_MEMBERS", "FAMILY_PALETTES", "ORACLE_STYLE", "ZERO_STYLE", "base_name",
           "family_of", "figure", "legend_outside", "line_kw", "log_axis", "method_style", "rule_colour", "save",
           "single_markers", "style", "tidy_log_ticks"]
