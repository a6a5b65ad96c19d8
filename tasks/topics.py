"""Topic tags: a multi-label classifier tags each kept scenario with the paper's eight topics."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from specstress.context import RunContext
from specstress.domain import CallRequest
from specstress.prompts import load_template
from specstress.runspec import RunSpec
from specstress.tasks.base import EstimateRow, Inputs, Sender, make_request, system_prompt_tokens
from specstress.tasks.registry import register_stage
from specstress.tasks.scope import ScopedStage

TOPICS_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("topics", pa.list_(pa.string())), ("reasoning", pa.string()),
    ("status", pa.string()), ("call_key", pa.string()),
])


@register_stage
class TopicsStage(ScopedStage):
    name = "topics"
    version = "1"
    section = "topics"
    role = "topic_tagger"
    inputs = ("scenarios", "diversity")
    templates = ("topics",)
    schema = TOPICS_SCHEMA
    summary_columns = ("topics",)

    def plan(self, ctx: RunContext, inputs: Inputs) -> list[dict[str, Any]]:
        return [{"scenario_id": s["scenario_id"], "query": s["query"]} for s in self.scenarios(inputs, ctx.spec)]

    def first_requests(self, ctx: RunContext, items: list[dict[str, Any]]) -> list[CallRequest]:
        tpl = load_template("topics")
        return [make_request(ctx.spec, self.model_id(ctx.spec), tpl, {"query": it["query"]}, purpose=self.name)
                for it in items]

    def run_shard(self, ctx: RunContext, items: list[dict[str, Any]], send: Sender) -> pa.Table:
        reqs = self.first_requests(ctx, items)
        rows = []
        for it, req, res in zip(items, reqs, send(reqs), strict=True):
            ok = res.ok and res.parsed is not None
            rows.append({"scenario_id": it["scenario_id"], "topics": sorted(set(res.parsed["topics"])) if ok else None,
                         "reasoning": res.parsed.get("reasoning") if ok else res.error,
                         "status": "ok" if ok else str(res.outcome), "call_key": req.key})
        return pa.Table.from_pylist(rows, schema=TOPICS_SCHEMA)

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        n = counts.get("kept_scenarios", spec.pairs.count * 3)
        return [EstimateRow(self.name, self.model_id(spec), n, n * 420, n * 60,
                            prefix_tokens=system_prompt_tokens("topics"), prefixes=1)]

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for tl in table.column("topics").to_pylist():
            for t in tl or []:
                counts[t] = counts.get(t, 0) + 1
        return {"scenarios": table.num_rows, "tags": counts}
