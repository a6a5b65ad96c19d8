"""The high-disagreement set of each model subset: scenarios with D >= the threshold, deduplicated
by the disagreement-weighted greedy k-center (weights = D, stop at ``diversity.weighted_threshold``,
0.8 in the paper), so that the set keeps the most contested of each group of near-duplicates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from specstress.context import RunContext
from specstress.kcenter import kcenter
from specstress.runspec import RunSpec
from specstress.tasks.base import Inputs, Stage
from specstress.tasks.diversity import vectors_of
from specstress.tasks.registry import register_stage

HIGH_SCHEMA = pa.schema([
    ("subset", pa.string()), ("scenario_id", pa.string()), ("d", pa.float64()), ("kept", pa.bool_()),
    ("center_id", pa.string()), ("distance", pa.float64()), ("cluster_size", pa.int64()),
])


@register_stage
class HighDisagreementStage(Stage):
    name = "high_disagreement"
    version = "2"  # 2: the exact r-net / fixed farthest-first of specstress.kcenter
    inputs = ("disagreement", "embeddings")
    schema = HIGH_SCHEMA

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"high": spec.disagreement.high, "threshold": spec.diversity.weighted_threshold,
                "enabled": spec.diversity.enabled, "method": spec.diversity.method, "seed": spec.seed}

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        spec = ctx.spec
        emb = inputs.table("embeddings")
        index = {sid: i for i, sid in enumerate(emb.column("scenario_id").to_pylist())}
        vectors = vectors_of(emb)
        dis = inputs.table("disagreement", ["subset", "scenario_id", "d", "high"]).to_pylist()
        by_subset: dict[str, list[dict[str, Any]]] = {}
        for r in dis:
            if r["high"] and r["scenario_id"] in index:
                by_subset.setdefault(r["subset"], []).append(r)
        rows = []
        for subset in sorted(by_subset):
            items = sorted(by_subset[subset], key=lambda r: r["scenario_id"])
            ids = [r["scenario_id"] for r in items]
            d = np.asarray([r["d"] for r in items], dtype=float)
            if spec.diversity.enabled:
                res = kcenter(vectors[[index[s] for s in ids]], spec.diversity.weighted_threshold, weights=d,
                              method=spec.diversity.method, seed=spec.seed)
                kept, assign, dist = res.kept, res.assign, res.distance
            else:
                kept, assign, dist = np.ones(len(ids), bool), np.arange(len(ids)), np.zeros(len(ids))
            sizes = np.bincount(assign, minlength=len(ids))
            for i, sid in enumerate(ids):
                rows.append({"subset": subset, "scenario_id": sid, "d": float(d[i]), "kept": bool(kept[i]),
                             "center_id": ids[int(assign[i])], "distance": float(dist[i]),
                             "cluster_size": int(sizes[i]) if kept[i] else 0})
        return pa.Table.from_pylist(rows, schema=HIGH_SCHEMA)

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for r in table.to_pylist():
            s = out.setdefault(r["subset"], {"high": 0, "kept": 0})
            s["high"] += 1
            s["kept"] += int(r["kept"])
        return out
