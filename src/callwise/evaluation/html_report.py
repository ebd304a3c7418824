"""``report.html``: one self-contained page per ``results.json``, with its tables and interactive plots.

Every command that writes ``results.json`` (``bench``, ``cascade``, ``scale``, ``aggregate``,
``allocate``, ``plan``) also writes ``report.html`` beside it. The page is built from the results
payload alone (the dict that ``results.json`` holds), so its tables show exactly the numbers of
``results.json``; each number in a table carries the JSON path it was read from (``data-path``) and
its exact value (``data-value``), so a reader or a test can trace it back. The plots are plotly
figures (hover a point: its policy, settings, cost and quality; click a legend entry to hide or show
a policy, double-click to show it alone), and plotly.js is embedded once, inline, so the page works
offline, opened from disk (it is about 5 MB, nearly all of it plotly.js).

Python API::

    from callwise.evaluation.html_report import write_report
    write_report(json.loads(Path("out/results.json").read_text()), Path("out/report.html"))

or :func:`write_report_from_results` on a ``results.json`` path. :func:`report_kind` tells which
command wrote a payload, :func:`build_report` returns the page as a string.

Money is shown in dollars per 1,000 queries everywhere (``data-scale="1000"`` on such cells; the
``data-value`` is the per-query number of ``results.json``). Styles are the PNGs' (the style map of
:mod:`callwise.core.styles`, translated to plotly), so a policy looks the same in every command
and in both outputs: the oracle black and dashed, the zero router a thick grey dash-dot, single models
dark markers, each family its own colours. Where that map is not importable, this module's own
family styles (``FAMILY_COLOURS``, ``FAMILY_DASH``) keep the same rules.
"""

from __future__ import annotations

import colorsys
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..core.frontier import densify

#: The commands whose payloads this module renders, in the order :func:`report_kind` tries them.
KINDS = ("plan", "aggregate", "allocate", "cascade", "scale", "bench")

#: Base colour of each policy family (the same in every report); members get shades of it.
FAMILY_COLOURS: dict[str, str] = {
    "oracle": "#000000", "zero": "#7f7f7f", "single": "#4d4d4d", "router": "#1f77b4",
    "cascade": "#ff7f0e", "multi-call": "#2ca02c", "composition": "#9467bd", "fixed": "#8c564b",
    "pipeline": "#17becf",
}
#: Line dash of each family's curves.
FAMILY_DASH: dict[str, str] = {
    "oracle": "dash", "zero": "solid", "router": "solid", "cascade": "dashdot", "multi-call": "longdash",
    "composition": "dot", "fixed": "dot", "pipeline": "longdashdot",
}
#: Marker symbols handed out to the members of a family, in order.
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "cross", "x", "pentagon",
           "hexagon", "star", "triangle-left", "triangle-right", "hourglass", "bowtie")
#: Colours of things that are not policies of a family (a command's curves, rules, methods).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d")
_OTHER = "#bcbd22"
_COST_LABEL = "$ / 1k queries"
_MISSING = "—"
#: What a cell shows for a number that is undefined rather than missing (AIQ without a cost range).
_NA = "n/a"
#: Why a bench task has no AIQ (the text of ``callwise.evaluation.bench.AIQ_UNDEFINED``).
_AIQ_UNDEFINED = "all models cost the same on this task: AIQ needs a cost range; compare top quality"


# --------------------------------------------------------------------------------------------
# public API


def report_kind(payload: Mapping[str, Any]) -> str:
    """Which command wrote ``payload``: ``bench``, ``cascade``, ``scale``, ``aggregate``, ``allocate`` or
    ``plan``. Raises ``ValueError`` for a payload of none of these shapes."""
    command = payload.get("command")
    if command in ("plan", "aggregate"):
        return str(command)
    if "chosen" in payload and "baselines" in payload:
        return "allocate"
    if "pairs" in payload and "chains" in payload:
        return "cascade"
    if "curves" in payload and "k_max" in payload:
        return "scale"
    if "tasks" in payload and "overall" in payload:
        return "bench"
    raise ValueError(f"not a callwise results payload (keys: {sorted(payload)[:12]})")


def build_report(payload: Mapping[str, Any], kind: str | None = None, title: str | None = None) -> str:
    """The HTML page (a string) for a results payload; ``kind`` defaults to :func:`report_kind`."""
    kind = kind or report_kind(payload)
    if kind not in _BUILDERS:
        raise ValueError(f"unknown report kind {kind!r}; expected one of {list(_BUILDERS)}")
    doc = _Doc(payload, kind)
    _BUILDERS[kind](doc)
    return doc.render(title or f"callwise {kind} report")


def write_report(payload: Mapping[str, Any], path: Path, kind: str | None = None,
                 title: str | None = None) -> Path:
    """Write the page for ``payload`` (the dict of ``results.json``) to ``path``; returns ``path``."""
    path = Path(path)
    path.write_text(build_report(payload, kind, title), encoding="utf-8")
    return path


def write_report_from_results(results: Path, path: Path | None = None) -> Path:
    """Read a ``results.json`` and write its page (default: ``report.html`` beside it)."""
    results = Path(results)
    payload = json.loads(results.read_text(encoding="utf-8"))
    return write_report(payload, path if path is not None else results.with_name("report.html"))


# --------------------------------------------------------------------------------------------
# the document: sections of tables and figures, every number read from the payload by path


Path_ = Sequence[Any]


def _get(obj: Any, path: Path_) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _sig(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits, in plain notation unless tiny or huge."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    e = math.floor(math.log10(abs(x)))
    if e < -5 or e >= 9:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{max(0, digits - 1 - e)}f}"


def _trim(text: str) -> str:
    """``0.05000`` -> ``0.05`` (plain notation only)."""
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


#: How a number is shown: name -> (scale applied before display, formatter of the scaled value).
FORMATS: dict[str, tuple[float, Callable[[float], str]]] = {
    "q": (1.0, lambda v: f"{v:.4f}"),           # qualities, accuracies, AIQs, AUCs, shares
    "signed": (1.0, lambda v: f"{v:+.4f}"),     # differences
    "cost": (1000.0, lambda v: _sig(v, 4)),     # dollars per query, shown per 1,000 queries
    "int": (1.0, lambda v: str(int(v)) if float(v).is_integer() else _sig(v, 4)),
    "g": (1.0, lambda v: str(v) if isinstance(v, int) else _trim(_sig(v, 4))),  # anything else (JSON ints as such)
}


@dataclass
class _Doc:
    """A page under construction: the payload, the sections written so far, a figure counter."""

    payload: Mapping[str, Any]
    kind: str
    parts: list[str] = field(default_factory=list)
    toc: list[tuple[str, str]] = field(default_factory=list)
    n_figures: int = 0

    # -- cells ------------------------------------------------------------------------------
    def num(self, path: Path_, fmt: str = "g", tag: str = "span", missing: str = _MISSING) -> str:
        """One number of the payload, shown with ``fmt`` and tagged with its JSON path and value; a null
        shows ``missing`` (still tagged), a path the payload lacks an untagged dash."""
        if not _has(self.payload, path):
            return _MISSING
        v = _get(self.payload, path)
        scale, f = FORMATS[fmt]
        attrs = f' data-path="{_attr(json.dumps(list(path)))}" data-value="{_attr(json.dumps(v))}"'
        if scale != 1.0:
            attrs += f' data-scale="{scale:g}"'
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return f'<{tag} class="num missing"{attrs}>{html.escape(missing)}</{tag}>'
        if not _is_num(v):
            return html.escape(str(v))
        return f'<{tag} class="num"{attrs}>{html.escape(f(v * scale))}</{tag}>'

    def ci(self, path: Path_, fmt: str = "q", missing: str = _MISSING) -> str:
        """A ``[low, high]`` pair of the payload as "low – high" (each number tagged), or ``missing``
        (where the payload has no such pair: no bootstrap, or nothing to bootstrap)."""
        v = _get_opt(self.payload, path)
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            return f'<span class="missing">{html.escape(missing)}</span>'
        return f'<span class="ci">{self.num([*path, 0], fmt)} – {self.num([*path, 1], fmt)}</span>'

    def value(self, path: Path_, fmt: str = "g") -> str:
        """Any leaf: a tagged number, a yes/no, a list, or escaped text."""
        v = _get(self.payload, path)
        if v is None or _is_num(v):
            return self.num(path, fmt)
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, list):
            if all(_is_num(x) or x is None for x in v):
                return ", ".join(self.num([*path, i], fmt) for i in range(len(v))) or "(none)"
            if all(isinstance(x, (str, bool)) for x in v):
                return html.escape(", ".join(map(str, v))) or "(none)"
            return html.escape(json.dumps(v, default=str))
        if isinstance(v, dict):
            return html.escape(_settings_text(v, 10_000))
        return html.escape(str(v))

    # -- blocks -----------------------------------------------------------------------------
    def section(self, title: str, level: int = 2) -> None:
        anchor = f"s{len(self.toc) + 1}"
        if level == 2:
            self.toc.append((anchor, title))
        self.parts.append(f'<h{level} id="{anchor}">{html.escape(title)}</h{level}>')

    def para(self, text: str, cls: str = "") -> None:
        self.parts.append(f'<p class="{cls}">{html.escape(text)}</p>')

    def table(self, headers: Sequence[str | tuple[str, str]], rows: Iterable[Sequence[str]],
              caption: str | None = None, name: str = "", collapsed: bool = False) -> None:
        """A table of already-built cells; a header is text or (text, tooltip)."""
        rows = list(rows)
        if not rows:
            return
        head = "".join(f'<th title="{_attr(h[1])}">{html.escape(h[0])}</th>' if isinstance(h, tuple)
                       else f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        t = (f'<div class="table-wrap"><table class="results" data-table="{_attr(name)}">{cap}'
             f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
        if collapsed:
            t = f"<details><summary>{html.escape(caption or name)} ({len(rows)} rows)</summary>{t}</details>"
        self.parts.append(t)

    def kv(self, path: Path_, caption: str | None = None, skip: Iterable[str] = (), name: str = "",
           fmt: Mapping[str, str] | None = None, collapsed: bool = False) -> None:
        """A two-column table of every leaf under ``path`` (nested keys joined by " › ")."""
        obj = _get(self.payload, path)
        skip = set(skip)
        fmt = dict(fmt or {})
        rows = []
        for k in _leaves(obj, skip):
            v = _get(obj, k)
            f = fmt.get(k[-1]) or _guess(k[-1], v)
            numeric = _is_num(v) or (isinstance(v, list) and bool(v) and all(_is_num(x) for x in v))
            label = " › ".join(map(str, k)) + (f" ({_COST_LABEL})" if f == "cost" and numeric else "")
            is_ci = str(k[-1]).endswith(("_ci", "ci95")) and isinstance(v, list) and len(v) == 2
            rows.append([html.escape(label), self.ci([*path, *k], f) if is_ci else self.value([*path, *k], f)])
        self.table(["", "value"], rows, caption, name or "/".join(map(str, path)) or "run", collapsed)

    def figure(self, fig: Any, caption: str | None = None) -> None:
        """A plotly figure (its data inline; plotly.js is loaded once in the page's head)."""
        import plotly.io as pio

        self.n_figures += 1
        fig.update_layout(template="plotly_white", hovermode="closest", hoverlabel=dict(align="left"),
                          legend=dict(x=1.02, xanchor="left", y=1, yanchor="top", font=dict(size=11),
                                      groupclick="togglegroup"),
                          margin=dict(l=70, r=20, t=50, b=60))
        div = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"fig{self.n_figures}",
                          default_width="100%", default_height=f"{fig.layout.height or 480}px",
                          config={"displaylogo": False, "responsive": True, "toImageButtonOptions":
                                  {"format": "png", "filename": f"callwise-{self.kind}-{self.n_figures}"}})
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure class="plot">{div}{cap}</figure>')

    def render(self, title: str) -> str:
        from plotly.offline import get_plotlyjs

        p = self.payload
        version = p.get("callwise_version") or p.get("version") or _get_opt(p, ["meta", "callwise_version"]) or ""
        created = p.get("created") or ""
        nav = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in self.toc)
        sub = " · ".join(html.escape(str(x)) for x in (f"callwise {version}" if version else "", created) if x)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style>\n<script type=\"text/javascript\">{get_plotlyjs()}</script>\n</head>"
            f"<body data-kind=\"{self.kind}\"><header><h1>{html.escape(title)}</h1><p class=\"sub\">{sub}</p>"
            f"<p class=\"sub\">Tables hold the numbers of <code>results.json</code> beside this file (money in "
            f"dollars per 1,000 queries). Plots: hover a point for its details; click a legend entry to hide or "
            f"show it, double-click to show it alone; drag to zoom, double-click the plot to reset.</p>"
            f"<nav><ul>{nav}</ul></nav></header><main>{''.join(self.parts)}</main></body></html>\n")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1250px;padding:0 24px 48px;
color:#222;line-height:1.4}
header{border-bottom:1px solid #ddd;margin-bottom:12px}h1{margin:18px 0 4px;font-size:1.6em}
h2{margin-top:34px;border-bottom:1px solid #eee;padding-bottom:4px}h3{margin-top:24px}
.sub{color:#555;margin:4px 0;font-size:.92em}nav ul{columns:3;padding-left:18px;font-size:.92em}
.table-wrap{overflow-x:auto;margin:8px 0 16px}
table.results{border-collapse:collapse;font-size:.88em}
table.results caption{text-align:left;font-weight:600;padding:4px 0;caption-side:top}
table.results th,table.results td{border-bottom:1px solid #e4e4e4;padding:3px 10px;text-align:left;vertical-align:top}
table.results th{background:#f6f6f6;position:sticky;top:0;min-width:3em;max-width:11em}
table.results td{max-width:560px;overflow-wrap:break-word}
table.results td:first-child{min-width:8em}.ci{white-space:nowrap}
table.results tbody tr:hover{background:#f4f8ff}
.num{font-variant-numeric:tabular-nums;white-space:nowrap}.missing{color:#999}
td:has(> .num:only-child){text-align:right}
figure.plot{margin:10px 0 22px;border:1px solid #eee;padding:4px}figcaption{color:#555;font-size:.88em;padding:4px 8px}
p.note{color:#7a4b00;background:#fff8e6;padding:4px 8px;border-left:3px solid #f0b400;font-size:.9em}
details summary{cursor:pointer;color:#245;margin:6px 0}
code{background:#f3f3f3;padding:0 3px}
"""


def _attr(s: str) -> str:
    return html.escape(s, quote=True)


def _get_opt(obj: Any, path: Path_) -> Any:
    try:
        return _get(obj, path)
    except (KeyError, IndexError, TypeError):
        return None


def _leaves(obj: Any, skip: set[str], prefix: tuple = ()) -> list[tuple]:
    """Key paths of the leaves of nested dicts (lists are leaves)."""
    out: list[tuple] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in skip:
                continue
            if isinstance(v, dict) and v:
                out.extend(_leaves(v, skip, (*prefix, k)))
            else:
                out.append((*prefix, k))
    return out


def _guess(key: Any, value: Any = None) -> str:
    """A format for a leaf from its key and value: counts (and any JSON integer) as integers, money
    (dollars per query: costs, budgets, spend) in $/1k queries, else general."""
    k = str(key).lower()
    counts = ("seed", "folds", "reps", "resamples", "n", "budgets", "orders", "pairs", "chains", "evaluations",
              "rounds", "prompts", "left_out", "k_max", "best_k", "plateau_k", "budget_evals", "scored",
              "search_space", "horizon")
    if isinstance(value, int) or k.startswith("n_") or k in counts:
        return "int"
    money = ("cost" in k or k.startswith("budget") or "spent" in k or "saved" in k) and not any(
        w in k for w in ("ratio", "share", "rule", "note", "mode"))
    return "cost" if money else "g"


def _settings_text(settings: Mapping[str, Any] | None, width: int = 60) -> str:
    """``k=v, ...`` of the settings that are set (None left out), wrapped for a hover box."""
    if not settings:
        return ""
    items = []
    for k, v in settings.items():
        if v is None:
            continue
        if isinstance(v, float):
            v = _sig(v, 4)
        elif isinstance(v, (list, tuple)):
            v = "[" + ", ".join(_sig(x, 4) if isinstance(x, float) else str(x) for x in v) + "]"
        elif isinstance(v, dict):
            v = "{" + _settings_text(v, 10_000) + "}"
        items.append(f"{k}={v}")
    lines, line = [], ""
    for it in items:
        if line and len(line) + len(it) + 2 > width:
            lines.append(line + ",")
            line = it
        else:
            line = f"{line}, {it}" if line else it
    if line:
        lines.append(line)
    return "<br>".join(html.escape(x) for x in lines) if width < 10_000 else ", ".join(lines)


def _hover(rows: Sequence[tuple[str, Any]]) -> str:
    """A hover box: ``label: value`` lines (values pre-formatted; empty ones left out)."""
    return "<br>".join(f"<b>{html.escape(k)}</b>: {v}" if k else str(v) for k, v in rows if v not in (None, ""))


def _usd(v: float | None) -> str:
    """Dollars per 1,000 queries for a hover box."""
    return _MISSING if v is None else f"${_sig(v * 1000, 4)} / 1k queries (${_sig(v, 3)} / query)"


def _q(v: float | None) -> str:
    return _MISSING if v is None else f"{v:.4f}"


def _shade(hex_colour: str, i: int, n: int) -> str:
    """The ``i``-th of ``n`` shades of a colour (lightness spread around the base colour's)."""
    if n <= 1:
        return hex_colour
    r, g, b = (int(hex_colour[j:j + 2], 16) / 255 for j in (1, 3, 5))
    h, l_, s = colorsys.rgb_to_hls(r, g, b)
    lo, hi = max(0.22, l_ - 0.2), min(0.72, l_ + 0.2)
    light = lo + (hi - lo) * i / (n - 1)
    r, g, b = colorsys.hls_to_rgb(h, light, s)
    return "#{:02x}{:02x}{:02x}".format(*(round(c * 255) for c in (r, g, b)))


class _Styles:
    """Colour, dash and marker of each policy of one plot, from its family and its rank in it."""

    def __init__(self, families: Mapping[str, str]):
        self.family = dict(families)
        members: dict[str, list[str]] = {}
        for name, fam in families.items():
            members.setdefault(fam, []).append(name)
        self.rank = {n: (i, len(m)) for m in members.values() for i, n in enumerate(m)}

        singles = [n for n, f in families.items() if f == "single"]
        self.single_marker = _shared_single_markers(singles)

    def __call__(self, name: str) -> dict[str, Any]:
        fam = self.family.get(name, "")
        shared = _shared_style(name, fam or None)
        if shared is not None:
            if fam == "single" and name in self.single_marker:
                shared["symbol"] = self.single_marker[name]
            return shared
        i, n = self.rank.get(name, (0, 1))
        base = FAMILY_COLOURS.get(fam, _OTHER)
        return {"color": base if fam in ("oracle", "zero", "single") else _shade(base, i, n),
                "dash": FAMILY_DASH.get(fam, "solid"), "symbol": SYMBOLS[i % len(SYMBOLS)],
                "width": 3.0 if fam == "zero" else 1.6 if fam == "oracle" else 2.0}


# The PNGs' style map (callwise.core.styles, matplotlib keywords) in plotly's terms, so a policy
# looks the same in report.html as in the PNGs of every command; this module's own family styles
# above stand in where that map is not available.
_MPL_DASH = {"-": "solid", "--": "dash", "-.": "dashdot", ":": "dot", "none": "solid", "": "solid"}
_MPL_SYMBOL = {"o": "circle", "s": "square", "^": "triangle-up", "v": "triangle-down", "D": "diamond", "d": "diamond",
               "P": "cross", "X": "x", "<": "triangle-left", ">": "triangle-right", "h": "hexagon", "H": "hexagon",
               "p": "pentagon", "*": "star", "+": "cross-thin", "x": "x-thin"}


def _styles_module() -> Any:
    try:
        from ..core import styles
    except ImportError:
        return None
    return styles


def _from_mpl(st: Mapping[str, Any]) -> dict[str, Any]:
    ls = st.get("ls", "-")
    return {"color": str(st.get("color", _OTHER)), "dash": _MPL_DASH.get(ls, "dash") if isinstance(ls, str) else "dash",
            "width": float(st.get("lw") or 2.0), "symbol": _MPL_SYMBOL.get(str(st.get("marker") or "o"), "circle")}


def _shared_style(name: str, family: str | None) -> dict[str, Any] | None:
    mod = _styles_module()
    if mod is None or not hasattr(mod, "style"):
        return None
    try:
        return _from_mpl(mod.style(name, family))
    except Exception:  # a name the map does not know how to style: this module's own style
        return None


def _shared_single_markers(names: list[str]) -> dict[str, str]:
    mod = _styles_module()
    if mod is None or not hasattr(mod, "single_markers"):
        return {}
    return {n: _MPL_SYMBOL.get(m, "circle") for n, m in mod.single_markers(names).items()}


def _rule_colour(rule: str, j: int) -> str:
    mod = _styles_module()
    if mod is not None and hasattr(mod, "rule_colour"):
        return str(mod.rule_colour(rule))
    return PALETTE[j % len(PALETTE)]


def _alloc_method_style(method: str, j: int) -> dict[str, Any]:
    mod = _styles_module()
    if mod is not None and hasattr(mod, "method_style"):
        st = mod.method_style(method)
        return {"color": str(st.get("color", PALETTE[j % len(PALETTE)])),
                "symbol": _MPL_SYMBOL.get(str(st.get("marker", "o")), "circle")}
    return {"color": PALETTE[j % len(PALETTE)], "symbol": SYMBOLS[j % len(SYMBOLS)]}


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def _hull_line(go: Any, hull: Sequence[Sequence[float]], scale: float, name: str, style: Mapping[str, Any],
               group: str, showlegend: bool, hover: list[str] | None = None) -> list[Any]:
    """A hull drawn truthfully on a log axis (straight in linear cost), with hover on its vertices.
    Vertices with a null or infinite coordinate are left off (with their hover text)."""
    keep = [i for i, v in enumerate(hull or []) if _finite_pair(v)]
    h = np.asarray([hull[i] for i in keep], float).reshape(-1, 2)
    if hover is not None:
        hover = [hover[i] for i in keep if i < len(hover)]
    if not len(h):
        return []
    xs, ys = densify(h[:, 0], h[:, 1], per_segment=20)
    one = len(h) == 1  # a hull of one vertex (every point at one cost) draws no line: mark it
    traces = [go.Scatter(x=xs * scale, y=ys, mode="lines+markers" if one else "lines", name=name, legendgroup=group,
                         showlegend=showlegend,
                         line=dict(color=style["color"], dash=style["dash"], width=style["width"]),
                         marker=dict(color=style["color"], size=14, symbol="line-ew-open", line=dict(width=3))
                         if one else None, hoverinfo="skip")]
    if hover is not None:
        traces.append(go.Scatter(x=h[:, 0] * scale, y=h[:, 1], mode="markers", name=name, legendgroup=group,
                                 showlegend=False, marker=dict(color=style["color"], size=5, opacity=0.0),
                                 text=hover, hovertemplate="%{text}<extra></extra>"))
    return traces


def _finite_pair(v: Any) -> bool:
    """Whether ``v`` is an ``[x, y]`` of two finite numbers (a point of results.json that can be drawn)."""
    return (isinstance(v, (list, tuple)) and len(v) == 2
            and all(_is_num(x) and math.isfinite(x) for x in v))


def _log_ok(values: Iterable[float]) -> bool:
    v = [x for x in values if _is_num(x) and math.isfinite(x)]
    return bool(v) and min(v) > 0


def _log_x(fig: Any, values: Iterable[float]) -> None:
    """A log x axis labelled as plain numbers at 1, 2 and 5 times powers of ten (every integer multiple
    where the range holds fewer than three of those), so labels never overlap or shrink to digits."""
    v = [float(x) for x in values if _is_num(x) and math.isfinite(x) and x > 0]
    if not v:
        return
    lo, hi = min(v) / 1.15, max(v) * 1.15
    ticks: list[float] = []
    for subs in ((1, 2, 5), tuple(range(1, 10))):
        ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                 for m in subs if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 3:
            break
    fig.update_xaxes(type="log", tickmode="array", tickvals=ticks, ticktext=[_trim(_sig(t, 3)) for t in ticks],
                     range=[math.log10(lo), math.log10(hi)])


# --------------------------------------------------------------------------------------------
# bench


def _policy_hover(task: str, name: str, e: Mapping[str, Any], j: int, x: float, y: float, xlabel: str,
                  xfmt: Callable[[float], str]) -> str:
    params = e.get("params") or []
    settings = params[j] if j < len(params) else None
    return _hover([("policy", html.escape(name)), ("family", html.escape(str(e.get("family", "")))),
                   ("task", html.escape(task)), ("settings", _settings_text(settings)), (xlabel, xfmt(x)),
                   ("quality", _q(y))])


def _plane_figure(task: str, entries: Mapping[str, Mapping[str, Any]], families: Mapping[str, str],
                  latency: bool, title: str, estimated: bool) -> Any:
    """One policy plane: each policy's points (hover: settings) and hull; the oracle's and zero's hulls."""
    go = _go()
    fig = go.Figure()
    styles = _Styles(families)
    scale = 1.0 if latency else 1000.0
    xlabel = "latency" if latency else "cost"
    xfmt = (lambda v: f"{_sig(v, 4)} s") if latency else _usd
    xs_all: list[float] = []
    for name, e in entries.items():
        fam = families.get(name, "")
        st = styles(name)
        # points and hull vertices with a null (or infinite) coordinate are left off the plot: a policy
        # that never reached a cost, or an overall curve that could not be pooled
        raw = e.get("points") or []
        idx = [j for j, v in enumerate(raw) if _finite_pair(v)]
        pts = np.asarray([raw[j] for j in idx], float).reshape(-1, 2)
        hull = [v for v in (e.get("hull") or []) if _finite_pair(v)]
        xs_all += [float(x) for x in pts[:, 0]] + [float(v[0]) for v in hull]
        if not len(pts) and not hull:
            continue
        aiq = (e.get("aiq") or {}).get("paper")
        shown = f"AIQ {aiq:.3f}" if _is_num(aiq) else "AIQ n/a" if "paper" in (e.get("aiq") or {}) else ""
        label = f"{name} ({shown})" if shown and fam != "single" else name
        hover = [_policy_hover(task, name, e, j, float(x), float(y), xlabel, xfmt) for j, (x, y) in zip(idx, pts)]
        if fam == "single":
            fig.add_trace(go.Scatter(x=pts[:, 0] * scale, y=pts[:, 1], mode="markers", name=label, legendgroup=name,
                                     marker=dict(color=st["color"], size=12, symbol=st["symbol"],
                                                 line=dict(color="white", width=1)),
                                     text=hover, hovertemplate="%{text}<extra></extra>"))
            continue
        if fam in ("oracle", "zero"):
            hh = [_hover([("policy", html.escape(name)), ("task", html.escape(task)), (xlabel, xfmt(float(c))),
                          ("quality", _q(float(q)))]) for c, q in hull]
            for tr in _hull_line(go, hull, scale, label, st, name, True, hh):
                fig.add_trace(tr)
            continue
        for tr in _hull_line(go, hull, scale, label, st, name, True):
            fig.add_trace(tr)
        fig.add_trace(go.Scatter(x=pts[:, 0] * scale, y=pts[:, 1], mode="markers", name=label, legendgroup=name,
                                 showlegend=False, marker=dict(color=st["color"], size=7, symbol=st["symbol"],
                                                               opacity=0.75),
                                 text=hover, hovertemplate="%{text}<extra></extra>"))
    if latency:
        xt = "mean latency per query (s" + (", log scale)" if _log_ok(xs_all) else ")")
    else:
        xt = (f"mean cost ({_COST_LABEL}" + (", estimated" if estimated else "")
              + (", log scale)" if _log_ok(xs_all) else ")"))
    fig.update_layout(title=title, height=560, xaxis_title=xt, yaxis_title="mean quality (higher is better)")
    if _log_ok(xs_all):
        _log_x(fig, [x * scale for x in xs_all])
    return fig


def _bench_table(doc: _Doc, base: list[Any], entries: Mapping[str, Mapping[str, Any]], level: float,
                 caption: str, overall: bool = False, aiq_defined: bool = True) -> None:
    """A bench table; ``aiq_defined=False`` (a task without a cost range): its AIQs and gaps read n/a."""
    rows = []
    for name, e in entries.items():
        p = [*base, name]
        hull = e.get("hull") or []
        # the top of the hull: its last vertex with a finite cost and quality (none: a curve not pooled)
        top = max((i for i, v in enumerate(hull) if _finite_pair(v)), default=-1)
        na = not aiq_defined or (e.get("aiq") or {}).get("paper", 0) is None  # undefined, not missing
        undefined = _NA if na else _MISSING
        row = [html.escape(name), html.escape(str(e.get("family", ""))),
               doc.num([*p, "aiq", "paper"], "q", missing=undefined),
               doc.ci([*p, "aiq_ci", "paper"], missing=undefined),
               doc.num([*p, "aiq", "routerbench-code"], "q", missing=undefined),
               doc.num([*p, "hull", top, 1], "q") if top >= 0 else _MISSING,
               doc.num([*p, "hull", top, 0], "cost") if top >= 0 else _MISSING]
        if overall:
            row += [doc.num([*p, "n_tasks"], "int") + (f" (AIQ over {doc.num([*p, 'n_tasks_aiq'], 'int')})"
                                                       if "n_tasks_aiq" in e else "")]
        else:
            row += [doc.num([*p, "cost_to_95pct_best_model"], "cost", missing="never"),
                    doc.num([*p, "quality_at_best_model_cost"], "q")]
        row += [doc.num([*p, "gap_closed"], "signed", missing=undefined)]
        rows.append(row)
    heads: list[str | tuple[str, str]] = [
        "policy", "family", ("AIQ (paper)", doc.payload.get("aiq_normalisations", {}).get("paper", "")),
        (f"{level:.0%} CI of AIQ", "bootstrap over the test prompts"),
        ("AIQ (RouterBench code)", doc.payload.get("aiq_normalisations", {}).get("routerbench-code", "")),
        ("top quality", "the highest quality on the policy's hull"),
        (f"cost at top ({_COST_LABEL})", "mean cost of the hull's highest point")]
    if overall:
        heads += [("tasks", "tasks the policy ran on")]
    else:
        targets = doc.payload.get("targets", {})
        heads += [(f"cost to 95% of best model ({_COST_LABEL})", targets.get("cost_to_95pct_best_model", "")),
                  ("quality at best model's cost", targets.get("quality_at_best_model_cost", "") + " (—: the "
                   "hull starts above that cost)")]
    heads += [("gap closed", "share of the AIQ gap between the zero router (0) and the oracle (1) the policy "
               "closes; negative: below the zero router (a single model alone scores below the hull of all)")]
    doc.table(heads, rows, caption, name="/".join(map(str, base)))


def _bench(doc: _Doc) -> None:
    p = doc.payload
    data = p.get("data", {})
    estimated = bool(data.get("costs_estimated"))
    level = float(p.get("bootstrap", {}).get("level", 0.95))
    doc.section("Run")
    if estimated:
        doc.para("Costs are ESTIMATED (from a price table), not recorded.", "note")
    for note in data.get("notes", []) or []:
        doc.para(f"note: {note}", "note")
    doc.kv([], "settings and data", skip={"tasks", "overall", "aiq_normalisations", "targets", "price_table",
                                          "notes"}, name="run")
    doc.kv([], "what the columns mean", skip={k for k in p if k not in ("aiq_normalisations", "targets")},
           name="definitions", collapsed=True)
    for task, t in p.get("tasks", {}).items():
        doc.section(f"task {task}")
        base = ["tasks", task]
        doc.table(["train prompts", "test prompts", f"cost range ({_COST_LABEL})", "best single model"],
                  [[doc.num([*base, "n_train"], "int"), doc.num([*base, "n_test"], "int"),
                    doc.ci([*base, "cost_range"], "cost"), html.escape(str(t.get("best_single_model", "")))]],
                  name=f"tasks/{task}/summary")
        entries = t.get("policies", {})
        defined = t.get("aiq_defined", True) is not False
        if not defined:
            for note in t.get("notes") or [_AIQ_UNDEFINED]:
                doc.para(f"AIQ and gap closed n/a: {note}.", "note")
        families = {n: str(e.get("family", "")) for n, e in entries.items()}
        doc.figure(_plane_figure(task, entries, families, False, f"{task}: quality against cost", estimated),
                   "Each policy's configurations (markers) and its hull (line). The zero router is the hull of the "
                   "single models; the oracle reads correctness (an upper bound).")
        _bench_table(doc, [*base, "policies"], entries, level, f"{task}: every policy", aiq_defined=defined)
        if defined:
            doc.para("AIQ counts 0 below a curve's cheapest point, so the dearest single model (one point at the "
                     "top of the cost range) scores about 0. Gap closed = (AIQ − the zero router's) / (the oracle's − "
                     "the zero router's): 0 for the zero router, 1 for the oracle, negative for a policy under the "
                     "zero router's hull (a single model alone, for one).", "sub")
        rl = [(n, e) for n, e in entries.items() if isinstance(e.get("routellm"), dict)]
        if rl:
            doc.table(["policy", "strong model", "weak model", ("APGR", "average performance gap recovered"),
                       ("CPT(50%)", "share of calls to the strong model needed to recover 50% of the gap"),
                       ("CPT(80%)", "the same for 80%")],
                      [[html.escape(n), html.escape(str(e["routellm"].get("strong"))),
                        html.escape(str(e["routellm"].get("weak"))),
                        doc.num([*base, "policies", n, "routellm", "apgr"], "q"),
                        doc.num([*base, "policies", n, "routellm", "cpt50"], "q"),
                        doc.num([*base, "policies", n, "routellm", "cpt80"], "q")] for n, e in rl],
                      f"{task}: RouteLLM's metrics (strong vs weak model)", name=f"tasks/{task}/routellm",
                      collapsed=True)
        lat = t.get("latency")
        if isinstance(lat, dict) and lat.get("entries"):
            le = lat["entries"]
            doc.figure(_plane_figure(task, le, {n: families.get(n, "") for n in le}, True,
                                     f"{task}: quality against latency", estimated))
            doc.table(["policy", "AIQ (paper)", "AIQ (RouterBench code)"],
                      [[html.escape(n), doc.num([*base, "latency", "entries", n, "aiq", "paper"], "q"),
                        doc.num([*base, "latency", "entries", n, "aiq", "routerbench-code"], "q")] for n in le],
                      f"{task}: the quality–latency plane", name=f"tasks/{task}/latency")
    ov = p.get("overall", {})
    if ov.get("policies"):
        doc.section("overall")
        doc.para(f"AIQ: {ov.get('aiq_rule', '')}; points: {ov.get('points_rule', '')}.")
        left = (ov.get("aiq_left_out") or {}).get("tasks") or []
        if left:
            doc.para(f"The overall AIQ leaves out {len(left)} task(s) where all models cost the same (AIQ needs a "
                     f"cost range): {', '.join(map(str, left))}.", "note")
        entries = ov["policies"]
        families = {n: str(e.get("family", "")) for n, e in entries.items()}
        doc.figure(_plane_figure("overall", entries, families, False, "overall: quality against cost", estimated))
        _bench_table(doc, ["overall", "policies"], entries, level, "overall: every policy", overall=True)


# --------------------------------------------------------------------------------------------
# cascade


def _method_style(name: str, colours: dict[str, str]) -> dict[str, Any]:
    shared = _shared_style(name, None)
    if shared is not None:
        return shared
    base = name.split("@")[0]
    if base == "oracle":
        return {"color": FAMILY_COLOURS["oracle"], "dash": "dash", "width": 1.6}
    if base == "random":
        return {"color": FAMILY_COLOURS["zero"], "dash": "dot", "width": 2.0}
    if base not in colours:
        colours[base] = PALETTE[len(colours) % len(PALETTE)]
    return {"color": colours[base], "dash": "dash" if "@" in name else "solid", "width": 2.0}


def _cascade(doc: _Doc) -> None:
    p = doc.payload
    meta = p.get("meta", {})
    costs = str(meta.get("protocol", {}).get("costs", "recorded dollars"))
    dollars = costs == "recorded dollars"
    unit = _COST_LABEL if dollars else costs
    doc.section("Run")
    for note in meta.get("data", {}).get("notes", []) or []:
        doc.para(f"note: {note}", "note")
    doc.kv(["meta"], "settings and protocol", name="meta")
    sm = p.get("summary", {})
    doc.section("summary")
    doc.kv(["summary"], "counts over the pairs", skip={"mean_auc", "wins_by_method"}, name="summary")
    mean_auc = sm.get("mean_auc", {})
    wins = sm.get("wins_by_method", {})
    doc.table(["method", "mean AUC", ("wins", "pairs where the method has the best AUC")],
              [[html.escape(m), doc.num(["summary", "mean_auc", m], "q"),
                doc.num(["summary", "wins_by_method", m], "int") if m in wins else _MISSING] for m in mean_auc],
              "mean AUC over the pairs", name="summary/mean_auc")
    go = _go()
    colours: dict[str, str] = {}
    items = [("pairs", i, r) for i, r in enumerate(p.get("pairs", []))] + \
            [("chains", i, r) for i, r in enumerate(p.get("chains", []))]
    for key, i, r in items:
        base = [key, i]
        models = r.get("models", [])
        title = f"{r.get('task')}: {' → '.join(models)} ({r.get('kind', key[:-1])})"
        doc.section(title)
        doc.table(["model", "accuracy", f"mean recorded cost ({_COST_LABEL})"],
                  [[html.escape(m), doc.num([*base, "model_accuracy", m], "q"), doc.num([*base, "model_cost", m], "cost")]
                   for m in models], f"the models (train {r.get('n_train')} / test {r.get('n_test')} prompts)",
                  name=f"{key}/{i}/models")
        fig = go.Figure()
        budgets = r.get("budgets", [])
        sc = 1000.0 if dollars else 1.0
        for m, d in r.get("methods", {}).items():
            st = _method_style(m, colours)
            hover = [_hover([("method", html.escape(m)), ("task", html.escape(str(r.get("task")))),
                             ("budget", _usd(b) if dollars else f"{_sig(b, 4)}"),
                             ("spent", _usd(c) if dollars else (f"{_sig(c, 4)}" if c is not None else None)),
                             ("accuracy", _q(a))])
                     for b, a, c in zip(budgets, d.get("accuracy", []), d.get("cost") or [None] * len(budgets))]
            fig.add_trace(go.Scatter(x=[b * sc for b in budgets], y=d.get("accuracy", []), mode="lines+markers",
                                     name=f"{m} (AUC {d['auc']:.4f})" if d.get("auc") is not None else m,
                                     line=dict(color=st["color"], dash=st["dash"], width=st["width"]),
                                     marker=dict(size=5), text=hover, hovertemplate="%{text}<extra></extra>"))
        for j, m in enumerate(models):
            c, a = r.get("model_cost", {}).get(m), r.get("model_accuracy", {}).get(m)
            # model_cost is recorded dollars; in other cost units (a fixed ratio, latency) the budget range
            # runs from the first model's cost to the last's, so those two sit at its ends
            x = (c * sc if c is not None else None) if dollars else (
                budgets[0] if j == 0 and budgets else budgets[-1] if j == len(models) - 1 and budgets else None)
            if x is None or a is None:
                continue
            fig.add_trace(go.Scatter(x=[x], y=[a], mode="markers", name=m, legendgroup=f"model {m}",
                                     marker=dict(color=FAMILY_COLOURS["single"], size=12, symbol=SYMBOLS[j % 14],
                                                 line=dict(color="white", width=1)),
                                     text=[_hover([("model", html.escape(m)),
                                                   ("cost", None if dollars else f"{_sig(x, 4)} ({html.escape(unit)})"),
                                                   ("recorded cost", _usd(c)), ("accuracy", _q(a))])],
                                     hovertemplate="%{text}<extra></extra>"))
        fig.update_layout(title=f"{r.get('task')}, {len(models)} models ({r.get('kind', key[:-1])}): accuracy against "
                                f"budget", height=520,
                          xaxis_title=f"budget per query ({unit})", yaxis_title="accuracy (higher is better)")
        doc.figure(fig, "Each method's test accuracy at each budget (hover: the mean it actually spent).")
        rows = []
        for m, d in r.get("methods", {}).items():
            mp = [*base, "methods", m]
            rows.append([html.escape(m), doc.num([*mp, "auc"], "q"), doc.num([*mp, "aiq"], "q"),
                         doc.num([*mp, "max_spend_ratio"], "g") if "max_spend_ratio" in d else _MISSING])
        doc.table(["method", ("AUC", "area under accuracy-vs-budget / budget range"), "AIQ",
                   ("max spend ratio", "the most any budget's spend exceeded it (1: never over)")], rows,
                  "each method", name=f"{key}/{i}/methods")
        cmp_rows = []
        for mode in ("streaming", "offline"):
            bb, diff = r.get(f"best_baseline_{mode}"), r.get(f"confidence_minus_best_baseline_{mode}")
            if not isinstance(bb, dict):
                continue
            cmp_rows.append([mode, html.escape(str(bb.get("method"))), doc.num([*base, f"best_baseline_{mode}", "auc"], "q"),
                             doc.num([*base, f"confidence_minus_best_baseline_{mode}", "auc_difference"], "signed")
                             if isinstance(diff, dict) else _MISSING,
                             doc.ci([*base, f"confidence_minus_best_baseline_{mode}", "ci95"], "signed")
                             if isinstance(diff, dict) else _MISSING,
                             "yes" if r.get(f"confidence_beats_baselines_{mode}") else "no"])
        doc.table(["", "best baseline", "its AUC", "confidence − best baseline (AUC)", "95% CI",
                   "confidence beats every baseline"], cmp_rows, "the confidence cascade against the best baseline",
                  name=f"{key}/{i}/comparison")


# --------------------------------------------------------------------------------------------
# scale


_CURVE_LABELS = {"empirical": "empirical vote (recorded samples)", "resampled": "resampled vote (with replacement)",
                 "fitted": "fitted (all samples)", "predicted": "predicted (from the few samples)",
                 "filter_vote": "Filter-Vote (simulated judge)", "best_of_k_perfect": "Best-of-K, perfect ranker",
                 "best_of_k_noisy": "Best-of-K, noisy ranker"}


def _scale(doc: _Doc) -> None:
    p = doc.payload
    sm = p.get("summary", {})
    doc.section("Run")
    for note in p.get("data", {}).get("notes", []) or []:
        doc.para(f"note: {note}", "note")
    doc.kv([], "settings and data", skip={"summary", "curves", "methods", "notes"}, name="run")
    doc.kv(["methods"], "what the curves are", name="methods", collapsed=True)
    doc.section("vote accuracy against the number of calls K")
    go = _go()
    fig = go.Figure()
    cpc = sm.get("cost_per_call")
    for j, (name, c) in enumerate(p.get("curves", {}).items()):
        ks, acc = c.get("k", []), c.get("accuracy", [])
        colour = PALETTE[j % len(PALETTE)]
        label = _CURVE_LABELS.get(name, name)
        costs = c.get("cost") or ([k * cpc for k in ks] if cpc is not None else [None] * len(ks))
        hover = [_hover([("curve", html.escape(label)), ("settings", f"K={k}"), ("cost", _usd(cost)),
                         ("accuracy", _q(a)),
                         ("95% CI", f"{c['ci_low'][i]:.4f} – {c['ci_high'][i]:.4f}"
                          if "ci_low" in c and c["ci_low"][i] is not None and c["ci_high"][i] is not None else None)])
                 for i, (k, a, cost) in enumerate(zip(ks, acc, costs))]
        if "ci_low" in c and "ci_high" in c:
            fig.add_trace(go.Scatter(x=list(ks) + list(ks)[::-1], y=list(c["ci_high"]) + list(c["ci_low"])[::-1],
                                     fill="toself", fillcolor="rgba(31,119,180,0.15)", line=dict(width=0),
                                     name=f"{label}: 95% CI", legendgroup=name, showlegend=False, hoverinfo="skip"))
        many = len(ks) > 60
        fig.add_trace(go.Scatter(x=ks, y=acc, mode="lines" if many else "lines+markers", name=label, legendgroup=name,
                                 line=dict(color=colour, width=2.4 if name == "empirical" else 1.8,
                                           dash="solid" if name in ("empirical", "resampled") else "dash"),
                                 marker=dict(size=5), text=hover, hovertemplate="%{text}<extra></extra>"))
    fig.update_layout(title=f"{p.get('model')} on {p.get('task')}: accuracy against K", height=540,
                      xaxis_title="calls per prompt K (log scale)", yaxis_title="accuracy (higher is better)")
    _log_x(fig, [k for c in p.get("curves", {}).values() for k in c.get("k", [])])
    doc.figure(fig, "The fitted and predicted curves are fitted at the K of the fit grid (see 'what the curves "
                    "are' above) and extend past the recorded samples; below the grid's smallest K they extrapolate, "
                    "so they can start away from the empirical curve at K = 1. Hover a point for K, its cost (K × "
                    "the mean cost per call where the curve has no recorded cost) and its accuracy.")
    rows = []
    for name in ("empirical", "resampled", "fitted", "predicted"):
        s = sm.get(name)
        if not isinstance(s, dict):
            continue
        b = ["summary", name]
        acc_key = "accuracy" if "accuracy" in s else "accuracy_at_best_k"
        rows.append([html.escape(_CURVE_LABELS.get(name, name)), doc.num([*b, "best_k"], "int"),
                     doc.num([*b, acc_key], "q") if acc_key in s else _MISSING,
                     doc.num([*b, "plateau_k"], "int") if "plateau_k" in s else _MISSING,
                     html.escape(str(s.get("shape", ""))),
                     doc.num([*b, "regret"], "signed") if s.get("regret") is not None or "regret" in s else _MISSING,
                     doc.ci([*b, "regret_ci"], "signed") if "regret_ci" in s else _MISSING,
                     doc.num([*b, "k_error"], "int") if "k_error" in s else _MISSING])
    doc.table(["curve", "best K", "accuracy at best K", ("plateau K", p.get("methods", {}).get("plateau_k", "")),
               "shape", ("regret", p.get("methods", {}).get("regret", "")), "95% CI of regret",
               ("K error", "best K of the curve minus the empirical best K")], rows, "the best K of each curve",
              name="summary/best_k")
    doc.kv(["summary"], "everything else", skip={"fitted", "predicted", "resampled"}, name="summary")
    curves = p.get("curves", {})
    crow = []
    for name, c in curves.items():
        for i, k in enumerate(c.get("k", [])):
            crow.append([html.escape(name), doc.num(["curves", name, "k", i], "int"),
                         doc.num(["curves", name, "accuracy", i], "q"),
                         doc.num(["curves", name, "cost", i], "cost") if "cost" in c else _MISSING])
    doc.table(["curve", "K", "accuracy", f"cost ({_COST_LABEL})"], crow, "every curve point", name="curves",
              collapsed=True)


# --------------------------------------------------------------------------------------------
# aggregate


def _lower_is_better(metric: str) -> bool | None:
    try:
        from ..aggregation import get_metric

        return bool(get_metric(metric).lower_is_better)
    except Exception:  # a metric registered in another process, or a name this version does not know
        return None


def _aggregate(doc: _Doc) -> None:
    p = doc.payload
    rows = p.get("rows", [])
    doc.section("Run")
    for note in p.get("notes", []) or []:
        doc.para(f"note: {note}", "note")
    doc.kv([], "settings and data", skip={"rows", "notes"}, name="run")
    go = _go()
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    level = p.get("level", 0.95)
    for metric in metrics:
        lib = _lower_is_better(metric)
        better = "" if lib is None else (" (lower is better)" if lib else " (higher is better)")
        doc.section(f"{metric}{better}")
        fig = go.Figure()
        idx = [i for i, r in enumerate(rows) if r["metric"] == metric]
        by = {(rows[i]["task"], rows[i]["rule"]): i for i in idx}
        relative = all((t, "first") in by and rows[by[(t, "first")]]["value"] not in (0, None)
                       for t in {rows[i]["task"] for i in idx})
        for j, rule in enumerate(rules):
            xs, ys, lo, hi, hover = [], [], [], [], []
            for t in tasks:
                i = by.get((t, rule))
                if i is None:
                    continue
                r = rows[i]
                v = r["value"]
                base = rows[by[(t, "first")]]["value"] if relative else 1.0
                xs.append(t)
                ys.append(None if v is None else v / base)
                lo.append(None if v is None or r.get("ci_low") is None else (v - r["ci_low"]) / base)
                hi.append(None if v is None or r.get("ci_high") is None else (r["ci_high"] - v) / base)
                hover.append(_hover([("rule", html.escape(rule) + (" (the metric's matched rule)" if r.get("matched")
                                                                    else "")),
                                     ("task", html.escape(t)), ("metric", html.escape(metric)),
                                     ("settings", f"n={p.get('n')}, draws={p.get('draws')}, reps={p.get('reps')}"),
                                     ("value", _sig(v, 5) if v is not None else _MISSING),
                                     (f"{level:.0%} CI", f"{_sig(r['ci_low'], 5)} – {_sig(r['ci_high'], 5)}"
                                      if r.get("ci_low") is not None and r.get("ci_high") is not None else None),
                                     ("relative to first", f"{v / base:.4f}" if relative and v is not None else None),
                                     ("best", "yes" if r.get("best") else None)]))
            fig.add_trace(go.Bar(x=xs, y=ys, name=rule, marker_color=_rule_colour(rule, j),
                                 error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo, thickness=1),
                                 text=hover, hovertemplate="%{text}<extra></extra>", textposition="none"))
        if relative:
            fig.add_hline(y=1.0, line=dict(color="#555", width=1))
        ylab = (f"{metric} relative to one call (first = 1)" if relative else metric) + better
        fig.update_layout(title=f"{metric}: each rule, per task", barmode="group", height=480,
                          xaxis_title="task", yaxis_title=ylab)
        doc.figure(fig, "Bars: each rule's value" + (" divided by that of one call (the rule 'first')" if relative
                                                     else "") + f", with its {level:.0%} CI; hover for the raw value.")
        trows = []
        for i in idx:
            r = rows[i]
            b = ["rows", i]
            trows.append([html.escape(str(r["task"])), html.escape(str(r.get("kind", ""))), html.escape(str(r["rule"])),
                          "yes" if r.get("matched") else "", doc.num([*b, "value"], "g"),
                          f"{doc.num([*b, 'ci_low'], 'g')} – {doc.num([*b, 'ci_high'], 'g')}",
                          doc.num([*b, "diff_vs_matched"], "g"),
                          f"{doc.num([*b, 'diff_ci_low'], 'g')} – {doc.num([*b, 'diff_ci_high'], 'g')}",
                          doc.num([*b, "prompts"], "int"), doc.num([*b, "left_out"], "int"),
                          "yes" if r.get("best") else ""])
        doc.table(["task", "kind", "rule", ("matched", "the rule the metric calls for"), "value",
                   f"{level:.0%} CI", ("difference vs matched rule", "value minus the matched rule's, paired"),
                   f"{level:.0%} CI of difference", "prompts", ("left out", "prompts without a usable answer"),
                   ("best", "best rule of the task under this metric")], trows, f"{metric}: every rule and task",
                  name=f"rows/{metric}")


# --------------------------------------------------------------------------------------------
# allocate


def _alloc_text(alloc: Any) -> str:
    if isinstance(alloc, dict):
        return ", ".join(f"{k}: {v}" for k, v in alloc.items())
    if isinstance(alloc, (list, tuple)):
        return ", ".join(map(str, alloc))
    return str(alloc)


def _allocate(doc: _Doc) -> None:
    p = doc.payload
    doc.section("Run")
    doc.kv(["meta"], "settings and data", name="meta")
    methods = [("chosen", None, p["chosen"])] + [("baselines", i, b) for i, b in enumerate(p.get("baselines", []))]
    doc.section("the chosen allocation and the baselines")
    rows = []
    for key, i, m in methods:
        b = [key] if i is None else [key, i]
        rows.append([html.escape(str(m.get("method"))) + (" (chosen)" if i is None else ""),
                     html.escape(_alloc_text(m.get("allocation"))),
                     doc.num([*b, "train", "quality"], "q"), doc.num([*b, "train", "cost"], "cost"),
                     doc.num([*b, "test", "quality"], "q"),
                     doc.ci([*b, "test", "quality_ci"]) if "quality_ci" in m.get("test", {}) else _MISSING,
                     doc.num([*b, "test", "cost"], "cost"), doc.num([*b, "evaluations"], "int"),
                     doc.num([*b, "rounds"], "int") if "rounds" in m else _MISSING,
                     html.escape(str(m.get("stopped", "")))])
    doc.table(["method", "allocation (module: model)", "train quality", f"train cost ({_COST_LABEL})",
               "test quality", "95% CI", f"test cost ({_COST_LABEL})",
               ("evaluations", "allocations scored on the training questions"), "rounds", "stopped"],
              rows, "each search method", name="methods")
    go = _go()
    mstyle = {m.get("method"): _alloc_method_style(str(m.get("method")), j) for j, (_, _, m) in enumerate(methods)}
    for split in ("train", "test"):
        fig = go.Figure()
        if split == "train" and p.get("evaluated"):
            ev = p["evaluated"]
            fig.add_trace(go.Scatter(
                x=[e["cost"] * 1000 for e in ev], y=[e["quality"] for e in ev], mode="markers",
                name="allocations scored", marker=dict(color="#bbbbbb", size=6),
                text=[_hover([("allocation", html.escape(_alloc_text(e["allocation"]))), ("cost", _usd(e["cost"])),
                              ("quality", _q(e["quality"]))]) for e in ev], hovertemplate="%{text}<extra></extra>"))
        par = sorted(p.get("pareto", []), key=lambda e: e[split]["cost"])
        if par:
            fig.add_trace(go.Scatter(
                x=[e[split]["cost"] * 1000 for e in par], y=[e[split]["quality"] for e in par], mode="lines+markers",
                name=f"Pareto front (train){'' if split == 'train' else ', on test'}",
                line=dict(color="#5a5a8c", width=2), marker=dict(size=6),
                text=[_hover([("allocation", html.escape(_alloc_text(e["allocation"]))), ("split", split),
                              ("cost", _usd(e[split]["cost"])), ("quality", _q(e[split]["quality"]))]) for e in par],
                hovertemplate="%{text}<extra></extra>"))
        for j, (key, _, m) in enumerate(methods):
            s = m.get(split, {})
            ci = s.get("quality_ci")
            err = (dict(type="data", symmetric=False, array=[ci[1] - s["quality"]], arrayminus=[s["quality"] - ci[0]])
                   if ci and None not in ci and s.get("quality") is not None else None)
            fig.add_trace(go.Scatter(
                x=[s.get("cost", 0) * 1000], y=[s.get("quality")], mode="markers",
                name=f"{m.get('method')}{' (chosen)' if key == 'chosen' else ''}", error_y=err,
                marker=dict(color=mstyle[m.get("method")]["color"], size=16 if key == "chosen" else 11,
                            symbol="star" if key == "chosen" else mstyle[m.get("method")]["symbol"],
                            line=dict(color="black", width=1)),
                text=[_hover([("method", html.escape(str(m.get("method")))),
                              ("allocation", html.escape(_alloc_text(m.get("allocation")))), ("split", split),
                              ("cost", _usd(s.get("cost"))), ("quality", _q(s.get("quality"))),
                              ("95% CI", f"{ci[0]:.4f} – {ci[1]:.4f}" if ci and None not in ci else None)])],
                hovertemplate="%{text}<extra></extra>"))
        if split == "test":
            for u in p.get("under_budget", []):
                if u.get("test", {}).get("cost") is None:
                    continue
                fig.add_trace(go.Scatter(
                    x=[u["test"]["cost"] * 1000], y=[u["test"]["quality"]], mode="markers",
                    name=f"best under {_usd(u['budget']).split(' (')[0]}",
                    marker=dict(color="#d62728", size=11, symbol="diamond-open", line=dict(width=2)),
                    text=[_hover([("budget", _usd(u["budget"])), ("allocation", html.escape(_alloc_text(u["allocation"]))),
                                  ("cost", _usd(u["test"]["cost"])), ("quality", _q(u["test"]["quality"]))])],
                    hovertemplate="%{text}<extra></extra>"))
        xs = [x for t in fig.data for x in (t.x if t.x is not None else ())]
        fig.update_layout(title=f"allocations on the {split} questions", height=500,
                          xaxis_title=f"mean cost ({_COST_LABEL}" + (", log scale)" if _log_ok(xs) else ")"),
                          yaxis_title=f"{p.get('meta', {}).get('metric', 'quality')} (higher is better)")
        if _log_ok(xs):
            _log_x(fig, xs)
        doc.figure(fig)
    if p.get("under_budget"):
        doc.table(["budget (" + _COST_LABEL + ")", "allocation", "train quality", f"train cost ({_COST_LABEL})",
                   "test quality", f"test cost ({_COST_LABEL})"],
                  [[doc.num(["under_budget", i, "budget"], "cost"), html.escape(_alloc_text(u.get("allocation"))),
                    doc.num(["under_budget", i, "train", "quality"], "q"),
                    doc.num(["under_budget", i, "train", "cost"], "cost"),
                    doc.num(["under_budget", i, "test", "quality"], "q"),
                    doc.num(["under_budget", i, "test", "cost"], "cost")] for i, u in enumerate(p["under_budget"])],
                  "the best allocation found under each budget", name="under_budget")
    if p.get("pareto"):
        doc.table(["allocation", "train quality", f"train cost ({_COST_LABEL})", "test quality",
                   f"test cost ({_COST_LABEL})"],
                  [[html.escape(_alloc_text(u.get("allocation"))), doc.num(["pareto", i, "train", "quality"], "q"),
                    doc.num(["pareto", i, "train", "cost"], "cost"), doc.num(["pareto", i, "test", "quality"], "q"),
                    doc.num(["pareto", i, "test", "cost"], "cost")] for i, u in enumerate(p["pareto"])],
                  "the Pareto front of the allocations scored (train)", name="pareto")
    if p.get("evaluated"):
        doc.table(["allocation", "train quality", f"train cost ({_COST_LABEL})"],
                  [[html.escape(_alloc_text(e.get("allocation"))), doc.num(["evaluated", i, "quality"], "q"),
                    doc.num(["evaluated", i, "cost"], "cost")] for i, e in enumerate(p["evaluated"])],
                  "every allocation scored", name="evaluated", collapsed=True)


# --------------------------------------------------------------------------------------------
# plan


def _plan_recommendation(doc: _Doc, base: list[Any], rec: Mapping[str, Any]) -> None:
    """The recommendation in one small table: cross-validated and test cost and quality with their
    bounds or intervals, and what it saves against the baseline and the single models' frontier."""

    def cell(path: list[Any], fmt: str) -> str:
        return doc.num([*base, *path], fmt) if _get_opt(rec, path) is not None or _has(rec, path) else ""

    def rng(path: list[Any], fmt: str) -> str:
        return doc.ci([*base, *path], fmt) if isinstance(_get_opt(rec, path), list) else ""

    rows = [["cross-validated (train, out of fold)", cell(["cv", "cost"], "cost"),
             ("upper bound " + cell(["cv", "cost_upper_bound"], "cost")) if _has(rec, ["cv", "cost_upper_bound"]) else "",
             cell(["cv", "quality"], "q"),
             ("lower bound " + cell(["cv", "quality_lower_bound"], "q")) if _has(rec, ["cv", "quality_lower_bound"])
             else ""],
            ["test", cell(["test", "cost"], "cost"), rng(["test", "cost_ci"], "cost"), cell(["test", "quality"], "q"),
             rng(["test", "quality_ci"], "q")]]
    ab = rec.get("against_baseline")
    if isinstance(ab, dict):
        rows += [[f"baseline {html.escape(str(ab.get('model')))} (test)", cell(["against_baseline", "cost"], "cost"), "",
                  cell(["against_baseline", "quality"], "q"), ""],
                 ["saved / gained against the baseline", cell(["against_baseline", "cost_saved"], "cost"),
                  rng(["against_baseline", "cost_saved_ci"], "cost"), cell(["against_baseline", "quality_gained"], "signed"),
                  rng(["against_baseline", "quality_gained_ci"], "signed")]]
    sf = rec.get("against_single_model_frontier")
    if isinstance(sf, dict):
        rows += [["saved at equal quality / gained at equal cost, against the single models' frontier",
                  cell(["against_single_model_frontier", "cost_saved_at_equal_quality"], "cost"),
                  rng(["against_single_model_frontier", "cost_saved_at_equal_quality_ci"], "cost"),
                  cell(["against_single_model_frontier", "quality_gained_at_equal_cost"], "signed"),
                  rng(["against_single_model_frontier", "quality_gained_at_equal_cost_ci"], "signed")]]
    level = (rec.get("bootstrap") or {}).get("level", 0.95)
    doc.table(["", f"cost ({_COST_LABEL})", f"bound or {level:.0%} CI", "quality", f"bound or {level:.0%} CI"], rows,
              f"the recommendation: {rec.get('label')}", name="/".join(map(str, base)))


def _has(obj: Any, path: Path_) -> bool:
    try:
        _get(obj, path)
        return True
    except (KeyError, IndexError, TypeError):
        return False


def _wrap(text: str, width: int = 50) -> str:
    """Break a long legend label into lines (plotly's <br>)."""
    return "<br>".join(text[i:i + width] for i in range(0, len(text), width))


def _plan(doc: _Doc) -> None:
    p = doc.payload
    doc.section("Run")
    data = p.get("data", {})
    if isinstance(data, dict):
        for note in data.get("notes", []) or []:
            doc.para(f"note: {note}", "note")
    doc.kv([], "settings and data", skip={"tasks", "overall", "notes", "price_table"}, name="run")
    if isinstance(p.get("overall"), dict) and p["overall"]:
        doc.section("overall")
        doc.kv(["overall"], "pooled over the tasks with a recommendation", name="overall")
    go = _go()
    estimated = bool(data.get("costs_estimated")) if isinstance(data, dict) else False
    for task, t in p.get("tasks", {}).items():
        base = ["tasks", task]
        doc.section(f"task {task}")
        msg = (t.get("selection") or {}).get("message")
        if msg:
            doc.para(str(msg))
        for note in t.get("notes", []) or []:
            doc.para(f"note: {note}", "note")
        rec = t.get("recommendation")
        fam = t.get("best_by_family_on_test", {}) or {}
        fr = t.get("frontier") or {}
        fig = go.Figure()
        cands = t.get("candidates", []) or []
        families = {c["name"]: str(c.get("family", "")) for c in cands}
        styles = _Styles(families)
        xs_all: list[float] = []
        for c in cands:
            st = styles(c["name"])
            conf = [k for k in c.get("configurations", []) if (k.get("test") or {}).get("cost") is not None]
            xs_all += [k["test"]["cost"] for k in conf]
            hover = [_hover([("candidate", html.escape(c["name"])), ("family", html.escape(str(c.get("family")))),
                             ("policy", html.escape(str(c.get("policy")))),
                             ("settings", _settings_text(k.get("settings"))),
                             ("test cost", _usd(k["test"]["cost"])), ("test quality", _q(k["test"]["quality"])),
                             ("cv cost", _usd((k.get("cv") or {}).get("cost"))),
                             ("cv quality", _q((k.get("cv") or {}).get("quality"))),
                             ("admissible", "yes" if (k.get("cv") or {}).get("admissible") else "no")])
                     for k in conf]
            hull = (fr.get("candidates", {}).get(c["name"]) or {}).get("hull") or []
            for tr in _hull_line(go, hull, 1000.0, c["name"], st, c["name"], False):
                fig.add_trace(tr)
            fig.add_trace(go.Scatter(x=[k["test"]["cost"] * 1000 for k in conf], y=[k["test"]["quality"] for k in conf],
                                     mode="markers", name=f"{c['name']} ({c.get('family')})", legendgroup=c["name"],
                                     marker=dict(color=st["color"], size=9 if len(conf) == 1 else 7,
                                                 symbol=st["symbol"], opacity=0.8),
                                     text=hover, hovertemplate="%{text}<extra></extra>"))
        for key, fam_, label in (("zero", "zero", "zero router (test hindsight)"), ("oracle", "oracle", "oracle")):
            h = (fr.get(key) or {}).get("hull") or []
            aiq = ((fr.get(key) or {}).get("aiq") or {}).get("paper")
            st = {"color": FAMILY_COLOURS[fam_], "dash": FAMILY_DASH[fam_], "width": 3.0 if key == "zero" else 1.6}
            name = f"{label} (AIQ {aiq:.3f})" if aiq is not None else label
            hh = [_hover([("policy", label), ("cost", _usd(a)), ("quality", _q(b))]) for a, b in h]
            xs_all += [a for a, _ in h]
            for tr in _hull_line(go, h, 1000.0, name, st, key, True, hh):
                fig.add_trace(tr)
        vx = (fr.get("cross_family") or {}).get("vertices") or []
        if vx:
            aiq = ((fr.get("cross_family") or {}).get("aiq") or {}).get("paper")
            st = {"color": "#d62728", "dash": "solid", "width": 2.0}
            hh = [_hover([("cross-family hull vertex", html.escape(str(v.get("candidate")))),
                          ("knob value", _sig(v["value"], 4) if isinstance(v.get("value"), float) else v.get("value")),
                          ("cost", _usd(v["cost"])), ("quality", _q(v["quality"]))]) for v in vx]
            for tr in _hull_line(go, [[v["cost"], v["quality"]] for v in vx], 1000.0,
                                 "cross-family hull" + (f" (AIQ {aiq:.3f})" if aiq is not None else ""), st,
                                 "cross", True, hh):
                fig.add_trace(tr)
        if isinstance(rec, dict) and (rec.get("test") or {}).get("cost") is not None:
            fig.add_trace(go.Scatter(x=[rec["test"]["cost"] * 1000], y=[rec["test"]["quality"]], mode="markers",
                                     name=_wrap(f"recommended: {rec.get('label')}"),
                                     marker=dict(color="gold", size=18, symbol="star", line=dict(color="black", width=1)),
                                     text=[_hover([("recommended", html.escape(str(rec.get("label")))),
                                                   ("settings", _settings_text(rec.get("settings"))),
                                                   ("test cost", _usd(rec["test"]["cost"])),
                                                   ("test quality", _q(rec["test"]["quality"]))])],
                                     hovertemplate="%{text}<extra></extra>"))
        ys_all = [y for tr in fig.data for y in (tr.y if tr.y is not None else ()) if y is not None]
        if p.get("budget") is not None and ys_all:
            fig.add_trace(go.Scatter(x=[p["budget"] * 1000] * 2, y=[min(ys_all), max(ys_all)], mode="lines",
                                     name=f"budget ${_sig(p['budget'] * 1000, 3)} / 1k queries",
                                     line=dict(color="#d62728", dash="dot", width=1.2), hoverinfo="skip"))
        if p.get("quality") is not None and xs_all:
            fig.add_trace(go.Scatter(x=[min(xs_all) * 1000, max(xs_all) * 1000], y=[p["quality"]] * 2, mode="lines",
                                     name=f"quality floor {p['quality']:g}",
                                     line=dict(color="#d62728", dash="dot", width=1.2), hoverinfo="skip"))
        log = _log_ok(xs_all)
        fig.update_layout(title=f"plan: {task}, every candidate on the test split", height=580,
                          xaxis_title=f"mean cost on the test split ({_COST_LABEL}" + (", estimated" if estimated else "")
                          + (", log scale)" if log else ")"),
                          yaxis_title="mean quality on the test split (higher is better)")
        if log:
            _log_x(fig, [x * 1000 for x in xs_all])
        doc.figure(fig, "Each candidate's configurations on the test split (hover: settings, cross-validated and "
                        "test cost and quality); the choice was made on cross-validation, the test split read once.")
        if isinstance(rec, dict):
            _plan_recommendation(doc, [*base, "recommendation"], rec)
        doc.table(["family", "best configuration", f"cv cost ({_COST_LABEL})", "cv quality",
                   f"test cost ({_COST_LABEL})", "95% CI", "test quality", "95% CI", "AIQ (paper)", "gap closed"],
                  [[html.escape(f), html.escape(str(b.get("label"))), doc.num([*base, "best_by_family_on_test", f, "cv",
                                                                              "cost"], "cost"),
                    doc.num([*base, "best_by_family_on_test", f, "cv", "quality"], "q"),
                    doc.num([*base, "best_by_family_on_test", f, "test", "cost"], "cost"),
                    doc.ci([*base, "best_by_family_on_test", f, "test", "cost_ci"], "cost"),
                    doc.num([*base, "best_by_family_on_test", f, "test", "quality"], "q"),
                    doc.ci([*base, "best_by_family_on_test", f, "test", "quality_ci"], "q"),
                    doc.num([*base, "best_by_family_on_test", f, "test", "candidate_aiq", "paper"], "q")
                    if "candidate_aiq" in b.get("test", {}) else _MISSING,
                    doc.num([*base, "best_by_family_on_test", f, "test", "candidate_gap_closed"], "signed")
                    if "candidate_gap_closed" in b.get("test", {}) else _MISSING]
                   for f, b in fam.items() if isinstance(b, dict)],
                  "the admissible configuration of each family chosen on cross-validation, read on test",
                  name=f"tasks/{task}/best_by_family")
        if isinstance(rec, dict):
            doc.kv([*base, "recommendation"], "the recommendation in full", name=f"tasks/{task}/recommendation",
                   skip={"data"}, collapsed=True)
        crow = []
        for ci_, c in enumerate(cands):
            for ki, k in enumerate(c.get("configurations", [])):
                b = [*base, "candidates", ci_, "configurations", ki]
                crow.append([html.escape(c["name"]), html.escape(_settings_text(k.get("settings"), 10_000)),
                             doc.num([*b, "cv", "cost"], "cost"), doc.num([*b, "cv", "quality"], "q"),
                             "yes" if (k.get("cv") or {}).get("admissible") else "no",
                             doc.num([*b, "test", "cost"], "cost") if "test" in k else _MISSING,
                             doc.num([*b, "test", "quality"], "q") if "test" in k else _MISSING])
        doc.table(["candidate", "settings", f"cv cost ({_COST_LABEL})", "cv quality", "admissible",
                   f"test cost ({_COST_LABEL})", "test quality"], crow, "every configuration of every candidate",
                  name=f"tasks/{task}/candidates", collapsed=True)


_BUILDERS: dict[str, Callable[[_Doc], None]] = {
    "bench": _bench, "cascade": _cascade, "scale": _scale, "aggregate": _aggregate, "allocate": _allocate,
    "plan": _plan,
}
