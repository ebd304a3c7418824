"""bench where every model costs the same on a task: the shared cost range has no width, so AIQ and gap
closed are undefined there (null in results.json, n/a in the tables, with a note), the overall mean AIQ
leaves such tasks out and says so; top quality and cost stay; an ordinary table is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchkit import equal_cost_rows, equal_cost_table, priced_rows
from typer.testing import CliRunner

from callwise import OutcomeTable
from callwise.cli import app
from callwise.core.frontier import NORMALISATIONS, aiq, range_has_width
from callwise.core.split import split_outcomes
from callwise.evaluation.bench import AIQ_UNDEFINED, bench

runner = CliRunner()
EQUAL = ("same-price", "fixed-price")


def _bench(table: OutcomeTable, n_boot: int = 10):
    train, test, info = split_outcomes(table, fraction=0.7, seed=0)
    return bench(train, test, policies=["knn", "random-mix"], n_boot=n_boot, split_info=info)


def test_range_has_width_is_relative_to_the_costs():
    assert not range_has_width(0.00044781302001590465, 0.00044781302001590476)  # float noise of equal prices
    assert not range_has_width(0.001, 0.0010000000000000005)
    assert not range_has_width(0.0, 0.0) and not range_has_width(5.0, 5.0)
    assert not range_has_width(float("nan"), 1.0) and not range_has_width(0.0, float("inf"))
    assert range_has_width(0.001, 0.002) and range_has_width(0.0, 1e-12) and range_has_width(-1.0, 1.0)
    assert range_has_width(1.0, 1.0 + 1e-6) and not range_has_width(1.0, 1.0 + 1e-10)


def test_equal_cost_tasks_report_no_aiq_and_the_overall_mean_leaves_them_out():
    r = _bench(equal_cost_table(mixed=True))
    d = json.loads(json.dumps(r.to_dict(), default=float))
    for t in EQUAL:
        res = r.tasks[t]
        assert not res.aiq_defined
        lo, hi = res.cost_range
        assert hi - lo <= 1e-9 * hi  # no real width
        for name, e in res.entries.items():
            assert e.aiq == {n: None for n in NORMALISATIONS}, name
            assert e.extra["gap_closed"] is None and e.aiq_ci == {}, name
            # the other columns stay: the top of the hull, and its cost
            assert np.isfinite(e.curve.quality[-1]) and e.curve.cost[-1] == pytest.approx(lo, rel=1e-9)
        best = res.entries[res.best_model]
        assert res.entries["zero"].curve.quality[-1] == pytest.approx(best.points[0, 1])
        assert res.entries["oracle"].curve.quality[-1] >= best.points[0, 1]
        dt = d["tasks"][t]
        assert dt["aiq_defined"] is False and dt["notes"] == [AIQ_UNDEFINED]
        assert all(p["aiq"] == {"paper": None, "routerbench-code": None} and p["gap_closed"] is None
                   for p in dt["policies"].values())
    priced = r.tasks["priced"]
    assert priced.aiq_defined and "notes" not in d["tasks"]["priced"] and d["tasks"]["priced"]["aiq_defined"]
    assert priced.entries["oracle"].extra["gap_closed"] == 1.0 and priced.entries["zero"].extra["gap_closed"] == 0.0
    # the overall AIQ is the mean over the tasks that have one: here the priced task alone
    assert sorted(r.aiq_left_out()) == sorted(EQUAL)
    assert sorted(d["overall"]["aiq_left_out"]["tasks"]) == sorted(EQUAL)
    assert d["overall"]["aiq_left_out"]["why"] == AIQ_UNDEFINED and "leaving out the 2 task(s)" in d["overall"]["aiq_rule"]
    for name, e in r.overall.items():
        for n in NORMALISATIONS:
            assert e.aiq[n] == pytest.approx(priced.entries[name].aiq[n]), (name, n)
        if name == "random-mix":  # two-price policy: built on the priced task only
            assert e.extra["n_tasks"] == 1 and "n_tasks_aiq" not in e.extra
        else:
            assert e.extra["n_tasks"] == 3 and e.extra["n_tasks_aiq"] == 1
        assert e.aiq_ci["paper"] == pytest.approx(priced.entries[name].aiq_ci["paper"])
    assert r.overall["oracle"].extra["gap_closed"] == pytest.approx(1.0)


def test_only_equal_cost_tasks_leave_no_overall_aiq():
    r = _bench(equal_cost_table(), n_boot=0)
    assert sorted(r.aiq_left_out()) == sorted(EQUAL)
    assert all(e.aiq == {n: None for n in NORMALISATIONS} and e.extra["gap_closed"] is None
               for e in r.overall.values())


def test_a_priced_table_is_unchanged():
    """On ordinary prices every AIQ is the frontier's over the shared range, gap closed its formula, no notes."""
    r = _bench(OutcomeTable.from_frame(pd.DataFrame(priced_rows("a") + priced_rows("b", seed=3))))
    d = r.to_dict()
    assert r.aiq_left_out() == [] and d["overall"]["aiq_left_out"] == {"tasks": []}
    assert d["overall"]["aiq_rule"] == "mean of the per-task AIQs over the tasks where the policy ran"
    for t, res in r.tasks.items():
        assert res.aiq_defined and d["tasks"][t]["aiq_defined"] is True and "notes" not in d["tasks"][t]
        lo, hi = res.cost_range
        z, o = res.entries["zero"].aiq["paper"], res.entries["oracle"].aiq["paper"]
        assert o > z
        for name, e in res.entries.items():
            for n in NORMALISATIONS:
                assert e.aiq[n] == aiq(e.curve, lo, hi, n)
            assert e.extra["gap_closed"] == pytest.approx((e.aiq["paper"] - z) / (o - z))
            assert len(e.aiq_ci["paper"]) == 2 and "n_tasks_aiq" not in r.overall[name].extra
    for name, e in r.overall.items():
        assert e.aiq["paper"] == pytest.approx(np.mean([res.entries[name].aiq["paper"] for res in r.tasks.values()]))


def test_cli_prints_n_a_with_the_reason_and_writes_nulls(tmp_path: Path):
    data = tmp_path / "equal.csv"
    pd.DataFrame(equal_cost_rows("same-price") + priced_rows("priced")).to_csv(data, index=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["bench", str(data), "--out", str(out), "--bootstrap", "5", "--policy", "knn"])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "report.html not written" not in text
    assert f"AIQ, gap closed n/a: {AIQ_UNDEFINED}." in text
    assert "overall: mean of 1 per-task AIQs (1 task(s) left out" in text and "same-price" in text
    block = text[text.index("same-price: "):text.index("AIQ, gap closed n/a")]
    oracle = next(ln for ln in block.splitlines() if ln.startswith("oracle"))
    assert oracle.split()[1:4] == ["n/a", "n/a", "n/a"] and "-3." not in block and "0.000" not in block
    knn = next(ln for ln in block.splitlines() if ln.startswith("knn"))
    assert knn.split().count("n/a") == 4  # both AIQs, the CI, gap closed; top quality and costs stay
    r = json.loads((out / "results.json").read_text())
    t = r["tasks"]["same-price"]
    assert t["aiq_defined"] is False and t["policies"]["oracle"]["aiq"]["paper"] is None
    assert t["policies"]["knn"]["gap_closed"] is None and t["policies"]["oracle"]["hull"][-1][1] > 0
    assert r["tasks"]["priced"]["policies"]["oracle"]["aiq"]["paper"] > 0
    page = (out / "report.html").read_text()
    assert AIQ_UNDEFINED in page and ">n/a<" in page

    res = runner.invoke(app, ["bench", str(data), "--bootstrap", "0", "--policy", "knn", "--format", "json"])
    assert res.exit_code == 0, res.output
    tables = json.loads(res.stdout)["tables"]
    same = next(tb for tb in tables if tb["title"].startswith("same-price"))
    assert all(row["AIQ (paper)"] is None and row["gap closed"] is None for row in same["rows"])
    assert all(row["top quality"] is not None for row in same["rows"])
    assert any(AIQ_UNDEFINED in n for n in same["notes"])
