"""Value priorities per model and level-2 category (``warehouse/sql/models/value_priorities.sql``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from specstress.runspec import RunSpec
from specstress.tasks.base import SqlStage
from specstress.tasks.registry import register_stage

PRIORITIES_SCHEMA = pa.schema([
    ("model_id", pa.string()), ("category", pa.string()), ("top_category", pa.string()), ("n", pa.int64()),
    ("mean_position", pa.float64()), ("score", pa.float64()), ("win_rate", pa.float64()), ("duels", pa.int64()),
    ("distinctiveness", pa.float64()), ("rank", pa.int64()),
])


@register_stage
class PrioritiesStage(SqlStage):
    name = "value_priorities"
    version = "2"
    schema = PRIORITIES_SCHEMA

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"panel": sorted(spec.roles.panel)}

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        top = {r["model_id"]: r["category"] for r in table.to_pylist() if r["rank"] == 1}
        return {"rows": table.num_rows, "top_category": top}
