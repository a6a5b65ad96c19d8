"""Topic tags: a multi-label classifier tags each kept scenario with the paper's eight topics."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from specstress.context import RunContext
from specstress.domain import CallRequest
from specstress.prompts import load_template
from specstress.runspec import RunSpec
from tasks.base import EstimateRow, Inputs, Sender, Stage, make_request, models_config
from tasks.scope import scenarios_in_scope

TOPICS_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("topics", pa.list_(pa.string())), ("reasoning", pa.string()),
    ("status", pa.string()), ("call_key", pa.string()),
])


class TopicsStage(Stage):
    name = "topics"
    version = "1"
    inputs = ("scenarios", "diversity")
    templates = ("topics",)
    schema = TOPICS_SCHEMA
    kind = "calls"

    def enabled(self, spec: RunSpec) -> bool:
        return spec.topics.enabled and spec.roles.topic_tagger is not None

    def inputs_for(self, spec: RunSpec) -> tuple[str, ...]:
        extra = ("high_disagreement",) if spec.topics.scope == "high_disagreement" else ()
        return self.inputs + extra

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"tagger": models_config(spec, [spec.roles.topic_tagger or ""]), "scope": spec.topics.scope}

    def plan(self, ctx: RunContext, inputs: Inputs) -> list[dict[str, Any]]:
        return [{"scenario_id": s["scenario_id"], "query": s["query"]}
                for s in scenarios_in_scope(inputs, ctx.spec.topics.scope)]

    def first_requests(self, ctx: RunContext, items: list[dict[str, Any]]) -> list[CallRequest]:
        tpl = load_template("topics")
        return [make_request(ctx.spec, ctx.spec.roles.topic_tagger or "", tpl, {"query": it["query"]}, purpose=self.name)
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
        return [EstimateRow(self.name, spec.roles.topic_tagger or "", n, n * 420, n * 60)]

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for tl in table.column("topics").to_pylist():
            for t in tl or []:
                counts[t] = counts.get(t, 0) + 1
        return {"scenarios": table.num_rows, "tags": counts}
