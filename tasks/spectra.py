"""Stage 7: spectra. Once per value pair (its neutral and biased requests together), a rubric
writer gives seven ordered answer strategies for each value, 0 extreme oppose .. 6 extreme favour.
Rubrics are validated (exactly seven positions, in order, correctly labelled); an invalid one is
repaired once by the engine, then re-asked (a new sample) up to ``spectra.max_reasks`` times."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from specstress.context import RunContext
from specstress.domain import POSITION_LABELS, CallRequest
from specstress.prompts import load_template
from specstress.runspec import RunSpec
from specstress.tasks.base import (
    EstimateRow,
    Inputs,
    Sender,
    Stage,
    make_request,
    models_config,
    system_prompt_tokens,
)
from specstress.tasks.registry import register_stage
from specstress.tasks.responses import kept_scenarios

SPECTRA_SCHEMA = pa.schema([
    ("pair_id", pa.string()), ("value_slot", pa.int8()), ("value", pa.string()), ("position", pa.int8()),
    ("label", pa.string()), ("strategy", pa.string()), ("status", pa.string()), ("attempts", pa.int8()),
    ("call_key", pa.string()),
])

#: Typical tokens of one pair's two spectra (the rubric writer's answer; the matcher's prompt holds them again).
SPECTRUM_TOKENS = 900


@register_stage
class SpectraStage(Stage):
    name = "spectra"
    version = "1"
    inputs = ("pairs", "scenarios", "diversity")
    templates = ("spectrum",)
    schema = SPECTRA_SCHEMA
    kind = "calls"
    summary_columns = ("pair_id", "status", "attempts")
    calls_per_item = 1.2

    def models_used(self, spec: RunSpec) -> list[str]:
        return [spec.roles.rubric]

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"rubric": models_config(spec, [spec.roles.rubric]), "max_reasks": spec.spectra.max_reasks}

    def plan(self, ctx: RunContext, inputs: Inputs) -> list[dict[str, Any]]:
        wanted = {s["pair_id"] for s in kept_scenarios(inputs)}
        queries: dict[str, list[str]] = {}
        for s in inputs.table("scenarios").to_pylist():
            if s["status"] == "ok" and s["pair_id"] in wanted:
                queries.setdefault(s["pair_id"], []).append(f"[{s['nudge']}] {s['query']}")
        items = []
        for p in inputs.table("pairs").to_pylist():
            if p["pair_id"] in wanted:
                items.append({**p, "queries": "\n\n".join(sorted(queries[p["pair_id"]]))})
        return items

    def _request(self, spec: RunSpec, p: dict[str, Any], sample: int) -> CallRequest:
        return make_request(spec, spec.roles.rubric, load_template("spectrum"), {
            "value1": p["value1"], "value1_description": p["value1_description"],
            "value2": p["value2"], "value2_description": p["value2_description"], "queries": p["queries"],
        }, purpose=self.name, sample_index=sample)

    def first_requests(self, ctx: RunContext, items: list[dict[str, Any]]) -> list[CallRequest]:
        return [self._request(ctx.spec, p, 0) for p in items]

    def run_shard(self, ctx: RunContext, items: list[dict[str, Any]], send: Sender) -> pa.Table:
        spec = ctx.spec
        pending = list(items)
        done: dict[str, tuple[dict[str, Any] | None, str, int, str]] = {}
        for attempt in range(spec.spectra.max_reasks + 1):
            if not pending:
                break
            reqs = [self._request(spec, p, attempt) for p in pending]
            again = []
            for p, req, res in zip(pending, reqs, send(reqs), strict=True):
                if res.ok and res.parsed:
                    done[p["pair_id"]] = (res.parsed, "ok", attempt + 1, req.key)
                else:
                    done[p["pair_id"]] = (None, str(res.outcome), attempt + 1, req.key)
                    again.append(p)
            pending = again
        rows = []
        for p in items:
            parsed, status, attempts, key = done[p["pair_id"]]
            for slot, vname in ((1, p["value1"]), (2, p["value2"])):
                if parsed is None:
                    rows.append({"pair_id": p["pair_id"], "value_slot": slot, "value": vname, "position": None,
                                 "label": None, "strategy": None, "status": status, "attempts": attempts,
                                 "call_key": key})
                    continue
                for s in parsed[f"value{slot}"]["strategies"]:
                    rows.append({"pair_id": p["pair_id"], "value_slot": slot, "value": vname,
                                 "position": s["position"], "label": POSITION_LABELS[s["position"]],
                                 "strategy": s["strategy"], "status": "ok", "attempts": attempts, "call_key": key})
        return pa.Table.from_pylist(rows, schema=SPECTRA_SCHEMA)

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        n = counts.get("pairs", spec.pairs.count)
        return [EstimateRow(self.name, spec.roles.rubric, n, n * 700, n * SPECTRUM_TOKENS,
                            prefix_tokens=system_prompt_tokens("spectrum"), prefixes=1)]

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        rows = table.to_pylist()
        pairs = {r["pair_id"] for r in rows}
        failed = {r["pair_id"] for r in rows if r["status"] != "ok"}
        reasked = {r["pair_id"] for r in rows if (r["attempts"] or 1) > 1}
        return {"pairs": len(pairs), "failed": len(failed), "reasked": len(reasked)}
