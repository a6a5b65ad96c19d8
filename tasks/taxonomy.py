"""Stage 1: the value taxonomy, loaded from our YAML, imported from Values in the Wild, or grown
from a seed by an LLM (new values deduplicated by name and by embedding distance)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from specstress.context import RunContext
from specstress.embedding import hashed_embeddings
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
from specstress.taxonomy import (
    TAXONOMY_SCHEMA,
    load_values_in_the_wild,
    load_yaml_taxonomy,
    normalise_name,
    value_id,
)


@register_stage
class TaxonomyStage(Stage):
    name = "taxonomy"
    version = "1"
    schema = TAXONOMY_SCHEMA

    def templates_for(self, spec: RunSpec) -> tuple[str, ...]:
        return ("taxonomy_expand",) if spec.taxonomy.source == "expand" else ()

    def models_used(self, spec: RunSpec) -> list[str]:
        r = spec.roles
        return [r.taxonomy_expander] if spec.taxonomy.source == "expand" and r.taxonomy_expander else []

    def config(self, spec: RunSpec) -> dict[str, Any]:
        t = spec.taxonomy
        cfg: dict[str, Any] = {"source": t.source}
        if t.source in ("file", "expand"):
            cfg["file_sha256"] = sha256_hex(spec.resolve(t.path).read_bytes())
        else:
            cfg["tree_csv"] = t.tree_csv
            p = spec.resolve(t.tree_csv or "")
            if p.exists():
                cfg["file_sha256"] = sha256_hex(p.read_bytes())
        if t.source == "expand":
            cfg.update(per_category=t.per_category, dedup_threshold=t.dedup_threshold,
                       expander=models_config(spec, [spec.roles.taxonomy_expander or ""]))
        return cfg

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        spec = ctx.spec
        t = spec.taxonomy
        if t.source == "values_in_the_wild":
            p = spec.resolve(t.tree_csv or "")
            return load_values_in_the_wild(str(p) if p.exists() else str(t.tree_csv))
        base = load_yaml_taxonomy(spec.resolve(t.path))
        if t.source == "file":
            return base
        return self._expand(ctx, base)

    def _expand(self, ctx: RunContext, base: pa.Table) -> pa.Table:
        from specstress.providers.engine import get_engine
        from specstress.schemas import parse_output

        spec = ctx.spec
        tpl = load_template("taxonomy_expand")
        rows = base.to_pylist()
        by_cat: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_cat.setdefault(r["category"], []).append(r)
        reqs = []
        cats = sorted(by_cat)
        for cat in cats:
            members = by_cat[cat]
            reqs.append(make_request(spec, spec.roles.taxonomy_expander or "", tpl, {
                "category": cat, "category_description": members[0]["category_description"],
                "existing": "\n".join(f"- {m['value']}" for m in members), "count": spec.taxonomy.per_category,
            }, purpose=self.name))
        results = Sender(get_engine(ctx), self.name)(reqs)
        existing = [r["value"] for r in rows]
        vecs = hashed_embeddings(existing, 256)
        for cat, res in zip(cats, results, strict=True):
            obj, _ = parse_output("value_list", res.text, res.parsed) if res.ok else (None, None)
            if not obj:
                continue
            template_row = by_cat[cat][0]
            for nv in obj["values"]:
                name = normalise_name(nv["name"])
                if not name or any(name in e or e in name for e in existing):
                    continue
                v = hashed_embeddings([name], 256)[0]
                dist = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * (vecs @ v)))
                if dist.min() < spec.taxonomy.dedup_threshold:
                    continue
                existing.append(name)
                vecs = np.vstack([vecs, v[None, :]])
                rows.append({**template_row, "value_id": value_id(name), "value": name,
                             "description": nv.get("description") or "", "source": "expanded"})
        return pa.Table.from_pylist(rows, schema=TAXONOMY_SCHEMA)

    def estimate(self, spec: RunSpec, counts: dict[str, int]) -> list[EstimateRow]:
        if spec.taxonomy.source != "expand":
            return []
        n = 26
        return [EstimateRow(self.name, spec.roles.taxonomy_expander or "", n, n * 600, n * 60 * spec.taxonomy.per_category,
                            prefix_tokens=system_prompt_tokens("taxonomy_expand"), prefixes=1)]

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        cats = set(table.column("category").to_pylist())
        tops = set(table.column("top_category").to_pylist())
        return {"values": table.num_rows, "categories": len(cats), "top_categories": len(tops)}
