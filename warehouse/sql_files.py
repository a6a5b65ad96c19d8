"""SQL as files (dbt-style): ``warehouse/sql/models/*.sql`` compute artefacts, ``views/*.sql``
define what users query, ``queries/*.sql`` are the canonical analyses. ``{{name}}`` placeholders
are filled from parameters; a missing one is an error.

A model names what it reads with ``{{ ref('stage') }}``, as dbt does: those refs are the SQL stage's
inputs (the lineage is declared once, where it is used). Beside an optimised model may stand a plain
reference model, ``models/reference/<name>.sql``, which computes the same rows the obvious way; the
tests hold the two equal."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from specstress.hashing import sha256_hex
from specstress.warehouse.store import duckdb_connect

SQL_DIR = Path(__file__).resolve().parent / "sql"
_VAR = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
_REF = re.compile(r"\{\{\s*ref\(\s*'([a-z_][a-z0-9_]*)'\s*\)\s*\}\}")


#: Folders searched for ``models/<name>.sql`` after the package's own: a stage kept outside this
#: repository (or a test's toy stage) registers its folder with :func:`add_model_dir`.
MODEL_DIRS: list[Path] = []


def add_model_dir(path: Path) -> None:
    path = Path(path).resolve()
    if path not in MODEL_DIRS:
        MODEL_DIRS.append(path)
        read_sql.cache_clear()


def sql_path(kind: str, name: str) -> Path:
    path = SQL_DIR / kind / f"{name}.sql"
    if kind == "models" and not path.exists():
        for extra in MODEL_DIRS:
            if (extra / f"{name}.sql").exists():
                return extra / f"{name}.sql"
    return path


@lru_cache(maxsize=128)
def read_sql(kind: str, name: str) -> str:
    return sql_path(kind, name).read_text(encoding="utf-8")


def render_sql(text: str, params: dict[str, Any]) -> str:
    """Fill ``{{ ref('x') }}`` with the relation ``x`` and ``{{name}}`` with its parameter."""
    text = _REF.sub(lambda m: m.group(1), text)

    def sub(m: re.Match[str]) -> str:
        k = m.group(1)
        if k not in params:
            raise KeyError(f"SQL needs parameter {{{{{k}}}}}")
        v = params[k]
        return str(v)

    return _VAR.sub(sub, text)


def sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def sql_refs(text: str) -> list[str]:
    """The relations a SQL text reads through ``{{ ref('x') }}``, in order of first use."""
    return list(dict.fromkeys(_REF.findall(text)))


def model_refs(name: str) -> list[str]:
    """The artefacts (stage names) that ``models/<name>.sql`` reads, from its ``ref()``s."""
    return sql_refs(read_sql("models", name))


def model_sql_hash(name: str) -> str:
    """The content hash of a model file and the shared macros (it enters the artefact id)."""
    return sha256_hex(read_sql("models", name) + read_sql("", "macros"))[:16]


def _execute_model(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any]) -> duckdb.DuckDBPyRelation:
    """Run the model's statements; the last one is its query, whose relation is returned."""
    statements = con.extract_statements(render_sql(read_sql("models", name), params))
    for st in statements[:-1]:
        con.execute(st.query)
    return con.sql(statements[-1].query)


def run_model(name: str, sources: dict[str, list[str] | pa.Table], params: dict[str, Any] | None = None,
              threads: int | None = None) -> pa.Table:
    """Run ``models/<name>.sql`` with each source available as a view of the same name.

    A source is a list of Parquet paths (read in place) or an Arrow table (registered). The macros
    of ``sql/macros.sql`` are defined first. A model the SQL refers to (``-- ref: other``) and that
    is not among the sources is computed first, in the same connection, from the same sources: the
    pipeline persists such a model as its own artefact and passes it in; tests and one-off callers
    may pass only the raw inputs. ``name`` may be ``reference/<model>`` for a plain reference model.
    """
    params = params or {}
    remote = next((p for src in sources.values() if isinstance(src, list) for p in src
                   if "://" in p and not p.startswith("file://")), None)
    con = duckdb_connect(remote) if remote else duckdb.connect()
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
        for st in con.extract_statements(read_sql("", "macros")):
            con.execute(st.query)
        done = set(sources)

        def build(model: str) -> None:
            for ref in model_refs(model):
                if ref not in done:
                    if not sql_path("models", ref).exists():
                        raise KeyError(f"model {model} reads {{{{ ref('{ref}') }}}}, which is neither a source "
                                       f"given to run_model ({', '.join(sorted(sources))}) nor a model file")
                    build(ref)
                    _execute_model(con, ref, params).to_table(ref)
                    done.add(ref)

        build(name)
        return _execute_model(con, name, params).to_arrow_table()
    finally:
        con.close()
