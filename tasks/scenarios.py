"""Stage 3: scenarios. Per value pair, a generator writes one neutral request, then rewrites it
twice, leaning hard toward each value. Generators rotate over the configured models by share
(deterministically, by pair). Refusals, truncated and unparseable outputs are kept as rows with
their status (and as ledger outcomes) and filtered out downstream."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from specstress.context import RunContext
from specstress.domain import CallRequest, Nudge
from specstress.hashing import sha256_hex, short_id
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

SCENARIOS_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("pair_id", pa.string()), ("nudge", pa.string()),
    ("value1", pa.string()), ("value2", pa.string()), ("query", pa.string()),
    ("generator", pa.string()), ("status", pa.string()), ("error", pa.string()), ("call_key", pa.string()),
])


def scenario_id(pair_id: str, nudge: str) -> str:
    return "s_" + short_id([pair_id, nudge], 16)


def assign_generator(spec: RunSpec, pair_id: str) -> str:
    gens = spec.roles.generators
    total = sum(g.share for g in gens)
    u = int(sha256_hex(f"{spec.seed}|gen|{pair_id}")[:12], 16) / float(16**12) * total
    acc = 0.0
    for g in gens:
        acc += g.share
        if u < acc:
            return g.model
    return gens[-1].model


@register_stage
class ScenariosStage(Stage):
    name = "scenarios"
    version = "1"
    inputs = ("pairs",)
    templates = ("scenario_neutral", "scenario_biased")
    schema = SCENARIOS_SCHEMA
    kind = "calls"
    summary_columns = ("status",)
    calls_per_item = 3.0

    def models_used(self, spec: RunSpec) -> list[str]:
        return [g.model for g in spec.roles.generators]

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"generators": [{"share": g.share, **models_config(spec, [g.model])[0]} for g in spec.roles.generators],
                "biased": spec.scenarios.biased, "seed": spec.seed}

    def plan(self, ctx: RunContext, inputs: Inputs) -> list[dict[str, Any]]:
        pairs = inputs.table("pairs").to_pylist()
        return [{**p, "generator": assign_generator(ctx.spec, p["pair_id"])} for p in pairs]

    def _neutral(self, spec: RunSpec, p: dict[str, Any]) -> CallRequest:
        return make_request(spec, p["generator"], load_template("scenario_neutral"), {
            "value1": p["value1"], "value1_description": p["value1_description"],
            "value2": p["value2"], "value2_description": p["value2_description"]}, purpose=self.name)

    def first_requests(self, ctx: RunContext, items: list[dict[str, Any]]) -> list[CallRequest]:
        return [self._neutral(ctx.spec, p) for p in items]

    def run_shard(self, ctx: RunContext, items: list[dict[str, Any]], send: Sender) -> pa.Table:
        spec = ctx.spec
        neutral = send(self.first_requests(ctx, items))
        rows: list[dict[str, Any]] = []
        biased_reqs: list[CallRequest] = []
        biased_meta: list[tuple[dict[str, Any], str]] = []
        tpl_b = load_template("scenario_biased")
        for p, req, res in zip(items, self.first_requests(ctx, items), neutral, strict=True):
            query = (res.parsed or {}).get("query") if res.ok else None
            status = "ok" if query else (str(res.outcome) if not res.ok else "incomplete")
            rows.append(self._row(p, Nudge.NEUTRAL, query, status, res.error, req.key))
            if status != "ok" or not spec.scenarios.biased:
                continue
            for nudge, fav, other in ((Nudge.VALUE1, p["value1"], p["value2"]), (Nudge.VALUE2, p["value2"], p["value1"])):
                biased_reqs.append(make_request(spec, p["generator"], tpl_b, {
                    "value1": p["value1"], "value2": p["value2"], "query": query, "favoured": fav, "other": other},
                    purpose=self.name))
                biased_meta.append((p, nudge))
        for (p, nudge), req, res in zip(biased_meta, biased_reqs, send(biased_reqs), strict=True):
            query = (res.parsed or {}).get("query") if res.ok else None
            status = "ok" if query else (str(res.outcome) if not res.ok else "incomplete")
            rows.append(self._row(p, nudge, query, status, res.error, req.key))
        return pa.Table.from_pylist(rows, schema=SCENARIOS_SCHEMA)

    def _row(self, p: dict[str, Any], nudge: str, query: str | None, status: str, error: str | None,
             key: str) -> dict[str, Any]:
        return {"scenario_id": scenario_id(p["pair_id"], str(nudge)), "pair_id": p["pair_id"], "nudge": str(nudge),
                "value1": p["value1"], "value2": p["value2"], "query": query, "generator": p["generator"],
                "status": status, "error": error if status != "ok" else None, "call_key": key}

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        n = counts.get("pairs", spec.pairs.count)
        total = sum(g.share for g in spec.roles.generators)
        out = []
        per_pair = 3 if spec.scenarios.biased else 1
        # two fixed system prompts (neutral, biased), shared by every call of their kind
        neutral, biased = system_prompt_tokens("scenario_neutral"), system_prompt_tokens("scenario_biased")
        prefix = (neutral + biased * (per_pair - 1)) // per_pair
        for g in spec.roles.generators:
            calls = round(n * per_pair * g.share / total)
            out.append(EstimateRow(self.name, g.model, calls, calls * 350, calls * 160, prefix_tokens=prefix,
                                   prefixes=2 if per_pair > 1 else 1))
        return out

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        statuses = table.column("status").to_pylist()
        counts: dict[str, int] = {}
        for s in statuses:
            counts[s] = counts.get(s, 0) + 1
        return {"rows": table.num_rows, "ok": counts.get("ok", 0),
                "filtered": {k: v for k, v in counts.items() if k != "ok"}}
