"""True dollar costs of live calls: the provider's own figure, else its token usage times a price.

Prices come from LiteLLM's price map by default — read from the JSON file that ships inside the
installed ``litellm`` package, never fetched from the network — with a user's price table
(:class:`callwise.core.prices.PriceTable`, YAML or JSON) overriding it model by model. Every result
records where its prices came from (:meth:`LivePrices.describe`: the map's file, the LiteLLM
version and the file's sha256, and the override file).

A model with no price is an error when a run starts (:meth:`LivePrices.check`), never a silent
$0 and never a made-up default.

The cost of one call (:meth:`LivePrices.cost`) uses the usage the provider returns:

- a dollar ``cost`` in ``usage`` (providers such as OpenRouter report it, and so does
  ``callwise replay-server``) is taken as it is: ``cost_source = "provider"``;
- otherwise ``(prompt − cached) × input + cached × cached_input + (completion − reasoning) ×
  output + reasoning × reasoning_price + per_call`` from ``prompt_tokens``,
  ``prompt_tokens_details.cached_tokens``, ``completion_tokens`` and
  ``completion_tokens_details.reasoning_tokens``: ``cost_source = "usage"``;
- a response with no usage at all is priced on tokens estimated from the texts (4 characters a
  token) and says so: ``cost_source = "estimated"``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.errors import CallwiseError
from ..core.prices import ModelPrice, PriceTable, estimate_tokens

#: The price map LiteLLM ships inside its package (what ``litellm.model_cost`` loads offline).
LITELLM_PRICE_FILE = "model_prices_and_context_window_backup.json"


class PriceError(CallwiseError, ValueError):
    """A model has no known price, or a price map cannot be read."""


@lru_cache(maxsize=1)
def litellm_price_map() -> tuple[dict[str, Any], dict[str, Any]]:
    """(the map: model -> entry, where it came from) from the installed litellm package's JSON file.

    Reads the file without importing litellm (which takes seconds and, unless told otherwise,
    tries to fetch a newer map over the network).
    """
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise PriceError("LiteLLM's price map needs the litellm package: pip install 'callwise[live]' "
                         "(or give every model's price in a price table)")
    path = Path(list(spec.submodule_search_locations)[0]) / LITELLM_PRICE_FILE
    try:
        blob = path.read_bytes()
        data = json.loads(blob)
    except (OSError, json.JSONDecodeError) as e:
        raise PriceError(f"{path}: cannot read LiteLLM's price map ({e})") from None
    if not isinstance(data, dict):
        raise PriceError(f"{path}: LiteLLM's price map is not a JSON object")
    data.pop("sample_spec", None)
    info = {"source": "litellm price map", "file": str(path), "litellm_version": importlib.metadata.version("litellm"),
            "sha256": hashlib.sha256(blob).hexdigest(), "models": len(data)}
    return data, info


def _entry_price(entry: Mapping[str, Any]) -> ModelPrice | None:
    """A LiteLLM map entry's per-token prices as per-1M prices (None: the entry has no token prices)."""
    if "input_cost_per_token" not in entry and "output_cost_per_token" not in entry:
        return None
    per_m = lambda k: None if entry.get(k) is None else float(entry[k]) * 1e6  # noqa: E731
    return ModelPrice(per_m("input_cost_per_token") or 0.0, per_m("output_cost_per_token") or 0.0, 0.0,
                      per_m("cache_read_input_token_cost"), per_m("output_cost_per_reasoning_token"))


def _detail(usage: Mapping[str, Any], group: str, key: str) -> int:
    d = usage.get(group)
    v = d.get(key) if isinstance(d, Mapping) else None
    return int(v) if isinstance(v, (int, float)) and v > 0 else 0


class LivePrices:
    """Resolves each model's price (overrides first, then LiteLLM's map) and prices responses.

    ``overrides``: a :class:`PriceTable` (or a path to one) whose entries win over the map;
    ``use_map=False`` uses the overrides alone.
    """

    def __init__(self, overrides: PriceTable | str | Path | None = None, *, use_map: bool = True,
                 provider_only: bool = False) -> None:
        if isinstance(overrides, (str, Path)):
            overrides = PriceTable.load(overrides)
        self.overrides = overrides
        self.use_map = use_map and not provider_only
        self.provider_only = provider_only

    def price(self, name: str, provider_model: str | None = None) -> tuple[ModelPrice, str]:
        """(price, where it came from) of the model the policy calls ``name`` (LiteLLM id ``provider_model``).

        With ``provider_only`` no price is needed (every response must report its dollar cost).
        """
        if self.provider_only:
            return ModelPrice(), "provider-only"
        if self.overrides is not None and name in self.overrides.models:
            return self.overrides.models[name], "override"
        if self.overrides is not None and provider_model in self.overrides.models:
            return self.overrides.models[provider_model], "override"  # type: ignore[index]
        if self.use_map:
            table, info = litellm_price_map()
            for key in _map_keys(name, provider_model):
                entry = table.get(key)
                if isinstance(entry, Mapping):
                    p = _entry_price(entry)
                    if p is not None:
                        return p, f"litellm:{key}"
        where = f"LiteLLM's price map (litellm {litellm_price_map()[1]['litellm_version']})" if self.use_map else ""
        over = f"the price table {self.overrides.path or ''}".strip() if self.overrides is not None else ""
        looked = " or ".join(x for x in (where, over) if x) or "no price source"
        raise PriceError(f"no price for model {name!r}"
                         + (f" (LiteLLM model {provider_model!r})" if provider_model and provider_model != name else "")
                         + f" in {looked}; give its price in a price table (--prices FILE: "
                         f"models: {{{name}: {{input: USD per 1M tokens, output: USD per 1M tokens}}}})")

    def check(self, models: Iterable[tuple[str, str | None]]) -> dict[str, tuple[ModelPrice, str]]:
        """Every (name, LiteLLM id) priced, or one error listing all the models without a price."""
        got, missing = {}, []
        for name, provider_model in models:
            try:
                got[name] = self.price(name, provider_model)
            except PriceError:
                missing.append(name)
        if missing:
            raise PriceError(f"no price for model(s) {missing}: not in "
                             + ("LiteLLM's price map" if self.use_map else "the price list")
                             + (" nor the price table" if self.overrides is not None else "")
                             + "; give their prices in a price table (--prices FILE with models: {NAME: {input: ..., "
                             "output: ...}}, USD per 1M tokens); callwise never assumes a price")
        return got

    def describe(self) -> dict[str, Any]:
        """Where prices come from, for every result file."""
        out: dict[str, Any] = {"provider_only": self.provider_only}
        if self.use_map:
            try:
                out["price_map"] = litellm_price_map()[1]
            except PriceError as e:
                out["price_map"] = {"error": str(e)}
        if self.overrides is not None:
            out["overrides"] = {"path": self.overrides.path, "source": self.overrides.source,
                                "models": sorted(self.overrides.models)}
        return out

    def cost(self, price: ModelPrice, usage: Mapping[str, Any] | None, prompt_text: str = "",
             answer_text: str = "", model: str = "") -> tuple[float, str]:
        """(dollars, source) of one call from the provider's usage (see the module docstring)."""
        if usage:
            reported = usage.get("cost")
            if isinstance(reported, (int, float)) and not isinstance(reported, bool) and reported >= 0:
                return float(reported), "provider"
        if self.provider_only:
            raise PriceError(f"model {model!r} answered without a dollar cost in its usage, and costs are taken "
                             "from the provider only; give prices (a price table or LiteLLM's map) instead")
        if usage:
            pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(pt, (int, float)) and isinstance(ct, (int, float)):
                cached = min(_detail(usage, "prompt_tokens_details", "cached_tokens"), int(pt))
                reasoning = min(_detail(usage, "completion_tokens_details", "reasoning_tokens"), int(ct))
                c_in = price.cached_input_per_1m if price.cached_input_per_1m is not None else price.input_per_1m
                c_rs = price.reasoning_per_1m if price.reasoning_per_1m is not None else price.output_per_1m
                dollars = ((pt - cached) * price.input_per_1m + cached * c_in
                           + (ct - reasoning) * price.output_per_1m + reasoning * c_rs) / 1e6 + price.per_call
                return float(dollars), "usage"
        tin, tout = (int(x) for x in estimate_tokens([prompt_text, answer_text]))
        return float((tin * price.input_per_1m + tout * price.output_per_1m) / 1e6 + price.per_call), "estimated"


def _map_keys(name: str, provider_model: str | None) -> list[str]:
    """Keys to try in LiteLLM's map: the LiteLLM id, then without its provider prefix, then the name."""
    keys = []
    for m in (provider_model, name):
        if m:
            keys.append(m)
            if "/" in m:
                keys.append(m.split("/", 1)[1])
    return list(dict.fromkeys(keys))
