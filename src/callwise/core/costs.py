"""Expected cost of a call per (prompt, model), learned from training outcomes.

Routers weigh predicted quality against this expected cost, and cascades price their tiers with
it: ``mean`` (each model's mean recorded cost), ``length`` (a per-model linear function of the
prompt's length) or ``token-price`` (RouterBench's per-token price proxy from a price table).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import PolicyError
from .outcomes import OutcomeTable
from .prices import PriceTable

COST_MODELS = ("mean", "length", "token-price")


class CostModel:
    """Expected cost per (prompt, model): ``mean`` | ``length`` | ``token-price`` (see module doc)."""

    def __init__(self, kind: str, coef: np.ndarray) -> None:
        if kind not in COST_MODELS:
            raise PolicyError(f"cost_model must be one of {COST_MODELS}, got {kind!r}")
        self.kind, self.coef = kind, np.asarray(coef, float)

    @classmethod
    def fit(cls, kind: str, prompts: np.ndarray, cost: np.ndarray, train: OutcomeTable | None,
            models: Sequence[str], prices: str | None) -> "CostModel":
        if kind == "mean":
            return cls(kind, cost.mean(axis=0)[None, :])
        if kind == "length":
            n = _lengths(prompts)
            A = np.column_stack([np.ones_like(n), n])
            coef, *_ = np.linalg.lstsq(A, cost, rcond=None)  # (2, M): intercept, per-character slope
            return cls(kind, coef)
        if kind == "token-price":
            if not prices:
                raise PolicyError("cost_model='token-price' needs prices: the path of a price table (YAML/JSON)")
            table = PriceTable.load(prices)
            out_tokens = _mean_output_tokens(train, models, table)
            proxy = [(p.input_per_1m + p.output_per_1m) / 1e6 + p.per_call / max(out_tokens[m], 1.0)
                     for m, p in ((m, table.price(m)) for m in models)]
            return cls(kind, np.asarray(proxy)[None, :])
        raise PolicyError(f"cost_model must be one of {COST_MODELS}, got {kind!r}")

    def predict(self, prompts: np.ndarray) -> np.ndarray:
        if self.kind == "length":
            n = _lengths(prompts)
            return np.maximum(self.coef[0] + n[:, None] * self.coef[1], 0.0)
        return np.broadcast_to(self.coef[0], (len(prompts), self.coef.shape[1]))


def _lengths(prompts: np.ndarray) -> np.ndarray:
    return np.fromiter((len(p) if isinstance(p, str) else 0 for p in prompts), float, len(prompts))


def _mean_output_tokens(train: OutcomeTable | None, models: Sequence[str], table: PriceTable) -> dict[str, float]:
    out: dict[str, float] = {}
    f = train.frame if train is not None else None
    for m in models:
        tok = f.loc[f["model"] == m, "output_tokens"].dropna() if f is not None and "output_tokens" in f else []
        if len(tok):
            out[m] = float(np.mean(tok))
        elif table.assumed_output_tokens is not None:
            out[m] = float(table.assumed_output_tokens)
        else:
            raise PolicyError(f"the token-price proxy needs mean response tokens of {m!r}: the training data records "
                              "no output_tokens and the price table sets no assumed_output_tokens")
    return out
