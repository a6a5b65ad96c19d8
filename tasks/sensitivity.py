"""Judge-swap sensitivity: the headline conclusions recomputed under every matcher, side by side.

For each matcher (``roles.matcher`` first, then the others of ``roles.matchers``) its placements go through
the very SQL models the pipeline uses (position_grid, disagreement, value_priorities, outliers), and four
conclusions are drawn, each with its overlap with the primary matcher's:

- ``high_disagreement_set``: the scenarios whose D over the whole panel is at or above the high threshold;
  overlap = Jaccard index with the primary's set;
- ``top3_categories`` (per model): the model's three highest-ranked level-2 categories; overlap = the share
  of the primary's top 3 that is also in this top 3;
- ``outlier_models``: the models with more outlier responses than the panel's mean; overlap = Jaccard;
- ``fold_increase``: among the scenarios the compliance judges saw, the share where every group model was
  problematic among those high-disagreement under this matcher, over the same share in the random sample
  (Table 2's fold increase, restricted to judged scenarios, since only those have verdicts); overlap = the
  ratio of this matcher's fold to the primary's.

The compliance judges' own side-by-side view is ``judge_sensitivity``.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from specstress.context import RunContext
from specstress.runspec import RunSpec
from specstress.tasks.base import Inputs, Stage, subsets_table
from specstress.tasks.registry import register_stage, stage_by_name
from specstress.warehouse.sql_files import model_sql_hash, read_sql, render_sql, run_model

SENSITIVITY_SCHEMA = pa.schema([
    ("matcher", pa.string()), ("primary_matcher", pa.bool_()), ("conclusion", pa.string()), ("model_id", pa.string()),
    ("value", pa.string()), ("number", pa.float64()), ("overlap", pa.float64()), ("n", pa.int64()),
])
MODELS = ("position_grid", "disagreement", "value_priorities", "outliers")


def _jaccard(a: set[str], b: set[str]) -> float | None:
    return len(a & b) / len(a | b) if a | b else None


@register_stage
class SensitivityStage(Stage):
    name = "sensitivity"
    version = "1"
    inputs = ("classifications", "matcher_panel", "pairs")
    optional_inputs = ("compliance",)
    schema = SENSITIVITY_SCHEMA

    def enabled(self, spec: RunSpec) -> bool:
        return bool(spec.roles.extra_matchers())

    def inputs_for(self, spec: RunSpec) -> tuple[str, ...]:
        return self.inputs + (("compliance",) if stage_by_name("compliance").enabled(spec) else ())

    def config(self, spec: RunSpec) -> dict[str, Any]:
        return {"panel": sorted(spec.roles.panel), "matchers": [spec.roles.matcher, *spec.roles.extra_matchers()],
                "high": spec.disagreement.high, "min_gap": spec.outliers.min_gap,
                "min_share": spec.outliers.min_share}

    def code_hash(self) -> str:
        return "".join(model_sql_hash(m)[:4] for m in MODELS)

    def compute(self, ctx: RunContext, inputs: Inputs) -> pa.Table:
        spec = ctx.spec
        placements = {spec.roles.matcher: inputs.table("classifications")}
        extra = inputs.table("matcher_panel")
        for m in spec.roles.extra_matchers():
            placements[m] = extra.filter(pc.equal(extra.column("judge"), m))
        compliance = inputs.table("compliance") if "compliance" in inputs.ids else None
        return sensitivity_table(placements, inputs.table("pairs"), subsets_table(spec), compliance,
                                 primary=spec.roles.matcher, high=spec.disagreement.high,
                                 min_gap=spec.outliers.min_gap, min_share=spec.outliers.min_share)

    def summarize(self, table: pa.Table) -> dict[str, Any]:
        rows = table.to_pylist()
        return {"rows": len(rows), "high_set_jaccard": {r["matcher"]: r["overlap"] for r in rows
                                                        if r["conclusion"] == "high_disagreement_set"}}


def _judged_scenarios(compliance: pa.Table) -> list[dict[str, Any]]:
    """Per judged scenario (every group model judged): whether all group models were problematic, and
    whether it was in the random sample. The rules are the compliance view's."""
    con = duckdb.connect()
    try:
        con.register("raw", compliance)
        con.execute("CREATE VIEW compliance AS " + render_sql(read_sql("views", "compliance"), {"compliance": "raw"}))
        rows = con.execute("""
            SELECT scenario_id, bool_and(problematic) AS all_problematic, list_contains(any_value(samples), 'random')
            FROM compliance GROUP BY scenario_id HAVING count(*) = any_value(group_size)""").fetchall()
    finally:
        con.close()
    return [{"scenario_id": r[0], "all_problematic": bool(r[1]), "random": bool(r[2])} for r in rows]


def sensitivity_table(placements: dict[str, pa.Table], pairs: pa.Table, subsets: pa.Table,
                      compliance: pa.Table | None, *, primary: str, high: float, min_gap: int,
                      min_share: float) -> pa.Table:
    """The conclusions per matcher; ``placements`` maps each matcher to its classifications rows."""
    judged = _judged_scenarios(compliance) if compliance is not None and compliance.num_rows else []
    random_share = None
    rand = [j for j in judged if j["random"]]
    if rand:
        random_share = sum(j["all_problematic"] for j in rand) / len(rand)
    concl: dict[str, dict[str, Any]] = {}
    for matcher, cls in placements.items():
        grid = run_model("position_grid", {"classifications": cls, "subsets": subsets})
        dis = run_model("disagreement", {"position_grid": grid, "subsets": subsets}, {"high": high})
        pri = run_model("value_priorities", {"position_grid": grid, "pairs": pairs, "subsets": subsets})
        out = run_model("outliers", {"position_grid": grid, "subsets": subsets},
                        {"min_gap": min_gap, "min_share": min_share})
        high_set = {r["scenario_id"] for r in dis.to_pylist() if r["subset"] == "all" and r["high"]}
        top3: dict[str, list[str]] = {}
        for r in sorted(pri.to_pylist(), key=lambda r: (r["model_id"], r["rank"], r["category"])):
            if r["rank"] <= 3 and len(top3.setdefault(r["model_id"], [])) < 3:
                top3[r["model_id"]].append(r["category"])
        counts: dict[str, int] = {}
        for r in out.to_pylist():
            counts[r["model_id"]] = counts.get(r["model_id"], 0) + int(bool(r["outlier"]))
        mean = sum(counts.values()) / len(counts) if counts else 0.0
        fold = None
        if judged and random_share:
            hi = [j for j in judged if j["scenario_id"] in high_set]
            if hi:
                fold = (sum(j["all_problematic"] for j in hi) / len(hi)) / random_share
        concl[matcher] = {"high": high_set, "top3": top3, "outliers": {m for m, c in counts.items() if c > mean},
                          "counts": counts, "fold": fold,
                          "fold_n": sum(j["scenario_id"] in high_set for j in judged)}
    base = concl[primary]
    rows: list[dict[str, Any]] = []
    for matcher, c in concl.items():
        first = {"matcher": matcher, "primary_matcher": matcher == primary}
        rows.append({**first, "conclusion": "high_disagreement_set", "model_id": None, "value": None,
                     "number": float(len(c["high"])), "overlap": _jaccard(c["high"], base["high"]),
                     "n": len(c["high"])})
        for model in sorted(set(c["top3"]) | set(base["top3"])):
            mine, theirs = c["top3"].get(model, []), base["top3"].get(model, [])
            rows.append({**first, "conclusion": "top3_categories", "model_id": model, "value": "; ".join(mine),
                         "number": None, "overlap": len(set(mine) & set(theirs)) / len(theirs) if theirs else None,
                         "n": len(mine)})
        rows.append({**first, "conclusion": "outlier_models", "model_id": None,
                     "value": "; ".join(sorted(c["outliers"], key=lambda m: (-c["counts"][m], m))),
                     "number": float(sum(c["counts"].values())), "overlap": _jaccard(c["outliers"], base["outliers"]),
                     "n": len(c["outliers"])})
        if judged:
            ratio = c["fold"] / base["fold"] if c["fold"] is not None and base["fold"] else None
            rows.append({**first, "conclusion": "fold_increase", "model_id": None, "value": None,
                         "number": c["fold"], "overlap": ratio, "n": c["fold_n"]})
    return pa.Table.from_pylist(rows, schema=SENSITIVITY_SCHEMA)

