"""Progress that counts the work (core.progress): the API's on_progress callbacks and the CLI's
--quiet / --verbose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from benchkit import three_models
from typer.testing import CliRunner

from callwise import OutcomeTable
from callwise.cli import app
from callwise.core.progress import Counter
from callwise.core.split import split_outcomes
from callwise.evaluation.bench import bench

runner = CliRunner()
POLICIES = ["random-mix", "threshold"]


def synthetic(n_prompts: int = 60, tasks=("a", "b"), seed: int = 0) -> OutcomeTable:
    return three_models(n_prompts, tasks, seed, split=True, confidence=True)


def _record() -> tuple[list[tuple[int, int, str]], object]:
    calls: list[tuple[int, int, str]] = []
    return calls, lambda done, total, what: calls.append((done, total, what))


def _counts_to_the_end(calls: list[tuple[int, int, str]]) -> None:
    dones = [d for d, _, _ in calls]
    assert dones == sorted(dones) and len(set(dones)) == len(dones), "done only grows"
    assert calls[-1][0] == calls[-1][1], "the count reaches its total"


def test_counter_counts_and_finishes() -> None:
    calls, cb = _record()
    c = Counter(cb, 3)
    c("a")
    c.add(2)
    c("b", 2)
    c.finish()
    assert calls == [(1, 3, "a"), (3, 5, "b"), (5, 5, "done")]
    Counter(None, 2)("nothing is called")  # no callback: counts only


def test_bench_counts_baselines_policies_and_bootstrap_rounds() -> None:
    tr, te, _ = split_outcomes(synthetic())
    calls, cb = _record()
    n_boot = 30
    r = bench(tr, te, policies=POLICIES, n_boot=n_boot, on_progress=cb)
    units = len(te.tasks()) * (1 + len(POLICIES) + n_boot)  # per task: baselines, each policy, each round
    assert {t for _, t, _ in calls} == {units}
    _counts_to_the_end(calls)
    assert sum(1 for _, _, w in calls if "bootstrap" in w) < len(te.tasks()) * n_boot  # rounds come in chunks
    assert any(w == "task a: threshold (fit and 11 configuration(s) run)" or w.startswith("task a: threshold")
               for _, _, w in calls)
    # the same result without a callback
    assert bench(tr, te, policies=POLICIES, n_boot=n_boot).to_dict()["tasks"]["a"]["policies"].keys() == \
        r.to_dict()["tasks"]["a"]["policies"].keys()


def test_plan_counts_candidates_times_folds() -> None:
    from callwise.plan import plan

    calls, cb = _record()
    folds = 2
    r = plan(synthetic(tasks=("a",)), budget=0.01, folds=folds, candidates=["single", "zero"], n_boot=5,
             on_progress=cb)
    _counts_to_the_end(calls)
    n_cands = len(r.tasks["a"].evaluated)
    assert calls[-1][1] == n_cands * (folds + 2)  # full fit, each fold, the test run
    assert sum(1 for _, _, w in calls if "fold 2/2" in w) == n_cands


def test_cascade_counts_pairs_times_budgets() -> None:
    from callwise.cascades.protocol import plan_cascades, run_cascades

    tr, te, _ = split_outcomes(synthetic(tasks=("a",)))
    calls, cb = _record()
    run_cascades(tr, te, all_pairs=True, methods=("confidence", "random"), n_budgets=7, n_orders=1,
                 on_progress=cb)
    items = plan_cascades(tr, te, all_pairs=True)
    assert len(calls) == len(items) and calls[-1] == (7 * len(items), 7 * len(items), calls[-1][2])
    _counts_to_the_end(calls)


def test_aggregate_counts_tasks_times_rules() -> None:
    from callwise.aggregation.comparison import evaluate, synthetic_suite

    table, oracle = synthetic_suite(["absolute-error"], seed=0)
    calls, cb = _record()
    evaluate(table, ["absolute-error"], reps=5, n_boot=20, oracle=oracle, on_progress=cb)
    _counts_to_the_end(calls)
    assert sum(1 for _, _, w in calls if w.endswith(": scored")) == len(table.tasks())


def _data(tmp_path: Path) -> Path:
    p = tmp_path / "outcomes.csv"
    synthetic().frame.to_csv(p, index=False)
    return p


def _bench(tmp_path: Path, *opts: str):
    args = [*opts, "bench", str(_data(tmp_path)), "--policy", ",".join(POLICIES), "--bootstrap", "5",
            "--out", str(tmp_path / "out")]
    # FORCE_COLOR makes rich treat the captured output as a terminal, so a progress bar would show
    return runner.invoke(app, args, env={"FORCE_COLOR": "1", "COLUMNS": "160"})


def test_progress_bar_shows_without_quiet(tmp_path: Path) -> None:
    r = _bench(tmp_path)
    assert r.exit_code == 0, r.output
    assert "━" in r.output and "wrote " in r.output


def test_quiet_prints_tables_only(tmp_path: Path) -> None:
    r = _bench(tmp_path, "--quiet")
    assert r.exit_code == 0, r.output
    assert "━" not in r.output, "no progress bar"
    assert "wrote " not in r.output and "bench [" not in r.output, "no informational lines"
    assert "threshold" in r.output and "AIQ" in r.output, "the tables still print"
    assert (tmp_path / "out" / "results.json").exists()


def test_verbose_prints_each_unit_with_its_time(tmp_path: Path) -> None:
    r = _bench(tmp_path, "--verbose")
    assert r.exit_code == 0, r.output
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", r.output).replace("\r", "\n")  # the bar redraws after \r
    steps = re.findall(r"^bench \[(\d+)/(\d+)\] (.+): (\d+\.\d\d) s$", plain, flags=re.M)
    units = 2 * (1 + len(POLICIES) + 5)
    assert len(steps) == units and {int(t) for _, t, _, _ in steps} == {units}
    assert any(w.startswith("task a: threshold (fit") for _, _, w, _ in steps)
    assert "wrote " in r.output


def test_quiet_and_verbose_exclude_each_other() -> None:
    r = runner.invoke(app, ["--quiet", "--verbose", "bench"])
    assert r.exit_code == 2 and "not both" in r.output


@pytest.mark.parametrize("flag", ["--quiet", "--verbose"])
def test_the_flags_belong_before_the_command(flag: str) -> None:
    r = runner.invoke(app, ["--help"])
    assert flag in r.output


def test_scale_counts_its_five_stages(shared_data: Path) -> None:
    from callwise.io import load
    from callwise.voting.curves import SCALE_STAGES, scale

    table = load(shared_data / "mot-cascade-samples" / "llama2_13B_result" / "date_cot1.json.gz")
    calls, cb = _record()
    scale(table, "llama-2-13b", k_max=20, reps=20, n_boot=20, on_progress=cb)
    assert [d for d, _, _ in calls] == list(range(1, SCALE_STAGES + 1)) and {t for _, t, _ in calls} == {SCALE_STAGES}
    assert calls[0][2].startswith("empirical curve")


def test_fit_counts_the_fit_and_the_held_out_run() -> None:
    from callwise.evaluation.fit import fit_policy

    calls, cb = _record()
    fit_policy(synthetic(), "threshold", n_boot=20, on_progress=cb)
    assert [(d, t) for d, t, _ in calls] == [(1, 2), (2, 2)] and calls[1][2].startswith("held-out")
    calls.clear()
    fit_policy(synthetic(), "threshold", holdout=False, on_progress=cb)
    assert [(d, t) for d, t, _ in calls] == [(1, 1)]
