"""Artefact storage and lineage.

Layout under the warehouse root (a local folder or an fsspec URL such as ``s3://bucket/x``)::

    artefacts/<stage>/<artefact id>/part-*.parquet   immutable stage outputs
    lineage/<artefact id>.parquet                    one row per committed artefact
    runs/<run id>-<n>.parquet                        run records (append-only)
    ledger/part-*.parquet                            the call ledger (see warehouse.ledger)
    plans/<stage>/<artefact id>/shard-*.parquet      planned work of each shard
    reports/<run id>/report.html                     rendered reports

Every file is written to a temporary name and renamed into place, so a reader never sees half
a file. An artefact exists once its lineage row exists; parts without one are invisible and are
rebuilt (or reused, when a shard's part is already complete) by the next run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import uuid
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from specstress import __version__
from specstress.crashpoints import crashpoint

#: Rows per Parquet row group. DuckDB scans a file's row groups in parallel, so a part of a few
#: hundred thousand rows written as one row group (pyarrow's default holds 1M rows) is read by one thread.
ROW_GROUP_ROWS = 1 << 16


def parquet_options(table: pa.Table) -> dict[str, Any]:
    """How artefacts are written: zstd, row groups of ROW_GROUP_ROWS, and dictionary encoding only
    for columns that repeat. Id columns (scenario_id, call_key, ...) are unique, and trying to
    dictionary-encode them (or packed integers) costs about half the write time and makes the file larger."""
    import pyarrow.compute as pc

    dictionary: bool | list[str] = True
    if table.num_rows >= 10_000:
        dictionary = []
        for field in table.schema:
            if pa.types.is_primitive(field.type) or pa.types.is_string(field.type) or pa.types.is_binary(field.type):
                sample = table.column(field.name).slice(0, 10_000)
                if pc.count_distinct(sample).as_py() > len(sample) // 2:
                    continue  # mostly distinct: plain encoding
            dictionary.append(field.name)
    return {"compression": "zstd", "row_group_size": ROW_GROUP_ROWS, "use_dictionary": dictionary}


LINEAGE_SCHEMA = pa.schema(
    [
        ("artefact_id", pa.string()),
        ("stage", pa.string()),
        ("stage_version", pa.string()),
        ("input_ids", pa.list_(pa.string())),
        ("config_hash", pa.string()),
        ("config_json", pa.string()),
        ("template_hashes", pa.string()),
        ("code_version", pa.string()),
        ("row_count", pa.int64()),
        ("part_count", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("run_id", pa.string()),
        ("summary_json", pa.string()),
    ]
)

RUN_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("name", pa.string()),
        ("spec_path", pa.string()),
        ("spec_hash", pa.string()),
        ("status", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("artefacts_json", pa.string()),
        ("calls_sent", pa.int64()),
        ("cache_hits", pa.int64()),
        ("spent_usd", pa.float64()),
        ("message", pa.string()),
        ("report_path", pa.string()),
        ("seq", pa.int64()),
        ("overrides_json", pa.string()),
    ]
)


#: whether DuckDB's httpfs extension could be loaded in this process (None: not tried yet)
_HTTPFS: bool | None = None


def duckdb_connect(root: str | None = None) -> duckdb.DuckDBPyConnection:  # noqa: F821
    """A DuckDB connection that can read the warehouse root: local paths as they are; ``s3://`` and
    ``gs://`` through the httpfs extension and the cloud credential chain where the extension can be
    loaded (installed, or downloadable), otherwise through the warehouse's own fsspec filesystem (s3fs,
    gcsfs), registered with DuckDB: slower for large scans, but it needs no download and uses the same
    credentials and endpoint (``AWS_ENDPOINT_URL`` etc.) as the warehouse's writes."""
    global _HTTPFS
    import duckdb

    con = duckdb.connect()
    if not root or "://" not in root or root.startswith("file://"):
        return con
    proto = root.split("://", 1)[0]
    if _HTTPFS is not False and os.environ.get("SPECSTRESS_DUCKDB_FSSPEC") != "1":
        try:
            try:
                con.execute("LOAD httpfs")
            except Exception:  # noqa: BLE001
                con.execute("INSTALL httpfs; LOAD httpfs;")
            if proto in ("s3", "s3a"):
                con.execute("CREATE OR REPLACE SECRET specstress_s3 (TYPE s3, PROVIDER credential_chain)")
            elif proto in ("gs", "gcs"):
                con.execute("CREATE OR REPLACE SECRET specstress_gcs (TYPE gcs, PROVIDER credential_chain)")
            _HTTPFS = True
            return con
        except Exception:  # noqa: BLE001 - offline, or no credential chain: fall back to fsspec
            _HTTPFS = False
            con.close()
            con = duckdb.connect()
    try:
        con.register_filesystem(fsspec.core.url_to_fs(root)[0])
    except Exception as exc:  # noqa: BLE001
        con.close()
        raise RuntimeError(f"DuckDB cannot read {root}: {exc}. Fix: install the fsspec filesystem for "
                           f"{proto}:// (s3fs, gcsfs) and configure its credentials, or let DuckDB load its httpfs "
                           "extension (see README, object storage).") from None
    return con


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit of the checkout, when there is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        sha = subprocess.run(["git", "-C", here, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:
        sha, dirty = "", ""
    v = __version__
    if sha:
        v += f"+g{sha}" + (".dirty" if dirty else "")
    return v


class Warehouse:
    """One warehouse root. Safe for many concurrent writers: every file name is unique or
    content-addressed, and files only ever appear whole."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self.is_local = self.fs.protocol in ("file", "local") or self.fs.protocol == ("file", "local")
        if self.is_local:
            os.makedirs(self._base, exist_ok=True)

    # ------------------------------------------------------------------ paths

    def path(self, *parts: str) -> str:
        """A path for DuckDB and fsspec (local absolute path or URL)."""
        rel = "/".join(p.strip("/") for p in parts if p)
        if self.is_local:
            return os.path.join(self._base, rel) if rel else self._base
        return f"{self.root}/{rel}" if rel else self.root

    def _fs_path(self, *parts: str) -> str:
        rel = "/".join(p.strip("/") for p in parts if p)
        return f"{self._base}/{rel}" if rel else self._base

    def artefact_dir(self, stage: str, artefact_id: str) -> str:
        return self.path("artefacts", stage, artefact_id)

    def artefact_glob(self, stage: str, artefact_id: str) -> str:
        return self.path("artefacts", stage, artefact_id, "part-*.parquet")

    # ------------------------------------------------------------------ files

    def write_table(self, rel_parts: Iterable[str], table: pa.Table) -> str:
        """Write ``table`` as Parquet at ``rel_parts`` atomically (temp name, then rename)."""
        parts = list(rel_parts)
        final = self._fs_path(*parts)
        folder = final.rsplit("/", 1)[0]
        self.fs.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/.tmp-{uuid.uuid4().hex}.parquet"
        with self.fs.open(tmp, "wb") as fh:
            pq.write_table(table, fh, **parquet_options(table))
        crashpoint(f"write:{parts[0]}")
        self.fs.mv(tmp, final)
        return self.path(*parts)

    def exists(self, *parts: str) -> bool:
        return bool(self.fs.exists(self._fs_path(*parts)))

    def glob(self, *parts: str) -> list[str]:
        found = sorted(self.fs.glob(self._fs_path(*parts)))
        if self.is_local:
            return found
        proto = self.root.split("://", 1)[0]
        return [f"{proto}://{f}" for f in found]

    def read_table(self, paths: list[str], columns: list[str] | None = None) -> pa.Table:
        tables = []
        for p in paths:
            if self.is_local:
                tables.append(pq.read_table(p, columns=columns))
            else:
                with self.fs.open(p.split("://", 1)[-1], "rb") as fh:
                    tables.append(pq.read_table(fh, columns=columns))
        if not tables:
            raise FileNotFoundError("no parquet files")
        return pa.concat_tables(tables, promote_options="default")

    def write_text(self, rel: str, text: str) -> str:
        final = self._fs_path(rel)
        folder = final.rsplit("/", 1)[0]
        self.fs.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        crashpoint(f"write_text:{rel.split('/', 1)[0]}")
        self.fs.mv(tmp, final)
        return self.path(rel)

    # ------------------------------------------------------------------ artefacts

    def part_name(self, index: int, tag: str = "") -> str:
        return f"part-{index:05d}" + (f"-{tag}" if tag else "") + ".parquet"

    def write_part(self, stage: str, artefact_id: str, name: str, table: pa.Table) -> str:
        return self.write_table(["artefacts", stage, artefact_id, name], table)

    def part_exists(self, stage: str, artefact_id: str, name: str) -> bool:
        return self.exists("artefacts", stage, artefact_id, name)

    def parts(self, stage: str, artefact_id: str) -> list[str]:
        return self.glob("artefacts", stage, artefact_id, "part-*.parquet")

    def has_artefact(self, artefact_id: str) -> bool:
        return self.exists("lineage", f"{artefact_id}.parquet")

    def commit_artefact(
        self,
        *,
        artefact_id: str,
        stage: str,
        stage_version: str,
        input_ids: list[str],
        config: Any,
        template_hashes: dict[str, str],
        run_id: str,
        summary: dict[str, Any] | None = None,
        expected_parts: list[str] | None = None,
    ) -> dict[str, Any]:
        """Make an artefact exist: count its rows and write its lineage row (last)."""
        parts = self.parts(stage, artefact_id)
        if expected_parts is not None:
            names = {p.rsplit("/", 1)[-1] for p in parts}
            missing = [n for n in expected_parts if n not in names]
            if missing:
                raise RuntimeError(f"artefact {stage}/{artefact_id} is missing parts {missing[:3]}")
            keep = set(expected_parts)
            for p in parts:  # leftovers of an interrupted attempt that was sharded differently
                if p.rsplit("/", 1)[-1] not in keep:
                    self.fs.rm(p if self.is_local else p.split("://", 1)[-1])
            parts = [p for p in parts if p.rsplit("/", 1)[-1] in keep]
        rows = 0
        for p in parts:
            rows += self._num_rows(p)
        from specstress.hashing import canonical_json, content_hash

        row = {
            "artefact_id": artefact_id,
            "stage": stage,
            "stage_version": stage_version,
            "input_ids": list(input_ids),
            "config_hash": content_hash(config),
            "config_json": canonical_json(config),
            "template_hashes": json.dumps(template_hashes, sort_keys=True),
            "code_version": code_version(),
            "row_count": rows,
            "part_count": len(parts),
            "created_at": utcnow(),
            "run_id": run_id,
            "summary_json": json.dumps(summary or {}, sort_keys=True, default=str),
        }
        self.write_table(["lineage", f"{artefact_id}.parquet"], pa.Table.from_pylist([row], schema=LINEAGE_SCHEMA))
        return row

    def _num_rows(self, path: str) -> int:
        if self.is_local:
            return pq.ParquetFile(path).metadata.num_rows
        with self.fs.open(path.split("://", 1)[-1], "rb") as fh:
            return pq.ParquetFile(fh).metadata.num_rows

    def lineage(self) -> pa.Table:
        files = self.glob("lineage", "*.parquet")
        if not files:
            return LINEAGE_SCHEMA.empty_table()
        return self.read_table(files)

    def lineage_row(self, artefact_id: str) -> dict[str, Any] | None:
        if not self.has_artefact(artefact_id):
            return None
        return self.read_table([self.path("lineage", f"{artefact_id}.parquet")]).to_pylist()[0]

    def read_artefact(self, stage: str, artefact_id: str, columns: list[str] | None = None) -> pa.Table:
        parts = self.parts(stage, artefact_id)
        if not parts:
            raise FileNotFoundError(f"artefact {stage}/{artefact_id} has no parts")
        return self.read_table(parts, columns=columns)

    # ------------------------------------------------------------------ runs

    def record_run(self, row: dict[str, Any]) -> None:
        row = dict(row)
        row.setdefault("seq", 0)
        for k in RUN_SCHEMA.names:
            row.setdefault(k, None)
        name = f"{row['run_id']}-{int(row['seq']):04d}.parquet"
        self.write_table(["runs", name], pa.Table.from_pylist([row], schema=RUN_SCHEMA))

    def runs(self) -> pa.Table:
        files = self.glob("runs", "*.parquet")
        if not files:
            return RUN_SCHEMA.empty_table()
        return self.read_table(files)

    def latest_runs(self) -> list[dict[str, Any]]:
        """One record per run id (its latest), newest first."""
        latest: dict[str, dict[str, Any]] = {}
        for r in self.runs().to_pylist():
            cur = latest.get(r["run_id"])
            if cur is None or r["seq"] > cur["seq"]:
                latest[r["run_id"]] = r
        return sorted(latest.values(), key=lambda r: r["started_at"], reverse=True)


class ArtefactLoader:
    """Reads committed artefacts of one warehouse."""

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh

    def __call__(self, stage: str, artefact_id: str) -> pa.Table:
        return self.wh.read_artefact(stage, artefact_id)

    def paths(self, stage: str, artefact_id: str) -> list[str]:
        return self.wh.parts(stage, artefact_id)
