"""Allocation search: known optima on synthetic monotone systems, the L+1 stopping rule, budget
accounting, the diagnoser weight, cost limits, and `callwise allocate` on real data."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from callwise.cli import app
from callwise.core.errors import PolicyError
from callwise.pipelines import search
from callwise.pipelines.search import Ledger, llmselector, pareto_allocations
from callwise.pipelines.synthetic import MonotoneSystem


class Table:
    """An evaluator from an explicit (M**L) table of per-query qualities (brute-force checks)."""

    def __init__(self, quality: np.ndarray, cost: np.ndarray, M: int, L: int) -> None:
        self.q, self.c, self.models, self.n_slots = quality, cost, tuple(f"m{i}" for i in range(M)), L
        self.M = M

    def index(self, allocs: np.ndarray) -> np.ndarray:
        return np.ravel_multi_index(tuple(np.asarray(allocs).T), (self.M,) * self.n_slots)

    def evaluate(self, allocs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = self.index(np.atleast_2d(allocs))
        return self.q[i], np.repeat(self.c[i][:, None], self.q.shape[1], axis=1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("method", ["llmselector", "coordinate"])
def test_sweeps_find_the_known_optimum_of_monotone_systems(seed: int, method: str) -> None:
    s = MonotoneSystem(n_models=6, n_slots=3, n_queries=300, seed=seed)
    r = search(s, method, seed=seed + 10)
    assert r.allocation == s.optimum
    ex = search(s, "exhaustive")
    assert ex.quality == pytest.approx(r.quality)
    assert r.stopped == "converged"
    assert r.evaluations <= 1 + r.rounds * (len(s.models) - 1) and r.evaluations < 6 ** 3


def test_stopping_rule_is_l_plus_one_identical_trace_entries() -> None:
    s = MonotoneSystem(n_models=5, n_slots=4, n_queries=200, seed=3)
    L = s.n_slots
    r = search(s, "llmselector", start=s.optimum)  # already optimal: one full sweep changes nothing
    assert r.rounds == L and len(r.trace) == L + 1 and len(set(r.trace)) == 1 and r.stopped == "converged"
    start = list(s.optimum)
    start[0] = (start[0] + 1) % 5  # only module 0 is off: fixed in round 1, then L unchanged rounds
    r = search(s, "llmselector", start=start)
    assert r.trace[1] == s.optimum and r.rounds == 1 + L and r.stopped == "converged"
    r = search(s, "llmselector", start=start, patience=2)
    assert r.rounds == 2
    with pytest.raises(PolicyError, match="patience must be >= 1"):
        search(s, "llmselector", patience=0)


def test_budget_accounting_counts_distinct_allocations_and_never_overruns() -> None:
    s = MonotoneSystem(n_models=5, n_slots=3, n_queries=100, seed=1)
    r = search(s, "llmselector", budget=10, start=(0, 0, 0))
    # start: 1 evaluation; each round scores the 4 other models of one module
    assert r.evaluations == 9 and r.rounds == 2 and r.stopped == "budget"
    assert len(r.evaluated) == r.evaluations
    s = MonotoneSystem(n_models=5, n_slots=3, n_queries=100, seed=1)
    led = Ledger(s, budget=3)
    led.scores(np.array([[0, 0, 0], [0, 0, 1]]))
    led.scores(np.array([[0, 0, 0], [0, 0, 1]]))  # cached: free
    assert led.evaluations == 2 and s.calls == 2
    from callwise.pipelines.search import BudgetSpent

    with pytest.raises(BudgetSpent):
        led.scores(np.array([[1, 1, 1], [2, 2, 2]]))
    assert led.evaluations == 2  # nothing was scored
    rs = search(s, "random", budget=17, seed=4)
    assert rs.evaluations == 17
    rs = search(s, "random", budget=1000)
    assert rs.evaluations == 125 and rs.allocation == search(s, "exhaustive").allocation
    with pytest.raises(PolicyError, match="budget must be >= 1"):
        search(s, "llmselector", budget=0)
    with pytest.raises(PolicyError, match="random search needs an evaluation budget"):
        search(s, "random")


def test_llmselector_counts_per_query_votes_where_coordinate_ascent_takes_the_mean() -> None:
    # 2 models, 1 module, 3 queries: model 0 is right on q0 and q1, model 1 only on q2 but with a huge margin
    q = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    t = Table(q, np.array([1.0, 1.0]), 2, 1)
    assert search(t, "llmselector", start=[1]).allocation == (0,)  # 2 votes against 1
    assert search(t, "coordinate", start=[0]).allocation == (1,)  # mean 1.0 against 0.67


def test_vote_ties_go_to_the_cheaper_candidate() -> None:
    q = np.ones((3, 4))
    t = Table(q, np.array([3.0, 1.0, 2.0]), 3, 1)
    assert search(t, "llmselector", start=[0]).allocation == (1,)


def test_a_tie_on_training_quality_goes_to_the_cheaper_allocation_in_the_final_choice() -> None:
    """The per-query vote can prefer an allocation no better on average than a cheaper one it scored
    (issue 18: as good as the best single model at 4x its cost); the final choice then takes the cheaper."""
    q = np.array([[0.5, 0.5, 0.5, 0.5],   # m0: cheap, mean 0.5
                  [1.0, 1.0, 0.0, 0.0],   # m1: wins the vote (tops 2 queries), mean 0.5, four times dearer
                  [0.0, 0.0, 0.0, 1.0]])  # m2
    t = Table(q, np.array([1.0, 4.0, 2.0]), 3, 1)
    r = search(t, "llmselector", start=[0])
    assert r.allocation == (0,) and r.quality == pytest.approx(0.5) and r.cost == 1.0
    assert r.trace[-2] == (1,) and r.trace[-1] == (0,)  # the vote's choice, then the cheaper tie
    assert search(t, "llmselector", start=[0], final="last").allocation == (1,)  # the authors' optimizer
    with pytest.raises(PolicyError, match="final must be one of"):
        search(t, "llmselector", start=[0], final="best")
    better = np.array([[0.5, 0.5, 0.5, 0.5], [1.0, 1.0, 0.25, 0.0], [0.0, 0.0, 0.0, 1.0]])
    assert search(Table(better, np.array([1.0, 4.0, 2.0]), 3, 1), "llmselector", start=[0]).allocation == (1,)


def test_diagnoser_weight_changes_the_vote() -> None:
    class Diag(Table):
        def diagnose(self, allocs: np.ndarray, slot: int) -> np.ndarray:
            # the diagnoser blames model 0 in every query
            return np.where(np.atleast_2d(allocs)[:, slot][:, None] == 0, 0.0, 1.0) * np.ones((1, self.q.shape[1]))

    q = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])  # both models equally good end to end
    t = Diag(q, np.array([1.0, 2.0]), 2, 1)
    assert search(t, "llmselector", start=[0]).allocation == (0,)  # tie -> cheaper
    assert search(t, "llmselector", start=[0], alpha=0.5).allocation == (1,)
    with pytest.raises(PolicyError, match="alpha > 0 needs a diagnoser"):
        search(Table(q, np.array([1.0, 2.0]), 2, 1), "llmselector", alpha=1.0)
    with pytest.raises(PolicyError, match="alpha .* must be >= 0"):
        search(t, "llmselector", alpha=-1)


def test_max_cost_excludes_expensive_allocations_and_pareto_set() -> None:
    s = MonotoneSystem(n_models=4, n_slots=2, n_queries=200, seed=2)
    ex = search(s, "exhaustive")
    cap = float(np.median([c for _, c in ex.evaluated.values()]))
    for method in ("exhaustive", "llmselector", "coordinate", "single"):
        r = search(s, method, max_cost=cap, budget=16 if method != "exhaustive" else None)
        assert r.cost <= cap + 1e-12
    best = max((q for q, c in ex.evaluated.values() if c <= cap))
    assert search(s, "exhaustive", max_cost=cap).quality == best
    with pytest.raises(PolicyError, match="no allocation found costs at most"):
        search(s, "exhaustive", max_cost=0.0)
    front = pareto_allocations(ex.evaluated)
    pts = [ex.evaluated[a] for a in front]
    assert [c for _, c in pts] == sorted(c for _, c in pts) and [q for q, _ in pts] == sorted(q for q, _ in pts)
    for q, c in ex.evaluated.values():  # nothing evaluated dominates a front point
        assert not any((q > fq and c <= fc) or (q >= fq and c < fc) for fq, fc in pts)


def test_unknown_method_and_bad_start() -> None:
    s = MonotoneSystem(3, 2, 10)
    with pytest.raises(PolicyError, match="unknown search method 'greedy'"):
        search(s, "greedy")
    with pytest.raises(PolicyError, match=r"start allocation \[0, 7\] must hold 2 model indices in \[0, 3\)"):
        llmselector(Ledger(s), start=[0, 7])


def test_run_evaluator_searches_a_real_pipeline_on_replayed_calls() -> None:
    """LLMSelector over a self-refine pipeline run on a backend, with the exhaustive optimum as reference."""
    from callwise.core.backend import Calls, Queries
    from callwise.pipelines import RunEvaluator, self_refine

    class Skilled:
        """A monotone chain: each module succeeds when its model's skill beats the query's difficulty for
        that module (told apart by the prompt's wording); a wrong input makes every later module wrong."""

        models = ("weak", "ok", "strong")
        skill = {"weak": 0.3, "ok": 0.6, "strong": 0.9}

        def call(self, model: str, queries: Queries, sample: int = 0) -> Calls:
            out = []
            for cid, p in zip(queries.ids, queries.prompts):
                qid = str(cid).split("/")[0]  # a module's call id is '<query id>/<prompt hash>'
                stage = "refine" if "Feedback" in p else "critique" if "Proposed answer" in p else "generate"
                u = zlib.crc32(f"{qid}-{stage}".encode()) % 1000 / 1000
                broken = "WRONG" in p
                out.append("WRONG" if broken or self.skill[model] <= u else f"fine-{qid}")
            n = len(queries)
            return Calls(model, np.full(n, np.nan), np.full(n, self.skill[model] / 100), np.array(out, dtype=object))

    n = 40
    q = Queries(np.array([f"q{i}" for i in range(n)], dtype=object), np.array([f"task {i}" for i in range(n)],
                dtype=object), np.array(["t"] * n, dtype=object))
    refs = np.array([f"fine-q{i}" for i in range(n)], dtype=object)
    ev = RunEvaluator(self_refine(), Skilled(), q, refs)
    r = search(ev, "llmselector", seed=1)
    ex = search(ev, "exhaustive")
    assert r.names == ex.names == ("strong", "strong", "strong") and r.quality == pytest.approx(ex.quality)
    assert len(ev.runs) == 27  # each allocation ran once (the ledger and the evaluator cache)


# -- the CLI on real data ------------------------------------------------------------------------------

def test_cli_allocate_ensemble_on_rational_cascades(shared_data: Path, tmp_path: Path) -> None:
    spec = tmp_path / "ens.yaml"
    spec.write_text("builtin: ensemble-vote\nslots: 3\nnormalise: choice\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["allocate", str(spec), str(shared_data / "rational-cascades"), "--task",
                                   "mmlu-llama", "--task", "mmlu-qwen_oai", "--budget-evals", "40", "--budget",
                                   "0.0003", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "chosen (llmselector)" in res.output and "exhaustive" in res.output
    d = json.loads((out / "results.json").read_text())
    assert (out / "allocations.png").stat().st_size > 1000
    c = d["chosen"]
    assert set(c["allocation"]) == {"slot1", "slot2", "slot3"} and c["evaluations"] <= 40
    assert d["meta"]["models"] and len(d["meta"]["models"]) == 9 and d["meta"]["search_space"] == 729
    by = {b["method"]: b for b in d["baselines"]}
    assert set(by) == {"single", "random", "coordinate", "exhaustive"}
    assert by["random"]["evaluations"] == c["evaluations"]  # the same budget
    assert by["exhaustive"]["train"]["quality"] >= c["train"]["quality"] - 1e-6  # the optimum on train
    assert d["pareto"] and d["under_budget"][0]["budget"] == 0.0003
    lo, hi = c["test"]["quality_ci"]
    assert lo <= c["test"]["quality"] <= hi


def test_cli_allocate_two_stage_uses_the_built_in_diagnoser(shared_data: Path, tmp_path: Path) -> None:
    spec = tmp_path / "ens.yaml"
    spec.write_text("builtin: ensemble-vote\nslots: 3\nnormalise: choice\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["allocate", str(spec), str(shared_data / "rational-cascades"), "--task",
                                   "mmlu-llama", "--task", "mmlu-qwen_oai", "--method", "llmselector-2stage",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads((out / "results.json").read_text())
    assert d["chosen"]["method"] == "llmselector-2stage" and d["meta"]["method"] == "llmselector-2stage"
    by = {b["method"]: b for b in d["baselines"]}
    assert by["exhaustive"]["train"]["quality"] >= d["chosen"]["train"]["quality"] - 1e-6


@pytest.mark.parametrize("args, message", [
    (["--task", "nope"], "unknown task(s) ['nope']"),
    ([], "an allocation is chosen per task"),
    (["--task", "mmlu-llama", "--method", "greedy"], "unknown method 'greedy'"),
    (["--task", "mmlu-llama", "--model", "gpt-9"], "model(s) ['gpt-9'] are not in the data"),
    (["--task", "mmlu-llama", "--diagnoser", "llama3.1-8b"], "--diagnoser needs --alpha > 0"),
])
def test_cli_allocate_bad_input(shared_data: Path, tmp_path: Path, args: list[str], message: str) -> None:
    spec = tmp_path / "ens.yaml"
    spec.write_text("builtin: ensemble-vote\nslots: 2\nnormalise: choice\n")
    res = CliRunner().invoke(app, ["allocate", str(spec), str(shared_data / "rational-cascades"), *args])
    assert res.exit_code == 2 and message in res.output, res.output


def test_cli_allocate_needs_a_backend_for_other_pipelines(shared_data: Path, tmp_path: Path) -> None:
    spec = tmp_path / "sr.yaml"
    spec.write_text("builtin: self-refine\nparse: choice\n")
    res = CliRunner().invoke(app, ["allocate", str(spec), str(shared_data / "rational-cascades"), "--task",
                                   "mmlu-llama"])
    assert res.exit_code == 2 and "not an ensemble vote over the question" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes:\n  - name: a\n    template: '{question}'\n")
    res = CliRunner().invoke(app, ["allocate", str(bad), str(shared_data / "rational-cascades")])
    assert res.exit_code == 2 and "template field {question} names nothing" in res.output and str(bad) in res.output
