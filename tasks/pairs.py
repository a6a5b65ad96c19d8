"""Stage 2: value pairs. Uniform over unordered pairs of distinct leaf values, without
replacement, seeded; each pair's orientation (which value is ``value1``) is a fair coin.

Samples nest: the pairs of ``count = n`` are the first ``n`` of one seeded order of all pairs, and a
pair's orientation depends only on the seed and the pair, so a pilot of 20 pairs and a run of 40
share their first 20 pairs, and every call already paid for them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from specstress.context import RunContext
from specstress.errors import SpecError
from specstress.hashing import short_id
from specstress.runspec import RunSpec
from specstress.tasks.base import Inputs, Stage
from specstress.tasks.registry import register_stage

PAIRS_SCHEMA = pa.schema([
    ("pair_id", pa.string()), ("value1", pa.string()), ("value2", pa.string()),
    ("value1_id", pa.string()), ("value2_id", pa.string()),
    ("value1_description", pa.string()), ("value2_description", pa.string()),
    ("category1", pa.string()), ("category2", pa.string()),
    ("top_category1", pa.string()), ("top_category2", pa.string()),
])


def decode_pair_index(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Map linear indices over the n*(n-1)/2 unordered pairs (i < j) to (i, j)."""
    k = k.astype(np.int64)
    # row i holds pairs (i, i+1..n-1); it starts at offset i*n - i*(i+1)/2
    i = (n - 2 - np.floor(np.sqrt(-8.0 * k + 4.0 * n * (n - 1) - 7.0) / 2.0 - 0.5)).astype(np.int64)
    start = i * n - i * (i + 1) // 2
    # guard against floating point at row edges
    too_far = k < start
    i = np.where(too_far, i - 1, i)
    start = i * n - i * (i + 1) // 2
    nxt = (i + 1) * n - (i + 1) * (i + 2) // 2
    over = k >= nxt
    i = np.where(over, i + 1, i)
    start = i * n - i * (i + 1) // 2
    j = k - start + i + 1
    return i, j


#: Up to this many pairs the order is one permutation of all of them; above it, a stream of draws
#: (in fixed-size batches, so the stream does not depend on the count) with repeats dropped.
PERMUTE_UP_TO = 20_000_000
_BATCH = 1 << 14


def pair_order(total: int, count: int, seed: int) -> np.ndarray:
    """The first ``count`` of one seeded order of the linear pair indices ``0..total-1`` (a prefix for
    any ``count``: samples nest)."""
    rng = np.random.default_rng(seed)
    if total <= PERMUTE_UP_TO:
        return rng.permutation(total)[:count]
    chosen: dict[int, None] = {}
    while len(chosen) < count:
        for k in rng.integers(0, total, size=_BATCH).tolist():
            chosen.setdefault(k, None)
            if len(chosen) == count:
                break
    return np.fromiter(chosen, dtype=np.int64, count=count)


def _coin(k: np.ndarray, seed: int) -> np.ndarray:
    """A fair coin per pair index, from the seed and the index alone (splitmix64)."""
    with np.errstate(over="ignore"):
        z = k.astype(np.uint64) + np.uint64(seed % (1 << 63)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(63)).astype(bool)


def sample_pairs(n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct unordered pairs of distinct indices < n, uniformly, oriented by a coin."""
    total = n * (n - 1) // 2
    if count > total:
        raise SpecError(f"pairs.count is {count} but the taxonomy has only {n} values, i.e. {total} distinct pairs. "
                        f"Fix: lower pairs.count to at most {total}.")
    k = pair_order(total, count, seed)
    i, j = decode_pair_index(k, n)
    flip = _coin(k, seed)
    return np.where(flip, j, i), np.where(flip, i, j)


@register_stage
class PairsStage(Stage):
    name = "pairs"
    version = "1"
    inputs = ("taxonomy",)
    schema = PAIRS_SCHEMA

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"count": spec.pairs.count, "seed": spec.seed, "categories": spec.pairs.categories}

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        spec = ctx.spec
        tax = inputs.table("taxonomy")
        if spec.pairs.categories:
            wanted = set(spec.pairs.categories)
            known = set(tax.column("category").to_pylist())
            bad = sorted(wanted - known)
            if bad:
                raise SpecError(f"pairs.categories names unknown categories {bad}. Fix: use names from the taxonomy.")
            mask = [c in wanted for c in tax.column("category").to_pylist()]
            tax = tax.filter(pa.array(mask))
        rows = tax.to_pylist()
        a, b = sample_pairs(len(rows), spec.pairs.count, spec.seed)
        out = []
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            r1, r2 = rows[x], rows[y]
            out.append({
                "pair_id": "p_" + short_id([r1["value"], r2["value"]], 16),
                "value1": r1["value"], "value2": r2["value"],
                "value1_id": r1["value_id"], "value2_id": r2["value_id"],
                "value1_description": r1["description"], "value2_description": r2["description"],
                "category1": r1["category"], "category2": r2["category"],
                "top_category1": r1["top_category"], "top_category2": r2["top_category"],
            })
        return pa.Table.from_pylist(out, schema=PAIRS_SCHEMA)
