"""plan and the executor (core.parallel): the same plan serially, on local processes (--jobs) and on a
real local Ray cluster (--ray), down to the notes, the recommended policy file and the progress count."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchkit import three_models
from typer.testing import CliRunner

from callwise.cli import app
from callwise.core.files import json_default
from callwise.core.parallel import Executor
from callwise.core.split import split_outcomes
from callwise.plan import plan
from callwise.plan.candidates import build_candidates
from callwise.plan.crossfit import crossfit

runner = CliRunner()


def _table():
    return three_models(30, ("a", "b"), split=True, confidence=True)


def _candidates() -> list[str]:
    """Singles, the zero router's mixes, a router (dropped on a fold at this budget), a cascade and
    route-escalate's three candidates (one template: one fit per training set)."""
    train, _, _ = split_outcomes(_table())
    return ["single", "zero", "linear", "confidence-cascade"] + [
        c.name for t in ("a", "b") for c in build_candidates(train.for_task(t))[0] if c.name.startswith("route-")]


def _run(**kw):
    calls = []
    p = plan(_table(), budget=0.006, folds=3, n_boot=30, candidates=_candidates(),
             on_progress=lambda done, total, what: calls.append((done, total, what)), **kw)
    d = p.to_dict()
    d.pop("created")
    return json.dumps(d, default=json_default, sort_keys=True), p, calls


def test_plan_is_the_same_serially_on_processes_and_on_ray(ray_address: str) -> None:
    serial, p0, calls = _run()
    assert calls[-1][0] == calls[-1][1]
    assert any("dropped: on training fold" in n for t in p0.tasks.values() for n in t.notes)
    assert sum(e.name.startswith("route-") for e in p0.tasks["a"].evaluated) == 3
    for kw in ({"jobs": 2}, {"ray": ray_address}):
        out, p, par = _run(**kw)
        assert out == serial, kw
        for t in p0.tasks:
            assert p.tasks[t].notes == p0.tasks[t].notes
            a, b = p0.tasks[t].policy, p.tasks[t].policy
            assert (a is None) == (b is None) and (a is None or a.params() == b.params())
        assert par[-1][:2] == calls[-1][:2] and len(par) == len(calls)
        assert sorted(w for *_, w in par) == sorted(w for *_, w in calls)


def test_crossfit_units_match_a_serial_pass() -> None:
    train = _table().for_task("a")
    cands = [c for c in build_candidates(train)[0] if c.family == "single" or c.name == "linear"
             or c.name.startswith("route-")]
    evs, pids, notes = crossfit(cands, train, folds=3, seed=5)
    with Executor(2) as ex:
        evs2, pids2, notes2 = crossfit(cands, train, folds=3, seed=5, executor=ex)
    assert list(pids) == list(pids2) and notes == notes2
    assert [e.name for e in evs] == [e.name for e in evs2]
    for a, b in zip(evs, evs2):
        assert b.candidate is a.candidate  # the caller's own candidates come back
        assert a.params == b.params
        assert (a.cv_cost == b.cv_cost).all() and (a.cv_quality == b.cv_quality).all()


def test_cli_plan_writes_the_same_files_with_jobs_and_ray(tmp_path: Path, ray_address: str) -> None:
    data = tmp_path / "outcomes.parquet"
    _table().frame.to_parquet(data)
    args = ["plan", str(data), "--budget", "0.006", "--folds", "3", "--bootstrap", "20",
            "--candidate", "single,zero,linear"]
    seen = []
    for extra, name in (([], "serial"), (["--jobs", "2"], "jobs"), (["--ray", ray_address], "ray")):
        r = runner.invoke(app, args + ["--out", str(tmp_path / name)] + extra)
        assert r.exit_code == 0, r.output
        d = json.loads((tmp_path / name / "results.json").read_text())
        d.pop("created")
        others = {f.name: f.read_bytes() for f in sorted((tmp_path / name).iterdir())
                  if f.suffix not in (".json", ".png", ".html")}
        others["report.html"] = re.sub(r"\d{4}-\d\d-\d\dT[\d:]+\+00:00", "TIME",
                                       (tmp_path / name / "report.html").read_text()).encode()
        seen.append((json.dumps(d, sort_keys=True), others))
    assert seen[0] == seen[1] == seen[2]
