"""Running a pipeline under an allocation on any backend, and the record of what each node did.

:func:`run_pipeline` executes the nodes in topological order over a whole batch of queries: each
LLM module renders its template for every query and makes one batched ``backend.call`` (so the
live backend sends them concurrently and its response cache answers calls already made: a
re-evaluated allocation costs nothing twice); each step runs its plain-Python operation. The
result, :class:`PipelineRun`, keeps every node's output and every module's model, rendered
prompt, cost and latency, so a run can be inspected, saved as a table and re-scored.

Offline, pipelines replay recorded calls with ``Replay(table, match="prompt")``: a module's
prompt embeds earlier outputs, so its text is what identifies the recorded call. An ensemble's
slots, whose prompt is the query itself, replay from any outcome table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.backend import Backend, Queries
from ..core.errors import PolicyError
from ..core.outcomes import OutcomeTable
from .graph import Module, Pipeline, PipelineError, Step


@dataclass(frozen=True)
class ModuleCalls:
    """What one LLM module did on each query of a run: its model, prompts and answers.

    ``sample`` is the sample index asked for (a repeated identical call asks for the next one
    unless the pipeline reuses answers); ``reused`` marks calls answered by an identical earlier
    call of the same run (cost 0: the answer was already paid for).
    """

    module: str
    model: str
    prompts: np.ndarray
    outputs: np.ndarray
    cost: np.ndarray
    latency: np.ndarray
    sample: np.ndarray
    reused: np.ndarray


@dataclass
class PipelineRun:
    """A pipeline's run on a batch of queries under one allocation.

    ``outputs`` holds every node's (Q,) object array of outputs; ``calls`` every module's
    :class:`ModuleCalls`. ``quality`` is set by :meth:`score` (per query, higher is better).
    """

    pipeline: Pipeline
    allocation: dict[str, str]
    queries: Queries
    outputs: dict[str, np.ndarray]
    calls: dict[str, ModuleCalls]
    quality: np.ndarray | None = None
    metric: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answers(self) -> np.ndarray:
        """The pipeline's answer per query: its output node's outputs."""
        return self.outputs[self.pipeline.output]

    @property
    def cost(self) -> np.ndarray:
        """Dollars per query: the sum over modules (reused calls cost nothing)."""
        return np.sum([c.cost for c in self.calls.values()], axis=0)

    @property
    def latency(self) -> np.ndarray:
        """Seconds per query along the critical path: modules that do not depend on each other
        run at the same time (an ensemble's slots), dependent ones one after another."""
        finish: dict[str, np.ndarray] = {}
        zero = np.zeros(len(self.queries))
        for name in self.pipeline.order:
            start = np.max([finish[d] for d in self.pipeline.dependencies(name) if d in finish] + [zero], axis=0)
            own = self.calls[name].latency if name in self.calls else zero
            finish[name] = start + np.nan_to_num(own)
        return finish[self.pipeline.output] if finish else zero

    def score(self, references: Sequence[Any] | np.ndarray, metric: str = "exact-match",
              normalise: str | Callable[[Any], Any] = "text") -> np.ndarray:
        """Score the answers against ``references`` under ``metric`` (see :mod:`callwise.aggregation.metrics`)."""
        self.quality = score_answers(self.answers, references, metric, normalise)
        self.metric = metric
        return self.quality

    def to_frame(self) -> pd.DataFrame:
        """One row per (query, node): the module's model, rendered prompt, output, cost, latency.

        Steps have no model, prompt or cost. ``quality`` is the query's end-to-end score (NaN
        until scored); the output node's rows are the pipeline's answers, so a saved run can be
        re-scored from this table alone.
        """
        q = np.full(len(self.queries), np.nan) if self.quality is None else self.quality
        frames = []
        for name in self.pipeline.order:
            c = self.calls.get(name)
            n = len(self.queries)
            frames.append(pd.DataFrame({
                "prompt_id": self.queries.ids if c is None else call_ids(self.queries, c.prompts),
                "query_id": self.queries.ids, "task": self.queries.tasks, "node": name,
                "kind": "module" if c is not None else "step",
                "model": c.model if c is not None else None,
                "sample": c.sample if c is not None else np.zeros(n, int),
                "prompt": c.prompts if c is not None else np.full(n, None, object),
                "answer": self.outputs[name],
                "cost": c.cost if c is not None else np.zeros(n),
                "latency": c.latency if c is not None else np.zeros(n),
                "reused": c.reused if c is not None else np.zeros(n, bool),
                "output": name == self.pipeline.output, "quality": q,
            }))
        return pd.concat(frames, ignore_index=True)

    def calls_table(self) -> OutcomeTable:
        """The run's LLM calls as an outcome table (prompt = the rendered module prompt).

        What a replay needs to answer the same calls again (``Replay(table, match="prompt")`` or the
        replay server): prompt ids are the call ids the run sent (:func:`call_ids`), so identical
        calls of one query (a debate's first round) are samples of one prompt. ``quality`` is the
        query's end-to-end score, 0 where the run was not scored (``meta`` says so). Reused calls
        are not repeated.
        """
        f = self.to_frame()
        f = f[(f["kind"] == "module") & ~f["reused"]]
        ids = f["prompt_id"].astype(str)  # already the call ids the run sent (see call_ids)
        df = pd.DataFrame({"prompt_id": ids, "task": f["task"], "prompt": f["prompt"], "model": f["model"],
                           "sample": f["sample"], "answer": f["answer"].map(lambda a: None if a is None else str(a)),
                           "quality": f["quality"].fillna(0.0), "cost": f["cost"], "latency": f["latency"]})
        meta = {"source": f"pipeline run: {self.pipeline.name}", "allocation": self.allocation,
                "notes": [] if self.quality is not None else ["run not scored: quality is 0"]}
        return OutcomeTable.from_frame(df, meta=meta, partial=True)


def score_answers(answers: Sequence[Any] | np.ndarray, references: Sequence[Any] | np.ndarray,
                  metric: str = "exact-match", normalise: str | Callable[[Any], Any] = "text") -> np.ndarray:
    """Per-query scores (higher is better) of ``answers`` against ``references`` under ``metric``.

    Answers and references go through the same normaliser (``choice`` reads a letter, ``number`` a
    number...). A reference that is None scores every answer 0 (nothing can match it).
    """
    from ..aggregation import get_metric, to_numbers
    from ..core.normalise import normalise_array

    m = get_metric(metric)
    ans = np.asarray(answers, dtype=object)
    refs = np.asarray(references, dtype=object)
    if refs.shape != ans.shape:
        raise PolicyError(f"{len(refs)} references for {len(ans)} answers")
    refs_n = normalise_array(refs, normalise)
    ans_n = normalise_array(ans, normalise)
    kind = "date" if normalise == "date" else "number"
    if not m.numeric:
        s = m.scores(ans_n, np.full(len(ans_n), np.nan), refs_n, np.full(len(refs_n), np.nan))
        return np.where(pd.isna(refs_n), 0.0, s)
    return m.scores(ans_n, to_numbers(ans_n, kind), refs_n, to_numbers(refs_n, kind))


# --------------------------------------------------------------------------------------------
# running


def call_ids(queries: Queries, prompts: np.ndarray) -> np.ndarray:
    """The id each module call is sent and recorded under: the query's id when the module asks the
    query itself (an ensemble's slots, a first draft), else ``<query id>/<12 hex of sha1(prompt)>``.

    So a plain outcome table replays an ensemble by id, a recorded run replays any pipeline by id
    or by text, and identical calls of one query (a debate's first round) share an id as samples.
    """
    same = np.asarray(prompts, dtype=object) == np.asarray(queries.prompts, dtype=object)
    out = np.asarray(queries.ids, dtype=object).copy()
    for i in np.flatnonzero(~same):
        out[i] = f"{queries.ids[i]}/{hashlib.sha1(str(prompts[i]).encode()).hexdigest()[:12]}"
    return out


def _render(module: Module, ctx: Mapping[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray | None]:
    def text(v: Any) -> str:
        return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

    fields = module.inputs
    cols = [ctx[f] for f in fields]
    prompts = np.empty(n, dtype=object)
    systems = None if module.system is None else np.empty(n, dtype=object)
    for i in range(n):
        values = {f: text(c[i]) for f, c in zip(fields, cols)}
        prompts[i] = module.template.format_map(values)
        if systems is not None:
            systems[i] = module.system.format_map(values)  # type: ignore[union-attr]
    return prompts, systems


def _run_module(module: Module, model: str, queries: Queries, prompts: np.ndarray, systems: np.ndarray | None,
                backend: Backend, made: dict[tuple[str, str, int], list[Any]], repeats: str) -> ModuleCalls:
    """One module's calls; ``made`` holds the answers of the run's earlier calls by (model, prompt, query)."""
    n = len(queries)
    ids = call_ids(queries, prompts)
    sample = np.zeros(n, dtype=int)
    reused = np.zeros(n, dtype=bool)
    # a repeat is the same model on the same prompt text for the same query (the system prompt is not
    # part of it: replays match on the user text, so such calls must be samples of one prompt)
    keys = [(model, str(prompts[i]), int(i)) for i in range(n)]
    for i, key in enumerate(keys):
        count = len(made.get(key, ()))
        reused[i] = repeats == "reuse" and count > 0
        sample[i] = 0 if repeats == "reuse" else count
    outputs = np.empty(n, dtype=object)
    cost = np.zeros(n)
    latency = np.zeros(n)
    for i in np.flatnonzero(reused):
        outputs[i] = made[keys[i]][0]
    todo = np.flatnonzero(~reused)
    messages = None
    if systems is not None:
        messages = np.empty(n, dtype=object)
        for i in range(n):
            messages[i] = [{"role": "system", "content": systems[i]}, {"role": "user", "content": prompts[i]}]
    params = None
    if module.params:
        params = np.empty(n, dtype=object)
        for i in range(n):
            params[i] = dict(module.params)
    for s in np.unique(sample[todo]) if todo.size else []:
        rows = todo[sample[todo] == s]
        q = Queries(ids[rows], prompts[rows], queries.tasks[rows],
                    None if messages is None else messages[rows], None if params is None else params[rows])
        got = backend.call(model, q, sample=int(s))
        if got.answers is None:
            raise PolicyError(f"module {module.name!r}: the backend returned no answers for {model!r} (the "
                              "recorded data needs an 'answer' column for pipelines)")
        outputs[rows] = got.answers
        cost[rows] = got.cost
        if got.latency is not None:
            latency[rows] = got.latency
    for i in todo:
        made.setdefault(keys[i], []).append(outputs[i])
    return ModuleCalls(module.name, model, prompts, outputs, cost, latency, sample, reused)


def _run_step(step: Step, ctx: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    from ..core.normalise import normalise_array

    cols = [ctx[x] for x in step.inputs]
    if step.op == "parse":
        return normalise_array(np.asarray(cols[0], dtype=object), step.options.get("normalise", "text"))
    if step.op == "vote":
        from ..voting import plurality

        mat = np.stack([np.asarray(c, dtype=object) for c in cols], axis=1)
        win = plurality(mat, step.options.get("normalise", "text"))
        out = np.full(n, None, dtype=object)
        ok = win >= 0
        out[ok] = mat[np.flatnonzero(ok), win[ok]]
        return out
    if step.op == "aggregate":
        from ..aggregation import aggregate

        mat = np.stack([np.asarray(c, dtype=object) for c in cols], axis=1)
        return aggregate(mat, str(step.options["metric"]), normalise=step.options.get("normalise"),
                         kind=step.options.get("kind", "number"))
    got = step.fn(**dict(zip(step.inputs, cols)))  # type: ignore[misc]
    out = np.asarray(got, dtype=object)
    if out.shape != (n,):
        raise PipelineError(f"python step {step.name!r} returned {out.shape[0] if out.ndim else 'a scalar'} outputs "
                            f"for {n} queries; it must return one output per query", row=f"node {step.name!r}",
                            column="function")
    return out


def run_pipeline(pipeline: Pipeline, allocation: Mapping[str, str] | Sequence[str] | str, backend: Backend,
                 queries: Queries, *, references: Sequence[Any] | np.ndarray | None = None,
                 metric: str = "exact-match", normalise: str | Callable[[Any], Any] = "text") -> PipelineRun:
    """Run ``pipeline`` with one model per module on every query; score it when ``references`` are given.

    Repeated identical calls within a run (same model and prompt text for a query) ask for the next
    sample, or reuse the first answer when ``pipeline.repeats == "reuse"``.
    """
    alloc = pipeline.allocation(allocation)
    unknown = sorted({m for m in alloc.values() if m not in backend.models})
    if unknown:
        raise PolicyError(f"allocation {alloc} names models the backend cannot call: {unknown}; it has "
                          f"{list(backend.models)}")
    n = len(queries)
    ctx: dict[str, np.ndarray] = {"prompt": np.asarray(queries.prompts, dtype=object),
                                  "task": np.asarray(queries.tasks, dtype=object),
                                  "id": np.asarray(queries.ids, dtype=object)}
    made: dict[tuple[str, str, int], list[Any]] = {}
    calls: dict[str, ModuleCalls] = {}
    for name in pipeline.order:
        node = pipeline.nodes[name]
        if isinstance(node, Module):
            prompts, systems = _render(node, ctx, n)
            c = _run_module(node, alloc[name], queries, prompts, systems, backend, made, pipeline.repeats)
            calls[name] = c
            ctx[name] = c.outputs
        else:
            ctx[name] = _run_step(node, ctx, n)
    run = PipelineRun(pipeline, alloc, queries, {k: ctx[k] for k in pipeline.order}, calls)
    if references is not None:
        run.score(references, metric, normalise)
    return run
