"""callwise run / collect / cache over real HTTP (replay-server upstream): outcomes, resume after a kill, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from livekit import LARGE, SMALL, cascade_job
from typer.testing import CliRunner

from callwise.cli import app
from callwise.core.errors import DataError
from callwise.io import load
from callwise.live.cache import ResponseCache
from callwise.live.grading import grade
from callwise.live.http_util import BackgroundServer
from callwise.live.prompts import load_prompts
from callwise.live.replay_server import build_replay_app

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(shared_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    table, test, ids = cascade_job(shared_data, base, 60)
    with BackgroundServer(build_replay_app(table, latency_ms=5)) as up:
        yield {"base": base, "table": table, "test": test, "ids": ids, "url": up.url + "/v1"}


def _cli(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def test_run_writes_outcomes_that_bench_reads(setup, tmp_path):
    b = setup["base"]
    out = tmp_path / "out.parquet"
    cache = tmp_path / "c.sqlite"
    r = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", out, "--api-base", setup["url"], "--provider-costs",
             "--cache", cache, "--complete")
    assert r.exit_code == 0, r.output
    t = load(out)  # complete: a table bench and fit read
    assert set(t.models()) == {SMALL, LARGE} and len(t.prompt_ids()) == 60
    rec = setup["table"].frame.set_index(["prompt_id", "model"])
    for row in t.frame.itertuples():
        assert row.answer == rec.loc[(row.prompt_id, row.model), "answer"]
        assert row.cost == pytest.approx(rec.loc[(row.prompt_id, row.model), "cost"])
        assert row.quality == rec.loc[(row.prompt_id, row.model), "quality"]
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["prompts"] == 60 and summary["spent_now"] > 0 and summary["cache_hits"] == 0
    assert summary["prices"]["provider_only"] is True
    # a re-run costs nothing: every call comes from the cache
    r2 = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", tmp_path / "again.parquet", "--api-base",
              setup["url"], "--provider-costs", "--cache", cache, "--complete")
    assert r2.exit_code == 0, r2.output
    s2 = json.loads((tmp_path / "again.summary.json").read_text())
    assert s2["spent_now"] == 0 and s2["cache_hits"] == s2["calls"] == len(t)
    stats = _cli("cache", "stats", "--cache", cache, "--json")
    assert json.loads(stats.output)["entries"] == len(t)


def test_run_partial_log_and_grading(setup, tmp_path):
    """Without --complete the table logs the calls made (partial); --grade scores answers against references."""
    import pandas as pd

    b = setup["base"]
    out = tmp_path / "log.parquet"
    r = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", out, "--api-base", setup["url"], "--provider-costs",
             "--no-cache", "--grade", "exact")
    assert r.exit_code == 0, r.output
    f = pd.read_parquet(out)
    assert (f["model"] == SMALL).sum() == 60 and 0 < (f["model"] == LARGE).sum() < 60
    # the references are the small model's answers: graded exact, its rows score 1
    assert (f.loc[f["model"] == SMALL, "quality"] == 1.0).all()
    with pytest.raises(DataError, match="lack an outcome for some model"):
        load(out)
    assert len(load(out, drop_incomplete=True).prompt_ids()) == (f["model"] == LARGE).sum()


def test_collect_records_every_model(setup, tmp_path):
    b = setup["base"]
    out = tmp_path / "train.parquet"
    r = _cli("collect", f"{SMALL},{LARGE},llama3.1-70b", b / "prompts.jsonl", "--out", out, "--api-base", setup["url"],
             "--provider-costs", "--cache", tmp_path / "c.sqlite", "--logprobs")
    assert r.exit_code == 0, r.output
    t = load(out)
    assert len(t) == 180 and "confidence" in t.frame.columns
    rec = setup["table"].frame.set_index(["prompt_id", "model"])
    conf = rec.loc[list(zip(t.frame["prompt_id"], t.frame["model"])), "confidence"].to_numpy()
    got = t.frame["confidence"].to_numpy()
    finite = np.isfinite(conf)
    assert np.allclose(got[finite], conf[finite]) and (got[~finite] <= -9999).all()


def test_a_killed_run_resumes_and_loses_nothing(setup, tmp_path):
    """SIGKILL a run mid-way; the re-run pays only for what was not finished and gives the same outcomes."""
    b = setup["base"]
    cache = tmp_path / "c.sqlite"
    slow = setup["url"]
    args = [sys.executable, "-m", "callwise.cli", "run", str(b / "casc.json"), str(b / "prompts.jsonl"), "--out",
            str(tmp_path / "killed.parquet"), "--api-base", slow, "--provider-costs", "--cache", str(cache),
            "--concurrency", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    try:
        deadline = time.time() + 60
        done = 0
        while time.time() < deadline:
            if cache.exists():
                try:
                    with ResponseCache(cache, readonly=True) as rc:
                        done = len(rc)
                except Exception:  # noqa: BLE001 - the file may be mid-creation
                    done = 0
            if done >= 15:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 15 <= done < 60, f"the run should be killed mid-way, it had {done} calls"
    assert not (tmp_path / "killed.parquet").exists()  # nothing half-written
    with ResponseCache(cache, readonly=True) as rc:
        kept = len(rc)
    assert kept >= done
    r = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", tmp_path / "resumed.parquet", "--api-base", slow,
             "--provider-costs", "--cache", cache)
    assert r.exit_code == 0, r.output
    resumed = json.loads((tmp_path / "resumed.summary.json").read_text())
    assert resumed["cache_hits"] >= kept - 1  # calls finished before the kill are not paid again
    fresh = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", tmp_path / "fresh.parquet", "--api-base", slow,
                 "--provider-costs", "--no-cache")
    assert fresh.exit_code == 0, fresh.output
    import pandas as pd

    a = pd.read_parquet(tmp_path / "resumed.parquet").sort_values(["prompt_id", "model"]).reset_index(drop=True)
    f = pd.read_parquet(tmp_path / "fresh.parquet").sort_values(["prompt_id", "model"]).reset_index(drop=True)
    cols = ["prompt_id", "model", "answer", "cost", "quality"]
    pd.testing.assert_frame_equal(a[cols], f[cols])


@pytest.mark.parametrize("text, message", [
    ('{"id": "a", "prompt": "x"}\n{not json}\n', "line 2: not valid JSON"),
    ('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', "line 2, column 'id': id 'a' is used twice"),
    ('{"prompt": "x", "messages": [{"role": "user", "content": "x"}]}\n', "line 1: give exactly one of 'prompt'"),
    ('{"prompt": "x", "answer": "y"}\n', "line 1: unknown field(s) ['answer']"),
    ('{"messages": [{"role": "bot", "content": "x"}]}\n', "messages[0].role must be one of"),
    ('{"prompt": ""}\n', "'prompt' must be a non-empty string"),
    ('[1]\n', "line 1: expected a JSON object"),
    ('\n  \n', "empty file: expected prompts, one JSON object per line"),
])
def test_prompt_file_errors(write_file, text, message):
    path = write_file("p.jsonl", text)
    with pytest.raises(DataError) as e:
        load_prompts(path)
    assert message in str(e.value) and "p.jsonl" in str(e.value)


def test_cli_errors_exit_2_and_write_nothing(setup, tmp_path, write_file):
    b = setup["base"]
    out = tmp_path / "o.parquet"
    no_ref = write_file("p.jsonl", '{"id": "a", "prompt": "x"}\n')
    r = _cli("run", b / "casc.json", no_ref, "--out", out, "--api-base", setup["url"], "--provider-costs", "--grade",
             "exact", "--no-cache")
    assert r.exit_code == 2 and "needs a 'reference' on every prompt" in r.output and not out.exists()
    r = _cli("collect", SMALL, no_ref, "--out", out, "--api-base", setup["url"], "--provider-costs", "--grade",
             "exact", "--no-cache")  # checked before any call is paid for
    assert r.exit_code == 2 and "grading with 'exact' needs a 'reference' on every prompt; 1 have none" in r.output
    assert not out.exists()
    r = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", out, "--provider-costs")
    assert r.exit_code == 2 and "give the upstream: --api-base URL" in r.output
    r = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", out, "--api-base", setup["url"], "--no-cache")
    assert r.exit_code == 2 and "no price for model(s)" in r.output and not out.exists()
    r = _cli("collect", "nope", b / "prompts.jsonl", "--out", out, "--api-base", setup["url"], "--provider-costs",
             "--no-cache")
    assert r.exit_code == 2 and "prompt_not_found" not in r.output and not out.exists()
    r = _cli("cache", "stats", "--cache", tmp_path / "none.sqlite")
    assert r.exit_code == 2 and "no response cache here yet" in r.output
    r = _cli("replay-server", setup["base"] / "prompts.jsonl")
    assert r.exit_code == 2


def test_graders():
    assert grade("exact", ["Paris.", "paris is"], ["paris", "paris"]).tolist() == [1.0, 0.0]
    assert grade("contains", ["It is Paris."], ["paris"]).tolist() == [1.0]
    assert grade("number", ["so 1,234 total", "x = 3.0", "none"], ["1234", "3", "1"]).tolist() == [1.0, 1.0, 0.0]
    assert grade("choice", ["The answer is (B).", "C. because", "(D) x"], ["B", "C", "A"]).tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(DataError, match="unknown grader 'fuzzy'"):
        grade("fuzzy", ["a"], ["a"])
    with pytest.raises(DataError, match="needs a 'reference' on every prompt; 1 have none, e.g. \\['q2'\\]"):
        grade("exact", ["a", "b"], ["a", None], ids=["q1", "q2"])


def test_cache_clear_cli(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as rc:
        rc.put("k1", "m1", {}, {"x": 1}, 0.1, 0.01, "provider")
        rc.put("k2", "m2", {}, {"x": 2}, 0.2, 0.01, "provider")
    r = _cli("cache", "clear", "--cache", path, "--model", "m1", "--yes")
    assert r.exit_code == 0 and "removed 1 responses" in r.output
    r = _cli("cache", "stats", "--cache", path)
    assert "1 responses" in r.output and "m2" in r.output


def test_serve_cli_errors(setup, tmp_path):
    b = setup["base"]
    r = _cli("serve", tmp_path / "nope.json", "--api-base", setup["url"])
    assert r.exit_code == 2 and "no such policy file" in r.output
    r = _cli("serve", b / "casc.json", "--api-base", setup["url"], "--key-budget", "5")
    assert r.exit_code == 2 and "--key-budget needs --api-key" in r.output
    r = _cli("serve", b / "casc.json", "--api-base", setup["url"], "--no-cache")
    assert r.exit_code == 2 and "no price for model(s)" in r.output
    from callwise.cli import _per_model

    assert _per_model(["m1=0.5", "m2=0.1"], "--fail-rate", 0.0) == {"m1": 0.5, "m2": 0.1}
    with pytest.raises(DataError, match="--fail-rate expects a number or MODEL=NUMBER, got 'x=abc'"):
        _per_model(["x=abc"], "--fail-rate", 0.0)
    with pytest.raises(DataError, match="one number for all models or MODEL=NUMBER items, not both"):
        _per_model(["0.1", "m=0.2"], "--fail-rate", 0.0)


def test_a_full_disk_is_a_clean_error_and_writes_nothing(setup, tmp_path, monkeypatch):
    """The disk fills while the summary is written (after the Parquet): exit 2, one clear line, and the
    old outcome table and summary stay as they were, together (issue 20, defect 9)."""
    import errno

    b = setup["base"]
    out = tmp_path / "out.parquet"
    out.write_bytes(b"old table")
    out.with_suffix(".summary.json").write_text("old summary")
    real = os.fdopen
    seen = {"n": 0}

    def full(fd, *a, **k):
        f = real(fd, *a, **k)
        seen["n"] += 1
        if seen["n"] == 2:  # the second file written: the summary
            def fail(*_a, **_k):
                raise OSError(errno.ENOSPC, "No space left on device")
            f.write = fail  # type: ignore[method-assign]
        return f

    monkeypatch.setattr("callwise.core.files.os.fdopen", full)
    r = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", out, "--api-base", setup["url"], "--provider-costs",
             "--no-cache")
    monkeypatch.undo()
    assert r.exit_code == 2, r.output
    assert "could not write the outcomes and their summary (No space left on device)" in r.output
    assert "Traceback" not in r.output
    assert out.read_bytes() == b"old table" and out.with_suffix(".summary.json").read_text() == "old summary"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet", "out.summary.json"]  # no temp files left
