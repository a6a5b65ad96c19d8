"""DuckDB views over the warehouse, built per connection from ``sql/views/*.sql``.

DuckDB never holds the only copy of anything: every view reads Parquet in place, so writers
never block readers and there is no database file to lock. Stage views show one run's artefacts
(by default the latest completed run); ``calls``, ``call_log``, ``artefacts`` and ``runs`` span
the whole warehouse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import duckdb
import pyarrow as pa

from specstress.warehouse.ledger import LEDGER_SCHEMA, live_parts
from specstress.warehouse.sql_files import SQL_DIR, sql_list
from specstress.warehouse.store import LINEAGE_SCHEMA, RUN_SCHEMA, Warehouse, duckdb_connect

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
#: Sources that are warehouse tables rather than stage artefacts.
TABLES = ("ledger", "lineage", "runs")


@lru_cache(maxsize=1)
def _view_files() -> dict[str, tuple[str, ...]]:
    return {p.stem: tuple(dict.fromkeys(_PLACEHOLDER.findall(p.read_text(encoding="utf-8"))))
            for p in sorted((SQL_DIR / "views").glob("*.sql"))}


def view_sources() -> dict[str, tuple[str, ...]]:
    """View name -> the artefacts (stage names) or tables it reads: the ``{{ name }}``s of its file,
    declared once, where they are used."""
    return dict(_view_files())


READ_ONLY_TYPES = {"SELECT", "EXPLAIN"}

#: Stage name -> artefact schema, registered by the stage registry as stages register (the columns of
#: an empty view for a stage the selected run did not build).
ARTEFACT_SCHEMAS: dict[str, pa.Schema] = {}


def register_artefact_schema(stage: str, schema: pa.Schema) -> None:
    ARTEFACT_SCHEMAS[stage] = schema


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


def connect(wh: Warehouse | str, run: str | None = None,
            schemas: Mapping[str, pa.Schema] | None = None) -> tuple[duckdb.DuckDBPyConnection, RunSelection]:
    """An in-memory DuckDB connection with every view defined for ``run``.

    ``schemas`` (stage name -> artefact schema, from the stage registry) give the columns of an empty
    view for a stage the run did not build.
    """
    schemas = {**ARTEFACT_SCHEMAS, **(schemas or {})}
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
        sources[stage] = f"read_parquet({sql_list(parts)}, union_by_name=true)" if parts else empty(stage, schemas.get(stage))
    ledger = live_parts(wh)
    sources["ledger"] = f"read_parquet({sql_list(ledger)}, union_by_name=true)" if ledger else empty("ledger", LEDGER_SCHEMA)
    lineage = wh.glob("lineage", "*.parquet")
    sources["lineage"] = f"read_parquet({sql_list(lineage)}, union_by_name=true)" if lineage else empty("lineage", LINEAGE_SCHEMA)
    runs = wh.glob("runs", "*.parquet")
    sources["runs"] = f"read_parquet({sql_list(runs)}, union_by_name=true)" if runs else empty("runs", RUN_SCHEMA)
    files = view_sources()
    for view, needs in files.items():
        path = SQL_DIR / "views" / f"{view}.sql"
        params = {}
        for n in needs:
            params[n] = sources.get(n) or empty(n, schemas.get(n))
        sql = re.sub(r"\{\{\s*([a-z_]+)\s*\}\}", lambda m, p=params: p[m.group(1)], path.read_text(encoding="utf-8"))
        body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
        con.execute(f"CREATE VIEW {view} AS {body}")
    for stage in stage_views(schemas, sel.artefacts):  # every stage has a view with its name
        con.execute(f"CREATE VIEW {stage} AS SELECT * FROM {sources.get(stage) or empty(stage, schemas.get(stage))}")
    return con, sel


def stage_views(schemas: Mapping[str, pa.Schema], artefacts: Mapping[str, str]) -> list[str]:
    """Stages without a view file of their own name: each gets a view of its artefact as written."""
    files = view_sources()
    return sorted(s for s in {*schemas, *artefacts} if s not in files and re.fullmatch(r"[a-z_][a-z0-9_]*", s))


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise ReadOnlyError(f"cannot parse the query: {exc}") from None
    if not statements:
        raise ReadOnlyError("empty query")
    if len(statements) > 1:
        raise ReadOnlyError(f"one statement at a time: the query holds {len(statements)}. Fix: run them one by one "
                            "(a view can combine results: WITH ... SELECT).")
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
    """The views with a file (documented in the README), then the stages' own views."""
    return list(view_sources()) + stage_views(ARTEFACT_SCHEMAS, {})


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

