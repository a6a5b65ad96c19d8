"""Position bias of each matcher: the mean placed position by the slot an answer was shown in, and a
permutation test of whether the slot matters (:mod:`specstress.position_bias`).

The matcher sees a scenario's panel answers in a seeded random order (``presented_index`` in
classifications). Per matcher (``roles.matcher``, and every further matcher of ``roles.matchers`` through
``matcher_panel``) and per value slot (1, 2, and both: ``all``), the stage gives each presented slot's
placements and mean position, the spread of those means, and a permutation p-value: the slots are permuted
among the answers of each scenario (a seeded RNG; both values of an answer move together), which keeps each
scenario's difficulty fixed. ``biased`` is p < 0.01. A SQL view could not permute within scenarios cheaply;
numpy does 1,000 permutations of a demo run in well under a second.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from specstress.context import RunContext
from specstress.hashing import content_hash
from specstress.position_bias import slot_tests
from specstress.runspec import RunSpec
from specstress.tasks.base import Inputs, Stage
from specstress.tasks.registry import register_stage, stage_by_name

POSITION_BIAS_SCHEMA = pa.schema([
    ("judge", pa.string()), ("primary_matcher", pa.bool_()), ("value_slot", pa.string()),
    ("presented_index", pa.int64()), ("n", pa.int64()), ("mean_position", pa.float64()),
    ("deviation", pa.float64()), ("spread", pa.float64()), ("statistic", pa.float64()), ("p_value", pa.float64()),
    ("biased", pa.bool_()), ("permutations", pa.int64()), ("scenarios", pa.int64()),
])
PERMUTATIONS = 1000
ALPHA = 0.01
SCOPES = ("1", "2", "all")
_COLUMNS = ["scenario_id", "model_id", "value_slot", "position", "status", "judge", "presented_index"]


def position_bias_table(placements: pa.Table, primary: str | None = None, permutations: int = PERMUTATIONS,
                        seed: int = 0, alpha: float = ALPHA) -> pa.Table:
    """Rows of :data:`POSITION_BIAS_SCHEMA` from placements with the classifications columns (``scenario_id``,
    ``model_id``, ``value_slot``, ``position``, ``status``, ``judge``, ``presented_index``); only ok
    placements count. Deterministic in ``seed`` (each matcher's permutations are seeded by it and the
    matcher's name, so adding a matcher changes no other matcher's p-values)."""
    by_judge: dict[str, list[dict[str, Any]]] = {}
    for r in placements.select(_COLUMNS).to_pylist():
        if r["status"] == "ok" and r["position"] is not None and r["presented_index"] is not None:
            by_judge.setdefault(r["judge"], []).append(r)
    rows: list[dict[str, Any]] = []
    for judge in sorted(by_judge, key=lambda j: (j != primary, j)):
        got = by_judge[judge]
        value_slot = np.array([int(r["value_slot"]) for r in got])
        scopes = {"1": value_slot == 1, "2": value_slot == 2, "all": np.ones(len(got), dtype=bool)}
        tests = slot_tests(np.array([r["scenario_id"] for r in got], dtype=object),
                           np.array([r["model_id"] for r in got], dtype=object),
                           np.array([r["presented_index"] for r in got]), np.array([r["position"] for r in got]),
                           scopes, permutations=permutations,
                           seed=int(content_hash({"seed": seed, "judge": judge})[:12], 16))
        for scope in SCOPES:
            t = tests[scope]
            for k, n, mean in zip(t.slots.tolist(), t.n.tolist(), t.mean.tolist(), strict=True):
                rows.append({"judge": judge, "primary_matcher": judge == primary, "value_slot": scope,
                             "presented_index": k, "n": n, "mean_position": mean,
                             "deviation": mean - t.grand_mean, "spread": t.spread, "statistic": t.statistic,
                             "p_value": t.p_value, "biased": t.p_value < alpha, "permutations": t.permutations,
                             "scenarios": t.scenarios})
    return pa.Table.from_pylist(rows, schema=POSITION_BIAS_SCHEMA)


@register_stage
class PositionBiasStage(Stage):
    name = "position_bias"
    version = "1"
    inputs = ("classifications",)
    optional_inputs = ("matcher_panel",)
    schema = POSITION_BIAS_SCHEMA

    def inputs_for(self, spec: RunSpec) -> tuple[str, ...]:
        return self.inputs + (("matcher_panel",) if stage_by_name("matcher_panel").enabled(spec) else ())

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"primary": spec.roles.matcher, "seed": spec.seed, "permutations": PERMUTATIONS, "alpha": ALPHA}

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        tables = [inputs.table("classifications", _COLUMNS)]
        if "matcher_panel" in inputs.ids:
            tables.append(inputs.table("matcher_panel", _COLUMNS))
        placements = pa.concat_tables([t.cast(tables[0].schema) for t in tables])
        return position_bias_table(placements, primary=ctx.spec.roles.matcher, seed=ctx.spec.seed)

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": table.num_rows}
        for r in table.to_pylist():
            if r["value_slot"] == "all":
                out.setdefault("p_value", {})[r["judge"]] = r["p_value"]
                out.setdefault("spread", {})[r["judge"]] = round(r["spread"], 3)
        return out
