"""What the commands show a person: one style per policy across every PNG, plots whose legends and
tick labels hide nothing, tables that keep every name whole at any width, ``--format
table|csv|json|md`` holding the same numbers, ``--input-format`` and the deprecated ``--format
<data format>``, money and counts as a person reads them."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from callwise.cli import app
from callwise.core import styles
from callwise.core.frontier import ndch
from callwise.evaluation.bench import Entry
from callwise.evaluation.report import (
    fit_grid_note,
    plot_aggregate,
    plot_allocation,
    plot_scale,
    plot_task,
    summary_table,
)
from callwise.evaluation.tables import (
    Out,
    Table,
    cell,
    count,
    parse_csv_blocks,
    per_1k,
    short_names,
    usd,
)

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save, kept open for the test to inspect."""
    got: list = []

    def keep(fig, path):
        for ax in fig.axes:
            styles.tidy_log_ticks(ax)
        fig.canvas.draw()
        got.append(fig)

    monkeypatch.setattr(styles, "save", keep)
    yield got
    import matplotlib.pyplot as plt

    for f in got:
        plt.close(f)


# -- the style map ----------------------------------------------------------------------------


def test_zero_oracle_and_two_tier_router_have_distinct_styles() -> None:
    zero, oracle, two = styles.style("zero"), styles.style("oracle"), styles.style("two-tier-router")
    assert len({zero["color"], oracle["color"], two["color"]}) == 3
    assert zero["ls"] != "-" and oracle["ls"] != "-" and zero["ls"] != oracle["ls"]
    # no policy of any family looks like the zero router or the oracle
    for fam, members in styles.FAMILY_MEMBERS.items():
        for m in members:
            s = styles.style(m, fam)
            assert s["color"] not in (zero["color"], oracle["color"]), m
            assert styles.FAMILY_COLOURS["zero"] not in styles.FAMILY_PALETTES[fam]


def test_members_of_a_family_are_told_apart() -> None:
    for fam, members in styles.FAMILY_MEMBERS.items():
        looks = {(styles.style(m, fam)["color"], styles.style(m, fam)["marker"]) for m in members}
        assert len(looks) == len(members), fam


def test_one_style_for_a_policy_in_every_command() -> None:
    # cascade's method names, bench's registered names and plan's candidate labels
    assert styles.style("confidence") == styles.style("confidence-cascade")
    assert styles.style("frugal") == styles.style("frugal-cascade", "cascade")
    assert styles.style("random") == styles.style("random-mix", "fixed")
    assert styles.style("knn@budget=0.002", "router") == styles.style("knn", "router")
    assert styles.style("zero:a+b@weight=0.3", "zero") == styles.style("zero") == styles.ZERO_STYLE
    off = styles.style("confidence@offline")
    assert off["color"] == styles.style("confidence")["color"] and off["ls"] != "-"
    # the plan's family colours are the style map's
    from callwise.plan.report import FAMILY_COLOURS

    assert FAMILY_COLOURS is styles.FAMILY_COLOURS


def _entries() -> dict[str, Entry]:
    def entry(name, family, pts):
        pts = np.asarray(pts, float)
        return Entry(name, family, [], None, None, pts, ndch(pts[:, 0], pts[:, 1]), {"paper": 0.5})

    cheap, dear = [[1e-4, 0.6]], [[4e-3, 0.83]]
    return {"oracle": entry("oracle", "oracle", [[1e-4, 0.62], [1.4e-3, 0.92]]),
            "zero": entry("zero", "zero", [*cheap, *dear]),
            "org/cheap-model": entry("org/cheap-model", "single", cheap),
            "dear-model": entry("dear-model", "single", dear),
            "knn": entry("knn", "router", [[1e-4, 0.6], [1e-3, 0.7], [3e-3, 0.82]]),
            "two-tier-router": entry("two-tier-router", "router", [[1e-4, 0.6], [2e-3, 0.72], [3.5e-3, 0.82]]),
            "threshold": entry("threshold", "router", [[1e-4, 0.6], [2.5e-3, 0.8]])}


def _line_colours(ax) -> dict[str, str]:
    from matplotlib.colors import to_hex

    return {ln.get_label(): to_hex(ln.get_color()) for ln in ax.get_lines()}


def test_bench_and_plan_draw_zero_and_oracle_alike_and_legends_outside(figures, tmp_path) -> None:
    from matplotlib.colors import to_hex

    from callwise.plan.report import plot_plan

    plot_task("t", _entries(), tmp_path / "t.png", costs_estimated=False)
    ax = figures[-1].axes[0]
    lines = _line_colours(ax)
    zero = next(c for k, c in lines.items() if k.startswith("zero router"))
    two = next(c for k, c in lines.items() if k.startswith("two-tier-router"))
    assert zero == to_hex(styles.ZERO_STYLE["color"]) and two != zero
    assert next(c for k, c in lines.items() if k.startswith("oracle")) == to_hex("black")
    _assert_legend_outside(figures[-1], ax)

    plan = SimpleNamespace(task="t", verdict=None, frontier={
        "candidates": {"knn@budget=0.002": {"family": "router", "points": [[1e-3, 0.7]]}},
        "zero": {"hull": [[1e-4, 0.6], [4e-3, 0.83]], "aiq": {"paper": 0.7}},
        "oracle": {"hull": [[1e-4, 0.62], [1.4e-3, 0.92]], "aiq": {"paper": 0.9}},
        "cross_family": {"vertices": [], "aiq": {"paper": 0.7}}})
    plot_plan(plan, tmp_path / "p.png", budget=0.002, quality=None, costs_estimated=False)
    pax = figures[-1].axes[0]
    plines = _line_colours(pax)
    assert next(c for k, c in plines.items() if k.startswith("zero router")) == zero
    assert next(c for k, c in plines.items() if k.startswith("oracle")) == to_hex("black")
    # the router candidates in the plan wear knn's colour from the bench plot
    knn = next(c for k, c in lines.items() if k.startswith("knn"))
    assert to_hex(pax.collections[0].get_facecolor()[0]) == knn
    _assert_legend_outside(figures[-1], pax)


def _assert_legend_outside(fig, ax) -> None:
    r = fig.canvas.get_renderer()
    leg = ax.get_legend().get_window_extent(r)
    box = ax.get_window_extent(r)
    assert leg.x0 >= box.x1 - 1, "the legend overlaps the axes"


def _overlaps(boxes) -> bool:
    boxes = sorted(boxes, key=lambda b: b.x0)
    return any(a.x1 > b.x0 + 0.5 for a, b in zip(boxes, boxes[1:]))


@pytest.mark.parametrize("lo,hi", [(8e-5, 4e-3), (1.2e-3, 3.9e-3), (2.1e-3, 2.6e-3), (1e-6, 5.0)])
def test_log_axis_tick_labels_never_overlap(lo, hi, tmp_path) -> None:
    fig, ax = styles.figure((6, 4))
    ax.plot([lo, hi], [0, 1])
    styles.log_axis(ax, "x", money=True)
    styles.tidy_log_ticks(ax)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    labels = [t for t in ax.get_xticklabels(which="both") if t.get_visible() and t.get_text()]
    x0, x1 = ax.get_xlim()
    shown = [t for t in labels if x0 <= t.get_position()[0] <= x1]
    assert len(shown) >= 2, "too few labels to read the axis"
    assert not _overlaps([t.get_window_extent(r) for t in shown])
    assert all(not t.get_text() for t in ax.get_xticklabels(minor=True))
    assert not any(re.search(r"\de[-+]", t.get_text()) for t in shown)  # plain numbers, not 1e-04
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_aggregate_plot_says_what_its_y_axis_is_and_which_way_is_better(figures, tmp_path) -> None:
    rows = [{"task": t, "metric": m, "rule": r, "value": v, "kind": "number"}
            for t in ("a", "b") for m, base in (("squared-error", 4.0), ("exact-match", 0.5))
            for r, v in (("first", base), ("mean", base * 0.8), ("mode", base * 1.1))]
    plot_aggregate(SimpleNamespace(rows=rows), tmp_path / "agg.png")
    axes = figures[-1].axes
    labels = [ax.get_ylabel() for ax in axes]
    assert all(labels), "a panel has no y-label"
    assert "lower is better" in labels[0] and "MSE" in labels[0]
    assert "higher is better" in labels[1] and "accuracy" in labels[1]
    _assert_legend_outside(figures[-1], axes[-1])


def _scale_result():
    k = np.arange(1, 21)
    kk = np.arange(1, 1001)
    emp = 0.52 + 0.1 * (1 - np.exp(-(k - 1) / 5))
    fitted = np.clip(0.62 - 0.31 / kk ** 0.5, 0, 1)
    return SimpleNamespace(
        meta={"model": "m", "task": "t", "methods": {"fitted": "per-query G fitted at K in {2,5,10,20,50,100} "
                                                                "(paper grid) on all samples"}},
        curves={"empirical": {"k": k, "accuracy": emp, "ci_low": emp - 0.03, "ci_high": emp + 0.03},
                "resampled": {"k": k, "accuracy": emp}, "fitted": {"k": kk, "accuracy": fitted},
                "predicted": {"k": kk, "accuracy": fitted - 0.02}, "filter_vote": {"k": k, "accuracy": emp + 0.05},
                "best_of_k_perfect": {"k": k, "accuracy": emp + 0.1}, "best_of_k_noisy": {"k": k, "accuracy": emp + 0.07}},
        summary={"empirical": {"best_k": 17}, "fitted": {"best_k": 119}, "predicted": {"best_k": 900},
                 "few_samples": 4, "best_of_k": {"ranker_accuracy": 0.8}, "n_prompts": 369})


def test_scale_plot_marks_the_fitted_curve_below_its_grid_as_extrapolated(figures, tmp_path) -> None:
    res = _scale_result()
    plot_scale(res, tmp_path / "scale.png")
    ax = figures[-1].axes[0]
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert any("extrapolated" in lb for lb in labels)
    fitted = next(ln for ln in ax.get_lines() if ln.get_label().startswith("vote, fitted"))
    assert min(fitted.get_xdata()) == 2, "the solid fitted curve must start at the grid's first K"
    note = fit_grid_note(res)
    assert note and "K < 2 is extrapolated" in note and "0.310" in note and "0.520" in note
    assert any("extrapolated" in t.get_text() for t in ax.texts)


def test_cascade_plot_labels_models_of_equal_accuracy_once(figures, tmp_path) -> None:
    from callwise.evaluation.report import plot_cascade

    b = np.linspace(1e-4, 2e-4, 5)
    m = SimpleNamespace(accuracy=np.linspace(0.86, 0.9, 5), auc=0.88)
    r = SimpleNamespace(task="t", models=["org/llama3.2-3b", "llama3.1-8b", "llama3.1-70b"], budgets=b,
                        methods={"oracle": m, "confidence": m, "confidence@offline": m, "random": m},
                        model_accuracy={"org/llama3.2-3b": 0.889, "llama3.1-8b": 0.889, "llama3.1-70b": 0.978})
    plot_cascade(r, tmp_path / "c.png")
    ax = figures[-1].axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["llama3.2-3b, llama3.1-8b alone (0.889)", "llama3.1-70b alone (0.978)"], texts
    colours = _line_colours(ax)
    assert colours["confidence (AUC 0.8800)"] == colours["confidence@offline (AUC 0.8800)"]
    assert len({colours[k] for k in colours if "AUC" in k and "offline" not in k}) == 3  # oracle, confidence, random
    _assert_legend_outside(figures[-1], ax)


def test_allocation_plot_names_methods_that_share_a_point(figures, tmp_path) -> None:
    pt = {"cost": 7.5e-4, "quality": 0.82}
    res = SimpleNamespace(evaluated=[], pareto=[], meta={"pipeline": "p"},
                          chosen={"method": "llmselector", "test": pt},
                          baselines=[{"method": "coordinate", "test": dict(pt)},
                                     {"method": "single", "test": {"cost": 1.7e-4, "quality": 0.82}}])
    plot_allocation(res, tmp_path / "a.png")
    texts = [t.get_text() for t in figures[-1].axes[0].get_legend().get_texts()]
    assert any("llmselector = coordinate" in t for t in texts), texts
    _assert_legend_outside(figures[-1], figures[-1].axes[0])


# -- tables -----------------------------------------------------------------------------------

LONG = ["confidence-cascade@offline:gpt-4o-mini->gpt-4o", "confidence-cascade@offline:gpt-4o-mini->o1-preview"]


def _wide_table() -> Table:
    t = Table.of("pairs", ["pair", "AUC (paper protocol)", "AUC (extended protocol)", "small model accuracy",
                           "large model accuracy"])
    for i, n in enumerate(LONG):
        t.add(n, cell(0.9 + i / 100, f"{0.9 + i / 100:.3f}"), cell(0.8, "0.800"), cell(0.7, "0.700"),
              cell(0.95, "0.950"))
    return t


@pytest.mark.parametrize("width", [60, 110])
def test_a_table_wider_than_the_console_keeps_names_and_heads_whole(width) -> None:
    buf = io.StringIO()
    con = Console(file=buf, width=width, color_system=None)
    Out(con).table(_wide_table())
    text = buf.getvalue()
    lines = text.splitlines()
    for n in LONG:  # each name whole on a line of its own row, in every panel
        assert sum(n in ln for ln in lines) >= 1, text
    for head in ("AUC (paper protocol)", "AUC (extended protocol)", "small model accuracy", "large model accuracy"):
        # full heads: each word whole (a long head may wrap between words, never be abbreviated)
        assert all(re.search(rf"(?<!\S){re.escape(w)}(?!\S)", text) for w in head.split()), (head, text)
    assert "…" not in text
    # it fits (split, not cropped); a name too long for the width gets one value column a panel, whole
    assert max(len(ln) for ln in lines) <= max(width, len(LONG[1]) + 3 + len("(extended"))
    for v in ("0.900", "0.910", "0.800", "0.700", "0.950"):
        assert v in text
    if width == 60:
        assert "(1/" in text  # split into panels rather than cut


def _names_csv(write_file) -> Path:
    rows = ["prompt_id,task,model,quality,cost"]
    for p in range(4):
        for m, c in ((LONG[0], 0.00015), (LONG[1], 0.0031)):
            rows.append(f"p{p},task-with-a-long-name,{m},{(p + len(m)) % 2},{c}")
    return write_file("names.csv", "\n".join(rows) + "\n")


@pytest.mark.parametrize("columns", ["60", None])
def test_info_at_60_columns_and_off_a_terminal_keeps_names_distinct(write_file, columns) -> None:
    path = _names_csv(write_file)
    env = {"COLUMNS": columns} if columns else {"COLUMNS": ""}
    r = runner.invoke(app, ["info", str(path)], env=env)
    assert r.exit_code == 0, r.output
    for n in LONG:
        assert n in r.stdout, r.stdout
    assert "…" not in r.stdout and "e-0" not in r.stdout  # no cut names, no scientific money
    assert "$0.150" in r.stdout and "$3.10" in r.stdout  # per 1k queries


def test_output_formats_parse_and_hold_the_same_numbers(write_file) -> None:
    path = _names_csv(write_file)
    outs = {}
    for fmt in ("json", "csv", "md", "table"):
        r = runner.invoke(app, ["info", str(path), "--format", fmt], env={"COLUMNS": "100"})
        assert r.exit_code == 0, r.output
        outs[fmt] = r.stdout
    js = json.loads(outs["json"])  # stdout is JSON only (the rest goes to stderr)
    rows = js["tables"][0]["rows"]
    got_csv = parse_csv_blocks(outs["csv"])[0]["rows"]
    assert len(rows) == len(got_csv) == 2
    md = [ln for ln in outs["md"].splitlines() if ln.startswith("| ") and "---" not in ln]
    heads = [h.strip() for h in md[0].strip("|").split("|")]
    assert heads == list(rows[0]) == list(got_csv[0])
    for j, c, m in zip(rows, got_csv, md[1:]):
        cells = [x.strip() for x in m.strip("|").split("|")]
        assert j["model"] == c["model"] == cells[1]
        assert float(c["mean quality"]) == pytest.approx(j["mean quality"])
        assert float(cells[3]) == pytest.approx(j["mean quality"], abs=5e-5)
        assert float(c["mean $/1k queries"]) == pytest.approx(j["mean $/1k queries"])
        assert float(cells[4].lstrip("$").replace(",", "")) == pytest.approx(j["mean $/1k queries"], rel=5e-3)
        assert j["model"] in outs["table"]
    assert list(csv.reader(io.StringIO(outs["csv"].split("\n\n")[-1] or "x")))  # parses as CSV


def test_input_format_and_the_deprecated_format_value(write_file, long_csv_text) -> None:
    path = write_file("o.csv", long_csv_text)
    new = runner.invoke(app, ["info", str(path), "--input-format", "long", "--format", "json"])
    assert new.exit_code == 0, new.output
    assert json.loads(new.stdout)["tables"][0]["rows"]
    old = runner.invoke(app, ["info", str(path), "--format", "long"])
    assert old.exit_code == 0, old.output
    assert "deprecated" in old.stderr and "--input-format long" in old.stderr
    assert len([ln for ln in old.stderr.splitlines() if "deprecated" in ln]) == 1
    assert "format: long" in old.stdout
    short = runner.invoke(app, ["info", str(path), "-f", "long"])
    assert short.exit_code == 0 and "deprecated" not in short.stderr
    both = runner.invoke(app, ["info", str(path), "--input-format", "routerbench", "--format", "long"])
    assert both.exit_code == 2 and "--input-format" in both.stderr
    wrong = runner.invoke(app, ["convert", str(path), str(path.with_suffix(".parquet")), "--format", "csv"])
    assert wrong.exit_code == 2 and "prints no table" in wrong.stderr
    legacy = runner.invoke(app, ["convert", str(path), str(path.with_suffix(".parquet")), "--format", "long"])
    assert legacy.exit_code == 0 and "deprecated" in legacy.stderr


def test_bench_table_footnote_and_json_match_results(tmp_path) -> None:
    out = tmp_path / "b"
    r = runner.invoke(app, ["bench", "--bootstrap", "0", "--format", "json", "--out", str(out)])
    assert r.exit_code == 0, r.output
    js = json.loads(r.stdout)
    res = json.loads((out / "results.json").read_text())
    t0 = js["tables"][0]
    assert t0["title"].startswith("gsm8k")
    byname = {row["policy"]: row for row in t0["rows"]}
    for name, p in res["tasks"]["gsm8k"]["policies"].items():
        row = byname[short_names(res["tasks"]["gsm8k"]["policies"])[name]]
        assert row["AIQ (paper)"] == pytest.approx(p["aiq"]["paper"])
    notes = " ".join(t0["notes"])  # under the first table
    assert "dearest model (gpt-4-1106-preview)" in notes and "AIQ is about 0" in notes
    assert "below 0 worse than the zero router" in notes
    assert all("…" not in h for h in t0["columns"])
    assert "gap closed" in t0["columns"] and "AIQ (RouterBench code)" in t0["columns"]


# -- numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("x,text", [(3.86, "$3.86"), (0.0845, "$0.0845"), (1.504e-4, "$0.000150"),
                                    (-0.000566, "-$0.000566"), (1500, "$1,500"), (9.999, "$10.0"), (1.69e-16, "$0"),
                                    (None, "-")])
def test_money_reads_as_dollars(x, text) -> None:
    assert usd(x) == text


def test_per_1k_and_counts() -> None:
    assert per_1k(1.504e-4) == "$0.150"
    assert count(59049) == "59,049" and count(np.int64(3)) == "3"
    assert short_names(["org/a", "b", "x/b"]) == {"org/a": "a", "b": "b", "x/b": "x/b"}


def test_run_summary_is_a_table_of_dollars_and_counts() -> None:
    s = {"prompts": 3, "calls": 7, "calls_per_model": {"a": 4, "b": 3}, "cost_policy": 0.0012,
         "mean_cost": 0.0004, "spent_now": 0.07325129999999995, "cache_hits": 2}
    buf = io.StringIO()
    Out(Console(file=buf, width=80, color_system=None)).table(summary_table(s))
    text = buf.getvalue()
    assert "$0.0733" in text and "0.07325129999999995" not in text and "spent_now" not in text
    assert re.search(r"calls\s+7\b", text) and "$0.400 per 1k queries" in text


def test_readme_says_what_zero_and_random_mix_are_side_by_side() -> None:
    text = (ROOT / "README.md").read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("|") and ("`zero`" in ln or "`random-mix`" in ln)]
    assert any("`zero`" in ln for ln in rows) and any("`random-mix`" in ln for ln in rows)
    i = [k for k, ln in enumerate(text.splitlines()) if ln in rows]
    assert max(i) - min(i) <= 3, "zero and random-mix should be described in one table, side by side"
