"""Analytics stages computed in SQL (``warehouse/sql/models``): the position grid (every panel
model's positions per scenario, packed), and from it disagreement per scenario and model subset,
value priorities per model and category, and outlier responses."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from specstress.context import RunContext
from specstress.runspec import RunSpec
from tasks.base import Inputs, Stage
from warehouse.sql_files import run_model

DISAGREEMENT_SCHEMA = pa.schema([
    ("subset", pa.string()), ("scenario_id", pa.string()), ("pair_id", pa.string()), ("n_models", pa.int64()),
    ("subset_size", pa.int64()), ("std_value1", pa.float64()), ("std_value2", pa.float64()), ("d", pa.float64()),
    ("bin", pa.string()), ("high", pa.bool_()),
])
PRIORITIES_SCHEMA = pa.schema([
    ("model_id", pa.string()), ("category", pa.string()), ("top_category", pa.string()), ("n", pa.int64()),
    ("mean_position", pa.float64()), ("score", pa.float64()), ("win_rate", pa.float64()), ("duels", pa.int64()),
    ("distinctiveness", pa.float64()), ("rank", pa.int64()),
])
POSITION_GRID_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("pair_id", pa.string()), ("lane", pa.int32()),
    ("positions1", pa.int64()), ("positions2", pa.int64()),
])
OUTLIERS_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("model_id", pa.string()), ("n_models", pa.int64()),
    ("position_value1", pa.int8()), ("position_value2", pa.int8()), ("apart_value1", pa.int64()),
    ("apart_value2", pa.int64()), ("needed", pa.float64()), ("outlier", pa.bool_()),
])


def subsets_table(spec: RunSpec) -> pa.Table:
    rows = [(name, m) for name, members in spec.all_subsets().items() for m in members]
    return pa.table({"subset": [r[0] for r in rows], "model_id": [r[1] for r in rows]})


class SqlStage(Stage):
    model_sql = ""

    def sql_hash(self) -> str:
        """The content hash of the model file and the shared macros: editing the SQL recomputes the
        artefact (as dbt would). A model it refers to is an input artefact, whose id has its own hash."""
        from specstress.hashing import sha256_hex
        from warehouse.sql_files import read_sql

        return sha256_hex(read_sql("models", self.model_sql) + read_sql("", "macros"))[:16]

    def sources(self, ctx: RunContext, inputs: Inputs) -> dict[str, Any]:
        return {name: inputs.loader.paths(name, aid) for name, aid in inputs.ids.items()}

    def params(self, spec: RunSpec) -> dict[str, Any]:
        return {}

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        src = self.sources(ctx, inputs)
        src["subsets"] = subsets_table(ctx.spec)
        t = run_model(self.model_sql, src, self.params(ctx.spec))
        return t.cast(self.schema) if self.schema is not None else t


class PositionGridStage(SqlStage):
    """Every panel model's positions per scenario, packed: the one pass over the placements that
    disagreement, value priorities and outliers share."""

    name = "position_grid"
    version = "1"
    inputs = ("classifications",)
    schema = POSITION_GRID_SCHEMA
    model_sql = "position_grid"

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"panel": sorted(spec.roles.panel), "sql": self.sql_hash()}

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        return {"scenarios": pc.count_distinct(table["scenario_id"]).as_py(), "rows": table.num_rows}


class DisagreementStage(SqlStage):
    name = "disagreement"
    version = "2"
    inputs = ("position_grid",)
    schema = DISAGREEMENT_SCHEMA
    model_sql = "disagreement"

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"high": spec.disagreement.high, "subsets": spec.all_subsets(), "sql": self.sql_hash()}

    def params(self, spec: RunSpec) -> dict[str, Any]:
        return {"high": float(spec.disagreement.high)}

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for r in table.group_by("subset").aggregate([("d", "mean"), ("high", "sum"), ("scenario_id", "count")]).to_pylist():
            out[r["subset"]] = {"scenarios": r["scenario_id_count"], "high": r["high_sum"],
                                "mean_d": round(r["d_mean"] or 0, 3)}
        return out


class PrioritiesStage(SqlStage):
    name = "value_priorities"
    version = "2"
    inputs = ("position_grid", "pairs")
    schema = PRIORITIES_SCHEMA
    model_sql = "value_priorities"

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"panel": sorted(spec.roles.panel), "sql": self.sql_hash()}

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        top = {r["model_id"]: r["category"] for r in table.to_pylist() if r["rank"] == 1}
        return {"rows": table.num_rows, "top_category": top}


class OutliersStage(SqlStage):
    name = "outliers"
    version = "2"
    inputs = ("position_grid",)
    schema = OUTLIERS_SCHEMA
    model_sql = "outliers"

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"min_gap": spec.outliers.min_gap, "min_share": spec.outliers.min_share, "panel": spec.roles.panel,
                "sql": self.sql_hash()}

    def params(self, spec: RunSpec) -> dict[str, Any]:
        return {"min_gap": int(spec.outliers.min_gap), "min_share": float(spec.outliers.min_share)}

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in table.to_pylist():
            if r["outlier"]:
                counts[r["model_id"]] = counts.get(r["model_id"], 0) + 1
        return {"outliers_by_model": counts}
