"""Two runs side by side: ``comparison``, ``comparison_changes`` and ``spec_diff``.

A run's views live in their own DuckDB connection (:func:`specstress.warehouse.views.connect`). To join
two runs, this module projects the few columns the comparison needs from each run's views into Arrow
tables (``a_<view>`` and ``b_<view>``) of one in-memory connection, then defines the comparison views
over them from ``sql/compare/*.sql``, where ``{{ a.<view> }}`` and ``{{ b.<view> }}`` name the two sides.
Responses are carried as their call key and an md5 of their text, never the text itself, so a paper-scale
comparison stays small.

Typical uses: a model upgrade (same spec, one model id changed), another panel, or another version of the
model spec (``spec_diff``: compliance judged under two spec versions on the very same responses).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from specstress.warehouse.sql_files import SQL_DIR
from specstress.warehouse.store import Warehouse
from specstress.warehouse.views import RunSelection, check_read_only, connect

#: What each side contributes: view -> the projection taken from it.
PROJECTIONS: dict[str, str] = {
    "classifications": "SELECT scenario_id, model_id, value_slot, position, status FROM classifications",
    "disagreement": "SELECT subset, scenario_id, d, bin FROM disagreement",
    "refusals": "SELECT scenario_id, model_id, level, label FROM refusals",
    "compliance": "SELECT scenario_id, model_id, problematic FROM compliance",
    "compliance_judgments": "SELECT scenario_id, model_id, judge, verdict, status FROM compliance_judgments",
    "responses": "SELECT scenario_id, model_id, call_key, md5(coalesce(response, '')) AS response FROM responses",
}
COMPARE_VIEWS = ("comparison", "comparison_changes", "spec_diff")
_PLACEHOLDER = re.compile(r"\{\{\s*([ab])\.([a-z_]+)\s*\}\}")


@dataclass
class Comparison:
    con: duckdb.DuckDBPyConnection
    a: RunSelection
    b: RunSelection

    def query(self, sql: str) -> pa.Table:
        check_read_only(self.con, sql)
        rel = self.con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})

    def close(self) -> None:
        self.con.close()


def _side(wh: Warehouse, run: str, schemas: Mapping[str, pa.Schema] | None) -> tuple[dict[str, pa.Table], RunSelection]:
    con, sel = connect(wh, run, schemas)
    try:
        if sel.run_id is None:
            raise ValueError(f"no run {run!r} in {wh.root}")
        return {view: con.sql(sql).to_arrow_table() for view, sql in PROJECTIONS.items()}, sel
    finally:
        con.close()


def compare_sql(name: str) -> str:
    """The body of ``sql/compare/<name>.sql`` with its ``{{ a.x }}``/``{{ b.x }}`` placeholders bound."""
    text = (SQL_DIR / "compare" / f"{name}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    return _PLACEHOLDER.sub(lambda m: f"{m.group(1)}_{m.group(2)}", body)


def open_comparison(wh: Warehouse | str, run_a: str, run_b: str,
                    schemas: Mapping[str, pa.Schema] | None = None) -> Comparison:
    """A connection holding both runs' projections and the comparison views. ``run_a``/``run_b`` are run
    ids or names (a name means its latest completed run)."""
    if isinstance(wh, str):
        wh = Warehouse(wh)
    tables_a, sel_a = _side(wh, run_a, schemas)
    tables_b, sel_b = _side(wh, run_b, schemas)
    if sel_a.run_id == sel_b.run_id:
        raise ValueError(f"{run_a!r} and {run_b!r} are the same run ({sel_a.run_id}). Fix: name two different runs "
                         "(`specstress runs` lists them).")
    con = duckdb.connect()
    for side, tables in (("a", tables_a), ("b", tables_b)):
        for view, table in tables.items():
            con.register(f"{side}_{view}", table)
    for name in COMPARE_VIEWS:
        con.execute(f"CREATE VIEW {name} AS {compare_sql(name)}")
    return Comparison(con, sel_a, sel_b)


def compare(wh: Warehouse | str, run_a: str, run_b: str, sql: str | None = None,
            schemas: Mapping[str, pa.Schema] | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """``sql`` (default: the ``comparison`` summary) over the two runs, and which runs were compared."""
    cmp = open_comparison(wh, run_a, run_b, schemas)
    try:
        table = cmp.query(sql or "SELECT * FROM comparison")
        return table, {"a": cmp.a.run_id, "b": cmp.b.run_id, "a_name": cmp.a.name, "b_name": cmp.b.name}
    finally:
        cmp.close()
