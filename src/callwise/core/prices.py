"""User-given price tables, for data that records correctness but no cost.

A price table is YAML or JSON::

    source: "list prices, 2024-08"         # free text, recorded in every result
    assumed_output_tokens: 300             # optional: only for data without response text
    models:
      gpt-4-1106-preview: {input: 10.0, output: 30.0}   # USD per 1M tokens
      mistralai/Mixtral-8x7B-Instruct-v0.1: {input: 0.6, output: 0.6}
      some-model: {per_call: 0.002}                      # flat USD per call (may be combined)

Token counts are *estimated* from text (:func:`estimate_tokens`), so costs computed this way are
marked as estimated in the outcome table's ``meta`` and in every result built from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import DataError

#: Keys of one model's prices in a price table (USD per 1M tokens; ``per_call`` in USD per call).
PRICE_KEYS = ("input", "output", "per_call", "cached_input", "reasoning")
#: Characters per token used to estimate token counts from text (OpenAI's rule of thumb for English).
CHARS_PER_TOKEN = 4.0


def estimate_tokens(texts: Any) -> np.ndarray:
    """Estimated token counts of texts: ceil(characters / 4); missing text counts 0."""
    lengths = np.array([len(t) if isinstance(t, str) else 0 for t in texts], dtype=float)
    return np.ceil(lengths / CHARS_PER_TOKEN).astype(np.int64)


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M input / output tokens and per call; cached-input and reasoning-output prices
    where they differ from the plain ones (None: charged at the plain price)."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0
    per_call: float = 0.0
    cached_input_per_1m: float | None = None
    reasoning_per_1m: float | None = None


@dataclass(frozen=True)
class PriceTable:
    """Per-model prices: per-1M input/output tokens and/or a flat per-call price."""

    models: Mapping[str, ModelPrice]
    source: str = "user price table"
    assumed_output_tokens: int | None = None
    path: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> "PriceTable":
        path = Path(path)
        from .files import read_text

        text = read_text(path)
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as e:
            raise DataError(f"unreadable price table: {e}", file=str(path)) from None
        return cls.from_dict(data, file=str(path))

    @classmethod
    def from_dict(cls, data: Any, file: str | None = None) -> "PriceTable":
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict) or not data["models"]:
            raise DataError("a price table needs a non-empty 'models' mapping of model -> prices", file=file,
                            column="models")
        models = {}
        for name, p in data["models"].items():
            if not isinstance(p, dict):
                raise DataError(f"prices of model {name!r} must be a mapping with input/output/per_call",
                                file=file, column=f"models.{name}")
            unknown = set(p) - set(PRICE_KEYS)
            if unknown or not p:
                raise DataError(f"model {name!r}: expected keys input, output (USD per 1M tokens), per_call (USD) "
                                f"and optionally cached_input, reasoning (USD per 1M tokens), got {sorted(p)}",
                                file=file, column=f"models.{name}")
            vals: dict[str, float | None] = {}
            for k in PRICE_KEYS:
                v = p.get(k, None if k in ("cached_input", "reasoning") else 0.0)
                if v is None:
                    vals[k] = None
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                    raise DataError(f"model {name!r}: {k} price must be a finite number >= 0, got {v!r}",
                                    file=file, column=f"models.{name}.{k}")
                vals[k] = float(v)
            models[str(name)] = ModelPrice(vals["input"], vals["output"], vals["per_call"],  # type: ignore[arg-type]
                                           vals["cached_input"], vals["reasoning"])
        aot = data.get("assumed_output_tokens")
        if aot is not None and (isinstance(aot, bool) or not isinstance(aot, int) or aot < 0):
            raise DataError(f"assumed_output_tokens must be a non-negative integer, got {aot!r}", file=file,
                            column="assumed_output_tokens")
        return cls(models, str(data.get("source", "user price table")), aot, file)

    def price(self, model: str) -> ModelPrice:
        try:
            return self.models[model]
        except KeyError:
            raise DataError(f"no price for model {model!r}; the price table has {sorted(self.models)}",
                            file=self.path, column="models") from None

    def costs(self, model: str, prompts: Any, responses: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cost, input_tokens, output_tokens) per call, tokens estimated from the texts.

        Without response texts the output tokens are ``assumed_output_tokens``; if the table has
        none and the model has an output price, that is an error (never a silent zero).
        """
        p = self.price(model)
        tin = estimate_tokens(prompts)
        if responses is not None:
            tout = estimate_tokens(responses)
        elif p.output_per_1m == 0:
            tout = np.zeros(len(tin), dtype=np.int64)
        elif self.assumed_output_tokens is not None:
            tout = np.full(len(tin), self.assumed_output_tokens, dtype=np.int64)
        else:
            raise DataError(f"model {model!r} has an output price but the data has no response text to count "
                            "output tokens; set 'assumed_output_tokens' in the price table", file=self.path,
                            column="assumed_output_tokens")
        cost = tin * p.input_per_1m / 1e6 + tout * p.output_per_1m / 1e6 + p.per_call
        return cost, tin, tout

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "path": self.path, "assumed_output_tokens": self.assumed_output_tokens,
                "chars_per_token": CHARS_PER_TOKEN,
                "models": {m: vars(p) for m, p in self.models.items()}}
