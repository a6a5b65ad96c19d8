"""Disagreement per scenario and model subset (``warehouse/sql/models/disagreement.sql``):
D = the larger of the two values' population standard deviations of the positions."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from specstress.runspec import RunSpec
from specstress.tasks.base import SqlStage
from specstress.tasks.registry import register_stage

DISAGREEMENT_SCHEMA = pa.schema([
    ("subset", pa.string()), ("scenario_id", pa.string()), ("pair_id", pa.string()), ("n_models", pa.int64()),
    ("subset_size", pa.int64()), ("std_value1", pa.float64()), ("std_value2", pa.float64()), ("d", pa.float64()),
    ("bin", pa.string()), ("high", pa.bool_()),
])


@register_stage
class DisagreementStage(SqlStage):
    name = "disagreement"
    version = "2"
    schema = DISAGREEMENT_SCHEMA

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"high": spec.disagreement.high, "subsets": spec.all_subsets()}

    def params(self, spec: RunSpec) -> dict[str, Any]:
        return {"high": float(spec.disagreement.high)}

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for r in table.group_by("subset").aggregate([("d", "mean"), ("high", "sum"), ("scenario_id", "count")]).to_pylist():
            out[r["subset"]] = {"scenarios": r["scenario_id_count"], "high": r["high_sum"],
                                "mean_d": round(r["d_mean"] or 0, 3)}
        return out
