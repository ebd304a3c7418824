"""Replay: a backend that answers from recorded outcomes (offline evaluation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .backend import Calls, Queries
from .errors import PolicyError
from .outcomes import DenseView, OutcomeTable


@dataclass(frozen=True)
class RecordedSamples:
    """All recorded samples of one model for a batch of queries, each (Q, S)."""

    answers: np.ndarray | None
    quality: np.ndarray
    cost: np.ndarray
    keep: np.ndarray | None = None


class Replay:
    """Answers ``call(model, queries)`` from an outcome table's dense arrays.

    Lookups are vectorised (one index lookup per batch); asking for a query, model or sample that
    was not recorded is an error, never a silent zero.

    ``match`` says how a query finds its recorded row: by its id (``"id"``, the default) or by its
    prompt text (``"prompt"``, as the replay server matches a request; the first prompt id in
    table order wins when several share a text). Pipelines replay by prompt: a module's prompt
    embeds earlier modules' outputs, so the text is what identifies the recorded call.
    """

    def __init__(self, data: OutcomeTable | DenseView, *, match: str = "id") -> None:
        if match not in ("id", "prompt"):
            raise PolicyError(f"unknown match {match!r}; expected 'id' or 'prompt'")
        self.view = data.dense() if isinstance(data, OutcomeTable) else data
        self.models = self.view.models
        self.match = match
        if match == "id":
            self._index = pd.Index(self.view.prompt_ids)
        else:
            texts = pd.Series(np.asarray(self.view.prompts, dtype=object))
            if isinstance(data, OutcomeTable) and "prompt" not in data.frame.columns:
                raise PolicyError("matching by prompt text needs every recorded prompt's text; the data has no "
                                  "'prompt' column")
            if texts.isna().any():
                raise PolicyError("matching by prompt text needs every recorded prompt's text (a 'prompt' column); "
                                  f"{int(texts.isna().sum())} prompts have none")
            self._index = pd.Index(texts[~texts.duplicated()].to_numpy())
            self._first_row = np.flatnonzero(~texts.duplicated().to_numpy())

    def queries(self) -> Queries:
        """Every recorded query, in table order."""
        v = self.view
        return Queries(v.prompt_ids, v.prompts, v.tasks)

    def _rows(self, queries: Queries) -> np.ndarray:
        if self.match == "prompt":
            rows = self._index.get_indexer(np.asarray(queries.prompts, dtype=object))
            if (rows < 0).any():
                missing = [str(p)[:80] for p in queries.prompts[rows < 0][:3]]
                raise PolicyError(f"{int((rows < 0).sum())} prompts have no recorded outcomes (matched by prompt "
                                  f"text), e.g. {missing}")
            return self._first_row[rows]
        rows = self._index.get_indexer(queries.ids)
        if (rows < 0).any():
            missing = queries.ids[rows < 0][:3].tolist()
            raise PolicyError(f"{int((rows < 0).sum())} queries have no recorded outcomes, e.g. {missing}")
        return rows

    def _sample(self, sample: int) -> int:
        if not 0 <= sample < self.view.quality.shape[2]:
            raise PolicyError(f"sample {sample} was not recorded; the data has samples 0..{self.view.quality.shape[2] - 1}")
        return sample

    def call(self, model: str, queries: Queries, sample: int = 0) -> Calls:
        m = self.view.model_index(model)
        rows = self._rows(queries)
        s = self._sample(sample)
        q = self.view.quality[rows, m, s]
        if np.isnan(q).any():
            bad = queries.ids[np.isnan(q)][:3].tolist()
            raise PolicyError(f"model {model!r} has no recorded sample {s} for {int(np.isnan(q).sum())} queries, e.g. {bad}")
        pick = lambda a: None if a is None else a[rows, m, s]  # noqa: E731
        return Calls(model, q, self.view.cost[rows, m, s], pick(self.view.answers), pick(self.view.latency),
                     pick(self.view.confidence))

    def samples(self, model: str, queries: Queries) -> RecordedSamples:
        """Every recorded sample of ``model`` for the queries: (Q, S) arrays, NaN / None where not recorded.

        What multi-call policies (votes, best-of-K) read offline to compute expectations over draws.
        """
        m = self.view.model_index(model)
        rows = self._rows(queries)
        pick = lambda a: None if a is None else a[rows, m, :]  # noqa: E731
        return RecordedSamples(pick(self.view.answers), self.view.quality[rows, m, :], self.view.cost[rows, m, :],
                               pick(self.view.keep))

    def references(self, queries: Queries) -> np.ndarray:
        """Each query's reference (gold) answer, (Q,) object array; an error when the data has none."""
        if self.view.references is None:
            raise PolicyError("the data has no reference answers (a 'reference' column: each prompt's gold answer); "
                              "metric-aware aggregation scores its predictions against them")
        return self.view.references[self._rows(queries)]

    def truth(self, queries: Queries, sample: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows(queries)
        s = self._sample(sample)
        return self.view.quality[rows, :, s], self.view.cost[rows, :, s]
