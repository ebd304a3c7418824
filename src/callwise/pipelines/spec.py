"""Pipelines in their dict / YAML form: ``pipeline_from_dict`` and ``load_pipeline`` (``builtin:`` or ``nodes:``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from .builtin import BUILTINS
from .graph import Module, Node, Pipeline, PipelineError, Step

_MODULE_KEYS = {"name", "template", "system", "params", "kind"}
_STEP_KEYS = {"name", "op", "inputs", "function", "kind"}


def _import(spec: str, source: str | None, where: str) -> Callable[..., Any]:
    import importlib

    mod, _, attr = spec.partition(":")
    if not mod or not attr:
        raise PipelineError(f"function {spec!r} must be 'package.module:name'", file=source, row=where,
                            column="function")
    try:
        obj: Any = importlib.import_module(mod)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise PipelineError(f"cannot import function {spec!r}: {e}", file=source, row=where,
                            column="function") from None
    if not callable(obj):
        raise PipelineError(f"{spec!r} is not callable", file=source, row=where, column="function")
    return obj


def pipeline_from_dict(data: Mapping[str, Any], source: str | None = None) -> Pipeline:
    """Build a pipeline from its dict (YAML) form; ``builtin:`` names a built-in with its options."""
    if not isinstance(data, Mapping):
        raise PipelineError(f"a pipeline is a mapping with 'nodes' (or 'builtin'), not {type(data).__name__}",
                            file=source)
    if "builtin" in data:
        name = data["builtin"]
        if name not in BUILTINS:
            raise PipelineError(f"unknown built-in pipeline {name!r}; expected one of {sorted(BUILTINS)}",
                                file=source, column="builtin")
        opts = {k: v for k, v in data.items() if k != "builtin"}
        try:
            return BUILTINS[name](**opts)
        except TypeError as e:
            raise PipelineError(f"bad options for built-in {name!r}: {e}", file=source, column="builtin") from None
    unknown = set(data) - {"name", "description", "repeats", "output", "nodes"}
    if unknown:
        raise PipelineError(f"unknown keys {sorted(unknown)}; expected name, description, repeats, output, nodes "
                            "(or builtin)", file=source)
    raw = data.get("nodes")
    if not isinstance(raw, list) or not raw:
        raise PipelineError("'nodes' must be a non-empty list of modules and steps", file=source, column="nodes")
    nodes: list[Node] = []
    for i, d in enumerate(raw):
        where = f"node {i + 1}" + (f" ({d.get('name')!r})" if isinstance(d, Mapping) and d.get("name") else "")
        if not isinstance(d, Mapping) or "name" not in d:
            raise PipelineError("each node is a mapping with a 'name'", file=source, row=where, column="nodes")
        if "template" in d:
            extra = set(d) - _MODULE_KEYS
            if extra:
                raise PipelineError(f"unknown module keys {sorted(extra)}; expected {sorted(_MODULE_KEYS - {'kind'})}",
                                    file=source, row=where)
            params = d.get("params") or {}
            if not isinstance(params, Mapping):
                raise PipelineError("'params' must be a mapping (e.g. temperature: 0.7)", file=source, row=where,
                                    column="params")
            nodes.append(Module(str(d["name"]), str(d["template"]), d.get("system"), dict(params)))
        elif "op" in d:
            inputs = d.get("inputs")
            if isinstance(inputs, str):
                inputs = [inputs]
            if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
                raise PipelineError("'inputs' must be a list of node names", file=source, row=where, column="inputs")
            fn = _import(str(d["function"]), source, where) if "function" in d else None
            options = {k: v for k, v in d.items() if k not in _STEP_KEYS}
            nodes.append(Step(str(d["name"]), str(d["op"]), tuple(inputs), options, fn))
        else:
            raise PipelineError("a node needs a 'template' (an LLM module) or an 'op' (a step)", file=source,
                                row=where)
    return Pipeline(str(data.get("name", "pipeline")), nodes, data.get("output"),
                    description=str(data.get("description", "")), repeats=str(data.get("repeats", "new-sample")),
                    source=source)


def load_pipeline(path: str | Path) -> Pipeline:
    """Read a pipeline from a YAML (or JSON) file and validate it."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise PipelineError("no such pipeline file", file=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise PipelineError(f"not valid YAML: {e}", file=str(path)) from None
    return pipeline_from_dict(data, source=str(path))
