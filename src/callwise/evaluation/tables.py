"""How every command prints: tables that keep names whole, in four output formats, and numbers as a
person reads them.

- :class:`Table` (title, full column heads, rows of :func:`cell`\\ s: the number and the text shown)
  and :class:`Out`, which renders them as ``table`` (rich, to the console's width: a table wider
  than that is split into panels of columns, each repeating the name columns, so no name or head is
  cut), ``md`` (Markdown), ``csv`` (one block per table, ``# title`` above it) or ``json`` (one
  object: tables with their rows keyed by column head, and the notes). ``csv`` and ``json`` hold the
  unrounded numbers, ``table`` and ``md`` the rounded text.
- :func:`usd` (dollars, three significant digits, never scientific), :func:`per_1k` (dollars per
  1,000 queries: how per-query costs are printed everywhere), :func:`count` (integers with
  thousands separators), :func:`short_names` (model names without their ``org/`` prefix where that
  keeps them distinct).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..core.money import per_1k, usd  # noqa: F401  (the one money formatter, re-exported)

#: The output formats of ``--format``.
OUTPUT_FORMATS = ("table", "csv", "json", "md")
#: What a cell shows for a number that is undefined (not merely missing), e.g. AIQ without a cost range.
NA = "n/a"


# -- numbers ------------------------------------------------------------------------------------------


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def count(n: Any) -> str:
    """An integer with thousands separators."""
    try:
        return f"{int(n):,}"
    except (TypeError, ValueError):
        return str(n)


def short_names(names: Iterable[str]) -> dict[str, str]:
    """Each name without its ``org/`` prefix where no two names then read the same; otherwise whole."""
    names = list(dict.fromkeys(names))
    tails = [n.rsplit("/", 1)[-1] for n in names]
    return {n: t if tails.count(t) == 1 else n for n, t in zip(names, tails)}


# -- tables ----------------------------------------------------------------------------------------


@dataclass
class Cell:
    """What a table cell holds (``value``: a number, text, a (low, high) pair or None) and shows (``text``)."""

    value: Any
    text: str
    style: str | None = None


def cell(value: Any, text: str | None = None, style: str | None = None) -> Cell:
    """A cell; its text defaults to the value's."""
    if text is None:
        text = "" if value is None else str(value)
    return Cell(value, text, style)


@dataclass
class Column:
    head: str
    justify: str = "right"
    #: a name column: repeated in every panel when the table is split to fit the width
    key: bool = False
    #: free text (a list of settings): may wrap between words to fit; every other column stays on one line
    wrap: bool = False


@dataclass
class Table:
    title: str | None
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    row_styles: list[str | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, title: str | None, heads: Sequence[str], keys: int = 1, left: Sequence[str] = (),
           wrap: Sequence[str] = ()) -> "Table":
        """Columns from heads: the first ``keys`` are name columns (left-aligned), as are ``left`` and the
        free-text columns ``wrap``."""
        return cls(title, [Column(h, "left" if i < keys or h in left or h in wrap else "right", i < keys, h in wrap)
                           for i, h in enumerate(heads)])

    def add(self, *cells: Any, style: str | None = None) -> None:
        row = [c if isinstance(c, Cell) else cell(c) for c in cells]
        if len(row) != len(self.columns):
            raise ValueError(f"row of {len(row)} cells for {len(self.columns)} columns")
        self.rows.append(row)
        self.row_styles.append(style)

    def heads(self) -> list[str]:
        return [c.head for c in self.columns]

    def records(self) -> list[dict[str, Any]]:
        """Rows as {head: value} for csv/json: a (low, high) value becomes ``head low`` / ``head high``."""
        pairs = {i for i, _ in enumerate(self.columns) if any(isinstance(r[i].value, (tuple, list)) for r in self.rows)}
        out = []
        for r in self.rows:
            d: dict[str, Any] = {}
            for i, (c, x) in enumerate(zip(self.columns, r)):
                if i in pairs:
                    lo, hi = x.value if isinstance(x.value, (tuple, list)) else (None, None)
                    d[f"{c.head} low"], d[f"{c.head} high"] = _plain(lo), _plain(hi)
                else:
                    d[c.head] = _plain(x.value)
            out.append(d)
        return out


def _plain(v: Any) -> Any:
    """JSON-ready: numpy scalars as Python numbers, NaN and infinities as None."""
    if v is None or isinstance(v, (str, bool)):
        return v
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


_MARKUP = re.compile(r"(?<!\\)\[/?(?:bold|dim|red|green|italic|b|i)\]")


def plain_text(s: str) -> str:
    """Text without rich markup (``[bold]``...) and its escapes."""
    return _MARKUP.sub("", s).replace("\\[", "[")


def escape(s: str) -> str:
    """Text to put inside a line with markup (its brackets print as they are)."""
    from rich.markup import escape as _escape

    return _escape(s)


class Out:
    """Prints :class:`Table` s and lines of text in one output format. ``table`` prints at once on
    ``console``; ``md``, ``csv`` and ``json`` print on ``stream`` (stdout) when :meth:`close` is called,
    so nothing else is mixed in (the commands then send their other messages to stderr)."""

    def __init__(self, console: Any, fmt: str | None = "table", stream: Any = None) -> None:
        fmt = fmt or "table"
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(f"output format must be one of {OUTPUT_FORMATS}, got {fmt!r}")
        self.console, self.fmt, self.stream = console, fmt, stream
        self.items: list[Any] = []

    def __enter__(self) -> "Out":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.close()

    def text(self, line: str, style: str | None = None, markup: bool = False) -> None:
        """A line of prose (a heading, a note, a footnote); ``markup``: it holds rich markup ([bold]...),
        otherwise brackets print as they are."""
        if self.fmt == "table":
            self.console.print(line, style=style, highlight=False, markup=markup)
        else:
            self.items.append(plain_text(line) if markup else line)

    def table(self, t: Table) -> None:
        if self.fmt == "table":
            _print_rich(t, self.console)
        else:
            self.items.append(t)

    def close(self) -> None:
        if self.fmt == "table":
            return
        render = {"md": render_md, "csv": render_csv, "json": render_json}[self.fmt]
        stream = self.stream or sys.stdout
        stream.write(render(self.items))
        stream.flush()
        self.items = []


def _min_width(t: Table, i: int) -> int:
    """The narrowest a column prints: a name or a value whole on one line; a long head or free text
    wrapped between words."""
    c = t.columns[i]
    cells = [plain_text(r[i].text) for r in t.rows]
    words = [len(w) for x in [c.head, *cells] for w in (x.split() or [""])]
    if c.wrap:
        return max(words)
    if c.key:
        return max([len(c.head), *map(len, cells)])
    return max([*words, *map(len, cells)])


def _natural_width(t: Table, i: int) -> int:
    """A column's width with its head and every cell on one line."""
    return max([len(t.columns[i].head), *(len(plain_text(r[i].text)) for r in t.rows)])


def _widths(t: Table, cols: list[int], width: int | None) -> list[int]:
    """Each column's width: its minimum, widened toward one-line heads while ``width`` has room."""
    mins = [_min_width(t, i) for i in cols]
    nats = [max(m, _natural_width(t, i)) for m, i in zip(mins, cols)]
    if width is None:
        return nats
    room = width - (sum(mins) + 3 * len(cols) - 3)
    out = []
    for m, n in zip(mins, nats):
        add = max(0, min(n - m, room))
        room -= add
        out.append(m + add)
    return out


def _rich_table(t: Table, cols: list[int], width: int | None = None) -> Any:
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    rt = RichTable(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for i, w in zip(cols, _widths(t, cols, width)):
        c = t.columns[i]
        rt.add_column(c.head, justify=c.justify, no_wrap=c.key, overflow="fold",  # type: ignore[arg-type]
                      width=w)
    for r, st in zip(t.rows, t.row_styles):
        rt.add_row(*(Text(r[i].text, style=r[i].style or "") for i in cols), style=st)
    return rt


def table_width(t: Table, cols: list[int]) -> int:
    """The narrowest width the columns ``cols`` print in (one space of padding each side, none at the
    edges, a one-character rule between columns)."""
    return sum(_min_width(t, i) for i in cols) + 3 * len(cols) - 3


def panels(t: Table, width: int, measure: Any) -> list[list[int]]:
    """Column index lists, each fitting ``width`` (``measure(cols)``: the rendered width), the name
    columns in every one; a single column too wide for ``width`` gets a panel of its own anyway."""
    keys = [i for i, c in enumerate(t.columns) if c.key]
    rest = [i for i, c in enumerate(t.columns) if not c.key]
    if measure(keys + rest) <= width or not rest:
        return [keys + rest]
    out: list[list[int]] = []
    cur: list[int] = []
    for i in rest:
        if cur and measure(keys + cur + [i]) > width:
            out.append(keys + cur)
            cur = []
        cur.append(i)
    out.append(keys + cur)
    return out


def _print_rich(t: Table, console: Any) -> None:
    width = console.width

    def measure(cols: list[int]) -> int:
        return table_width(t, cols)

    console.print()
    if t.title:
        console.print(t.title, highlight=False, markup=False)
    groups = panels(t, width, measure)
    for j, cols in enumerate(groups):
        if len(groups) > 1:
            console.print(f"({j + 1}/{len(groups)})", style="dim", highlight=False)
        need = measure(cols)
        if need <= width:
            console.print(_rich_table(t, cols, width))
        else:  # one column wider than the console: print it whole (the terminal wraps the line), never cut
            try:
                console.width = need + 2
                console.print(_rich_table(t, cols, need), crop=False)
            finally:
                console.width = width
    for n in t.notes:
        console.print(n, highlight=False, markup=False)


def _md_escape(s: str) -> str:
    return plain_text(s).replace("|", "\\|")


def render_md(items: list[Any]) -> str:
    out = []
    for it in items:
        if isinstance(it, Table):
            if it.title:
                out.append(f"**{_md_escape(it.title)}**\n")
            out.append("| " + " | ".join(_md_escape(h) for h in it.heads()) + " |")
            out.append("|" + "|".join(":---" if c.justify == "left" else "---:" for c in it.columns) + "|")
            for r in it.rows:
                out.append("| " + " | ".join(_md_escape(x.text) for x in r) + " |")
            out.append("")
            out.extend(f"{_md_escape(n)}\n" for n in it.notes)
        else:
            out.append(_md_escape(it) + "\n")
    return "\n".join(out).rstrip() + "\n"


def render_csv(items: list[Any]) -> str:
    """One CSV block per table (``# title`` above its header), blank lines between; text as ``# ...`` lines."""
    buf = io.StringIO()
    for it in items:
        if isinstance(it, Table):
            recs = it.records()
            heads = list(recs[0]) if recs else it.heads()
            if it.title:
                buf.write(f"# {plain_text(it.title)}\n")
            w = csv.DictWriter(buf, fieldnames=heads, lineterminator="\n")
            w.writeheader()
            for r in recs:
                w.writerow({k: "" if v is None else v for k, v in r.items()})
            for n in it.notes:
                buf.write(f"# {plain_text(n)}\n")
            buf.write("\n")
        else:
            buf.write(f"# {it}\n")
    return buf.getvalue()


def render_json(items: list[Any]) -> str:
    tables, notes = [], []
    for it in items:
        if isinstance(it, Table):
            tables.append({"title": plain_text(it.title or ""), "columns": list(it.records()[0]) if it.rows else
                           it.heads(), "rows": it.records(), "notes": [plain_text(n) for n in it.notes]})
        else:
            notes.append(it)
    return json.dumps({"tables": tables, "notes": notes}, indent=1) + "\n"


def parse_csv_blocks(text: str) -> list[dict[str, Any]]:
    """The tables of :func:`render_csv` output: [{"title", "rows": [{head: text}]}] (for tests and scripts)."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        title = next((ln[2:] for ln in lines if ln.startswith("# ")), None)
        body = [ln for ln in lines if not ln.startswith("#")]
        if body:
            out.append({"title": title, "rows": list(csv.DictReader(io.StringIO("\n".join(body))))})
    return out


def kv_table(title: str | None, items: Sequence[tuple[str, Any]], heads: tuple[str, str] = ("", "value")) -> Table:
    """A two-column table of (label, cell or value) pairs: how summaries print."""
    t = Table.of(title, heads, keys=1)
    for k, v in items:
        t.add(k, v if isinstance(v, Cell) else cell(v))
    return t


__all__ = ["NA", "Cell", "Column", "OUTPUT_FORMATS", "Out", "Table", "cell", "count", "kv_table", "panels",
           "parse_csv_blocks", "per_1k", "plain_text", "render_csv", "render_json", "render_md", "short_names", "usd"]
