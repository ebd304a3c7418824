"""Pipelines: small graphs of LLM calls (modules) and plain-Python steps.

A :class:`Pipeline` is what LLMSelector calls a compound AI system. Each :class:`Module` is one
LLM call whose prompt is a template over the pipeline's inputs (``{prompt}``, ``{task}``,
``{id}``) and the outputs of earlier nodes (``{generate}``); each :class:`Step` is plain Python
over earlier outputs (``parse``, ``vote``, ``aggregate``, ``python``). The modules are the slots
of an *allocation*: one model per module, in the pipeline's module order.

Pipelines are defined in Python or in YAML (:func:`load_pipeline`) and validated when built:
unknown node names, a cycle, a template field that names nothing, a duplicate name or an unknown
step op are :class:`PipelineError` s naming the file and field.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..core.errors import DataError

#: The inputs every pipeline can read: the query's text, its task and its id.
INPUTS: tuple[str, ...] = ("prompt", "task", "id")
#: The plain-Python step operations (``python`` runs a user function).
STEP_OPS: tuple[str, ...] = ("parse", "vote", "aggregate", "python")
#: What a repeated identical call (same model, same prompt) in one run does: ask for the next
#: sample (independent answers, as a vote needs) or reuse the earlier answer (paid once, as a
#: response cache does at temperature 0).
REPEATS: tuple[str, ...] = ("new-sample", "reuse")


class PipelineError(DataError):
    """A pipeline definition is invalid: the message names the file, the node and the field."""


@dataclass(frozen=True)
class Module:
    """One LLM call: ``template`` (and optional ``system`` prompt) over inputs and earlier outputs.

    ``params`` are generation settings sent with the call (``temperature``, ``max_tokens``...).
    """

    name: str
    template: str
    system: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names the templates read, in order of first use."""
        return _fields(self.template) + tuple(f for f in _fields(self.system or "") if f not in _fields(self.template))


@dataclass(frozen=True)
class Step:
    """A plain-Python step over earlier outputs.

    ``op``: ``parse`` (one input through a normaliser: ``options['normalise']``, e.g. ``choice``),
    ``vote`` (plurality over the inputs, ties to the first seen), ``aggregate`` (the rule that is
    best for ``options['metric']``, see :mod:`callwise.aggregation.metrics`) or ``python`` (``fn(**inputs)``
    -> one output per query; in YAML ``function: "package.module:name"``).
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    fn: Callable[..., Any] | None = None


Node = Module | Step


def _fields(template: str) -> tuple[str, ...]:
    out: list[str] = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        base = name.split(".")[0].split("[")[0]
        if base not in out:
            out.append(base)
    return tuple(out)


class Pipeline:
    """A validated graph of modules and steps; ``output`` names the node whose output is the answer.

    ``modules`` are the LLM modules in definition order: the slots an allocation fills. ``order``
    is a topological order of every node. ``repeats`` says what a repeated identical call does
    (see :data:`REPEATS`).
    """

    def __init__(self, name: str, nodes: Sequence[Node], output: str | None = None, *, description: str = "",
                 repeats: str = "new-sample", source: str | None = None) -> None:
        self.name = name
        self.description = description
        self.source = source
        if not nodes:
            raise PipelineError(f"pipeline {name!r} has no nodes; expected at least one module", file=source,
                                column="nodes")
        if repeats not in REPEATS:
            raise PipelineError(f"unknown repeats {repeats!r}; expected one of {list(REPEATS)}", file=source,
                                column="repeats")
        self.repeats = repeats
        self.nodes: dict[str, Node] = {}
        for n in nodes:
            self._add(n)
        self.output = output if output is not None else nodes[-1].name
        if self.output not in self.nodes:
            raise PipelineError(f"output {self.output!r} is not a node; the nodes are {list(self.nodes)}",
                                file=source, column="output")
        self.modules: tuple[str, ...] = tuple(n.name for n in nodes if isinstance(n, Module))
        if not self.modules:
            raise PipelineError(f"pipeline {name!r} has no LLM module, so there is nothing to allocate",
                                file=source, column="nodes")
        self.order: tuple[str, ...] = self._topological()

    # -- validation ------------------------------------------------------------------------------
    def _add(self, n: Node) -> None:
        where = f"node {n.name!r}"
        if not isinstance(n, (Module, Step)):
            raise PipelineError(f"{n!r} is not a Module or a Step", file=self.source, column="nodes")
        if not n.name or not n.name.isidentifier():
            raise PipelineError(f"node name {n.name!r} must be an identifier (letters, digits, _), as templates "
                                "name it in {braces}", file=self.source, row=where, column="name")
        if n.name in INPUTS:
            raise PipelineError(f"node name {n.name!r} is taken by a pipeline input ({', '.join(INPUTS)})",
                                file=self.source, row=where, column="name")
        if n.name in self.nodes:
            raise PipelineError(f"duplicate node name {n.name!r}", file=self.source, row=where, column="name")
        if isinstance(n, Step):
            if n.op not in STEP_OPS:
                raise PipelineError(f"unknown step op {n.op!r}; expected one of {list(STEP_OPS)}",
                                    file=self.source, row=where, column="op")
            if not n.inputs:
                raise PipelineError("a step needs at least one input", file=self.source, row=where, column="inputs")
            if n.op == "parse" and len(n.inputs) != 1:
                raise PipelineError(f"a parse step reads exactly one input, not {len(n.inputs)}",
                                    file=self.source, row=where, column="inputs")
            if n.op == "python" and n.fn is None:
                raise PipelineError("a python step needs a function", file=self.source, row=where, column="function")
            if n.op == "aggregate" and "metric" not in n.options:
                raise PipelineError("an aggregate step needs a metric (e.g. absolute-error, token-f1)",
                                    file=self.source, row=where, column="metric")
        elif not n.template.strip():
            raise PipelineError("a module needs a non-empty prompt template", file=self.source, row=where,
                                column="template")
        self.nodes[n.name] = n

    def dependencies(self, name: str) -> tuple[str, ...]:
        """The inputs and nodes that node ``name`` reads."""
        n = self.nodes[name]
        return n.inputs

    def _topological(self) -> tuple[str, ...]:
        for name, n in self.nodes.items():
            for d in n.inputs:
                if d not in self.nodes and d not in INPUTS:
                    what = "template field" if isinstance(n, Module) else "input"
                    raise PipelineError(f"{what} {{{d}}} names nothing; expected an input ({', '.join(INPUTS)}) "
                                        f"or a node ({', '.join(self.nodes)})", file=self.source,
                                        row=f"node {name!r}", column="template" if isinstance(n, Module) else "inputs")
        order: list[str] = []
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name):] + [name]
                raise PipelineError(f"the nodes form a cycle: {' -> '.join(cycle)}", file=self.source,
                                    row=f"node {name!r}", column="inputs")
            state[name] = 1
            for d in self.nodes[name].inputs:
                if d in self.nodes:
                    visit(d, path + [name])
            state[name] = 2
            order.append(name)

        for name in self.nodes:
            visit(name, [])
        return tuple(order)

    # -- allocations ---------------------------------------------------------------------------
    def allocation(self, models: Mapping[str, str] | Sequence[str] | str) -> dict[str, str]:
        """An allocation as {module: model}: from a mapping, a sequence in module order, or one model for all."""
        if isinstance(models, str):
            return {m: models for m in self.modules}
        if isinstance(models, Mapping):
            unknown = [k for k in models if k not in self.modules]
            missing = [m for m in self.modules if m not in models]
            if unknown or missing:
                raise PipelineError(f"allocation {dict(models)} does not fit pipeline {self.name!r}: "
                                    + (f"unknown modules {unknown}; " if unknown else "")
                                    + (f"no model for {missing}; " if missing else "")
                                    + f"its modules are {list(self.modules)}", column="allocation")
            return {m: str(models[m]) for m in self.modules}
        seq = [str(x) for x in models]
        if len(seq) != len(self.modules):
            raise PipelineError(f"allocation {seq} has {len(seq)} models; pipeline {self.name!r} has "
                                f"{len(self.modules)} modules {list(self.modules)}", column="allocation")
        return dict(zip(self.modules, seq))

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form (python steps are written as their import path)."""
        nodes: list[dict[str, Any]] = []
        for n in self.nodes.values():
            if isinstance(n, Module):
                d: dict[str, Any] = {"name": n.name, "template": n.template}
                if n.system:
                    d["system"] = n.system
                if n.params:
                    d["params"] = dict(n.params)
            else:
                d = {"name": n.name, "op": n.op, "inputs": list(n.inputs), **dict(n.options)}
                if n.fn is not None:
                    d["function"] = f"{n.fn.__module__}:{n.fn.__qualname__}"
            nodes.append(d)
        return {"name": self.name, "description": self.description, "repeats": self.repeats,
                "output": self.output, "nodes": nodes}

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, modules={list(self.modules)}, output={self.output!r})"
