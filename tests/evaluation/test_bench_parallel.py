"""bench and the executor (core.parallel): the same results serially, on local processes (--jobs) and
on a real local Ray cluster (--ray); a failing unit is named; progress counts every unit."""

from __future__ import annotations

import json
import operator
from pathlib import Path

import pytest
from benchkit import three_models
from typer.testing import CliRunner

from callwise.cli import app
from callwise.core.errors import CallwiseError
from callwise.core.files import json_default
from callwise.core.parallel import Executor, Unit
from callwise.core.split import split_outcomes
from callwise.evaluation.bench import bench

runner = CliRunner()
#: a seeded random policy, a router (seeded cross-validation inside its fit) and a cascade
POLICIES = ["random-mix", "linear", "confidence-cascade"]


def _table():
    return three_models(40, ("a", "b"), split=True, confidence=True)


def _json(result) -> str:
    d = result.to_dict()
    d.pop("created")
    return json.dumps(d, default=json_default, sort_keys=True)


def _run(**kw):
    calls = []
    tr, te, info = split_outcomes(_table())
    r = bench(tr, te, policies=POLICIES, n_boot=30, split_info=info,
              on_progress=lambda done, total, what: calls.append((done, total, what)), **kw)
    return _json(r), calls


def test_bench_is_the_same_serially_on_processes_and_on_ray(ray_address: str) -> None:
    serial, calls = _run()
    for kw in ({"jobs": 2}, {"ray": ray_address}):
        out, par = _run(**kw)
        assert out == serial, kw
        # progress: the same units, each counted once, to the same total (in whatever order they finish)
        assert par[-1][:2] == calls[-1][:2] and par[-1][0] == par[-1][1]
        assert len(par) == len(calls) and sorted(w for *_, w in par) == sorted(w for *_, w in calls)
        assert [d for d, _, _ in par] == sorted(d for d, _, _ in par)
    # one unit per baseline step, per task x policy and per bootstrap chunk
    assert len(calls) == 2 * (1 + len(POLICIES)) + 2 * 15


def test_cli_results_json_identical_with_jobs_and_ray(tmp_path: Path, ray_address: str) -> None:
    data = tmp_path / "outcomes.parquet"
    _table().frame.to_parquet(data)
    args = ["bench", str(data), "--bootstrap", "20"] + [a for p in POLICIES[:2] for a in ("--policy", p)]
    texts = []
    for extra, name in (([], "serial"), (["--jobs", "2"], "jobs"), (["--ray", ray_address], "ray")):
        r = runner.invoke(app, args + ["--out", str(tmp_path / name)] + extra)
        assert r.exit_code == 0, r.output
        d = json.loads((tmp_path / name / "results.json").read_text())
        d.pop("created")
        texts.append(json.dumps(d, sort_keys=True))
    assert texts[0] == texts[1] == texts[2]


@pytest.mark.parametrize("how", ["serial", "jobs", "ray"])
def test_a_failing_unit_is_named_and_raised_as_itself(how: str, request: pytest.FixtureRequest) -> None:
    kw = {"serial": {}, "jobs": {"jobs": 2}, "ray": {}}[how]
    if how == "ray":
        kw = {"ray": request.getfixturevalue("ray_address")}
    units = [Unit(f"task t: fold {i}", (float(i),), "one") for i in (1, 2, 0, 4)]
    done = []
    with Executor(**kw) as ex:
        ok = ex.map(operator.truediv, units[:2] + units[3:], {"one": 1.0}, on_done=lambda i, r: done.append(i))
        assert ok == [1.0, 0.5, 0.25] and sorted(done) == [0, 1, 2]
        with pytest.raises(ZeroDivisionError, match="^task t: fold 0: float division by zero"):
            ex.map(operator.truediv, units, {"one": 1.0})


def test_jobs_and_ray_are_checked() -> None:
    with pytest.raises(CallwiseError, match="--jobs"):
        Executor(0)
    with pytest.raises(CallwiseError, match="not both"):
        Executor(2, ray="local")
    tr, te, _ = split_outcomes(_table())
    with pytest.raises(CallwiseError, match="--jobs"):
        bench(tr, te, policies=POLICIES[:1], n_boot=0, jobs=-1)
