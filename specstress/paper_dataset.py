"""The paper's released dataset (Hugging Face ``jifanz/stress_testing_model_spec``), both ways.

* :func:`export_paper` writes a run as one flat, wide Parquet table with the release's columns: rank,
  query_generator, value1, value2, nudge_direction, query, ``response_<model>`` and
  ``<model>_value1_position`` / ``<model>_value2_position`` per panel model, chunk_index, entry_idx.
* :func:`import_paper` reads the release (local Parquet files, or ``hf://datasets/...`` through DuckDB's
  httpfs) into a warehouse as an ordinary run, so that every view and analysis query answers over the
  paper's own positions, and results can be compared side by side.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from specstress.errors import SpecError
from specstress.hashing import content_hash, short_id
from specstress.warehouse.store import Warehouse, duckdb_connect, utcnow

#: The twelve model keys of the release, in its column order.
PAPER_MODELS = ("claude_3_5_sonnet", "claude_3_7_sonnet", "claude_opus_3", "claude_opus_4", "claude_sonnet_4",
                "gemini_2_5_pro", "gpt_4_1", "gpt_4_1_mini", "gpt_4o", "grok_4", "o3", "o4_mini")
#: The release's subsets (its splits) as model lists.
PAPER_SUBSETS = {
    "claude_models": ["claude_opus_4", "claude_sonnet_4", "claude_3_7_sonnet", "claude_3_5_sonnet", "claude_opus_3"],
    "openai_models": ["gpt_4_1", "gpt_4_1_mini", "gpt_4o", "o3", "o4_mini"],
    "opus4_vs_sonnet4": ["claude_opus_4", "claude_sonnet_4"],
    "gpt41_vs_mini": ["gpt_4_1", "gpt_4_1_mini"],
    "o3_vs_o4mini": ["o3", "o4_mini"],
}


def _col(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def export_paper(wh: Warehouse, out: str, run: str | None = None, subset: str = "all") -> int:
    """Write the run's scenarios in the release's wide format; returns the number of rows."""
    from specstress.warehouse.views import connect

    con, sel = connect(wh, run)
    try:
        models = [r[0] for r in con.sql("SELECT DISTINCT model_id FROM responses ORDER BY 1").fetchall()]
        if not models:
            raise SpecError(f"run {sel.run_id} has no responses to export")
        cols = []
        for m in models:
            c = _col(m)
            q = m.replace("'", "''")
            cols.append(f"max(CASE WHEN r.model_id = '{q}' THEN r.response END) AS response_{c}")
            cols.append(f"max(CASE WHEN c.model_id = '{q}' AND c.value_slot = 1 THEN c.position END) AS {c}_value1_position")
            cols.append(f"max(CASE WHEN c.model_id = '{q}' AND c.value_slot = 2 THEN c.position END) AS {c}_value2_position")
        sql = f"""
            WITH d AS (SELECT scenario_id, d FROM disagreement WHERE subset = '{subset.replace("'", "''")}')
            SELECT row_number() OVER (ORDER BY any_value(d.d) DESC NULLS LAST, s.scenario_id) - 1 AS rank,
                   any_value(s.generator) AS query_generator, any_value(s.value1) AS value1,
                   any_value(s.value2) AS value2, any_value(s.nudge) AS nudge_direction, any_value(s.query) AS query,
                   {", ".join(cols)},
                   0 AS chunk_index, row_number() OVER (ORDER BY s.scenario_id) - 1 AS entry_idx,
                   any_value(d.d) AS max_pop_std, s.scenario_id
            FROM scenarios s
            JOIN responses r USING (scenario_id)
            LEFT JOIN classifications c ON c.scenario_id = s.scenario_id AND c.model_id = r.model_id AND c.status = 'ok'
            LEFT JOIN d ON d.scenario_id = s.scenario_id
            WHERE s.kept
            GROUP BY s.scenario_id
            ORDER BY rank"""
        table = con.sql(sql).to_arrow_table()
    finally:
        con.close()
    import pyarrow.parquet as pq

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")
    return table.num_rows


def import_paper(source: str, warehouse: str, name: str = "paper-release", tree_csv: str | None = None,
                 limit: int | None = None) -> dict[str, Any]:
    """Import the release (a Parquet file, a glob, or an ``hf://`` path) as a warehouse run."""
    from specstress.tasks.disagreement import DisagreementStage
    from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA
    from specstress.tasks.outliers import OutliersStage
    from specstress.tasks.pairs import PAIRS_SCHEMA
    from specstress.tasks.responses import RESPONSES_SCHEMA
    from specstress.tasks.scenarios import SCENARIOS_SCHEMA
    from specstress.tasks.value_priorities import PrioritiesStage
    from specstress.warehouse.sql_files import run_model

    wh = Warehouse(warehouse)
    con = duckdb_connect(source if "://" in source else None)
    try:
        src = source.replace("'", "''")
        lim = f" LIMIT {int(limit)}" if limit else ""
        try:
            rel = con.sql(f"SELECT * FROM read_parquet('{src}', union_by_name=true){lim}")
            rows = rel.to_arrow_table().to_pylist()
        except Exception as exc:  # noqa: BLE001
            raise SpecError(f"{source}: cannot read the released dataset ({exc}). Fix: download its Parquet files "
                            "(huggingface.co/datasets/jifanz/stress_testing_model_spec) and pass a local path.") from None
    finally:
        con.close()
    if not rows:
        raise SpecError(f"{source}: no rows")
    missing = {"value1", "value2", "query", "nudge_direction"} - set(rows[0])
    if missing:
        raise SpecError(f"{source}: not the released dataset's format; missing columns {sorted(missing)}")
    models = [m for m in PAPER_MODELS if f"response_{m}" in rows[0]]
    categories: dict[str, tuple[str, str]] = {}
    if tree_csv:
        from specstress.taxonomy import load_values_in_the_wild

        for r in load_values_in_the_wild(tree_csv).to_pylist():
            categories[r["value"]] = (r["category"], r["top_category"])
    pairs: dict[str, dict[str, Any]] = {}
    scenarios, responses, placements = [], [], []
    for i, r in enumerate(rows):
        v1, v2 = str(r["value1"]).strip().lower(), str(r["value2"]).strip().lower()
        pid = "p_" + short_id([v1, v2], 16)
        if pid not in pairs:
            c1, t1 = categories.get(v1, (None, None))
            c2, t2 = categories.get(v2, (None, None))
            pairs[pid] = {"pair_id": pid, "value1": v1, "value2": v2, "value1_id": None, "value2_id": None,
                          "value1_description": None, "value2_description": None, "category1": c1,
                          "category2": c2, "top_category1": t1, "top_category2": t2}
        nudge = str(r["nudge_direction"] or "neutral")
        nudge = nudge if nudge in ("value1", "value2") else "neutral"
        sid = "s_" + short_id([pid, nudge, r["query"], r.get("entry_idx"), r.get("chunk_index"), i], 16)
        scenarios.append({"scenario_id": sid, "pair_id": pid, "nudge": nudge, "value1": v1, "value2": v2,
                          "query": r["query"], "generator": r.get("query_generator"), "status": "ok", "error": None,
                          "call_key": None})
        for m in models:
            text = r.get(f"response_{m}")
            responses.append({"scenario_id": sid, "model_id": m, "provider": None, "model": m, "served_model": None,
                              "outcome": "ok" if text else "missing", "response": text, "error": None,
                              "input_tokens": None, "output_tokens": None, "cost_usd": None, "call_key": None})
            for slot in (1, 2):
                pos = r.get(f"{m}_value{slot}_position")
                ok = pos is not None and 0 <= int(pos) <= 6
                placements.append({"scenario_id": sid, "pair_id": pid, "model_id": m, "value_slot": slot,
                                   "value": v1 if slot == 1 else v2, "position": int(pos) if ok else None,
                                   "confidence": None, "reasoning": None, "status": "ok" if ok else "missing",
                                   "judge": "released", "presented_index": None, "response_label": None,
                                   "call_key": None})
    digest = content_hash({"source": source, "rows": len(rows), "limit": limit, "tree": tree_csv})[:24]
    run_id = f"{name}-{utcnow().strftime('%Y%m%dT%H%M%S')}"
    made: dict[str, str] = {}

    def put(stage: str, table: pa.Table) -> str:
        aid = f"{stage[:4]}-import-{digest}-{short_id(stage, 6)}"
        if not wh.has_artefact(aid):
            wh.write_part(stage, aid, wh.part_name(0), table)
            wh.commit_artefact(artefact_id=aid, stage=stage, stage_version="import", input_ids=[],
                               config={"imported_from": source}, template_hashes={}, run_id=run_id)
        made[stage] = aid
        return aid

    put("pairs", pa.Table.from_pylist(list(pairs.values()), schema=PAIRS_SCHEMA))
    put("scenarios", pa.Table.from_pylist(scenarios, schema=SCENARIOS_SCHEMA))
    put("responses", pa.Table.from_pylist(responses, schema=RESPONSES_SCHEMA))
    cls = pa.Table.from_pylist(placements, schema=CLASSIFICATIONS_SCHEMA)
    put("classifications", cls)
    subsets = {"all": list(models), **{k: [m for m in v if m in models] for k, v in PAPER_SUBSETS.items()}}
    sub_table = pa.table({"subset": [s for s, ms in subsets.items() for _ in ms],
                          "model_id": [m for ms in subsets.values() for m in ms]})
    put("disagreement", run_model("disagreement", {"classifications": cls, "subsets": sub_table},
                                  {"high": 1.5}).cast(DisagreementStage.schema))
    put("outliers", run_model("outliers", {"classifications": cls, "subsets": sub_table},
                              {"min_gap": 4, "min_share": 9 / 11}).cast(OutliersStage.schema))
    if categories:
        pairs_t = pa.Table.from_pylist(list(pairs.values()), schema=PAIRS_SCHEMA)
        put("value_priorities", run_model("value_priorities", {"classifications": cls, "pairs": pairs_t,
                                                             "subsets": sub_table},
                                          {}).cast(PrioritiesStage.schema))
    wh.record_run({"run_id": run_id, "name": name, "spec_path": source, "spec_hash": digest, "status": "completed",
                   "seq": 1, "started_at": utcnow(), "finished_at": utcnow(), "artefacts_json": json.dumps(made),
                   "calls_sent": 0, "cache_hits": 0, "spent_usd": 0.0, "message": f"imported {len(rows)} rows"})
    return {"run_id": run_id, "rows": len(rows), "models": models, "artefacts": made}
