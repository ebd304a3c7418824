"""Pipelines on the live path: self-refine and debate through a real replay server over HTTP.

A deterministic scripted backend (answers a function of model, prompt text and sample; costs and
latencies per model) runs each pipeline under each allocation; its runs' ``calls_table()`` s are
the recording the replay server answers from. The same pipelines then run on a :class:`Live`
backend (real uvicorn server in a thread, real HTTP client, a response cache on disk) and must
reproduce the scripted runs node by node: the same rendered prompts, models, samples, answers and
costs. A counting wrapper around the app shows what reached the server, so cache reuse (a re-run,
or another allocation sharing a module) is checked by the requests that were NOT made.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from livekit import TASK, live_backends, live_for

from callwise.core.backend import Calls, Queries
from callwise.core.errors import PolicyError
from callwise.core.outcomes import OutcomeTable
from callwise.core.replay import Replay
from callwise.io import load
from callwise.live.backend import ProviderError
from callwise.live.http_util import BackgroundServer
from callwise.live.replay_server import build_replay_app
from callwise.pipelines import PipelineRun, debate, run_pipeline, self_refine

N_QUESTIONS = 5
SMALL, MID, BIG = "alpha-8b", "beta-70b", "gamma-405b"
MODELS = (SMALL, MID, BIG)
PRICE = {SMALL: 1e-4, MID: 7e-4, BIG: 3e-3}  # dollars per call, times 1..5 by the prompt
SECONDS = {SMALL: 0.2, MID: 0.9, BIG: 2.5}

# self-refine allocations (generate, critique, refine): A and B share generate; A and C share
# generate and critique; D shares nothing with A
SR_A = {"generate": SMALL, "critique": MID, "refine": SMALL}
SR_B = {"generate": SMALL, "critique": BIG, "refine": MID}
SR_C = {"generate": SMALL, "critique": MID, "refine": BIG}
SR_D = {"generate": BIG, "critique": BIG, "refine": BIG}
SELF_REFINE_ALLOCS = (SR_A, SR_B, SR_C, SR_D)
# debate 2 agents x 2 rounds + final: the same model in both agents (round 1 asks it twice for the
# same prompt: samples 0 and 1), and a mixed one
DB_SAME = {"a1_r1": MID, "a2_r1": MID, "a1_r2": MID, "a2_r2": MID, "final": BIG}
DB_MIXED = {"a1_r1": SMALL, "a2_r1": BIG, "a1_r2": SMALL, "a2_r2": BIG, "final": MID}
DEBATE_ALLOCS = (DB_SAME, DB_MIXED)


def _h(model: str, prompt: str, sample: int) -> int:
    return zlib.crc32(f"{model}\x00{sample}\x00{prompt}".encode())


class Scripted:
    """A deterministic backend: each answer is a function of (model, prompt text, sample).

    Answers start with a choice letter (so ``choice`` scoring works) and name the model, the
    sample and a hash of the prompt, so two calls that differ in any of them answer differently.
    """

    models = MODELS

    def __init__(self) -> None:
        self.log: list[tuple[str, int, int]] = []  # (model, sample, batch size) of each call

    def call(self, model: str, queries: Queries, sample: int = 0) -> Calls:
        if model not in MODELS:
            raise PolicyError(f"unknown model {model!r}")
        self.log.append((model, int(sample), len(queries)))
        h = np.array([_h(model, str(p), sample) for p in queries.prompts], dtype=np.int64)
        answers = np.array([f"{'ABCD'[x % 4]}. {model} draw {sample} #{x:08x}" for x in h], dtype=object)
        n = len(queries)
        return Calls(model, np.full(n, np.nan), PRICE[model] * (1 + h % 5), answers,
                     np.full(n, SECONDS[model]))


def references_for(q: Queries) -> np.ndarray:
    return np.array(["ABCD"[zlib.crc32(str(p).encode()) % 4] for p in q.prompts], dtype=object)


def scripted_run(pipeline, allocation, q: Queries, backend=None) -> PipelineRun:
    return run_pipeline(pipeline, allocation, backend or Scripted(), q, references=references_for(q),
                        normalise="choice")


def record(runs: list[PipelineRun]) -> OutcomeTable:
    """One outcome table of every call of ``runs``: their ``calls_table()`` s stacked.

    A call's id is ``<query id>/<hash of the rendered prompt>``, the same under every allocation
    that renders that prompt, so a call two runs share (same query, text, model and sample: the
    same answer) is kept once.
    """
    f = pd.concat([r.calls_table().frame for r in runs], ignore_index=True)
    f = f.drop_duplicates(["prompt_id", "model", "sample"]).reset_index(drop=True)
    return OutcomeTable.from_frame(f, partial=True)


class CountingApp:
    """An ASGI wrapper that records (model, last user message, sample header) of each chat request."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int]] = []

    async def __call__(self, scope, receive, send) -> None:
        if not (scope["type"] == "http" and scope["path"].endswith("/chat/completions")):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if msg["type"] != "http.request" or not msg.get("more_body"):
                break
        body = b"".join(chunks)
        req = json.loads(body)
        users = [m["content"] for m in req["messages"] if m["role"] == "user"]
        sample = int(dict(scope["headers"]).get(b"x-callwise-sample", b"0").decode())
        self.seen.append((req["model"], users[-1], sample))
        given = False

        async def body_once():
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, body_once, send)


def calls_of(run: PipelineRun, modules=None) -> list[tuple[str, str, int]]:
    """The (model, prompt, sample) of every call ``run`` made in ``modules`` (default: all)."""
    out = []
    for m in modules or run.pipeline.modules:
        c = run.calls[m]
        out += [(c.model, str(p), int(s)) for p, s, r in zip(c.prompts, c.sample, c.reused) if not r]
    return out


@pytest.fixture(scope="module")
def questions(shared_data: Path) -> Queries:
    t = load(shared_data / "rational-cascades").for_task(TASK)
    f = t.for_prompts(t.prompt_ids()[:N_QUESTIONS]).frame.drop_duplicates("prompt_id")
    return Queries(f["prompt_id"].to_numpy(dtype=object), f["prompt"].to_numpy(dtype=object),
                   f["task"].to_numpy(dtype=object))


@pytest.fixture(scope="module")
def world(questions):
    sr, db = self_refine(), debate(agents=2, rounds=2)
    runs = {("self-refine", i): scripted_run(sr, a, questions) for i, a in enumerate(SELF_REFINE_ALLOCS)}
    runs |= {("debate", i): scripted_run(db, a, questions) for i, a in enumerate(DEBATE_ALLOCS)}
    table = record(list(runs.values()))
    app = CountingApp(build_replay_app(table))
    with BackgroundServer(app) as srv:
        yield {"table": table, "runs": runs, "url": srv.url, "app": app, "self_refine": sr, "debate": db}


@pytest.fixture
def live(world, tmp_path):
    with live_backends(world["url"], list(MODELS)) as make_at:
        def make(cache: str | None = "cache.sqlite", transport: str = "http"):
            return make_at(None if cache is None else tmp_path / cache, transport=transport)

        yield make


def assert_same_run(live_run: PipelineRun, scripted: PipelineRun) -> None:
    """Node by node: the same outputs; module by module: model, prompts, samples, reuse and costs."""
    p = scripted.pipeline
    assert live_run.allocation == scripted.allocation
    assert list(live_run.outputs) == list(scripted.outputs) == list(p.order)
    for node in p.order:
        assert list(live_run.outputs[node]) == list(scripted.outputs[node]), node
    for m in p.modules:
        got, want = live_run.calls[m], scripted.calls[m]
        assert got.model == want.model == scripted.allocation[m]
        assert list(got.prompts) == list(want.prompts), m
        assert list(got.sample) == list(want.sample), m
        assert list(got.reused) == list(want.reused), m
        np.testing.assert_array_equal(got.cost, want.cost, err_msg=m)  # usage.cost, as recorded
        assert np.isfinite(got.latency).all() and (got.latency > 0).all(), m  # measured over HTTP
        assert (got.latency < 30).all(), m  # ...not the recorded seconds
    np.testing.assert_array_equal(live_run.cost, scripted.cost)
    assert live_run.cost.sum() > 0
    np.testing.assert_array_equal(live_run.quality, scripted.quality)
    assert list(live_run.answers) == list(scripted.answers)
    assert np.isfinite(live_run.latency).all() and (live_run.latency > 0).all()


# ---------------------------------------------------------------------------------------------
# the recording


def test_the_recording_holds_every_call_of_every_scripted_run(world, questions):
    t, runs = world["table"], world["runs"]
    f = t.frame
    recorded = set(zip(f["model"], f["prompt"], f["sample"].astype(int)))
    every = set().union(*(calls_of(r) for r in runs.values()))
    assert recorded == every
    # one id per (query, rendered prompt): identical texts share it, different texts never do
    assert f.groupby("prompt_id")["prompt"].nunique().max() == 1
    assert f.groupby(["prompt"])["prompt_id"].nunique().max() == 1
    assert len(f) == len(every)
    # the same-model debate asks round 1's shared prompt for a second sample
    same = runs[("debate", 0)]
    assert list(same.calls["a1_r1"].prompts) == list(same.calls["a2_r1"].prompts)
    assert (same.calls["a1_r1"].sample == 0).all() and (same.calls["a2_r1"].sample == 1).all()
    assert ((f["model"] == MID) & (f["sample"] == 1)).sum() == N_QUESTIONS
    own = same.calls_table().frame  # ...stacked as samples 0 and 1 of one recorded prompt
    first = own[own["prompt"].isin(set(questions.prompts))]
    assert sorted(first["sample"]) == [0] * N_QUESTIONS + [1] * N_QUESTIONS
    assert first["prompt_id"].nunique() == N_QUESTIONS
    # the scripted answers are distinct per model and per sample
    assert not (same.outputs["a1_r1"] == same.outputs["a2_r1"]).any()


# ---------------------------------------------------------------------------------------------
# live self-refine and debate


@pytest.mark.parametrize("alloc", SELF_REFINE_ALLOCS, ids=["A-mixed", "B-mixed", "C-mixed", "D-big"])
def test_live_self_refine_reproduces_the_scripted_run(world, live, questions, alloc):
    i = SELF_REFINE_ALLOCS.index(alloc)
    scripted = world["runs"][("self-refine", i)]
    app = world["app"]
    app.seen.clear()
    run = run_pipeline(world["self_refine"], alloc, live(), questions, references=references_for(questions),
                       normalise="choice")
    assert_same_run(run, scripted)
    # one request per query and module, each the rendered prompt sent to the allocated model
    assert sorted(app.seen) == sorted(calls_of(scripted))
    assert len(app.seen) == 3 * N_QUESTIONS


def test_live_self_refine_through_litellm(world, live, questions):
    """The default transport (LiteLLM's OpenAI client) gives the same run as the lean http one."""
    app = world["app"]
    app.seen.clear()
    run = run_pipeline(world["self_refine"], SR_A, live(transport="litellm"), questions,
                       references=references_for(questions), normalise="choice")
    assert_same_run(run, world["runs"][("self-refine", 0)])
    assert len(app.seen) == 3 * N_QUESTIONS


def test_live_debate_with_one_model_in_both_agents_asks_for_distinct_samples(world, live, questions):
    scripted = world["runs"][("debate", 0)]
    app = world["app"]
    app.seen.clear()
    run = run_pipeline(world["debate"], DB_SAME, live(), questions, references=references_for(questions),
                       normalise="choice")
    assert_same_run(run, scripted)
    a1, a2 = run.calls["a1_r1"], run.calls["a2_r1"]
    # round 1: both agents send the same prompt to the same model; the second asks for sample 1
    assert list(a1.prompts) == list(a2.prompts) == list(questions.prompts)
    assert (a1.sample == 0).all() and (a2.sample == 1).all() and not a2.reused.any()
    assert not (run.outputs["a1_r1"] == run.outputs["a2_r1"]).any()
    assert a2.cost.sum() > 0  # a second draw is paid for
    # round 2 reads the other agent's round-1 answer
    for i in range(N_QUESTIONS):
        assert str(run.outputs["a2_r1"][i]) in run.calls["a1_r2"].prompts[i]
        assert str(run.outputs["a1_r1"][i]) in run.calls["a2_r2"].prompts[i]
    # the server saw the sample header: each question once as sample 0 and once as sample 1
    r1 = [(m, s) for m, text, s in app.seen if text in set(questions.prompts)]
    assert sorted(r1) == sorted([(MID, 0)] * N_QUESTIONS + [(MID, 1)] * N_QUESTIONS)
    assert sorted(app.seen) == sorted(calls_of(scripted)) and len(app.seen) == 5 * N_QUESTIONS


def test_live_debate_with_mixed_models(world, live, questions):
    scripted = world["runs"][("debate", 1)]
    app = world["app"]
    app.seen.clear()
    run = run_pipeline(world["debate"], DB_MIXED, live(), questions, references=references_for(questions),
                       normalise="choice")
    assert_same_run(run, scripted)
    assert (run.calls["a2_r1"].sample == 0).all()  # another model: no repeat, sample 0
    assert sorted(app.seen) == sorted(calls_of(scripted))


# ---------------------------------------------------------------------------------------------
# the response cache


def test_live_rerun_of_an_allocation_is_served_from_the_cache(world, live, questions):
    app = world["app"]
    for pipeline, alloc, key in ((world["self_refine"], SR_A, ("self-refine", 0)),
                                 (world["debate"], DB_SAME, ("debate", 0))):
        be = live()
        app.seen.clear()
        first = run_pipeline(pipeline, alloc, be, questions, references=references_for(questions),
                             normalise="choice")
        n = len(pipeline.modules) * N_QUESTIONS
        assert len(app.seen) == n and be.stats["calls"] == n

        app.seen.clear()
        again = run_pipeline(pipeline, alloc, be, questions, references=references_for(questions),
                             normalise="choice")
        assert app.seen == []
        assert be.stats["calls"] == n and be.stats["cache_hits"] == n
        assert_same_run(again, world["runs"][key])
        for m in pipeline.modules:  # the cache keeps each call's measured latency
            np.testing.assert_array_equal(again.calls[m].latency, first.calls[m].latency)
        be.close()
        be.cache.close()

        # another backend on the same cache file (a new process): still no request
        be2 = live()
        third = run_pipeline(pipeline, alloc, be2, questions, references=references_for(questions),
                             normalise="choice")
        assert app.seen == [] and be2.stats["calls"] == 0 and be2.stats["cache_hits"] == n
        assert_same_run(third, world["runs"][key])
        be2.close()
        be2.cache.close()


def test_another_allocation_reuses_the_cached_calls_of_the_modules_it_shares(world, live, questions):
    app = world["app"]
    runs = world["runs"]
    sr = world["self_refine"]
    be = live()
    app.seen.clear()
    run_pipeline(sr, SR_A, be, questions)
    assert len(app.seen) == 3 * N_QUESTIONS

    # B shares generate (same model, same prompt): only critique and refine reach the server
    app.seen.clear()
    b = run_pipeline(sr, SR_B, be, questions, references=references_for(questions), normalise="choice")
    assert sorted(app.seen) == sorted(calls_of(runs[("self-refine", 1)], ["critique", "refine"]))
    assert len(app.seen) == 2 * N_QUESTIONS and be.stats["cache_hits"] == N_QUESTIONS
    assert_same_run(b, runs[("self-refine", 1)])

    # C shares generate and critique with A: only refine
    app.seen.clear()
    c = run_pipeline(sr, SR_C, be, questions, references=references_for(questions), normalise="choice")
    assert sorted(app.seen) == sorted(calls_of(runs[("self-refine", 2)], ["refine"]))
    assert len(app.seen) == N_QUESTIONS
    assert_same_run(c, runs[("self-refine", 2)])

    # D shares no module (another generate model changes every later prompt): all new
    app.seen.clear()
    run_pipeline(sr, SR_D, be, questions)
    assert len(app.seen) == 3 * N_QUESTIONS

    # the cache is keyed by the call, not the pipeline: the debate's round 1 (the bare question,
    # sample 0, SMALL and BIG) is the same call as self-refine's generate under A and D
    app.seen.clear()
    run_pipeline(world["debate"], DB_MIXED, be, questions)
    assert sorted(app.seen) == sorted(calls_of(runs[("debate", 1)], ["a1_r2", "a2_r2", "final"]))
    assert not set(questions.prompts) & {text for _, text, _ in app.seen}


def test_live_errors_name_the_unrecorded_call(world, live, questions):
    """An allocation that was not recorded fails with the server's 404 naming the model and sample."""
    with pytest.raises(ProviderError, match=r"no recorded outcome for prompt id 'mmlu:llama:test:\S+/[0-9a-f]{12}' "
                                            "with model 'beta-70b', sample 0"):
        run_pipeline(world["self_refine"], {"generate": SMALL, "critique": MID, "refine": MID}, live(cache=None),
                     questions.take(np.arange(1)))
    # the same-model debate's third sample was never recorded
    with pytest.raises(ProviderError, match=r"sample 2.*records samples 0\.\.1"):
        live(cache=None).call(MID, questions.take(np.arange(1)), sample=2)


# ---------------------------------------------------------------------------------------------
# offline replay by prompt text


def test_offline_replay_by_prompt_reproduces_every_scripted_run(world, questions):
    """Replay(match="prompt") on the recording answers each module's rendered prompt as recorded."""
    rep = Replay(world["table"], match="prompt")
    for (name, i), scripted in world["runs"].items():
        alloc = (SELF_REFINE_ALLOCS if name == "self-refine" else DEBATE_ALLOCS)[i]
        got = scripted_run(scripted.pipeline, alloc, questions, backend=rep)
        for node in scripted.pipeline.order:
            assert list(got.outputs[node]) == list(scripted.outputs[node]), (name, i, node)
        for m in scripted.pipeline.modules:
            assert list(got.calls[m].sample) == list(scripted.calls[m].sample)
            np.testing.assert_array_equal(got.calls[m].cost, scripted.calls[m].cost)
            # offline, the recorded (scripted) seconds come back
            np.testing.assert_array_equal(got.calls[m].latency, scripted.calls[m].latency)
        np.testing.assert_array_equal(got.quality, scripted.quality)


@pytest.mark.parametrize("key", [("self-refine", 0), ("debate", 0), ("debate", 1)],
                         ids=["self-refine", "debate-same-model", "debate-mixed"])
def test_offline_replay_of_a_run_from_its_own_calls_table(world, questions, key):
    """One run's calls table replays that run; the same-model debate's round 1 needs its sample 1."""
    scripted = world["runs"][key]
    alloc = (SELF_REFINE_ALLOCS if key[0] == "self-refine" else DEBATE_ALLOCS)[key[1]]
    got = run_pipeline(scripted.pipeline, alloc, Replay(scripted.calls_table(), match="prompt"), questions)
    for node in scripted.pipeline.order:
        assert list(got.outputs[node]) == list(scripted.outputs[node]), node


def test_offline_replay_of_a_prompt_that_was_not_recorded_says_it_matched_by_text(world, questions):
    rep = Replay(world["table"], match="prompt")
    other = self_refine(templates={"critique": "Is this right?\n\n{prompt}\n\n{generate}"})
    with pytest.raises(PolicyError, match="matched by prompt text") as e:
        run_pipeline(other, SR_A, rep, questions)
    assert "Is this right?" in str(e.value)
    with pytest.raises(PolicyError, match="matched by prompt text"):
        rep.call(SMALL, Queries(np.array(["x"], dtype=object), np.array(["never asked"], dtype=object),
                                np.array([TASK], dtype=object)))
    # the generate step (the bare question) was recorded: the failure is in critique, not before
    gen = rep.call(SMALL, questions)
    assert list(gen.answers) == list(world["runs"][("self-refine", 0)].outputs["generate"])


def test_live_pipeline_with_the_default_prompt_id_header(world, questions):
    """Live sends each call's id as x-callwise-prompt-id (the server matches it first): a run sends the
    same call ids calls_table() records, so a recording replays with the header on."""
    scripted = world["runs"][("self-refine", 0)]
    with BackgroundServer(build_replay_app(scripted.calls_table())) as srv:
        be = live_for(srv.url, list(MODELS), None, transport="http")
        try:
            run = run_pipeline(world["self_refine"], SR_A, be, questions)
        finally:
            be.close()
    assert list(run.answers) == list(scripted.answers)


def test_scripted_backend_is_deterministic_and_distinct():
    q = Queries(np.array(["a", "b"], dtype=object), np.array(["p", "p"], dtype=object),
                np.array(["t", "t"], dtype=object))
    be = Scripted()
    a = be.call(SMALL, q)
    assert list(a.answers) == list(Scripted().call(SMALL, q).answers)
    assert a.answers[0] != be.call(SMALL, q, sample=1).answers[0]
    assert a.answers[0] != be.call(MID, q).answers[0]
    assert all(math.isclose(c / PRICE[SMALL], round(c / PRICE[SMALL])) for c in a.cost)
