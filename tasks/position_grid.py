"""The position grid: every panel model's positions per scenario, packed (``warehouse/sql/models/position_grid.sql``).

The one pass over the placements that disagreement, value priorities and outliers share."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from specstress.runspec import RunSpec
from specstress.tasks.base import SqlStage
from specstress.tasks.registry import register_stage

POSITION_GRID_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("pair_id", pa.string()), ("lane", pa.int32()),
    ("positions1", pa.int64()), ("positions2", pa.int64()),
])


@register_stage
class PositionGridStage(SqlStage):
    """Every panel model's positions per scenario, packed: the one pass over the placements that
    disagreement, value priorities and outliers share."""

    name = "position_grid"
    version = "1"
    schema = POSITION_GRID_SCHEMA

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"panel": sorted(spec.roles.panel)}

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        return {"scenarios": pc.count_distinct(table["scenario_id"]).as_py(), "rows": table.num_rows}
