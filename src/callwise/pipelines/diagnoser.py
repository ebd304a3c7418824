"""The LLM diagnoser of LLMSelector: a judge that says whether a module caused a wrong answer.

LLMSelector can add ``alpha`` x the diagnoser's verdict to each query's end-to-end score when it
chooses a module's model (default ``alpha = 0``, as in the authors' code). The judge reads the
pipeline's description, the question, every module's output, the final output and the desired
answer, and ends with ``[final answer: Yes]`` (the module is at fault), ``[final answer: No]`` or
``[correct answer]``. The verdict is 1 - error: 1 when the module is not at fault, 0 when it is,
0.5 when the judge's reply cannot be read. A query whose final answer is already right needs no
judge: its verdict is 1 and no call is made.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..core.backend import Backend, Queries

TEMPLATE = """You are diagnosing errors in a multi-module AI system.

[System]: {description}
[Question]: {question}
{modules}
[The system's final output]: {output}
[The desired answer]: {reference}

Take the desired answer as correct. Decide whether MODULE {module!r} is responsible for the mismatch between the
system's final output and the desired answer. Do not solve the task yourself. Reason step by step, then end with
exactly one of:
[final answer: Yes]   (module {module!r} caused the error)
[final answer: No]    (another module did)
[correct answer]      (the final output already matches the desired answer)"""

_CLEAN = re.compile(r"[^a-z]")


def read_verdict(text: str | None) -> float:
    """1 - error from a judge's reply: 0 for 'final answer: yes', 1 for 'no' or 'correct answer', else 0.5."""
    t = _CLEAN.sub("", (text or "").lower())
    if "finalansweryes" in t:
        return 0.0
    if "finalanswerno" in t or "correctanswer" in t:
        return 1.0
    return 0.5


class LLMDiagnoser:
    """Asks ``model`` on ``backend`` whether a module of a run caused each wrong answer.

    Called as ``diagnoser(run, module, references) -> (Q,)`` verdicts in [0, 1]; the judge's calls
    go through the backend (cached when it is the live backend with a cache) and their dollars
    are added to ``cost``.
    """

    def __init__(self, model: str, backend: Backend, template: str = TEMPLATE) -> None:
        self.model = model
        self.backend = backend
        self.template = template
        self.cost = 0.0
        self.calls = 0

    def prompt(self, run: Any, module: str, i: int, reference: Any) -> str:
        p = run.pipeline
        modules = "\n".join(f"[Module {m!r} output]: {run.outputs[m][i]}" for m in p.modules)
        return self.template.format(description=p.description or p.name, question=run.queries.prompts[i],
                                    modules=modules, output=run.answers[i], reference=reference, module=module)

    def __call__(self, run: Any, module: str, references: Any) -> np.ndarray:
        n = len(run.queries)
        verdict = np.ones(n)
        wrong = np.flatnonzero(np.asarray(run.quality) < 1.0) if run.quality is not None else np.arange(n)
        if wrong.size == 0:
            return verdict
        prompts = np.array([self.prompt(run, module, int(i), references[i]) for i in wrong], dtype=object)
        q = Queries(np.array([f"{run.queries.ids[i]}/diagnose/{module}" for i in wrong], dtype=object), prompts,
                    run.queries.tasks[wrong])
        got = self.backend.call(self.model, q)
        self.cost += float(np.nansum(got.cost))
        self.calls += len(wrong)
        answers = got.answers if got.answers is not None else [None] * len(wrong)
        verdict[wrong] = [read_verdict(a) for a in answers]
        return verdict
