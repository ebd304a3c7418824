"""The backend interface: something that answers calls to models for a batch of queries.

Policies never read an outcome table directly; they call a backend. Offline evaluation runs a
policy on :class:`~callwise.core.replay.Replay` (answers from recorded outcomes); the live
backend of a later release answers through real providers with the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Queries:
    """A batch of queries: ids, prompt texts and tasks, as aligned 1-D arrays.

    Live traffic may carry more: ``messages`` (object array, one OpenAI-style message list per
    query: a whole conversation, whose rendering is ``prompts``) and ``params`` (object array of
    per-query generation settings such as ``temperature`` or ``max_tokens``). Offline backends
    ignore both; the live backend sends them.
    """

    ids: np.ndarray
    prompts: np.ndarray
    tasks: np.ndarray
    messages: np.ndarray | None = None
    params: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, idx: np.ndarray) -> "Queries":
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Queries(self.ids[idx], self.prompts[idx], self.tasks[idx], pick(self.messages), pick(self.params))


@dataclass(frozen=True)
class Calls:
    """What one model returned for a batch of queries, one sample per query.

    ``quality`` is known offline (recorded) and NaN live until scored; ``cost`` is in US dollars.
    ``logprobs`` holds each answer's logprob payload as the provider returned it (for the margin
    signal), where the backend has them.
    """

    model: str
    quality: np.ndarray
    cost: np.ndarray
    answers: np.ndarray | None = None
    latency: np.ndarray | None = None
    confidence: np.ndarray | None = None
    logprobs: list[Any] | None = None
    responses: list[Any] | None = None  # live backends: each query's full response (model, usage, cache hit...)


@runtime_checkable
class Backend(Protocol):
    """Answers calls. ``models`` are the models it can call."""

    models: tuple[str, ...]

    def call(self, model: str, queries: Queries, sample: int = 0) -> Calls:
        """Call ``model`` once on every query (``sample`` selects a repeated sample)."""
        ...


@runtime_checkable
class KnowsTruth(Protocol):
    """A backend that can reveal every model's recorded outcome without paying for it.

    Only offline backends can; the oracle needs one.
    """

    def truth(self, queries: Queries, sample: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(quality, cost) arrays of shape queries x models."""
        ...
