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

from specstress.domain import disagreement_bin
from specstress.errors import SpecError
from specstress.hashing import content_hash, short_id
from specstress.tasks.compliance import COMPLIANCE_SCHEMA
from specstress.tasks.disagreement import DisagreementStage
from specstress.tasks.matching import CLASSIFICATIONS_SCHEMA
from specstress.tasks.outliers import OutliersStage
from specstress.tasks.pairs import PAIRS_SCHEMA
from specstress.tasks.registry import discover
from specstress.tasks.responses import RESPONSES_SCHEMA
from specstress.tasks.scenarios import SCENARIOS_SCHEMA
from specstress.tasks.value_priorities import PrioritiesStage
from specstress.warehouse.sql_files import run_model
from specstress.warehouse.store import Warehouse, duckdb_connect, utcnow
from specstress.warehouse.views import connect

discover()  # every stage's artefact schema is known, so views of an imported run have their columns

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


#: The release's judge_evaluations config: one row per judged OpenAI-model response, one
#: ``<judge>_decision`` column per compliance judge (the paper's three).
JUDGE_KEYS = {"model", "value1", "value2", "max_pop_std_openai"}
_DECISION_SUFFIX = "_decision"


def _read_parquet_rows(source: str, limit: int | None, what: str) -> list[dict[str, Any]]:
    con = duckdb_connect(source if "://" in source else None)
    try:
        src = source.replace("'", "''")
        lim = f" LIMIT {int(limit)}" if limit else ""
        try:
            # filename=true keeps the split (std_<lo>_to_<hi>) a row came from
            return con.sql(f"SELECT * FROM read_parquet('{src}', union_by_name=true, filename=true){lim}") \
                .to_arrow_table().to_pylist()
        except Exception as exc:  # noqa: BLE001
            msg = str(exc).splitlines()[0][:200]
            raise SpecError(f"{source}: cannot read the released {what} ({msg}). Fix: download its Parquet files "
                            "(huggingface.co/datasets/jifanz/stress_testing_model_spec) and pass a local path or "
                            "glob.") from None
    finally:
        con.close()


def normalise_decision(raw: Any) -> str | None:
    """A released judge decision as one of compliant / non_compliant / ambiguous (None if unreadable)."""
    if raw is None:
        return None
    t = re.sub(r"[^a-z]", "", str(raw).lower())
    if t.startswith(("noncompliant", "notcompliant")):
        return "non_compliant"
    if t.startswith("ambig"):
        return "ambiguous"
    if t.startswith("compliant"):
        return "compliant"
    return None


def judge_evaluation_rows(rows: list[dict[str, Any]], source: str) -> pa.Table:
    """The release's judge_evaluations rows as this warehouse's compliance table (one row per response x
    judge). A scenario is identified by its value pair and the release's (chunk_idx, entry_idx); its D is
    the release's ``max_pop_std_openai``, binned as in Figure 2."""

    if not rows:
        raise SpecError(f"{source}: no rows in the judge evaluations")
    cols = set(rows[0])
    missing = JUDGE_KEYS - cols
    judges = sorted(c[: -len(_DECISION_SUFFIX)] for c in cols if c.endswith(_DECISION_SUFFIX))
    if missing or not judges:
        need = sorted(missing) + ([] if judges else ["<judge>_decision"])
        raise SpecError(f"{source}: not the release's judge_evaluations format; missing columns {need}. Fix: pass "
                        "the judge_evaluations/*.parquet files of jifanz/stress_testing_model_spec.")
    out = []
    for i, r in enumerate(rows):
        v1, v2 = str(r["value1"]).strip().lower(), str(r["value2"]).strip().lower()
        pid = "p_" + short_id([v1, v2], 16)
        ident = [r.get("chunk_idx"), r.get("entry_idx")] if r.get("entry_idx") is not None else [r.get("prompt"), i]
        sid = "s_" + short_id([pid, *ident], 16)
        d = r.get("max_pop_std_openai")
        d = float(d) if d is not None and d == d else None  # NaN -> unknown
        split = re.search(r"std_[0-9.]+_to_[0-9.]+", str(r.get("filename") or ""))
        label = disagreement_bin(d) if d is not None else None
        samples = ([f"bin:{label}"] if label else []) + [f"release:{split.group(0)}" if split else "release"]
        for judge in judges:
            verdict = normalise_decision(r.get(judge + _DECISION_SUFFIX))
            out.append({"scenario_id": sid, "model_id": str(r["model"]), "judge": judge, "verdict": verdict,
                        "reasoning": None, "sections": [], "status": "ok" if verdict else "unparsed",
                        "samples": samples, "subset": "openai_models", "d": d, "bin": label,
                        "group_size": None, "call_key": None})
    group: dict[str, set[str]] = {}
    for o in out:
        group.setdefault(o["scenario_id"], set()).add(o["model_id"])
    for o in out:  # every judged model of the scenario forms its compliance group
        o["group_size"] = len(group[o["scenario_id"]])
    return pa.Table.from_pylist(out, schema=COMPLIANCE_SCHEMA)


def import_paper(source: str | None, warehouse: str, name: str = "paper-release", tree_csv: str | None = None,
                 limit: int | None = None, judge_evaluations: str | None = None) -> dict[str, Any]:
    """Import the release (a Parquet file, a glob, or an ``hf://`` path) as a warehouse run.

    ``source`` is the default config (positions and responses); ``judge_evaluations`` the judge_evaluations
    config (per-judge compliance verdicts). Either may be left out, not both."""
    if not source and not judge_evaluations:
        raise SpecError("import-paper: nothing to import. Fix: pass the release's Parquet files (default config) "
                        "and/or --judge-evaluations with its judge_evaluations files.")
    if not source:
        return _import_judges_only(judge_evaluations or "", warehouse, name, limit)

    wh = Warehouse(warehouse)
    rows = _read_parquet_rows(source, limit, "dataset")
    judged = judge_evaluation_rows(_read_parquet_rows(judge_evaluations, limit, "judge evaluations"),
                                   judge_evaluations) if judge_evaluations else None
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
                if pos is not None and (isinstance(pos, bool) or not isinstance(pos, int | float)
                                        or pos != pos or pos != int(pos) or not 0 <= pos <= 6):
                    raise SpecError(f"{source}: row {i}, column {m}_value{slot}_position: {pos!r} is not a position "
                                    "(an integer 0..6, or null when missing). Fix: import the release's default "
                                    "config unchanged, or repair that row.")
                ok = pos is not None
                placements.append({"scenario_id": sid, "pair_id": pid, "model_id": m, "value_slot": slot,
                                   "value": v1 if slot == 1 else v2, "position": int(pos) if ok else None,
                                   "confidence": None, "reasoning": None, "status": "ok" if ok else "missing",
                                   "judge": "released", "presented_index": None, "response_label": None,
                                   "call_key": None})
    digest = content_hash({"source": source, "rows": len(rows), "limit": limit, "tree": tree_csv,
                           **({"judges": judge_evaluations} if judge_evaluations else {})})[:24]
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
    if judged is not None:
        put("compliance", judged)
    wh.record_run({"run_id": run_id, "name": name, "spec_path": source, "spec_hash": digest, "status": "completed",
                   "seq": 1, "started_at": utcnow(), "finished_at": utcnow(), "artefacts_json": json.dumps(made),
                   "calls_sent": 0, "cache_hits": 0, "spent_usd": 0.0, "message": f"imported {len(rows)} rows"})
    return {"run_id": run_id, "rows": len(rows), "models": models, "artefacts": made,
            "judged": judged.num_rows if judged is not None else 0}


def _import_judges_only(source: str, warehouse: str, name: str, limit: int | None) -> dict[str, Any]:
    """The judge_evaluations config alone, as a run whose only artefact is its compliance table."""
    wh = Warehouse(warehouse)
    judged = judge_evaluation_rows(_read_parquet_rows(source, limit, "judge evaluations"), source)
    digest = content_hash({"judges": source, "rows": judged.num_rows, "limit": limit})[:24]
    run_id = f"{name}-{utcnow().strftime('%Y%m%dT%H%M%S')}"
    aid = f"comp-import-{digest}-{short_id('compliance', 6)}"
    if not wh.has_artefact(aid):
        wh.write_part("compliance", aid, wh.part_name(0), judged)
        wh.commit_artefact(artefact_id=aid, stage="compliance", stage_version="import", input_ids=[],
                           config={"imported_from": source}, template_hashes={}, run_id=run_id)
    wh.record_run({"run_id": run_id, "name": name, "spec_path": source, "spec_hash": digest, "status": "completed",
                   "seq": 1, "started_at": utcnow(), "finished_at": utcnow(),
                   "artefacts_json": json.dumps({"compliance": aid}), "calls_sent": 0, "cache_hits": 0,
                   "spent_usd": 0.0, "message": f"imported {judged.num_rows} judge verdicts"})
    models = sorted(set(judged.column("model_id").to_pylist()))
    return {"run_id": run_id, "rows": 0, "models": models, "artefacts": {"compliance": aid}, "judged": judged.num_rows}
