"""Recording: a backend wrapper that logs every call a policy makes (and can keep a floor model).

Live runs and the server need more than a policy's :class:`~callwise.core.policy.Decisions`:
every call made (a cascade's cheap call as well as its escalation), which model really answered
(after a fallback), what it cost and whether the cache served it. ``Recording`` passes calls
through to the wrapped backend and keeps them in ``log``.

``floor`` keeps a conversation on the model that started it: a call to a model that ranks below
the floor (by ``rank``, cheaper first) is sent to the floor model instead, so a multi-turn
conversation never drops to a weaker model mid-way; a call to a model at or above it (the policy
escalating) goes through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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


class Recording:
    """Wraps ``backend``; ``log`` lists every call made through it, in order."""

    def __init__(self, backend: Backend, *, floor: str | None = None, rank: Mapping[str, float] | None = None,
                 logprobs: bool = False, top_logprobs: int = 5) -> None:
        self.backend = backend
        self.models = backend.models
        self.floor = floor
        self.rank = dict(rank or {})
        self.logprobs = bool(logprobs)
        self.top_logprobs = int(top_logprobs)
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
        got = self.backend.call(target, queries, sample)
        self.log.append(Call(model, target, queries.ids, sample, got))
        return got

    def __getattr__(self, name: str):  # truth() and the like, when the wrapped backend has them
        return getattr(self.backend, name)
