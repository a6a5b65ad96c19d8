"""The price table (``specs/prices.yaml``) and the cost of a call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from specstress.domain import Usage
from specstress.errors import SpecError

#: Output tokens assumed per call when estimating (max_tokens caps it).
TYPICAL_OUTPUT_TOKENS = 700


@dataclass(frozen=True)
class ModelPrice:
    """Dollars per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    reasoning: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        fresh_in = usage.input_tokens - cached
        reasoning = min(usage.reasoning_tokens, usage.output_tokens)
        visible_out = usage.output_tokens - reasoning
        c = fresh_in * self.input
        c += cached * (self.cached_input if self.cached_input is not None else self.input)
        c += visible_out * self.output
        c += reasoning * (self.reasoning if self.reasoning is not None else self.output)
        return c / 1_000_000


_CACHE: dict[tuple[str, int], PriceTable] = {}


class PriceTable:
    def __init__(self, models: dict[str, ModelPrice], as_of: str | None, batch_discount: float = 0.5) -> None:
        self.models = models
        self.as_of = as_of
        self.batch_discount = batch_discount

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
        models: dict[str, ModelPrice] = {}
        for mid, row in (data.get("models") or {}).items():
            try:
                models[str(mid)] = ModelPrice(
                    input=float(row["input"]), output=float(row["output"]),
                    cached_input=_opt(row.get("cached_input")), reasoning=_opt(row.get("reasoning")))
            except (KeyError, TypeError, ValueError) as exc:
                raise SpecError(f"{path}: models.{mid}: needs numeric `input` and `output` ({exc}).") from None
        return cls(models, str(data.get("as_of")) if data.get("as_of") else None,
                   float(data.get("batch_discount", 0.5)))

    def for_entry(self, entry: Any) -> ModelPrice | None:
        """The price of a run-spec model entry: its own ``price``, else ``price_as``, else its model name."""
        if getattr(entry, "price", None) is not None:
            p = entry.price
            return ModelPrice(p.input, p.output, p.cached_input, p.reasoning)
        name = getattr(entry, "price_as", None) or entry.model
        return self.models.get(name)


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)
