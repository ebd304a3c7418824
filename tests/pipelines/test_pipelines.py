"""Pipelines: definition and validation (Python and YAML), built-ins, runs on a scripted backend and on Replay."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from callwise.core.backend import Calls, Queries
from callwise.core.errors import PolicyError
from callwise.core.outcomes import OutcomeTable
from callwise.core.replay import Replay
from callwise.pipelines import (
    Module,
    Pipeline,
    PipelineError,
    Step,
    builtin,
    debate,
    ensemble_vote,
    load_pipeline,
    locate_then_solve,
    pipeline_from_dict,
    run_pipeline,
    self_refine,
)

PRICE = {"small": 0.001, "big": 0.01, "mid": 0.004}


class Scripted:
    """Answers a deterministic function of (model, prompt, sample); counts its calls."""

    models = ("small", "mid", "big")

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def call(self, model: str, queries: Queries, sample: int = 0) -> Calls:
        self.calls.append((model, len(queries), sample))
        ans = np.array([f"{model}-{zlib.crc32(str(p).encode()) % 1000}-s{sample}" for p in queries.prompts], dtype=object)
        n = len(queries)
        return Calls(model, np.full(n, np.nan), np.full(n, PRICE[model]), ans, np.full(n, 0.25 if model == "big" else 0.1))


def _queries(n: int = 4) -> Queries:
    return Queries(np.array([f"q{i}" for i in range(n)], dtype=object),
                   np.array([f"Question {i}: what is {i} + {i}?" for i in range(n)], dtype=object),
                   np.array(["math"] * n, dtype=object))


# -- definition and validation ---------------------------------------------------------------------

def test_builtins_have_the_modules_they_promise() -> None:
    assert self_refine().modules == ("generate", "critique", "refine")
    assert locate_then_solve().modules == ("locate", "solve")
    d = debate(agents=3, rounds=2)
    assert d.modules == ("a1_r1", "a2_r1", "a3_r1", "a1_r2", "a2_r2", "a3_r2", "final")
    assert set(d.dependencies("a1_r2")) == {"prompt", "a2_r1", "a3_r1", "a1_r1"}
    assert debate(2, 1, final="vote").modules == ("a1_r1", "a2_r1")
    e = ensemble_vote(5)
    assert e.modules == tuple(f"slot{i}" for i in range(1, 6)) and e.output == "vote" and e.repeats == "reuse"
    assert ensemble_vote(3, aggregator="absolute-error").nodes["aggregate"].options["metric"] == "absolute-error"
    assert builtin("self-refine", parse="choice").output == "answer"


def test_topological_order_respects_dependencies() -> None:
    p = Pipeline("p", [Step("final", "parse", ("b",), {"normalise": "number"}), Module("b", "{a} then"),
                       Module("a", "{prompt}")], output="final")
    assert p.order.index("a") < p.order.index("b") < p.order.index("final")
    assert p.modules == ("b", "a")


@pytest.mark.parametrize("nodes, output, message", [
    ([Module("a", "{prompt} {nope}")], None, "template field {nope} names nothing"),
    ([Module("a", "{b}"), Module("b", "{a}")], None, "the nodes form a cycle: a -> b -> a"),
    ([Module("a", "{prompt}"), Module("a", "{prompt}")], None, "duplicate node name 'a'"),
    ([Module("a", "{prompt}"), Step("v", "tally", ("a",))], None, "unknown step op 'tally'"),
    ([Module("a", "{prompt}"), Step("v", "vote", ("a", "ghost"))], None, "input {ghost} names nothing"),
    ([Module("a", "{prompt}")], "b", "output 'b' is not a node"),
    ([Module("prompt", "{id}")], None, "taken by a pipeline input"),
    ([Module("a b", "{prompt}")], None, "must be an identifier"),
    ([Module("a", "   ")], None, "non-empty prompt template"),
    ([Step("p", "parse", ("prompt",))], None, "no LLM module"),
    ([Module("a", "{prompt}"), Step("g", "aggregate", ("a",))], None, "an aggregate step needs a metric"),
    ([Module("a", "{prompt}"), Step("g", "parse", ("a", "prompt"))], None, "reads exactly one input"),
])
def test_invalid_pipelines_fail_with_a_clear_error(nodes, output, message) -> None:
    with pytest.raises(PipelineError, match=None) as e:
        Pipeline("bad", nodes, output)
    assert message in str(e.value)


def test_allocation_forms_and_errors() -> None:
    p = self_refine()
    assert p.allocation("big") == {"generate": "big", "critique": "big", "refine": "big"}
    assert p.allocation(["small", "big", "small"])["critique"] == "big"
    assert p.allocation({"generate": "a", "critique": "b", "refine": "c"})["refine"] == "c"
    with pytest.raises(PipelineError, match="has 2 models; pipeline 'self-refine' has 3 modules"):
        p.allocation(["a", "b"])
    with pytest.raises(PipelineError, match=r"unknown modules \['judge'\]"):
        p.allocation({"generate": "a", "critique": "b", "refine": "c", "judge": "d"})


def test_yaml_round_trip_and_file_errors(tmp_path: Path) -> None:
    import yaml

    p = debate(2, 2)
    f = tmp_path / "debate.yaml"
    f.write_text(yaml.safe_dump(p.to_dict()))
    q = load_pipeline(f)
    assert q.modules == p.modules and q.order == p.order and q.output == p.output
    assert q.nodes["a1_r2"] == p.nodes["a1_r2"]
    b = tmp_path / "builtin.yaml"
    b.write_text("builtin: ensemble-vote\nslots: 4\nnormalise: choice\n")
    assert load_pipeline(b).modules == ("slot1", "slot2", "slot3", "slot4")

    cases = {
        "nodes:\n  - name: a\n    template: '{prompt} {missing}'\n": "template field {missing} names nothing",
        "nodes:\n  - name: a\n    template: '{b}'\n  - name: b\n    template: '{a}'\n": "cycle: a -> b -> a",
        "nodes:\n  - name: a\n    prompt: hi\n": "needs a 'template' (an LLM module) or an 'op'",
        "nodes: []\n": "'nodes' must be a non-empty list",
        "builtin: tree-of-thought\n": "unknown built-in pipeline 'tree-of-thought'",
        "builtin: debate\nagents: 2\nteams: 3\n": "bad options for built-in 'debate'",
        "nodes:\n  - name: a\n    template: x\n    temprature: 1\n": "unknown module keys ['temprature']",
        "nodes:\n  - name: a\n    template: x\n  - name: f\n    op: python\n    inputs: [a]\n    function: os.path:nope\n":
            "cannot import function 'os.path:nope'",
        "name: x\nnodez: []\n": "unknown keys ['nodez']",
        "nodes: [\n": "not valid YAML",
    }
    for i, (text, message) in enumerate(cases.items()):
        g = tmp_path / f"bad{i}.yaml"
        g.write_text(text)
        with pytest.raises(PipelineError) as e:
            load_pipeline(g)
        assert message in str(e.value) and str(g) in str(e.value), (text, str(e.value))
    with pytest.raises(PipelineError, match="no such pipeline file"):
        load_pipeline(tmp_path / "absent.yaml")


# -- running ------------------------------------------------------------------------------------------

def test_self_refine_renders_each_module_from_earlier_outputs() -> None:
    be = Scripted()
    q = _queries(3)
    run = run_pipeline(self_refine(), ["small", "big", "mid"], be, q)
    gen, crit, ref = (run.calls[m] for m in ("generate", "critique", "refine"))
    assert list(gen.prompts) == list(q.prompts)
    for i in range(3):
        assert gen.outputs[i] in crit.prompts[i] and q.prompts[i] in crit.prompts[i]
        assert gen.outputs[i] in ref.prompts[i] and crit.outputs[i] in ref.prompts[i]
    assert [c.model for c in run.calls.values()] == ["small", "big", "mid"]
    np.testing.assert_allclose(run.cost, PRICE["small"] + PRICE["big"] + PRICE["mid"])
    np.testing.assert_allclose(run.latency, 0.1 + 0.25 + 0.1)  # a chain: latencies add up
    assert list(run.answers) == list(ref.outputs)
    assert len(be.calls) == 3 and all(n == 3 for _, n, _ in be.calls)  # one batched call per module


def test_ensemble_repeats_new_sample_versus_reuse() -> None:
    q = _queries(2)
    be = Scripted()
    run = run_pipeline(ensemble_vote(3, repeats="new-sample"), ["small", "small", "big"], be, q)
    assert list(run.calls["slot2"].sample) == [1, 1] and not run.calls["slot2"].reused.any()
    assert run.calls["slot1"].outputs[0] != run.calls["slot2"].outputs[0]
    np.testing.assert_allclose(run.cost, 2 * PRICE["small"] + PRICE["big"])
    np.testing.assert_allclose(run.latency, 0.25)  # slots run side by side: the slowest one
    be = Scripted()
    run = run_pipeline(ensemble_vote(3), ["small", "small", "big"], be, q)
    assert run.calls["slot2"].reused.all() and list(run.calls["slot2"].outputs) == list(run.calls["slot1"].outputs)
    np.testing.assert_allclose(run.cost, PRICE["small"] + PRICE["big"])
    assert [m for m, _, _ in be.calls] == ["small", "big"]  # the repeated call was not made
    assert list(run.answers) == list(run.calls["slot1"].outputs)  # 2 votes of 'small' beat 1 of 'big'


def test_steps_parse_vote_aggregate_and_python() -> None:
    class Fixed:
        models = ("a", "b", "c")
        table = {"a": ["The answer is (B)", "12", "x"], "b": ["B", "10", "y"], "c": ["C.", "14", "z"]}

        def call(self, model: str, queries: Queries, sample: int = 0) -> Calls:
            n = len(queries)
            rows = [int(str(i)[1:]) for i in queries.ids]
            return Calls(model, np.full(n, np.nan), np.zeros(n), np.array([self.table[model][r] for r in rows],
                                                                          dtype=object))

    q = _queries(3)
    vote = Pipeline("v", [Module("x", "{prompt}"), Module("y", "{prompt}"), Module("z", "{prompt}"),
                          Step("v", "vote", ("x", "y", "z"), {"normalise": "choice"})])
    run = run_pipeline(vote, ["a", "b", "c"], Fixed(), q, references=["B", "10", "q"], normalise="choice")
    assert run.answers[0] == "The answer is (B)"  # the first slot holding the plurality answer
    assert run.quality[0] == 1.0
    agg = Pipeline("g", [Module("x", "{prompt}"), Module("y", "{prompt}"), Module("z", "{prompt}"),
                         Step("m", "aggregate", ("x", "y", "z"), {"metric": "absolute-error"})])
    run = run_pipeline(agg, ["a", "b", "c"], Fixed(), q.take(np.array([1])), references=["12"],
                       metric="absolute-error", normalise="number")
    assert float(run.answers[0]) == 12.0 and run.quality[0] == 0.0
    parse = Pipeline("p", [Module("x", "{prompt}"), Step("l", "parse", ("x",), {"normalise": "choice"})])
    assert run_pipeline(parse, ["c"], Fixed(), q.take(np.array([0]))).answers[0] == "C"
    py = Pipeline("f", [Module("x", "{prompt}"), Step("u", "python", ("x", "prompt"), fn=lambda x, prompt: [
        a.upper() for a in x])])
    assert list(run_pipeline(py, ["c"], Fixed(), q).answers) == ["C.", "14", "Z"]
    bad = Pipeline("f", [Module("x", "{prompt}"), Step("u", "python", ("x",), fn=lambda x: ["only one"])])
    with pytest.raises(PipelineError, match="returned 1 outputs for 3 queries"):
        run_pipeline(bad, ["c"], Fixed(), q)


def test_run_rejects_models_the_backend_lacks() -> None:
    with pytest.raises(PolicyError, match=r"cannot call: \['gpt-9'\]"):
        run_pipeline(self_refine(), ["small", "gpt-9", "big"], Scripted(), _queries(1))


def test_run_record_frame_and_calls_table_replay_offline() -> None:
    q = _queries(3)
    pipe = debate(2, 2)
    alloc = ["small", "small", "big", "mid", "big"]
    run = run_pipeline(pipe, alloc, Scripted(), q, references=["x", "y", "z"])
    f = run.to_frame()
    assert len(f) == 3 * len(pipe.order)
    assert set(f.columns) >= {"prompt_id", "node", "model", "prompt", "answer", "cost", "latency", "quality", "output"}
    outs = f[f["output"]].set_index("query_id")["answer"]
    assert list(outs.loc[list(q.ids)]) == list(run.answers)
    table = run.calls_table()
    assert isinstance(table, OutcomeTable) and len(table) == 3 * len(pipe.modules)
    assert table.frame["sample"].max() == 1  # the second agent on the same round-1 prompt asked for sample 1
    replayed = run_pipeline(pipe, alloc, Replay(table, match="prompt"), q)
    for name in pipe.order:
        assert list(replayed.outputs[name]) == list(run.outputs[name]), name
    np.testing.assert_allclose(replayed.cost, run.cost)
    # an allocation whose calls were not recorded cannot be replayed
    with pytest.raises(PolicyError, match="model 'big' has no recorded sample 0 for 3 queries"):
        run_pipeline(pipe, ["big"] * 5, Replay(table, match="prompt"), q)
    other = Queries(np.array(["z"], dtype=object), np.array(["never asked"], dtype=object), np.array(["math"], dtype=object))
    with pytest.raises(PolicyError, match=r"1 prompts have no recorded outcomes \(matched by prompt text\)"):
        run_pipeline(pipe, alloc, Replay(table, match="prompt"), other)


def test_replay_by_prompt_text_needs_texts_and_rejects_unknown_match() -> None:
    df = pd.DataFrame({"prompt_id": ["a", "b"], "model": ["m", "m"], "quality": [1.0, 0.0], "cost": [0.1, 0.1],
                       "answer": ["x", "y"]})
    t = OutcomeTable.from_frame(df)
    with pytest.raises(PolicyError, match="needs every recorded prompt's text"):
        Replay(t, match="prompt")
    with pytest.raises(PolicyError, match="unknown match 'hash'"):
        Replay(t, match="hash")


def test_score_uses_the_metric_and_normaliser() -> None:
    from callwise.pipelines import score_answers

    s = score_answers(np.array(["(B)", "answer: C", None], dtype=object), ["B", "B", "B"], normalise="choice")
    assert list(s) == [1.0, 0.0, 0.0]
    s = score_answers(np.array(["12", "15"], dtype=object), ["10", "10"], metric="absolute-error", normalise="number")
    assert list(s) == [-2.0, -5.0]
    assert list(score_answers(np.array(["B"], dtype=object), [None], normalise="choice")) == [0.0]


def test_pipeline_from_dict_python_step_by_import_path() -> None:
    p = pipeline_from_dict({"name": "u", "nodes": [{"name": "a", "template": "{prompt}"},
                                                  {"name": "n", "op": "python", "inputs": ["a"],
                                                   "function": "numpy:char.upper"}]})
    assert isinstance(p.nodes["n"], Step) and p.nodes["n"].fn is np.char.upper
    assert p.to_dict()["nodes"][1]["function"].endswith("upper")
