"""Batch runs on live models: ``callwise run`` (a fitted policy) and ``callwise collect`` (several models).

Both write outcome tables in the canonical schema (:mod:`callwise.core.outcomes`), so what live
traffic records is what the next ``callwise fit`` / ``bench`` reads.

- :func:`run_policy` decides the prompts in chunks with the policy on a :class:`Live` backend and
  records every call it made (a cascade's cheap call and its escalation alike; a fallback is
  recorded under the model that answered). A router calls one model per prompt, so its log is a
  *partial* table (``meta['partial']``); ``complete=True`` then calls the models the policy did
  not call on each prompt (their cost is reported apart, as exploration) so that the table is
  complete and ``bench`` reads it directly.
- :func:`collect` calls every model ``samples`` times on every prompt: a training set.

Resuming is the response cache's job: every finished call is committed as it arrives, so a
re-run after a kill pays only for what was not done, and reproduces the same answers (hence the
same decisions) for what was. With ``ray=ADDRESS`` both run in shards on Ray workers, and each finished
shard is also kept on disk with a manifest, so a re-run skips it (:mod:`callwise.live.distributed`).

Quality comes from a grader against each prompt's ``reference`` (:mod:`callwise.live.grading`), or
from the upstream when it reports one (``callwise replay-server``); an answer with neither is an
error that names how many — nothing is written with a made-up quality.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..core.policy import Policy
from .backend import Live
from .batches import (
    CHUNK,
    RunResult,
    _check_collect,
    _collect_result,
    _collect_rows,
    _policy_result,
    _policy_rows,
    _prepare_policy,
    keeps_ledger,
)
from .prompts import Prompts

__all__ = ["CHUNK", "RunResult", "collect", "keeps_ledger", "run_policy"]


def run_policy(policy: Policy, prompts: Prompts, backend: Live, *, grader: str | None = None, complete: bool = False,
               chunk: int = CHUNK, progress: Callable[[int], None] | None = None, ray: str | None = None,
               shards: str | Path | None = None, shard_size: int | None = None) -> RunResult:
    """Run a fitted policy on live models over a prompt file; every call made becomes an outcome row.

    ``ray``: a Ray address (``"local"`` starts a local cluster) to run the prompts in shards of
    ``shard_size`` on Ray workers, each finished shard kept under ``shards`` (a folder) so a re-run
    skips it (:mod:`callwise.live.distributed`; docs/scale.md).
    """
    if ray is not None:
        from .distributed import run_policy_sharded

        return run_policy_sharded(policy, prompts, backend, shards=shards, address=ray, shard_size=shard_size,
                                  grader=grader, complete=complete, chunk=chunk, progress=progress)
    spent_before = backend.stats["spent"]
    policy = _prepare_policy(policy, prompts, backend, grader)
    parts = _policy_rows(policy, prompts, backend, complete=complete, chunk=chunk, progress=progress)
    return _policy_result(policy, prompts, backend, parts, grader=grader, complete=complete,
                          spent=backend.stats["spent"] - spent_before, retries=backend.stats["retries"],
                          fallbacks=backend.stats["fallbacks"])


def collect(models: Sequence[str], prompts: Prompts, backend: Live, *, samples: int = 1, grader: str | None = None,
            logprobs: bool = False, progress: Callable[[int], None] | None = None, ray: str | None = None,
            shards: str | Path | None = None, shard_size: int | None = None) -> RunResult:
    """Call every model ``samples`` times on every prompt and record the outcomes (a training set).

    ``ray``, ``shards``, ``shard_size``: run it in shards on Ray, resumable (see :func:`run_policy`).
    """
    if ray is not None:
        from .distributed import collect_sharded

        return collect_sharded(models, prompts, backend, shards=shards, address=ray, shard_size=shard_size,
                               samples=samples, grader=grader, logprobs=logprobs, progress=progress)
    _check_collect(models, prompts, backend, samples, grader)
    if logprobs:
        backend.with_logprobs(True)
    spent_before = backend.stats["spent"]
    rows = _collect_rows(models, prompts, backend, samples=samples, progress=progress)
    return _collect_result(models, prompts, backend, rows, samples=samples, grader=grader,
                           spent=backend.stats["spent"] - spent_before, retries=backend.stats["retries"],
                           fallbacks=backend.stats["fallbacks"])
