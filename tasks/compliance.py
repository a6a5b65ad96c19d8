"""Spec compliance. A judge panel (by default three judges from different providers) reads the
whole model spec, a request and one model's answer, reasons, and answers compliant,
non-compliant or ambiguous. Scenarios are sampled per disagreement bin (the paper's Figure 2),
at random, and from the high-disagreement sets (its Table 2); every sampled scenario is judged
for every model of the compliance group. Aggregation (majority, any-judge, frequent
non-compliance, judge agreement) happens in the views."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from specstress.context import RunContext
from specstress.domain import DISAGREEMENT_BINS, CallRequest, Outcome
from specstress.hashing import sha256_hex
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

COMPLIANCE_SCHEMA = pa.schema([
    ("scenario_id", pa.string()), ("model_id", pa.string()), ("judge", pa.string()), ("verdict", pa.string()),
    ("reasoning", pa.string()), ("sections", pa.list_(pa.string())), ("status", pa.string()),
    ("samples", pa.list_(pa.string())), ("subset", pa.string()), ("d", pa.float64()), ("bin", pa.string()),
    ("group_size", pa.int16()), ("call_key", pa.string()),
])

_SPEC_CACHE: dict[str, str] = {}
_URL_CACHE: dict[str, str] = {}


def model_spec_text(spec: RunSpec) -> tuple[str, str]:
    """(rendered spec text, sha256 of the source file), read once per process."""
    src = spec.compliance.model_spec or ""
    if "://" in src and src in _URL_CACHE:
        raw = _URL_CACHE[src]
    elif "://" in src:
        import urllib.request

        from specstress.errors import SpecError

        try:
            raw = _URL_CACHE[src] = urllib.request.urlopen(src, timeout=30).read().decode("utf-8")  # noqa: S310
        except Exception as exc:  # noqa: BLE001
            raise SpecError(f"compliance.model_spec: cannot fetch {src} ({type(exc).__name__}). Fix: download it and "
                            "set compliance.model_spec to the local file.") from None
    else:
        raw = spec.resolve(src).read_text(encoding="utf-8")
    digest = sha256_hex(raw)
    key = f"{digest}|{spec.compliance.max_spec_chars}"
    if key not in _SPEC_CACHE:
        from specstress.modelspec import parse_model_spec

        parsed = parse_model_spec(raw, name=src.rsplit("/", 1)[-1])
        _SPEC_CACHE[key] = parsed.render(spec.compliance.max_spec_chars)
    return _SPEC_CACHE[key], digest


@register_stage
class ComplianceStage(Stage):
    name = "compliance"
    version = "1"
    inputs = ("scenarios", "diversity", "responses", "disagreement", "high_disagreement")
    templates = ("compliance",)
    schema = COMPLIANCE_SCHEMA
    kind = "calls"
    summary_columns = ("judge", "verdict", "status")

    def enabled(self, spec: RunSpec) -> bool:
        return spec.compliance.enabled and bool(spec.roles.compliance_judges)

    def group(self, spec: RunSpec) -> list[str]:
        return list(spec.compliance.group) or list(spec.roles.panel)

    def subset(self, spec: RunSpec) -> str:
        return spec.compliance.subset or "all"

    def shard_size(self, spec: RunSpec) -> int:
        return max(1, spec.shards.size // max(1, len(spec.roles.compliance_judges)))

    def models_used(self, spec: RunSpec) -> list[str]:
        return list(spec.roles.compliance_judges)

    def config(self, spec: RunSpec) -> dict[str, Any]:
        c = spec.compliance
        src = c.model_spec or ""
        digest = sha256_hex(spec.resolve(src).read_bytes()) if "://" not in src else src
        return {"judges": models_config(spec, list(spec.roles.compliance_judges)), "model_spec": digest,
                "max_spec_chars": c.max_spec_chars, "group": self.group(spec), "subset": self.subset(spec),
                "per_bin": c.per_bin, "random_sample": c.random_sample, "seed": spec.seed}

    def samples(self, ctx: RunContext, inputs: Inputs) -> dict[str, list[str]]:
        """scenario id -> the sample sets it was drawn into."""
        spec = ctx.spec
        subset = self.subset(spec)
        kept = {s["scenario_id"] for s in kept_scenarios(inputs)}
        dis = [r for r in inputs.table("disagreement", ["subset", "scenario_id", "bin"]).to_pylist()
               if r["subset"] == subset and r["scenario_id"] in kept]
        chosen: dict[str, list[str]] = {}

        def take(label: str, pool: list[str], k: int) -> None:
            # Each scenario's rank in a sample is a seeded hash of its id: a sample of k is the first k of one
            # order, so growing a sample (or the run) keeps the scenarios already judged.
            ranked = sorted(set(pool), key=lambda sid: sha256_hex(f"{spec.seed}|compliance|{label}|{sid}"))
            for sid in ranked[:k]:
                chosen.setdefault(sid, []).append(label)

        take("random", [r["scenario_id"] for r in dis], spec.compliance.random_sample)
        for _, _, label in DISAGREEMENT_BINS:
            take(f"bin:{label}", [r["scenario_id"] for r in dis if r["bin"] == label], spec.compliance.per_bin)
        high = inputs.table("high_disagreement", ["subset", "scenario_id", "kept"]).to_pylist()
        for name in dict.fromkeys(["all", subset]):
            take(f"high:{name}", [r["scenario_id"] for r in high if r["subset"] == name and r["kept"]],
                 spec.compliance.per_bin)
        return chosen

    def plan(self, ctx: RunContext, inputs: Inputs) -> list[dict[str, Any]]:
        spec = ctx.spec
        subset = self.subset(spec)
        chosen = self.samples(ctx, inputs)
        dmap = {r["scenario_id"]: (r["d"], r["bin"]) for r in inputs.table("disagreement").to_pylist()
                if r["subset"] == subset}
        queries = {s["scenario_id"]: s["query"] for s in kept_scenarios(inputs)}
        group = set(self.group(spec))
        answered = {Outcome.OK, Outcome.REFUSAL}  # a refusal is an answer too, and is judged as one
        items = []
        for r in inputs.table("responses", ["scenario_id", "model_id", "outcome", "response"]).to_pylist():
            sid = r["scenario_id"]
            if sid in chosen and r["model_id"] in group:
                d, b = dmap.get(sid, (None, None))
                items.append({"scenario_id": sid, "model_id": r["model_id"], "query": queries[sid],
                              "response": r["response"] if r["outcome"] in answered and r["response"] else None,
                              "outcome": r["outcome"], "samples": sorted(chosen[sid]), "subset": subset,
                              "d": d, "bin": b, "group_size": len(group)})
        items.sort(key=lambda it: (it["scenario_id"], it["model_id"]))
        return items

    def _requests(self, spec: RunSpec, items: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str, CallRequest]]:
        text, _ = model_spec_text(spec)
        tpl = load_template("compliance")
        out = []
        for it in items:
            if it["response"] is None:
                continue
            for judge in spec.roles.compliance_judges:
                out.append((it, judge, make_request(spec, judge, tpl, {
                    "model_spec": text, "query": it["query"], "response": it["response"]}, purpose=self.name)))
        return out

    def first_requests(self, ctx: RunContext, items: list[dict[str, Any]]) -> list[CallRequest]:
        return [r for _, _, r in self._requests(ctx.spec, items)]

    def run_shard(self, ctx: RunContext, items: list[dict[str, Any]], send: Sender) -> pa.Table:
        spec = ctx.spec
        triples = self._requests(spec, items)
        results = send([r for _, _, r in triples])
        rows = []
        for (it, judge, req), res in zip(triples, results, strict=True):
            ok = res.ok and res.parsed is not None
            rows.append({"scenario_id": it["scenario_id"], "model_id": it["model_id"], "judge": judge,
                         "verdict": res.parsed["verdict"] if ok else None,
                         "reasoning": res.parsed.get("reasoning") if ok else res.error,
                         "sections": res.parsed.get("sections") if ok else None,
                         "status": "ok" if ok else str(res.outcome), "samples": it["samples"],
                         "subset": it["subset"], "d": it["d"], "bin": it["bin"], "group_size": it["group_size"],
                         "call_key": req.key})
        for it in items:
            if it["response"] is None:
                for judge in spec.roles.compliance_judges:
                    rows.append({"scenario_id": it["scenario_id"], "model_id": it["model_id"], "judge": judge,
                                 "verdict": None, "reasoning": None, "sections": None,
                                 "status": f"no_response:{it['outcome']}", "samples": it["samples"],
                                 "subset": it["subset"], "d": it["d"], "bin": it["bin"],
                                 "group_size": it["group_size"], "call_key": None})
        return pa.Table.from_pylist(rows, schema=COMPLIANCE_SCHEMA)

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        c = spec.compliance
        n_scen = c.random_sample + c.per_bin * (len(DISAGREEMENT_BINS) + 2)
        n_items = n_scen * len(self.group(spec))
        if "://" in (c.model_spec or ""):
            spec_tokens = 60_000  # a URL is not fetched to plan: assume the OpenAI Model Spec's size
        else:
            spec_tokens = len(model_spec_text(spec)[0]) // 4
        # the system prompt holds the whole model spec: one prefix, shared by every call to a judge
        prefix = system_prompt_tokens("compliance", spec_tokens)
        return [EstimateRow(self.name, j, n_items, n_items * (spec_tokens + 800), n_items * 400,
                            prefix_tokens=prefix, prefixes=1)
                for j in spec.roles.compliance_judges]

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        verdicts: dict[str, dict[str, int]] = {}
        for r in table.to_pylist():
            v = verdicts.setdefault(r["judge"], {})
            key = r["verdict"] or r["status"]
            v[key] = v.get(key, 0) + 1
        return {"judgments": table.num_rows, "verdicts_by_judge": verdicts}
