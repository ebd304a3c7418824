"""Recording: a backend wrapper that logs every call a policy makes (and can keep a floor model).

Live runs and the server need more than a policy's :class:`~callwise.core.policy.Decisions`:
every call made (a cascade's cheap call as well as its escalation), which model really answered
(after a fallback), what it cost and whether the cache served it. ``Recording`` passes calls
through to the wrapped backend and keeps them in ``log``.

``floor`` keeps a conversation on the model that started it: a call to a model that ranks below
the floor (by ``rank``, cheaper first) is sent to the floor model instead, so a multi-turn
conversation never drops to a weaker model mid-way; a call to a model at or above it (the policy
escalating) goes through unchanged.

``attempts`` (:class:`Attempts`, the server's micro-batches) isolates failures: each call is made
upstream at most once per (model, query, sample, settings) across re-decisions of the batch, and a
query whose call fails is remembered, so the server can decide the rest again without it — no
healthy neighbour waits for a one-by-one re-decision, and no call is paid for twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.backend import Backend, Calls, Queries


@dataclass(frozen=True)
class Call:
    """One batched call a policy made: the model it asked for and what came back."""

    requested: str
    sent_to: str
    ids: object  # the queries' ids (np.ndarray)
    sample: int
    calls: Calls


def with_logprobs(queries: Queries, top_logprobs: int = 5) -> Queries:
    """The queries with ``logprobs`` asked for in each one's generation settings (a policy's own calls:
    a server that serves other policies too must not ask for them on theirs)."""
    import numpy as np

    base = queries.params if queries.params is not None else [None] * len(queries)
    params = np.empty(len(queries), dtype=object)
    for i, p in enumerate(base):
        params[i] = {"top_logprobs": top_logprobs, **(p or {}), "logprobs": True}
    return Queries(queries.ids, queries.prompts, queries.tasks, queries.messages, params)


@dataclass
class Attempts:
    """Calls made for one micro-batch across its re-decisions, and the queries whose calls failed."""

    done: dict[tuple[str, str, int, str], Any] = field(default_factory=dict)  # -> Response
    failed: dict[str, BaseException] = field(default_factory=dict)  # query id -> its first failure
    charged: set[int] = field(default_factory=set)  # id() of the responses charged to a key

    @staticmethod
    def key(model: str, qid: Any, sample: int, params: Any) -> tuple[str, str, int, str]:
        return model, str(qid), int(sample), json.dumps(params or {}, sort_keys=True, default=str)


class Recording:
    """Wraps ``backend``; ``log`` lists every call made through it, in order."""

    def __init__(self, backend: Backend, *, floor: str | None = None, rank: Mapping[str, float] | None = None,
                 logprobs: bool = False, top_logprobs: int = 5, attempts: Attempts | None = None) -> None:
        self.backend = backend
        self.models = backend.models
        self.floor = floor
        self.rank = dict(rank or {})
        self.logprobs = bool(logprobs)
        self.top_logprobs = int(top_logprobs)
        self.attempts = attempts
        self.log: list[Call] = []

    def _target(self, model: str) -> str:
        if self.floor is None or model == self.floor:
            return model
        below = self.rank.get(model, float("inf")) < self.rank.get(self.floor, float("-inf"))
        return self.floor if below else model

    def call(self, model: str, queries: Queries, sample: int = 0) -> Calls:
        target = self._target(model)
        if self.logprobs:
            queries = with_logprobs(queries, self.top_logprobs)
        if self.attempts is not None and hasattr(self.backend, "complete_many"):
            got = self._call_once(target, queries, sample)
        else:
            got = self.backend.call(target, queries, sample)
        self.log.append(Call(model, target, queries.ids, sample, got))
        return got

    def _call_once(self, target: str, queries: Queries, sample: int) -> Calls:
        """Each query's call made upstream at most once per batch; a failure is remembered by query id."""
        import numpy as np

        from .backend import ProviderError, calls_from_responses

        att = self.attempts
        assert att is not None
        params = queries.params if queries.params is not None else [None] * len(queries)
        keys = [Attempts.key(target, q, sample, p) for q, p in zip(queries.ids, params)]
        todo = [i for i, k in enumerate(keys) if k not in att.done]
        if todo:
            got = self.backend.complete_many(target, queries.take(np.array(todo)), sample)  # type: ignore[attr-defined]
            for i, r in zip(todo, got):
                if isinstance(r, BaseException):
                    att.failed.setdefault(str(queries.ids[i]), r)
                else:
                    att.done[keys[i]] = r
        missing = [i for i, k in enumerate(keys) if k not in att.done]
        if missing:
            first = att.failed.get(str(queries.ids[missing[0]]))
            raise ProviderError(f"{len(missing)} of {len(keys)} calls to {target!r} failed; first: {first}",
                                model=target, status=getattr(first, "status", None)) from first
        return calls_from_responses(target, [att.done[k] for k in keys])

    def __getattr__(self, name: str):  # truth() and the like, when the wrapped backend has them
        return getattr(self.backend, name)
