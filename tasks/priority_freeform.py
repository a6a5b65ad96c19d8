"""Value prioritisation, the paper's route: for each response in the high-disagreement set a
describer names, in free form, the value the response put first; the phrase is mapped to the
nearest taxonomy value (by embedding), and so to its level-2 category."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from specstress.context import RunContext
from specstress.domain import CallRequest, Outcome
from specstress.embedding import hashed_embeddings
from specstress.prompts import load_template
from specstress.runspec import RunSpec
from specstress.tasks.base import EstimateRow, Inputs, Sender, make_request, system_prompt_tokens
from specstress.tasks.registry import artefact_ids, register_stage
from specstress.tasks.scope import ScopedStage
from specstress.warehouse.store import Warehouse

FREEFORM_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("model_id", pa.string()), ("expressed", pa.string()),
    ("nearest_value", pa.string()), ("category", pa.string()), ("similarity", pa.float64()),
    ("status", pa.string()), ("call_key", pa.string()),
])


@register_stage
class PriorityFreeformStage(ScopedStage):
    name = "priority_freeform"
    version = "1"
    section = "priorities"
    role = "priority_describer"
    inputs = ("taxonomy", "scenarios", "diversity", "responses")
    templates = ("priority_freeform",)
    schema = FREEFORM_SCHEMA
    summary_columns = ("status",)

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {**super().config(spec), "panel": list(spec.roles.panel)}

    def plan(self, ctx: RunContext, inputs: Inputs) -> list[dict[str, Any]]:
        scen = {s["scenario_id"]: s["query"] for s in self.scenarios(inputs, ctx.spec)}
        items = []
        for r in inputs.table("responses", ["scenario_id", "model_id", "outcome", "response"]).to_pylist():
            if r["scenario_id"] in scen and r["outcome"] == Outcome.OK and r["response"]:
                items.append({"scenario_id": r["scenario_id"], "model_id": r["model_id"],
                              "query": scen[r["scenario_id"]], "response": r["response"]})
        return items

    def first_requests(self, ctx: RunContext, items: list[dict[str, Any]]) -> list[CallRequest]:
        tpl = load_template("priority_freeform")
        return [make_request(ctx.spec, self.model_id(ctx.spec), tpl,
                             {"query": it["query"], "response": it["response"]}, purpose=self.name) for it in items]

    def run_shard(self, ctx: RunContext, items: list[dict[str, Any]], send: Sender) -> pa.Table:
        tax = Warehouse(ctx.warehouse_root).read_artefact("taxonomy", artefact_ids(ctx.spec)["taxonomy"]).to_pylist()
        names = [t["value"] for t in tax]
        leaf_vecs = hashed_embeddings([f"{t['value']} {t['value']} {t['description']}" for t in tax], 512)
        reqs = self.first_requests(ctx, items)
        results = send(reqs)
        phrases = [(res.parsed or {}).get("value") if res.ok else None for res in results]
        qv = hashed_embeddings([p or "" for p in phrases], 512)
        sims = qv @ leaf_vecs.T
        rows = []
        for i, (it, req, res) in enumerate(zip(items, reqs, results, strict=True)):
            if not phrases[i]:
                rows.append({"scenario_id": it["scenario_id"], "model_id": it["model_id"], "expressed": None,
                             "nearest_value": None, "category": None, "similarity": None,
                             "status": str(res.outcome) if not res.ok else "empty", "call_key": req.key})
                continue
            j = int(np.argmax(sims[i]))
            rows.append({"scenario_id": it["scenario_id"], "model_id": it["model_id"], "expressed": phrases[i],
                         "nearest_value": names[j], "category": tax[j]["category"], "similarity": float(sims[i, j]),
                         "status": "ok", "call_key": req.key})
        return pa.Table.from_pylist(rows, schema=FREEFORM_SCHEMA)

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        n = counts.get("responses", spec.pairs.count * 3 * len(spec.roles.panel))
        if spec.priorities.scope == "high_disagreement":
            n = n // 4
        return [EstimateRow(self.name, self.model_id(spec), n, n * 650, n * 50,
                            prefix_tokens=system_prompt_tokens("priority_freeform"), prefixes=1)]
