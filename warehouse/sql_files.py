"""SQL as files (dbt-style): ``warehouse/sql/models/*.sql`` compute artefacts, ``views/*.sql``
define what users query, ``queries/*.sql`` are the canonical analyses. ``{{name}}`` placeholders
are filled from parameters; a missing one is an error."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

SQL_DIR = Path(__file__).resolve().parent / "sql"
_VAR = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@lru_cache(maxsize=128)
def read_sql(kind: str, name: str) -> str:
    path = SQL_DIR / kind / f"{name}.sql"
    return path.read_text(encoding="utf-8")


def render_sql(text: str, params: dict[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        k = m.group(1)
        if k not in params:
            raise KeyError(f"SQL needs parameter {{{{{k}}}}}")
        v = params[k]
        return str(v)

    return _VAR.sub(sub, text)


def sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def run_model(name: str, sources: dict[str, list[str] | pa.Table], params: dict[str, Any] | None = None,
              threads: int | None = None) -> pa.Table:
    """Run ``models/<name>.sql`` with each source available as a view of the same name.

    A source is a list of Parquet paths (read in place) or an Arrow table (registered).
    """
    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = false")  # artefacts have no row order to keep
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        for view, src in sources.items():
            if isinstance(src, pa.Table):
                con.register(f"__src_{view}", src)
                con.execute(f"CREATE VIEW {view} AS SELECT * FROM __src_{view}")
            else:
                con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet({sql_list(src)}, union_by_name=true)")
        sql = render_sql(read_sql("models", name), params or {})
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()
