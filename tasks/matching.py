"""Stage 8: classifications (matching). One judge call per scenario places every panel response
on both spectra (position 0-6, confidence, reasoning); ``matching.mode: per_response`` makes one
call per response instead. Response order is shuffled per scenario with a seeded RNG and the
order is recorded, so position bias can be measured. Every (scenario, model, value) gets a row:
a missing or unusable placement is a status, never a default score."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa

from specstress.context import RunContext
from specstress.domain import CallRequest, Outcome
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
from specstress.tasks.spectra import SPECTRUM_TOKENS

CLASSIFICATIONS_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("pair_id", pa.string()), ("model_id", pa.string()),
    ("value_slot", pa.int8()), ("value", pa.string()), ("position", pa.int8()), ("confidence", pa.float64()),
    ("reasoning", pa.string()), ("status", pa.string()), ("judge", pa.string()),
    ("presented_index", pa.int16()), ("response_label", pa.string()), ("call_key", pa.string()),
])


def render_spectra(spectra_rows: list[dict[str, Any]]) -> str | None:
    by_slot: dict[int, list[dict[str, Any]]] = {}
    for r in spectra_rows:
        if r["status"] != "ok":
            return None
        by_slot.setdefault(int(r["value_slot"]), []).append(r)
    if set(by_slot) != {1, 2}:
        return None
    blocks = []
    for slot in (1, 2):
        rows = sorted(by_slot[slot], key=lambda r: r["position"])
        lines = [f'<spectrum slot="value{slot}" value="{rows[0]["value"]}">']
        for r in rows:
            lines.append(f'<position n="{r["position"]}" label="{r["label"]}">{r["strategy"]}</position>')
        lines.append("</spectrum>")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


@register_stage
class MatchingStage(Stage):
    name = "classifications"
    version = "1"
    inputs = ("scenarios", "diversity", "responses", "spectra")
    templates = ("matching", "matching_single")
    schema = CLASSIFICATIONS_SCHEMA
    kind = "calls"
    summary_columns = ("status",)

    def models_used(self, spec: RunSpec) -> list[str]:
        return [spec.roles.matcher]

    def config(self, spec: RunSpec) -> dict[str, Any]:
        m = spec.matching
        return {"matcher": models_config(spec, [spec.roles.matcher]), "mode": m.mode, "shuffle": m.shuffle,
                "max_reasks": m.max_reasks, "seed": spec.seed, "panel": list(spec.roles.panel)}

    def shard_size(self, spec: RunSpec) -> int:
        per = len(spec.roles.panel) if spec.matching.mode == "per_response" else 1
        return max(1, spec.shards.size // per)

    def plan(self, ctx: RunContext, inputs: Inputs) -> list[dict[str, Any]]:
        spec = ctx.spec
        resp: dict[str, dict[str, dict[str, Any]]] = {}
        for r in inputs.table("responses", ["scenario_id", "model_id", "outcome", "response"]).to_pylist():
            resp.setdefault(r["scenario_id"], {})[r["model_id"]] = r
        spectra: dict[str, list[dict[str, Any]]] = {}
        for r in inputs.table("spectra").to_pylist():
            spectra.setdefault(r["pair_id"], []).append(r)
        items = []
        for s in kept_scenarios(inputs):
            order = list(spec.roles.panel)
            if spec.matching.shuffle:
                random.Random(f"{spec.seed}|order|{s['scenario_id']}").shuffle(order)
            answers = resp.get(s["scenario_id"], {})
            items.append({
                "scenario_id": s["scenario_id"], "pair_id": s["pair_id"], "query": s["query"],
                "value1": s["value1"], "value2": s["value2"],
                "spectra": render_spectra(spectra.get(s["pair_id"], [])),
                "order": order,
                "responses": {m: (answers[m]["response"] if m in answers and answers[m]["outcome"] == Outcome.OK
                                  and answers[m]["response"] else None) for m in order},
            })
        return items

    def _requests(self, spec: RunSpec, it: dict[str, Any], sample: int,
                  only: set[str] | None = None) -> list[tuple[CallRequest, list[str]]]:
        """(request, labels->models) pairs for one scenario (per response: only the models in ``only``)."""
        present = [m for m in it["order"] if it["responses"].get(m) is not None]
        if not present or it["spectra"] is None:
            return []
        base = {"query": it["query"], "value1": it["value1"], "value2": it["value2"], "spectra": it["spectra"]}
        judge = it.get("judge") or spec.roles.matcher
        if spec.matching.mode == "per_response":
            tpl = load_template("matching_single")
            return [(make_request(spec, judge, tpl, {
                **base, "responses": f'<response id="R1">{it["responses"][m]}</response>', "n_responses": 1},
                purpose=self.name, sample_index=sample), [m]) for m in present if only is None or m in only]
        tpl = load_template("matching")
        blocks = "\n\n".join(f'<response id="R{i + 1}">{it["responses"][m]}</response>' for i, m in enumerate(present))
        return [(make_request(spec, judge, tpl, {**base, "responses": blocks, "n_responses": len(present)},
                              purpose=self.name, sample_index=sample), present)]

    def first_requests(self, ctx: RunContext, items: list[dict[str, Any]]) -> list[CallRequest]:
        return [r for it in items for r, _ in self._requests(ctx.spec, it, 0)]

    def run_shard(self, ctx: RunContext, items: list[dict[str, Any]], send: Sender) -> pa.Table:
        """Place every item's responses; items may name their matcher (``judge``), else ``roles.matcher``."""
        spec = ctx.spec
        by_judge: dict[str, list[dict[str, Any]]] = {}
        for it in items:
            by_judge.setdefault(it.get("judge") or spec.roles.matcher, []).append(it)
        tables = [self._place(ctx, judge, group, send) for judge, group in by_judge.items()]
        return pa.concat_tables(tables) if tables else pa.Table.from_pylist([], schema=CLASSIFICATIONS_SCHEMA)

    def _place(self, ctx: RunContext, judge: str, items: list[dict[str, Any]], send: Sender) -> pa.Table:
        spec = ctx.spec
        # placements[(scenario, model)] = (slot -> place dict) ; status per (scenario, model)
        got: dict[tuple[str, str], dict[str, Any]] = {}
        status: dict[tuple[str, str], str] = {}
        keys: dict[tuple[str, str], str] = {}
        # scenario id -> (item, the models still without a placement; None = the whole scenario)
        pending: dict[str, tuple[dict[str, Any], set[str] | None]] = {it["scenario_id"]: (it, None) for it in items}
        for attempt in range(spec.matching.max_reasks + 1):
            batch: list[tuple[dict[str, Any], CallRequest, list[str]]] = []
            for it, only in pending.values():
                for req, models in self._requests(spec, it, attempt, only):
                    batch.append((it, req, models))
            if not batch:
                break
            results = send([b[1] for b in batch])
            retry: dict[str, tuple[dict[str, Any], set[str] | None]] = {}
            for (it, req, models), res in zip(batch, results, strict=True):
                sid = it["scenario_id"]
                if not res.ok or not res.parsed:
                    for m in models:
                        if status.get((sid, m)) != "ok":  # a failed re-ask never undoes a placement
                            status[(sid, m)] = ("judge_failed" if res.outcome == Outcome.PARSE_ERROR
                                                else f"judge_{res.outcome}")
                            keys[(sid, m)] = req.key
                    if spec.matching.mode == "per_response":
                        retry.setdefault(sid, (it, set()))[1].update(models)  # type: ignore[union-attr]
                    else:
                        retry[sid] = (it, None)
                    continue
                for m in models:
                    keys[(sid, m)] = req.key
                if spec.matching.mode == "per_response":
                    got[(sid, models[0])] = {"value1": res.parsed["value1"], "value2": res.parsed["value2"]}
                    status[(sid, models[0])] = "ok"
                    continue
                by_label = {}
                for pl in res.parsed["placements"]:
                    by_label.setdefault(str(pl["response_id"]).strip(), pl)
                for i, m in enumerate(models):
                    pl = by_label.get(f"R{i + 1}")
                    if pl is None:
                        status[(sid, m)] = "missing"
                    else:
                        got[(sid, m)] = pl
                        status[(sid, m)] = "ok"
            pending = retry
        rows = []
        for it in items:
            sid = it["scenario_id"]
            present = [m for m in it["order"] if it["responses"].get(m) is not None]
            for idx, m in enumerate(it["order"]):
                if it["spectra"] is None:
                    st = "no_spectrum"
                elif it["responses"].get(m) is None:
                    st = "no_response"
                else:
                    st = status.get((sid, m), "missing")
                pl = got.get((sid, m)) if st == "ok" else None
                label = f"R{present.index(m) + 1}" if m in present else None
                for slot in (1, 2):
                    place = pl[f"value{slot}"] if pl else None
                    rows.append({
                        "scenario_id": sid, "pair_id": it["pair_id"], "model_id": m, "value_slot": slot,
                        "value": it[f"value{slot}"], "position": place["position"] if place else None,
                        "confidence": place.get("confidence") if place else None,
                        "reasoning": place.get("reasoning") if place else None, "status": st, "judge": judge,
                        "presented_index": idx, "response_label": label, "call_key": keys.get((sid, m)),
                    })
        return pa.Table.from_pylist(rows, schema=CLASSIFICATIONS_SCHEMA)

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        n = counts.get("kept_scenarios", spec.pairs.count * 3)
        k = len(spec.roles.panel)
        # the system prompt holds the instructions, the two values and their spectra: one prefix per value pair
        # (the values' names, about 10 tokens, and the spectra); the user message holds the query (about 150
        # tokens with its framing) and the responses (about 500 tokens each)
        pairs = min(n, counts.get("pairs", spec.pairs.count))
        if spec.matching.mode == "per_response":
            prefix = system_prompt_tokens("matching_single", 10 + SPECTRUM_TOKENS)
            return [EstimateRow(self.name, spec.roles.matcher, n * k, n * k * (prefix + 650), n * k * 150,
                                prefix_tokens=prefix, prefixes=pairs)]
        prefix = system_prompt_tokens("matching", 10 + SPECTRUM_TOKENS)
        return [EstimateRow(self.name, spec.roles.matcher, n, n * (prefix + 150 + 500 * k), n * 150 * k,
                            prefix_tokens=prefix, prefixes=pairs)]

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for s in table.column("status").to_pylist():
            counts[s] = counts.get(s, 0) + 1
        return {"rows": table.num_rows, "status": counts}


@register_stage
class MatcherPanelStage(MatchingStage):
    """The same placements by every further matcher of ``roles.matchers``: the judge-swap data behind the
    matcher_agreement and sensitivity views. The analyses keep reading ``classifications`` (``roles.matcher``).
    Each matcher's calls go through the ledger, so adding a matcher later pays for that matcher only."""

    name = "matcher_panel"

    def enabled(self, spec: RunSpec) -> bool:
        return bool(spec.roles.extra_matchers())

    def models_used(self, spec: RunSpec) -> list[str]:
        return spec.roles.extra_matchers()

    def config(self, spec: RunSpec) -> dict[str, Any]:
        m = spec.matching
        extra = spec.roles.extra_matchers()
        return {"matchers": models_config(spec, extra), "mode": m.mode, "shuffle": m.shuffle,
                "max_reasks": m.max_reasks, "seed": spec.seed, "panel": list(spec.roles.panel)}

    def plan(self, ctx: RunContext, inputs: Inputs) -> list[dict[str, Any]]:
        base = super().plan(ctx, inputs)
        return [{**it, "judge": judge} for judge in ctx.spec.roles.extra_matchers() for it in base]

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        one = super().estimate(spec, counts)[0]
        return [EstimateRow(self.name, m, one.calls, one.input_tokens, one.output_tokens,
                            prefix_tokens=one.prefix_tokens, prefixes=one.prefixes)
                for m in spec.roles.extra_matchers()]
