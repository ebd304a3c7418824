"""The CLI end to end: bench on the bundled sample and on the RouterBench slice, errors, info."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from callwise.cli import app

runner = CliRunner()


def test_bench_on_bundled_sample_writes_results_and_plots(tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(app, ["bench", "--out", str(out), "--bootstrap", "20"])
    assert r.exit_code == 0, r.output
    assert "bundled sample" in r.output and "costs ESTIMATED" in r.output
    res = json.loads((out / "results.json").read_text())
    assert res["data"]["costs_estimated"] is True
    assert set(res["tasks"]) == {"gsm8k", "mt_bench"}
    assert {p.name for p in out.glob("*.png")} == {"gsm8k.png", "mt_bench.png"}
    assert not list(out.glob(".callwise-*")), "temporary folder left behind"


@pytest.mark.slow
def test_bench_on_routerbench_slice(tmp_path, shared_data):
    out = tmp_path / "rb"
    r = runner.invoke(app, ["bench", str(shared_data / "routerbench-subset"), "--out", str(out), "--bootstrap", "10"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["split"]["method"] == "origin"
    assert len(list(out.glob("*.png"))) == 3
    for t in res["tasks"].values():
        assert {"oracle", "zero", "gpt-4-1106-preview", "random-mix"} <= set(t["policies"])


def test_bench_seeded_split_and_errors(tmp_path, shared_data):
    bad = runner.invoke(app, ["bench", "--split", "1.5", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "strictly between 0 and 1" in bad.output
    assert not (tmp_path / "x" / "results.json").exists()
    missing = runner.invoke(app, ["bench", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "y")])
    assert missing.exit_code == 2 and "nope.csv" in missing.output and "no such file" in missing.output
    assert not (tmp_path / "y").exists()


def test_info_summarises_a_table(shared_data):
    r = runner.invoke(app, ["info", str(shared_data / "routerbench-subset" / "mbpp_test.csv.gz")])
    assert r.exit_code == 0, r.output
    assert "routerbench" in r.output and "mbpp" in r.output and "gpt-4-1106-preview" in r.output


def test_version():
    from callwise import __version__

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"callwise {__version__}"
