"""collect / run with --ray on a real local Ray cluster, against the replay server: the same table as one
process, a killed worker retried, a re-run skipping finished shards, one rate limiter per job, clear errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time

import pandas as pd
import pytest
from livekit import (
    LARGE,
    SMALL,
    cascade_job,
    free_port,
    live_for,
)
from raykit import alive, disconnect, worker_processes
from typer.testing import CliRunner

from callwise.cli import app
from callwise.core.errors import CallwiseError, DataError
from callwise.core.policy_files import load_policy
from callwise.io import load
from callwise.live.http_util import BackgroundServer
from callwise.live.prompts import load_prompts
from callwise.live.replay_server import build_replay_app
from callwise.live.runs import collect, keeps_ledger, run_policy

runner = CliRunner()
N = 60


@pytest.fixture(scope="module")
def setup(shared_data, tmp_path_factory):
    """The replay server (every request logged: when, model, prompt id; an adjustable delay), a fitted
    cascade and a prompt file of 60 test prompts."""
    base = tmp_path_factory.mktemp("rayjobs")
    table, test, ids = cascade_job(shared_data, base, N)
    upstream = build_replay_app(table)
    log: list[tuple[float, str]] = []
    knobs = {"delay": 0.0}

    @upstream.middleware("http")
    async def record(request, call_next):
        if request.url.path.endswith("/chat/completions"):
            log.append((time.monotonic(), request.headers.get("x-callwise-prompt-id", "")))
            if knobs["delay"]:
                await asyncio.sleep(knobs["delay"])
        return await call_next(request)

    with BackgroundServer(upstream) as up:
        yield {"base": base, "table": table, "url": up.url, "log": log, "knobs": knobs}


@pytest.fixture(scope="module", autouse=True)
def _disconnect():
    """Leave the cluster at the end (the session fixture then stops it without a connected driver)."""
    yield
    disconnect()


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def _frame(path) -> pd.DataFrame:
    """The table in its canonical order, without the per-call latencies (measured, never equal)."""
    f = load(path).frame.drop(columns=["latency"])
    return f.reset_index(drop=True)


def test_collect_on_ray_equals_one_process_and_a_rerun_skips_every_shard(setup, ray_address, tmp_path):
    b, log = setup["base"], setup["log"]
    common = ["--api-base", setup["url"] + "/v1", "--provider-costs", "--no-cache", "--transport", "http"]
    r = _cli("collect", f"{SMALL},{LARGE}", b / "prompts.jsonl", "--out", tmp_path / "one.parquet", *common)
    assert r.exit_code == 0, r.output
    r = _cli("collect", f"{SMALL},{LARGE}", b / "prompts.jsonl", "--out", tmp_path / "ray.parquet", *common,
             "--ray", ray_address, "--shard-size", 16)
    assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(_frame(tmp_path / "ray.parquet"), _frame(tmp_path / "one.parquet"))
    manifest = json.loads((tmp_path / "ray.shards" / "manifest.json").read_text())
    assert sorted(manifest["shards"]) == ["00000", "00001", "00002", "00003"]
    assert sum(s["rows"] for s in manifest["shards"].values()) == 2 * N
    assert [s["prompts"] for s in manifest["shards"].values()] == [[0, 16], [16, 32], [32, 48], [48, 60]]
    # the same job again: every shard is done, no call reaches the upstream, the table is the same
    calls = len(log)
    r = _cli("collect", f"{SMALL},{LARGE}", b / "prompts.jsonl", "--out", tmp_path / "ray.parquet", *common,
             "--ray", ray_address, "--shard-size", 16)
    assert r.exit_code == 0, r.output
    assert len(log) == calls
    summary = json.loads((tmp_path / "ray.summary.json").read_text())
    assert summary["ray"]["skipped"] == 4 and summary["ray"]["ran"] == 0
    pd.testing.assert_frame_equal(_frame(tmp_path / "ray.parquet"), _frame(tmp_path / "one.parquet"))
    # a shard whose file changed is redone (only it)
    (tmp_path / "ray.shards" / "shard-00002.parquet").write_bytes(b"garbage")
    r = _cli("collect", f"{SMALL},{LARGE}", b / "prompts.jsonl", "--out", tmp_path / "ray.parquet", *common,
             "--ray", ray_address, "--shard-size", 16)
    assert r.exit_code == 0, r.output
    assert len(log) == calls + 2 * 16
    # another job into the same folder is refused, naming what differs
    r = _cli("collect", SMALL, b / "prompts.jsonl", "--out", tmp_path / "ray.parquet", *common,
             "--ray", ray_address, "--shard-size", 16)
    assert r.exit_code == 2 and "different job" in r.output and "models" in r.output, r.output


def test_run_on_ray_equals_one_process(setup, ray_address, tmp_path):
    """A budget-guarded cascade decided in chunks of 20 prompts: 3 shards of one chunk each, the ledger handed
    from shard to shard, give the same calls, decisions and table as one process; so does the CLI."""
    prompts = load_prompts(setup["base"] / "prompts.jsonl")
    policy = load_policy(setup["base"] / "casc.json")
    assert keeps_ledger(policy)
    one = live_for(setup["url"], [SMALL, LARGE], None, transport="http")
    want = run_policy(policy, prompts, one, chunk=20)
    one.close()
    be = live_for(setup["url"], [SMALL, LARGE], None, transport="http")
    got = run_policy(policy, prompts, be, chunk=20, ray=ray_address, shards=tmp_path / "run.shards", shard_size=20)
    be.close()
    assert got.summary["ray"]["shards"] == 3
    pd.testing.assert_frame_equal(got.outcomes.frame.drop(columns=["latency"]),
                                  want.outcomes.frame.drop(columns=["latency"]))
    pd.testing.assert_frame_equal(got.decisions, want.decisions)
    for k in ("calls", "calls_per_model", "cost_policy", "mean_quality", "spent_now"):
        assert got.summary[k] == pytest.approx(want.summary[k]), k
    b = setup["base"]
    common = ["--api-base", setup["url"] + "/v1", "--provider-costs", "--no-cache", "--transport", "http", "--complete"]
    r = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", tmp_path / "one.parquet", *common)
    assert r.exit_code == 0, r.output
    r = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", tmp_path / "ray.parquet", *common,
             "--ray", ray_address)
    assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(_frame(tmp_path / "ray.parquet"), _frame(tmp_path / "one.parquet"))
    r = _cli("run", b / "casc.json", b / "prompts.jsonl", "--out", tmp_path / "bad.parquet", *common,
             "--ray", ray_address, "--shard-size", 100)
    assert r.exit_code == 2 and "multiple of the policy's chunk (256" in r.output, r.output


def test_a_worker_killed_mid_shard_is_retried_and_the_table_is_the_same(setup, ray_address, tmp_path):
    """SIGKILL the worker process running a shard while its calls are in flight: Ray runs the shard again
    and the table equals the single-process one."""
    prompts = load_prompts(setup["base"] / "prompts.jsonl")
    models = [SMALL, LARGE]
    one = live_for(setup["url"], models, None, transport="http", max_concurrency=2)
    want = collect(models, prompts, one)
    one.close()
    log, knobs = setup["log"], setup["knobs"]
    knobs["delay"] = 0.03  # 20 prompts x 2 models at 2 in flight: about 0.6 s a shard
    backend = live_for(setup["url"], models, None, transport="http", max_concurrency=2)
    got: dict = {}

    def job():
        try:
            got["result"] = collect(models, prompts, backend, ray=ray_address, shards=tmp_path / "job.shards",
                                    shard_size=20)
        except BaseException as e:  # noqa: BLE001 - re-raised by the test
            got["error"] = e

    calls = len(log)
    t = threading.Thread(target=job)
    t.start()
    victim = None
    deadline = time.monotonic() + 60
    try:
        while victim is None and time.monotonic() < deadline and t.is_alive():
            procs = worker_processes(ray_address, "ray::callwise-shard-")
            if procs and len(log) > calls + 3:  # a shard is running and its calls have started
                victim = procs[0]
                os.kill(victim, signal.SIGKILL)
            time.sleep(0.02)
    finally:
        t.join(timeout=120)
        knobs["delay"] = 0.0
        backend.close()
    assert victim is not None, "no shard task was seen running"
    assert "error" not in got, got.get("error")
    assert not alive(victim)
    # the killed shard ran again from its start (no cache): more upstream calls than the job has
    assert len(log) - calls > len(models) * N
    res = got["result"]
    assert res.summary["ray"]["ran"] == 3
    a = res.outcomes.frame.drop(columns=["latency"]).reset_index(drop=True)
    b = want.outcomes.frame.drop(columns=["latency"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_one_rate_limiter_for_the_whole_job(setup, ray_address, tmp_path):
    """56 requests a minute for the job: its 60 calls over 4 shards on 2 workers take the minute's burst (56)
    and then one every 60/56 s. A limiter per worker would let all 60 through at once."""
    prompts = load_prompts(setup["base"] / "prompts.jsonl")
    log = setup["log"]
    rpm = 56
    backend = live_for(setup["url"], [SMALL], None, transport="http", rpm=rpm)
    start = len(log)
    try:
        res = collect([SMALL], prompts, backend, ray=ray_address, shards=tmp_path / "rpm.shards", shard_size=15)
    finally:
        backend.close()
    stamps = sorted(s for s, _ in log[start:])
    assert len(stamps) == N
    # within x seconds of the first request at most rpm + x * rpm / 60 requests reached the upstream
    for k, s in enumerate(stamps, 1):
        assert k <= rpm + (s - stamps[0]) * rpm / 60 + 1, (k, s - stamps[0])
    assert stamps[-1] - stamps[0] >= (N - rpm - 1) * 60 / rpm - 0.5
    lim = res.summary["ray"]["limiter"]
    assert lim["reserved"] == {f"{SMALL}/requests": N}
    assert sum(lim["callers"].values()) == N
    assert set(lim["callers"]) == set(res.summary["ray"]["workers"])  # every worker asked the one actor


def test_bad_input_is_a_clear_error(setup, tmp_path):
    b = setup["base"]
    port = free_port()
    r = _cli("collect", SMALL, b / "prompts.jsonl", "--out", tmp_path / "x.parquet", "--api-base", setup["url"] + "/v1",
             "--provider-costs", "--no-cache", "--ray", f"127.0.0.1:{port}")
    assert r.exit_code == 2 and f"cannot reach Ray at 127.0.0.1:{port}" in r.output, r.output
    assert not (tmp_path / "x.shards").exists()
    r = _cli("collect", SMALL, b / "prompts.jsonl", "--out", tmp_path / "x.parquet", "--api-base", setup["url"] + "/v1",
             "--shard-size", 5)
    assert r.exit_code == 2 and "--shard-size" in r.output and "--ray" in r.output, r.output
    prompts = load_prompts(b / "prompts.jsonl")
    backend = live_for(setup["url"], [SMALL], None, transport="http")
    with pytest.raises(DataError, match="shard size"):
        collect([SMALL], prompts, backend, ray="127.0.0.1:1", shards=tmp_path / "s", shard_size=0)
    with pytest.raises(DataError, match="folder for its shards"):
        collect([SMALL], prompts, backend, ray="127.0.0.1:1")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="no manifest.json"):
        collect([SMALL], prompts, backend, ray="127.0.0.1:1", shards=tmp_path / "busy")
    assert isinstance(DataError("x"), CallwiseError) and os.path.exists(tmp_path / "busy" / "notes.txt")


def test_an_upstream_error_fails_its_shard_and_keeps_the_others(setup, ray_address, tmp_path):
    """Prompts the upstream does not know (the second shard's) fail as in the local path; the first shard is
    kept in the manifest and the error says how many failed."""
    lines = (setup["base"] / "prompts.jsonl").read_text().splitlines()[:10]
    lines += [json.dumps({"id": f"unknown-{i}", "prompt": f"no such prompt {i}"}) for i in range(10)]
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    prompts = load_prompts(tmp_path / "p.jsonl")
    backend = live_for(setup["url"], [SMALL], None, transport="http")
    try:
        with pytest.raises(CallwiseError, match=r"1 of 2 shards failed .* a re-run of the same job resumes") as e:
            collect([SMALL], prompts, backend, ray=ray_address, shards=tmp_path / "f.shards", shard_size=10)
    finally:
        backend.close()
    assert SMALL in str(e.value) and "failed" in str(e.value)
    manifest = json.loads((tmp_path / "f.shards" / "manifest.json").read_text())
    assert list(manifest["shards"]) == ["00000"] and manifest["shards"]["00000"]["rows"] == 10


def test_a_killed_driver_resumes_from_the_manifest(setup, ray_address, tmp_path):
    """SIGKILL the CLI (the driver) once a shard is on disk; the same command again runs only the shards not
    finished, and the table equals one process's."""
    import subprocess
    import sys

    b, knobs = setup["base"], setup["knobs"]
    common = ["--api-base", setup["url"] + "/v1", "--provider-costs", "--no-cache", "--transport", "http",
              "--concurrency", "2"]
    r = _cli("collect", SMALL, b / "prompts.jsonl", "--out", tmp_path / "one.parquet", *common)
    assert r.exit_code == 0, r.output
    args = ["collect", SMALL, b / "prompts.jsonl", "--out", tmp_path / "ray.parquet", *common, "--ray", ray_address,
            "--shard-size", 6]
    manifest = tmp_path / "ray.shards" / "manifest.json"
    knobs["delay"] = 0.05  # 6 calls at 2 in flight: about 0.15 s a shard, 10 shards on 2 workers
    proc = subprocess.Popen([sys.executable, "-m", "callwise.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and json.loads(manifest.read_text())["shards"]:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the job ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        knobs["delay"] = 0.0
        if proc.poll() is None:
            proc.kill()
    done = set(json.loads(manifest.read_text())["shards"])
    assert 1 <= len(done) < 10
    assert not (tmp_path / "ray.parquet").exists()
    r = _cli(*args)
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "ray.summary.json").read_text())
    assert summary["ray"]["skipped"] == len(done) and summary["ray"]["ran"] == 10 - len(done)
    pd.testing.assert_frame_equal(_frame(tmp_path / "ray.parquet"), _frame(tmp_path / "one.parquet"))


def test_nothing_imports_ray_without_ray():
    """callwise, its CLI, the live runs and even the Ray module itself load without importing Ray."""
    import subprocess
    import sys

    code = ("import sys, callwise, callwise.cli, callwise.live.runs, callwise.live.distributed\n"
            "try:\n    callwise.cli.app(['collect', '--help'], prog_name='callwise')\nexcept SystemExit:\n    pass\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
