"""Stage 5: keep mutually distinct scenarios. Greedy k-center over the embeddings stops once
every scenario lies within ``diversity.threshold`` (0.4 in the paper) of a kept one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from specstress.context import RunContext
from specstress.kcenter import kcenter
from specstress.runspec import RunSpec
from specstress.tasks.base import Inputs, Stage
from specstress.tasks.registry import register_stage

DIVERSITY_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("kept", pa.bool_()), ("center_id", pa.string()), ("distance", pa.float64()),
])


def vectors_of(table: pa.Table) -> np.ndarray:
    col = table.column("vector").combine_chunks()
    if len(col) == 0:
        return np.zeros((0, 1), dtype=np.float32)
    flat = col.values.to_numpy(zero_copy_only=False).astype(np.float32)
    return flat.reshape(len(col), -1)


@register_stage
class DiversityStage(Stage):
    name = "diversity"
    version = "2"  # 2: the exact r-net / fixed farthest-first of specstress.kcenter
    inputs = ("embeddings",)
    schema = DIVERSITY_SCHEMA

    def config(self, spec: RunSpec) -> dict[str, Any]:
        d = spec.diversity
        return {"enabled": d.enabled, "threshold": d.threshold, "method": d.method, "seed": spec.seed}

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        spec = ctx.spec
        emb = inputs.table("embeddings")
        ids = emb.column("scenario_id").to_pylist()
        if not spec.diversity.enabled or not ids:
            return pa.table({"scenario_id": ids, "kept": [True] * len(ids), "center_id": ids,
                             "distance": [0.0] * len(ids)}, schema=DIVERSITY_SCHEMA)
        res = kcenter(vectors_of(emb), spec.diversity.threshold, method=spec.diversity.method, seed=spec.seed)
        kept = res.kept
        return pa.table({"scenario_id": ids, "kept": kept.tolist(),
                         "center_id": [ids[i] for i in res.assign.tolist()],
                         "distance": res.distance.astype(float).tolist()}, schema=DIVERSITY_SCHEMA)

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        kept = sum(table.column("kept").to_pylist())
        return {"scenarios": table.num_rows, "kept": kept, "dropped": table.num_rows - kept}
