"""DuckDB views over the warehouse, built per connection from ``sql/views/*.sql``.

DuckDB never holds the only copy of anything: every view reads Parquet in place, so writers
never block readers and there is no database file to lock. Stage views show one run's artefacts
(by default the latest completed run); ``calls``, ``call_log``, ``artefacts`` and ``runs`` span
the whole warehouse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from warehouse.ledger import LEDGER_SCHEMA
from warehouse.sql_files import SQL_DIR, sql_list
from warehouse.store import LINEAGE_SCHEMA, RUN_SCHEMA, Warehouse, duckdb_connect

#: View name -> the artefacts (stage names) or tables it reads. Order matters (later may use earlier).
VIEWS: dict[str, tuple[str, ...]] = {
    "value_taxonomy": ("taxonomy",),
    "value_pairs": ("pairs",),
    "scenarios": ("scenarios", "diversity"),
    "scenario_attempts": ("scenarios",),
    "responses": ("responses",),
    "spectra": ("spectra",),
    "classifications": ("classifications",),
    "disagreement": ("disagreement",),
    "value_priorities": ("value_priorities",),
    "outliers": ("outliers",),
    "high_disagreement": ("high_disagreement",),
    "topics": ("topics",),
    "refusals": ("refusals",),
    "priority_freeform": ("priority_freeform",),
    "value_priorities_freeform": ("priority_freeform",),
    "compliance_judgments": ("compliance",),
    "compliance": ("compliance",),
    "judge_agreement": ("compliance",),
    "calls": ("ledger",),
    "call_log": ("ledger",),
    "artefacts": ("lineage",),
    "runs": ("runs",),
}

READ_ONLY_TYPES = {"SELECT", "EXPLAIN"}


class ReadOnlyError(ValueError):
    pass


@dataclass
class RunSelection:
    run_id: str | None
    name: str | None
    status: str | None
    artefacts: dict[str, str]


def select_run(wh: Warehouse, run: str | None = None) -> RunSelection:
    """``run`` is a run id or a run name (its latest run); default: the latest completed run."""
    runs = wh.latest_runs()
    chosen = None
    if run:
        chosen = next((r for r in runs if r["run_id"] == run), None) or next(
            (r for r in runs if r["name"] == run and r["status"] == "completed"), None) or next(
            (r for r in runs if r["name"] == run), None)
        if chosen is None:
            known = sorted({r["name"] for r in runs})
            raise ValueError(f"no run {run!r} in {wh.root}; runs here: {', '.join(known) or 'none yet'}")
    else:
        chosen = next((r for r in runs if r["status"] == "completed"), None) or (runs[0] if runs else None)
    if chosen is None:
        return RunSelection(None, None, None, {})
    return RunSelection(chosen["run_id"], chosen["name"], chosen["status"], json.loads(chosen["artefacts_json"] or "{}"))


def _schema_of(stage: str) -> pa.Schema | None:
    try:
        from flows.dag import stage_by_name

        return stage_by_name(stage).schema
    except Exception:  # noqa: BLE001
        return None


def connect(wh: Warehouse | str, run: str | None = None) -> tuple[duckdb.DuckDBPyConnection, RunSelection]:
    """An in-memory DuckDB connection with every view defined for ``run``."""
    if isinstance(wh, str):
        wh = Warehouse(wh)
    sel = select_run(wh, run)
    con = duckdb_connect(wh.root if not wh.is_local else None)
    sources: dict[str, str] = {}

    def empty(name: str, schema: pa.Schema | None) -> str:
        rel = f"__empty_{name}"
        con.register(rel, (schema or pa.schema([("missing", pa.string())])).empty_table())
        return rel

    for stage, aid in sel.artefacts.items():
        parts = wh.parts(stage, aid)
        sources[stage] = f"read_parquet({sql_list(parts)}, union_by_name=true)" if parts else empty(stage, _schema_of(stage))
    ledger = wh.glob("ledger", "part-*.parquet")
    sources["ledger"] = f"read_parquet({sql_list(ledger)}, union_by_name=true)" if ledger else empty("ledger", LEDGER_SCHEMA)
    lineage = wh.glob("lineage", "*.parquet")
    sources["lineage"] = f"read_parquet({sql_list(lineage)}, union_by_name=true)" if lineage else empty("lineage", LINEAGE_SCHEMA)
    runs = wh.glob("runs", "*.parquet")
    sources["runs"] = f"read_parquet({sql_list(runs)}, union_by_name=true)" if runs else empty("runs", RUN_SCHEMA)
    for view, needs in VIEWS.items():
        path = SQL_DIR / "views" / f"{view}.sql"
        if not path.exists():
            continue
        params = {}
        for n in needs:
            params[n] = sources.get(n) or empty(n, _schema_of(n))
        sql = re.sub(r"\{\{\s*([a-z_]+)\s*\}\}", lambda m, p=params: p[m.group(1)], path.read_text(encoding="utf-8"))
        body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
        con.execute(f"CREATE VIEW {view} AS {body}")
    return con, sel


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise ReadOnlyError(f"cannot parse the query: {exc}") from None
    if not statements:
        raise ReadOnlyError("empty query")
    for st in statements:
        kind = str(st.type).rsplit(".", 1)[-1]
        if kind not in READ_ONLY_TYPES:
            raise ReadOnlyError(f"`specstress sql` is read-only: {kind} statements are not allowed. "
                                "Use SELECT (or EXPLAIN); the warehouse is Parquet written only by the pipeline.")


def query(wh: Warehouse | str, sql: str, run: str | None = None) -> pa.Table:
    con, _ = connect(wh, run)
    try:
        check_read_only(con, sql)
        rel = con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    finally:
        con.close()


def view_names() -> list[str]:
    return [v for v in VIEWS if (SQL_DIR / "views" / f"{v}.sql").exists()]


def describe(wh: Warehouse | str, run: str | None = None) -> dict[str, list[tuple[str, str]]]:
    con, _ = connect(wh, run)
    try:
        out: dict[str, list[tuple[str, str]]] = {}
        for v in view_names():
            rows = con.sql(f"DESCRIBE {v}").fetchall()
            out[v] = [(r[0], r[1]) for r in rows]
        return out
    finally:
        con.close()

