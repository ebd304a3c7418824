"""Prompt files for live runs (``callwise run`` / ``callwise collect``): JSON Lines, one query a line.

Each line is an object::

    {"id": "q1", "prompt": "What is 2+2?", "task": "math", "reference": "4"}
    {"id": "q2", "messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}]}

- ``prompt`` (a string) or ``messages`` (an OpenAI message list) is required;
- ``id`` defaults to ``line-N``; ids must be unique;
- ``task`` defaults to ``default``; ``reference`` is the expected answer a grader compares with;
- ``params``: generation settings for this query (``temperature``, ``max_tokens``, ...).

Every error names the file, the line and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.backend import Queries
from ..core.errors import DataError
from ..core.files import read_text
from ..core.outcomes import DEFAULT_TASK
from .chat import RequestError, check_request, render

FIELDS = ("id", "prompt", "messages", "task", "reference", "params")


@dataclass(frozen=True)
class Prompts:
    """The queries of a prompt file and their references (None where a line has none)."""

    queries: Queries
    references: np.ndarray
    path: str

    def __len__(self) -> int:
        return len(self.queries)


def load_prompts(path: str | Path) -> Prompts:
    """Read a prompt file (see the module docstring); errors name the file, line and field."""
    path = Path(path)
    f = str(path)
    ids, prompts, tasks, msgs, params, refs = [], [], [], [], [], []
    seen: dict[str, int] = {}
    for ln, line in enumerate(read_text(path, "prompts, one JSON object per line").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg})", file=f, row=f"line {ln}") from None
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {type(obj).__name__}", file=f, row=f"line {ln}")
        unknown = set(obj) - set(FIELDS)
        if unknown:
            raise DataError(f"unknown field(s) {sorted(unknown)}; fields are {list(FIELDS)}", file=f, row=f"line {ln}")
        pid = obj.get("id", f"line-{ln}")
        if not isinstance(pid, (str, int)) or isinstance(pid, bool) or str(pid) == "":
            raise DataError(f"'id' must be a non-empty string or integer, got {pid!r}", file=f, row=f"line {ln}",
                            column="id")
        pid = str(pid)
        if pid in seen:
            raise DataError(f"id {pid!r} is used twice (first on line {seen[pid]})", file=f, row=f"line {ln}", column="id")
        seen[pid] = ln
        prompt, messages = obj.get("prompt"), obj.get("messages")
        if (prompt is None) == (messages is None):
            raise DataError("give exactly one of 'prompt' (a string) and 'messages' (a list of {role, content})",
                            file=f, row=f"line {ln}")
        if prompt is not None:
            if not isinstance(prompt, str) or not prompt.strip():
                raise DataError("'prompt' must be a non-empty string", file=f, row=f"line {ln}", column="prompt")
            messages = [{"role": "user", "content": prompt}]
        else:
            try:
                _, messages, _, _, _ = check_request({"model": "-", "messages": messages})
            except RequestError as e:
                raise DataError(str(e), file=f, row=f"line {ln}", column=e.param or "messages") from None
            prompt = render(messages)
        task = obj.get("task", DEFAULT_TASK)
        if not isinstance(task, str) or not task:
            raise DataError(f"'task' must be a non-empty string, got {task!r}", file=f, row=f"line {ln}", column="task")
        ref = obj.get("reference")
        if ref is not None and not isinstance(ref, (str, int, float)):
            raise DataError(f"'reference' must be a string or a number, got {type(ref).__name__}", file=f,
                            row=f"line {ln}", column="reference")
        p = obj.get("params") or {}
        if not isinstance(p, dict):
            raise DataError("'params' must be an object of generation settings", file=f, row=f"line {ln}",
                            column="params")
        ids.append(pid)
        prompts.append(prompt)
        tasks.append(task)
        msgs.append(messages)
        params.append(p or None)
        refs.append(None if ref is None else str(ref))
    if not ids:
        raise DataError("the prompt file has no prompts", file=f)

    def obj_array(items: list[Any]) -> np.ndarray:
        a = np.empty(len(items), dtype=object)
        a[:] = items
        return a

    q = Queries(obj_array(ids), obj_array(prompts), obj_array(tasks), obj_array(msgs), obj_array(params))
    return Prompts(q, obj_array(refs), f)
