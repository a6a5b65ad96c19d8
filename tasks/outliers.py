"""Outlier responses: a model placed far from most of the panel (``warehouse/sql/models/outliers.sql``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from specstress.runspec import RunSpec
from specstress.tasks.base import SqlStage
from specstress.tasks.registry import register_stage

OUTLIERS_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("model_id", pa.string()), ("n_models", pa.int64()),
    ("position_value1", pa.int8()), ("position_value2", pa.int8()), ("apart_value1", pa.int64()),
    ("apart_value2", pa.int64()), ("needed", pa.float64()), ("outlier", pa.bool_()),
])


@register_stage
class OutliersStage(SqlStage):
    name = "outliers"
    version = "2"
    schema = OUTLIERS_SCHEMA

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"min_gap": spec.outliers.min_gap, "min_share": spec.outliers.min_share, "panel": spec.roles.panel}

    def params(self, spec: RunSpec) -> dict[str, Any]:
        return {"min_gap": int(spec.outliers.min_gap), "min_share": float(spec.outliers.min_share)}

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in table.to_pylist():
            if r["outlier"]:
                counts[r["model_id"]] = counts.get(r["model_id"], 0) + 1
        return {"outliers_by_model": counts}
