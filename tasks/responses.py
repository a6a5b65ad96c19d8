"""Stage 6: every panel model answers every kept scenario (the user's query, nothing else)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from specstress.context import RunContext
from specstress.domain import CallRequest
from specstress.runspec import RunSpec
from specstress.tasks.base import EstimateRow, Inputs, Sender, Stage, make_request, models_config
from specstress.tasks.registry import register_stage

RESPONSES_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("model_id", pa.string()), ("provider", pa.string()), ("model", pa.string()),
    ("served_model", pa.string()), ("outcome", pa.string()), ("response", pa.string()), ("error", pa.string()),
    ("input_tokens", pa.int64()), ("output_tokens", pa.int64()), ("cost_usd", pa.float64()),
    ("call_key", pa.string()),
])


def kept_scenarios(inputs: Inputs) -> list[dict[str, Any]]:
    """Usable scenarios that survived the diversity filter, in a stable order."""
    scen = inputs.table("scenarios").to_pylist()
    keep = None
    if "diversity" in inputs.ids:
        div = inputs.table("diversity", ["scenario_id", "kept"]).to_pylist()
        keep = {r["scenario_id"] for r in div if r["kept"]}
    return [s for s in scen if s["status"] == "ok" and (keep is None or s["scenario_id"] in keep)]


@register_stage
class ResponsesStage(Stage):
    name = "responses"
    version = "1"
    inputs = ("scenarios", "diversity")
    schema = RESPONSES_SCHEMA
    kind = "calls"
    summary_columns = ("outcome",)

    def models_used(self, spec: RunSpec) -> list[str]:
        return list(spec.roles.panel)

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"panel": models_config(spec, list(spec.roles.panel))}

    def plan(self, ctx: RunContext, inputs: Inputs) -> list[dict[str, Any]]:
        items = []
        for s in kept_scenarios(inputs):
            for m in ctx.spec.roles.panel:
                items.append({"scenario_id": s["scenario_id"], "query": s["query"], "model_id": m})
        return items

    def first_requests(self, ctx: RunContext, items: list[dict[str, Any]]) -> list[CallRequest]:
        return [make_request(ctx.spec, it["model_id"], None, None, purpose=self.name, user_text=it["query"])
                for it in items]

    def run_shard(self, ctx: RunContext, items: list[dict[str, Any]], send: Sender) -> pa.Table:
        reqs = self.first_requests(ctx, items)
        rows = []
        for it, req, res in zip(items, reqs, send(reqs), strict=True):
            rows.append({
                "scenario_id": it["scenario_id"], "model_id": it["model_id"], "provider": req.provider,
                "model": req.model, "served_model": res.served_model, "outcome": str(res.outcome),
                "response": res.text, "error": res.error, "input_tokens": res.usage.input_tokens,
                "output_tokens": res.usage.output_tokens, "cost_usd": res.cost_usd, "call_key": req.key,
            })
        return pa.Table.from_pylist(rows, schema=RESPONSES_SCHEMA)

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        n = counts.get("kept_scenarios", spec.pairs.count * 3)
        out = []
        for m in spec.roles.panel:
            max_out = spec.model(m).params.max_tokens
            out.append(EstimateRow(self.name, m, n, n * 120, n * min(max_out, 700)))
        return out

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for o in table.column("outcome").to_pylist():
            outcomes[o] = outcomes.get(o, 0) + 1
        return {"responses": table.num_rows, "outcomes": outcomes}
