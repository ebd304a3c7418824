"""Built-in pipelines: self-refine, multi-agent debate, locate-then-solve and an ensemble vote.

These are the compound systems LLMSelector (Chen et al. 2025) allocates models to. Each factory
returns a validated :class:`~callwise.pipelines.graph.Pipeline`; in YAML write
``builtin: debate`` with the factory's keyword options (``agents: 3``, ``rounds: 2``...).
The prompt wording is ours and can be replaced with ``templates={module: template}``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .graph import Module, Node, Pipeline, PipelineError, Step

SELF_REFINE = {
    "generate": "{prompt}",
    "critique": ("Here is a question and a proposed answer.\n\nQuestion:\n{prompt}\n\nProposed answer:\n{generate}\n\n"
                 "Check the proposed answer step by step and point out any mistake. If it is correct, say so."),
    "refine": ("Question:\n{prompt}\n\nDraft answer:\n{generate}\n\nFeedback on the draft:\n{critique}\n\n"
               "Using the feedback, write the final answer to the question, in the format the question asks for."),
}
LOCATE_SOLVE = {
    "locate": ("Read the task below. Do not solve it. Quote only the part of it (the rows, sentences or numbers) "
               "that is needed to answer it.\n\n{prompt}"),
    "solve": ("{prompt}\n\nThe part of the task that matters:\n{locate}\n\n"
              "Answer the task, in the format it asks for."),
}


def _parse_step(nodes: list[Node], source: str, parse: str | None) -> str:
    if parse is None:
        return source
    nodes.append(Step("answer", "parse", (source,), {"normalise": parse}))
    return "answer"


def _templates(defaults: Mapping[str, str], templates: Mapping[str, str] | None) -> dict[str, str]:
    t = dict(defaults)
    for k, v in (templates or {}).items():
        if k not in t:
            raise PipelineError(f"unknown template {k!r}; this pipeline's modules are {sorted(t)}", column="templates")
        t[k] = v
    return t


def _chain(name: str, defaults: Mapping[str, str], templates: Mapping[str, str] | None, parse: str | None,
           repeats: str, description: str) -> Pipeline:
    """A chain of modules in ``defaults`` order, the last one's output (parsed when asked) the answer."""
    t = _templates(defaults, templates)
    nodes: list[Node] = [Module(k, v) for k, v in t.items()]
    out = _parse_step(nodes, list(t)[-1], parse)
    return Pipeline(name, nodes, out, description=description, repeats=repeats)


def self_refine(*, parse: str | None = None, templates: Mapping[str, str] | None = None,
                repeats: str = "new-sample") -> Pipeline:
    """generate -> critique -> refine (Madaan et al. 2023): three modules; ``parse`` reads the final answer."""
    return _chain("self-refine", SELF_REFINE, templates, parse, repeats, "generate, critique the draft, refine it")


def locate_then_solve(*, parse: str | None = None, templates: Mapping[str, str] | None = None,
                      repeats: str = "new-sample") -> Pipeline:
    """locate (quote the relevant part of the input) -> solve (answer using it)."""
    return _chain("locate-then-solve", LOCATE_SOLVE, templates, parse, repeats, "locate the relevant part, then solve")


def debate(agents: int = 3, rounds: int = 2, *, final: str = "module", parse: str | None = None,
           repeats: str = "new-sample") -> Pipeline:
    """Multi-agent debate (Du et al. 2023): ``agents`` answer, then for ``rounds - 1`` more rounds each
    reads the others' last answers and updates its own; a final aggregator gives the answer.

    ``final="module"``: an LLM module (a slot of the allocation) reads the last round and answers;
    ``final="vote"``: a plurality vote over the last round (with ``parse`` as its normaliser).
    Modules are named ``a{agent}_r{round}`` (and ``final``): agents x rounds (+1) slots.
    """
    if agents < 1 or rounds < 1:
        raise PipelineError(f"a debate needs agents >= 1 and rounds >= 1, got agents={agents}, rounds={rounds}",
                            column="agents")
    if final not in ("module", "vote"):
        raise PipelineError(f"final must be 'module' or 'vote', not {final!r}", column="final")
    nodes: list[Node] = []
    for r in range(1, rounds + 1):
        for a in range(1, agents + 1):
            if r == 1:
                tpl = "{prompt}"
            else:
                others = "\n\n".join(f"Agent {b}: {{a{b}_r{r - 1}}}" for b in range(1, agents + 1) if b != a)
                tpl = ("{prompt}\n\nOther agents answered:\n\n" + others + f"\n\nYour previous answer: {{a{a}_r{r - 1}}}"
                       "\n\nUsing their reasoning as extra advice, give your updated answer, in the format the "
                       "question asks for.")
            nodes.append(Module(f"a{a}_r{r}", tpl))
    last = [f"a{a}_r{rounds}" for a in range(1, agents + 1)]
    if final == "module":
        answers = "\n\n".join(f"Agent {a}: {{{name}}}" for a, name in enumerate(last, 1))
        nodes.append(Module("final", "{prompt}\n\nSeveral agents debated this question. Their final answers:\n\n"
                                     + answers + "\n\nGive the single best answer, in the format the question asks for."))
        out = _parse_step(nodes, "final", parse)
    else:
        nodes.append(Step("final", "vote", tuple(last), {"normalise": parse or "text"}))
        out = "final"
    return Pipeline(f"debate-{agents}x{rounds}", nodes, out, description=f"{agents} agents debate for {rounds} "
                    f"round(s), then a {'final module' if final == 'module' else 'vote'} answers", repeats=repeats)


def ensemble_vote(slots: int = 3, *, aggregator: str = "vote", normalise: str | None = None, template: str = "{prompt}",
                  kind: str = "number", repeats: str = "reuse") -> Pipeline:
    """``slots`` answerers on the same prompt, combined by a plurality vote (``aggregator="vote"``) or
    by the rule that is best for a metric (``aggregator="absolute-error"``, ``"token-f1"``...: see
    :mod:`callwise.aggregation.metrics`).

    ``repeats="reuse"`` (the default): a model in two slots gives one answer, paid once (what a
    temperature-0 call and a response cache give, and what one recorded answer per model can score
    exactly); ``"new-sample"``: each slot draws its own sample.
    """
    if slots < 1:
        raise PipelineError(f"an ensemble needs slots >= 1, got {slots}", column="slots")
    nodes: list[Node] = [Module(f"slot{i}", template) for i in range(1, slots + 1)]
    names = tuple(n.name for n in nodes)
    if aggregator == "vote":
        nodes.append(Step("vote", "vote", names, {"normalise": normalise or "text"}))
    else:
        nodes.append(Step("aggregate", "aggregate", names, {"metric": aggregator, "normalise": normalise,
                                                              "kind": kind}))
    return Pipeline(f"ensemble-{slots}", nodes, nodes[-1].name,
                    description=f"{slots} answerers combined by {aggregator}", repeats=repeats)


BUILTINS: dict[str, Callable[..., Pipeline]] = {
    "self-refine": self_refine,
    "debate": debate,
    "locate-then-solve": locate_then_solve,
    "ensemble-vote": ensemble_vote,
}


def builtin(name: str, **options: Any) -> Pipeline:
    """A built-in pipeline by name (``self-refine``, ``debate``, ``locate-then-solve``, ``ensemble-vote``)."""
    if name not in BUILTINS:
        raise PipelineError(f"unknown built-in pipeline {name!r}; expected one of {sorted(BUILTINS)}",
                            column="builtin")
    return BUILTINS[name](**options)
