"""The price table (``specs/prices.yaml``) and the cost of a call: at the standard rate, through a provider's
batch API (``batch=True``), and with prompt-cache reads (``Usage.cached_input_tokens``) and writes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from specstress.domain import Usage
from specstress.errors import SpecError

#: Output tokens assumed per call when estimating (max_tokens caps it).
TYPICAL_OUTPUT_TOKENS = 700

#: Defaults when the price table says nothing: half off in batches, writes at the input price, 1024-token minimum.
DEFAULT_BATCH_DISCOUNT = 0.5
DEFAULT_CACHE_MIN_TOKENS = 1024


@dataclass(frozen=True)
class ModelPrice:
    """Dollars per million tokens, and the terms of the model's provider for batches and prompt caching."""

    input: float
    output: float
    cached_input: float | None = None
    reasoning: float | None = None
    #: the fraction the provider's batch API takes off every price (0: the provider has no batch API)
    batch_discount: float = DEFAULT_BATCH_DISCOUNT
    #: a prompt-cache write costs this multiple of the input price (Anthropic's 5-minute cache: 1.25)
    cache_write: float = 1.0
    #: the shortest prefix the provider caches (tokens)
    cache_min_tokens: int = DEFAULT_CACHE_MIN_TOKENS

    def cost(self, usage: Usage, batch: bool = False, cache_write_tokens: int = 0) -> float:
        """Dollars for ``usage``. ``cached_input_tokens`` are priced at ``cached_input``; ``cache_write_tokens``
        (part of the uncached input) at ``cache_write`` times the input price; ``batch`` applies the provider's
        batch discount to everything (a provider without a batch API has a discount of 0)."""
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        fresh_in = usage.input_tokens - cached
        written = min(max(0, cache_write_tokens), fresh_in)
        reasoning = min(usage.reasoning_tokens, usage.output_tokens)
        visible_out = usage.output_tokens - reasoning
        c = (fresh_in - written) * self.input + written * self.input * self.cache_write
        c += cached * (self.cached_input if self.cached_input is not None else self.input)
        c += visible_out * self.output
        c += reasoning * (self.reasoning if self.reasoning is not None else self.output)
        if batch:
            c *= 1.0 - self.batch_discount
        return c / 1_000_000

    def cost_with_cache(self, calls: int, input_tokens: int, output_tokens: int, prefix_tokens: int, prefixes: int,
                        hit_ratio: float = 1.0, batch: bool = False) -> float:
        """Dollars for ``calls`` calls whose input includes a cacheable prefix (the system prompt) of
        ``prefix_tokens`` each, ``prefixes`` of them distinct: the first call of each prefix writes it, and
        ``hit_ratio`` of the later calls read it at ``cached_input`` (the others write it again). A prefix shorter
        than ``cache_min_tokens``, or a model without a cached-input price, is never cached."""
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        if (calls <= 0 or prefix_tokens <= 0 or self.cached_input is None
                or prefix_tokens < self.cache_min_tokens):
            return self.cost(usage, batch=batch)
        prefixes = min(max(1, prefixes), calls)
        per_call = min(prefix_tokens, input_tokens // calls)
        repeats = calls - prefixes
        hits = round(repeats * per_call * hit_ratio)
        writes = prefixes * per_call + (repeats * per_call - hits)
        usage.cached_input_tokens = hits
        return self.cost(usage, batch=batch, cache_write_tokens=writes)


_CACHE: dict[tuple[str, int], PriceTable] = {}


class PriceTable:
    def __init__(self, models: dict[str, ModelPrice], as_of: str | None, batch_discount: float = DEFAULT_BATCH_DISCOUNT,
                 *, providers: dict[str, str] | None = None, batch_by_provider: dict[str, float] | None = None,
                 cache_write_by_provider: dict[str, float] | None = None,
                 cache_min_by_provider: dict[str, int] | None = None, cache_hit_ratio: float = 1.0,
                 model_terms: dict[str, dict[str, Any]] | None = None) -> None:
        self.models = models
        self.as_of = as_of
        #: the usual batch discount (every provider's when the table has no ``batch_discount_by_provider``)
        self.batch_discount = batch_discount
        #: model name -> provider (as the table lists it)
        self.providers = providers or {}
        self.batch_by_provider = batch_by_provider or {}
        self.cache_write_by_provider = cache_write_by_provider or {}
        self.cache_min_by_provider = cache_min_by_provider or {}
        #: an assumption: the share of repeats of a cached prefix that read the cache
        self.cache_hit_ratio = cache_hit_ratio
        #: a model's own ``cache_write`` / ``cache_min_tokens``, overriding its provider's
        self.model_terms = model_terms or {}

    @classmethod
    def load(cls, path: Path) -> PriceTable:
        p = Path(path)
        try:
            stamp = p.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = -1
        key = (str(p), stamp)
        cached = _CACHE.get(key)
        if cached is None:
            cached = _CACHE[key] = cls._read(p)
        return cached

    @classmethod
    def _read(cls, path: Path) -> PriceTable:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise SpecError(f"{path}: price table not found. Fix: set `prices:` in the run spec.") from None
        try:
            default = float(data.get("batch_discount", DEFAULT_BATCH_DISCOUNT))
            by_provider = {str(k): float(v) for k, v in (data.get("batch_discount_by_provider") or {}).items()}
            pc = data.get("prompt_cache") or {}
            writes = {str(k): float(v) for k, v in (pc.get("write_multiplier_by_provider") or {}).items()}
            mins = {str(k): int(v) for k, v in (pc.get("min_tokens_by_provider") or {}).items()}
            hit_ratio = float(pc.get("hit_ratio", 1.0))
        except (AttributeError, TypeError, ValueError) as exc:
            raise SpecError(f"{path}: batch_discount_by_provider / prompt_cache need numbers ({exc}).") from None
        if not 0.0 <= hit_ratio <= 1.0 or any(not 0.0 <= d < 1.0 for d in [default, *by_provider.values()]):
            raise SpecError(f"{path}: prompt_cache.hit_ratio must be in [0, 1] and batch discounts in [0, 1).")
        table = cls({}, str(data.get("as_of")) if data.get("as_of") else None, default, providers={},
                    batch_by_provider=by_provider, cache_write_by_provider=writes, cache_min_by_provider=mins,
                    cache_hit_ratio=hit_ratio, model_terms={})
        for mid, row in (data.get("models") or {}).items():
            try:
                terms = {k: (float(row[k]) if k == "cache_write" else int(row[k]))
                         for k in ("cache_write", "cache_min_tokens") if row.get(k) is not None}
                provider = str(row.get("provider") or "")
                base = ModelPrice(input=float(row["input"]), output=float(row["output"]),
                                  cached_input=_opt(row.get("cached_input")), reasoning=_opt(row.get("reasoning")))
            except (KeyError, TypeError, ValueError) as exc:
                raise SpecError(f"{path}: models.{mid}: needs numeric `input` and `output` ({exc}).") from None
            table.providers[str(mid)] = provider
            table.model_terms[str(mid)] = terms
            table.models[str(mid)] = table._with_terms(base, provider, str(mid))
        return table

    def _with_terms(self, base: ModelPrice, provider: str, name: str | None) -> ModelPrice:
        """``base`` with the batch and caching terms of ``provider`` (and of model ``name``'s own row)."""
        own = self.model_terms.get(name or "", {})
        return replace(
            base,
            batch_discount=self.batch_discount_for(provider),
            cache_write=float(own.get("cache_write", self.cache_write_by_provider.get(provider, 1.0))),
            cache_min_tokens=int(own.get("cache_min_tokens",
                                         self.cache_min_by_provider.get(provider, DEFAULT_CACHE_MIN_TOKENS))))

    def for_entry(self, entry: Any) -> ModelPrice | None:
        """The price of a run-spec model entry: its own ``price``, else ``price_as``, else its model name; with the
        batch and caching terms of the entry's provider (the provider it is sent to)."""
        name = getattr(entry, "price_as", None) or getattr(entry, "model", None)
        if getattr(entry, "price", None) is not None:
            p = entry.price
            base: ModelPrice | None = ModelPrice(p.input, p.output, p.cached_input, p.reasoning)
            name = None
        else:
            base = self.models.get(name) if name else None
        if base is None:
            return None
        provider = getattr(entry, "provider", None) or self.providers.get(name or "", "")
        return self._with_terms(base, str(provider), name)

    def batch_discount_for(self, provider: str) -> float:
        """The batch discount of ``provider``; 0 for a provider the table does not list (no batch API known). A
        table without ``batch_discount_by_provider`` (an older one) gives every provider ``batch_discount``."""
        if not self.batch_by_provider:
            return self.batch_discount
        return self.batch_by_provider.get(provider, 0.0)


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)
