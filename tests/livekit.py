"""Shared pieces of the live-path tests: a real task of rational-cascades, fitted policies, servers."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from callwise.core.outcomes import OutcomeTable
from callwise.core.split import split_outcomes
from callwise.io import load
from callwise.live.backend import Live, endpoints_for_base
from callwise.live.cache import ResponseCache
from callwise.live.prices import LivePrices

TASK = "mmlu-llama"
SMALL, LARGE = "llama3.1-8b", "llama3.1-405b"
N_PROMPTS = 600


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test or benchmark starts as a subprocess)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def task_table(shared_data: Path) -> OutcomeTable:
    """600 prompts of rational-cascades' MMLU task (5 llama models, logprob confidences, real costs)."""
    t = load(shared_data / "rational-cascades").for_task(TASK)
    return t.for_prompts(t.prompt_ids()[:N_PROMPTS])


def split(table: OutcomeTable) -> tuple[OutcomeTable, OutcomeTable]:
    train, test, _ = split_outcomes(table, seed=0)
    return train, test


def live_for(url: str, models: list[str], cache: Path | None, **settings) -> Live:
    """A Live backend with every model behind ``url`` (costs as the replay server reports them)."""
    eps = endpoints_for_base(models, url + "/v1", **settings)
    return Live(eps, cache=None if cache is None else ResponseCache(cache), prices=LivePrices(provider_only=True),
                retry_base=0.01)


@contextmanager
def live_backends(url: str, models: list[str]) -> Iterator[Callable[..., Live]]:
    """``make(cache=None, send_ids=True, transport="http")`` builds a Live backend on ``url``; every
    backend made (and its cache) is closed on exit."""
    made: list[Live] = []

    def make(cache: Path | None = None, send_ids: bool = True, transport: str = "http") -> Live:
        be = live_for(url, models, cache, transport=transport)
        be.send_ids = send_ids
        made.append(be)
        return be

    try:
        yield make
    finally:
        for be in made:
            be.close()
            if be.cache is not None:
                be.cache.close()


def prompts_of(table: OutcomeTable, ids: np.ndarray) -> list[str]:
    first = table.frame.drop_duplicates("prompt_id").set_index("prompt_id")["prompt"]
    return [str(first[p]) for p in ids]


def cascade_job(shared_data: Path, base: Path, n: int = 60) -> tuple[OutcomeTable, OutcomeTable, np.ndarray]:
    """A live job over the task: a confidence cascade (SMALL -> LARGE) fitted on its train split and
    saved as ``base/casc.json``, and ``base/prompts.jsonl`` with the first ``n`` test prompts (each with
    SMALL's recorded answer as its reference). Returns (table, test split, the prompt ids)."""
    import json

    from callwise.core.policy_files import save_policy
    from callwise.evaluation.fit import fit_policy

    table = task_table(shared_data)
    train, test = split(table)
    policy = fit_policy(train, "confidence-cascade", params={"models": [SMALL, LARGE]}, budget=0.0003,
                        holdout=False, n_boot=10).policy
    save_policy(policy, base / "casc.json")
    ids = test.prompt_ids()[:n]
    ref = test.frame[(test.frame["model"] == SMALL)].set_index("prompt_id")
    lines = [json.dumps({"id": str(p), "prompt": t, "reference": str(ref.loc[p, "answer"])})
             for p, t in zip(ids, prompts_of(test, ids))]
    (base / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    return table, test, ids
