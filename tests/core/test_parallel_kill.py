"""core.parallel when a worker dies: on Ray a unit whose worker is SIGKILLed mid-unit is retried and bench's
and plan's results equal the serial run's; on local processes (--jobs) a dead worker's pool is replaced,
only the unfinished units run again, and a unit that kills its worker every time is a clear error."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import parallelkit
import pytest
from benchkit import three_models
from raykit import alive, cmdline, disconnect, worker_processes

from callwise.core.errors import CallwiseError
from callwise.core.files import json_default
from callwise.core.parallel import RETRIES, Executor, Unit, WorkerDied
from callwise.core.split import split_outcomes
from callwise.evaluation.bench import bench
from callwise.plan import plan

#: Ray titles a worker ``ray::<task name>`` while it runs a unit (core.parallel names the tasks)
UNIT = "ray::callwise-unit-"


@pytest.fixture(scope="module", autouse=True)
def _disconnect():
    """Leave the cluster at the end (the session fixture then stops it without a connected driver)."""
    yield
    disconnect()


def _json(result: Any) -> str:
    d = result.to_dict()
    d.pop("created")
    return json.dumps(d, default=json_default, sort_keys=True)


def _kill_a_unit_during(address: str, job: Callable[[], Any], match: str) -> tuple[Any, int, str]:
    """Run ``job()`` in a thread; SIGKILL the first worker of the cluster at ``address`` seen running a unit
    whose process title contains ``match``, and watch the same unit start again on another worker (Ray's
retry); return the job's result, the victim's pid and its title."""
    from callwise.core.cluster import connect

    connect(address)  # from this thread, before the job's own (idempotent) connect
    got: dict[str, Any] = {}

    def run() -> None:
        try:
            got["result"] = job()
        except BaseException as e:  # noqa: BLE001 - re-raised by the test
            got["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    victim, title, again = None, "", None
    deadline = time.monotonic() + 90
    try:
        while again is None and t.is_alive() and time.monotonic() < deadline:
            for pid in worker_processes(address, UNIT):
                if victim is None and match in cmdline(pid):
                    title = cmdline(pid)
                    os.kill(pid, signal.SIGKILL)
                    victim = pid
                elif victim is not None and pid != victim and cmdline(pid) == title:
                    again = pid  # the same unit running again, on another worker
            time.sleep(0.01)
    finally:
        t.join(timeout=180)
    assert not t.is_alive(), "the job did not finish"
    assert victim is not None, f"no unit matching {match!r} was seen running"
    if "error" in got:
        raise got["error"]
    assert not alive(victim)
    assert again is not None, f"{title!r} was not seen running again after its worker was killed"
    return got["result"], victim, title


def test_bench_on_ray_survives_a_worker_killed_mid_unit(ray_address: str) -> None:
    """Two task x mlp fits (about a second each): the worker running one is SIGKILLed; Ray runs the unit
    again and results.json (but its time stamp) is the serial run's."""
    tr, te, info = split_outcomes(three_models(600, ("a", "b"), split=True, confidence=True))

    def run(**kw: Any) -> Any:
        return bench(tr, te, policies=["mlp"], n_boot=20, split_info=info, **kw)

    want = _json(run())
    got, _, title = _kill_a_unit_during(ray_address, lambda: run(ray=ray_address), "-mlp")
    assert title.startswith(UNIT) and ("task-a-mlp" in title or "task-b-mlp" in title), title
    assert _json(got) == want


def test_plan_on_ray_survives_a_worker_killed_mid_unit(ray_address: str) -> None:
    """One task, the single models and an mlp router over 2 folds: the worker running an mlp fit is
    SIGKILLed; the plan (but its time stamp) is the serial one."""
    table = three_models(300, ("a",), split=True, confidence=True)

    def run(**kw: Any) -> Any:
        return plan(table, budget=0.006, folds=2, n_boot=20, candidates=["single", "mlp"], **kw)

    want = _json(run())
    got, _, title = _kill_a_unit_during(ray_address, lambda: run(ray=ray_address), "mlp")
    assert title.startswith(UNIT), title
    assert _json(got) == want


def _starts(log: Path) -> list[tuple[int, int]]:
    """(unit, pid) for every start of a unit, in the order they started."""
    return [(int(x), int(p)) for x, p in (line.split() for line in log.read_text().splitlines())]


def test_a_killed_local_worker_is_replaced_and_only_unfinished_units_run_again(tmp_path: Path) -> None:
    """Unit 3 waits until units 0-2 are done in the driver, then SIGKILLs its worker (the first time only):
    the pool is replaced, units 0-2 do not run again, unit 3 does, and every result comes back in order."""
    log = str(tmp_path / "log")
    gate = [str(tmp_path / f"done-{k}") for k in range(3)]
    units = [Unit(f"unit {i}", (i, log) + ((str(tmp_path / "marker"), gate) if i == 3 else ()), "scale")
             for i in range(6)]
    done: list[int] = []

    def on_done(i: int, r: float) -> None:
        done.append(i)
        Path(tmp_path / f"done-{i}").touch()

    with Executor(2) as ex:
        out = ex.map(parallelkit.unit, units, {"scale": 2.0}, on_done=on_done)
        assert out == [2.0 * i * i for i in range(6)]
        assert sorted(done) == list(range(6)) and done.index(3) > max(done.index(k) for k in range(3))
        starts = _starts(tmp_path / "log")
        counts = Counter(i for i, _ in starts)
        assert all(counts[i] == 1 for i in range(3)), counts  # finished before the kill: never again
        assert counts[3] == 2 and all(1 <= counts[i] <= 2 for i in (4, 5)), counts
        killed, again = [p for i, p in starts if i == 3]
        assert killed != again and not alive(killed)
        # the executor goes on with its new pool
        assert ex.map(parallelkit.unit, units[:2], {"scale": 1.0}) == [0.0, 1.0]


def test_a_unit_that_always_kills_its_worker_is_an_error_naming_it(tmp_path: Path) -> None:
    """Unit 1 kills its worker every time (once unit 0 is done): after RETRIES restarts of the pool the pass
    fails with a CallwiseError naming the unit and the restarts; unit 0's result was kept (run once)."""
    log = str(tmp_path / "log")
    units = [Unit("task t: fine", (0, log), "scale"),
             Unit("task t: doomed", (1, log, None, [str(tmp_path / "done-0")], True), "scale")]
    done: list[int] = []

    def on_done(i: int, r: float) -> None:
        done.append(i)
        Path(tmp_path / f"done-{i}").touch()

    with Executor(2) as ex:
        with pytest.raises(WorkerDied) as e:
            ex.map(parallelkit.unit, units, {"scale": 1.0}, on_done=on_done)
        msg = str(e.value)
        assert isinstance(e.value, CallwiseError)
        assert msg.startswith("a worker process died (killed, or out of memory?) while running 'task t: doomed' "
                              "(1 of 2 units unfinished) on 2 local processes"), msg
        assert f"after {RETRIES} restarts of the pool" in msg and "'task t: fine'" not in msg, msg
        assert done == [0]
        counts = Counter(i for i, _ in _starts(tmp_path / "log"))
        assert counts == {0: 1, 1: RETRIES + 1}, counts
        assert ex.map(parallelkit.unit, units[:1] * 3, {"scale": 1.0}) == [0.0, 0.0, 0.0]
