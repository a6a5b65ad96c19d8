"""The call ledger: every provider call, once. It is also the cache.

A call's key is the sha256 of its normalised request (:class:`specstress.domain.CallRequest`).
Each time a call ends, one row is appended. Rows are buffered and flushed as Parquet parts every
few seconds or every few hundred calls, so a crash loses seconds of work, never a finished shard.
A key with a final outcome is never sent again; ``remaining = planned keys - final keys``.
Every part has :data:`LEDGER_SCHEMA` (compaction casts to it), so reads need no schema union; a
future column must come with a compaction that rewrites old parts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
import pyarrow as pa

from specstress.crashpoints import crashpoint
from specstress.domain import FINAL_OUTCOMES, CallRequest, CallResult, Usage
from specstress.hashing import canonical_json, sha256_hex
from specstress.warehouse.store import Warehouse, duckdb_connect, utcnow

LEDGER_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("run_id", pa.string()),
        ("purpose", pa.string()),
        ("provider", pa.string()),
        ("model", pa.string()),
        ("model_id", pa.string()),
        ("endpoint", pa.string()),
        ("served_model", pa.string()),
        ("template_hash", pa.string()),
        ("sample_index", pa.int32()),
        ("request_json", pa.string()),
        ("outcome", pa.string()),
        ("final", pa.bool_()),
        ("text", pa.string()),
        ("parsed_json", pa.string()),
        ("vector", pa.list_(pa.float32())),
        ("error", pa.string()),
        ("input_tokens", pa.int64()),
        ("cached_input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("latency_s", pa.float64()),
        ("attempts", pa.int32()),
        ("wait_s", pa.float64()),
        ("http_statuses", pa.string()),
        ("batch_id", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)

_FINAL_SQL = ", ".join(f"'{o}'" for o in sorted(FINAL_OUTCOMES))
_RESULT_COLS = ("key, outcome, text, parsed_json, vector, error, input_tokens, cached_input_tokens, output_tokens, "
                "reasoning_tokens, cost_usd, latency_s, attempts, wait_s, served_model")


#: the outcome of a journal row: the key was submitted in the batch ``batch_id`` (not final; its result row follows)
BATCH_SUBMITTED = "batch_submitted"


def make_row(req: CallRequest, res: CallResult, run_id: str, started_at: Any, statuses: list[int],
             batch_id: str | None = None) -> dict[str, Any]:
    """The ledger row for one ended call (``batch_id``: the provider batch that answered it)."""
    return {
        "key": req.key,
        "run_id": run_id,
        "purpose": req.purpose,
        "provider": req.provider,
        "model": req.model,
        "model_id": req.model_id,
        "endpoint": req.endpoint,
        "served_model": res.served_model,
        "template_hash": req.template_hash,
        "sample_index": req.sample_index,
        "request_json": canonical_json(req.identity()),
        "outcome": str(res.outcome),
        "final": res.outcome in FINAL_OUTCOMES,
        "text": res.text,
        "parsed_json": json.dumps(res.parsed, ensure_ascii=False) if res.parsed is not None else None,
        "vector": res.vector,
        "error": res.error,
        "input_tokens": res.usage.input_tokens,
        "cached_input_tokens": res.usage.cached_input_tokens,
        "output_tokens": res.usage.output_tokens,
        "reasoning_tokens": res.usage.reasoning_tokens,
        "cost_usd": res.cost_usd,
        "latency_s": res.latency_s,
        "attempts": res.attempts,
        "wait_s": res.wait_s,
        "http_statuses": ",".join(str(s) for s in statuses) if statuses else None,
        "batch_id": batch_id,
        "started_at": started_at,
        "finished_at": utcnow(),
    }


def journal_row(req: CallRequest, run_id: str, batch_id: str) -> dict[str, Any]:
    """The row that records ``req`` as submitted in the provider batch ``batch_id``, written before any waiting:
    a resumed run reattaches to the batch instead of submitting the key again."""
    now = utcnow()
    row = make_row(req, CallResult(key=req.key, outcome=BATCH_SUBMITTED), run_id, now, [], batch_id)
    row["final"] = False
    return row


def request_of(row: dict[str, Any]) -> CallRequest:
    """The call a ledger row records, rebuilt from its request JSON (bookkeeping fields from the row)."""
    ident = json.loads(row["request_json"])
    return CallRequest(provider=ident["provider"], model=ident["model"], messages=ident["messages"],
                       system=ident.get("system"), params=ident.get("params") or {}, schema=ident.get("schema"),
                       template_hash=ident.get("template_hash"), sample_index=int(ident.get("sample_index") or 0),
                       endpoint=ident.get("endpoint") or "default", purpose=row.get("purpose") or "",
                       model_id=row.get("model_id") or "", kind=ident.get("kind") or "chat")


def row_to_result(row: dict[str, Any]) -> CallResult:
    parsed = row.get("parsed_json")
    return CallResult(
        key=row["key"],
        outcome=row["outcome"],
        text=row.get("text"),
        parsed=json.loads(parsed) if parsed else None,
        vector=list(row["vector"]) if row.get("vector") is not None else None,
        error=row.get("error"),
        usage=Usage(
            input_tokens=int(row.get("input_tokens") or 0),
            cached_input_tokens=int(row.get("cached_input_tokens") or 0),
            output_tokens=int(row.get("output_tokens") or 0),
            reasoning_tokens=int(row.get("reasoning_tokens") or 0),
        ),
        cost_usd=float(row.get("cost_usd") or 0.0),
        latency_s=float(row.get("latency_s") or 0.0),
        attempts=int(row.get("attempts") or 0),
        wait_s=float(row.get("wait_s") or 0.0),
        served_model=row.get("served_model"),
        cached=True,
    )


def wal_dir(wh: Warehouse) -> str:
    """Where a warehouse's write-ahead logs live: under a local root, ``ledger/_wal``; for object storage a
    local folder keyed by the root (a killed run is resumed on the machine that ran it)."""
    if wh.is_local:
        return os.path.join(wh._fs_path("ledger"), "_wal")
    base = os.environ.get("SPECSTRESS_WAL_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "specstress", "wal")
    return os.path.join(base, sha256_hex(wh.root)[:16])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a zombie has finished
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


_WAL_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_APPEND_NEWLINE


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return {"__dt__": v.isoformat()}
    raise TypeError(f"not JSON: {type(v).__name__}")


def _row_from_json(row: dict[str, Any]) -> dict[str, Any]:
    for k in ("started_at", "finished_at"):
        v = row.get(k)
        if isinstance(v, dict) and "__dt__" in v:
            row[k] = dt.datetime.fromisoformat(v["__dt__"])
    if not row.get("key"):
        raise KeyError("key")
    return row


class Ledger:
    """Append-only, buffered, content-addressed record of every call. Thread-safe."""

    def __init__(self, warehouse: Warehouse, flush_rows: int = 250, flush_seconds: float = 2.0,
                 resend_errors: bool = False, wal: bool = False) -> None:
        self.wh = warehouse
        # With resend_errors, calls that ended permanent_error or parse_error count as unfinished.
        self.hit_filter = "final AND outcome NOT IN ('permanent_error', 'parse_error')" if resend_errors else "final"
        self._retry_outcomes = {"permanent_error", "parse_error"} if resend_errors else set()
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._buf: list[dict[str, Any]] = []
        self._pending: dict[str, dict[str, Any]] = {}  # key -> final row not yet visible in files
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._seq = 0
        self._writer_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._compact_every = int(os.environ.get("SPECSTRESS_COMPACT_EVERY") or 0)   # a test knob (see flush)
        self._compacting = False
        # the write-ahead log: every appended row is also written at once to a local file, so a process
        # killed between flushes loses no finished call (the next run's recover() writes them as a part)
        self._wal_dir = wal_dir(warehouse) if wal else None
        self._wal_file: Any = None
        self._wal_path: str | None = None
        self._wal_done: list[str] = []    # WAL files whose rows are all in the buffer or in parts
        if self._wal_dir is not None:
            self.recover()

    # ------------------------------------------------------------------ writing

    def append(self, row: dict[str, Any], flush: bool = True) -> None:
        """Buffer one row. With ``flush`` (the default) a full or old buffer is written at once; the
        engine passes ``flush=False`` and leaves writing to its ticker thread, off its event loop."""
        with self._lock:
            if self._wal_dir is not None:
                self._wal_write(row)
            self._buf.append(row)
            if row["final"]:
                self._pending[row["key"]] = row
            due = len(self._buf) >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_seconds
        if due and flush:
            self.flush()

    def flush_due(self) -> bool:
        with self._lock:
            return bool(self._buf) and (len(self._buf) >= self.flush_rows
                                        or time.monotonic() - self._last_flush >= self.flush_seconds)

    def pending_result(self, key: str) -> CallResult | None:
        """A final result appended but maybe not yet flushed (lets concurrent shards share it)."""
        with self._lock:
            row = self._pending.get(key)
        return row_to_result(row) if row is not None and row["outcome"] not in self._retry_outcomes else None

    def flush_if_due(self) -> None:
        with self._lock:
            due = bool(self._buf) and time.monotonic() - self._last_flush >= self.flush_seconds
        if due:
            self.flush()

    def flush(self) -> int:
        """Write buffered rows as one Parquet part. Returns the number of rows written.

        ``SPECSTRESS_COMPACT_EVERY=n`` (a test knob) compacts the ledger after every n-th part this writer
        writes, so that tests can force compactions while runs are writing."""
        n = self._flush()
        every = self._compact_every
        if n and every > 0 and self._seq % every == 0 and not self._compacting:
            self._compacting = True
            try:
                self.compact(min_files=2)
            finally:
                self._compacting = False
        return n

    def _flush(self) -> int:
        with self._flush_lock:
            with self._lock:
                rows, self._buf = self._buf, []
                self._last_flush = time.monotonic()
                if self._wal_path is not None and rows:   # new rows go to a new WAL file from here on
                    self._wal_file.close()
                    self._wal_done.append(self._wal_path)
                    self._wal_file = self._wal_path = None
            if not rows:
                return 0
            self._seq += 1
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            name = f"part-{stamp}-{self._writer_id}-{self._seq:06d}.parquet"
            try:
                self.wh.write_table(["ledger", name], pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA))
            except BaseException:
                with self._lock:  # nothing is lost: the rows go back, ahead of newer ones, for the next flush
                    self._buf[:0] = rows
                raise
            with self._lock:
                for r in rows:
                    if r["final"] and self._pending.get(r["key"]) is r:
                        del self._pending[r["key"]]
                done, self._wal_done = self._wal_done, []
            for path in done:   # their rows are in a part now
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
            return len(rows)

    # ------------------------------------------------------------------ write-ahead log

    def _wal_write(self, row: dict[str, Any]) -> None:
        """Append one row to this writer's WAL file (called under the lock). A write goes to the OS at once,
        so it survives SIGKILL of this process (not a power cut: there is no fsync per row)."""
        if self._wal_file is None:
            os.makedirs(self._wal_dir, exist_ok=True)
            self._wal_path = os.path.join(self._wal_dir, f"{socket.gethostname()}~{self._writer_id}-{uuid.uuid4().hex[:6]}.jsonl")
            self._wal_file = open(self._wal_path, "ab")   # noqa: SIM115
        # orjson, about a third of json.dumps's time a row; datetimes still go through _json_default (so old and new
        # lines read alike). What orjson refuses (a lone surrogate in a reply) is written by the json module as before.
        try:
            line = orjson.dumps(row, default=_json_default, option=_WAL_OPTS)
        except TypeError:
            line = (json.dumps(row, default=_json_default) + "\n").encode("utf-8")
        self._wal_file.write(line)
        self._wal_file.flush()   # to the OS at once (a write() a row, as the line-buffered text file did)

    def recover(self) -> int:
        """Write the rows of dead writers' WAL files (this host's processes no longer running) as one ledger
        part, then delete those files. Returns the number of rows recovered."""
        if self._wal_dir is None or not os.path.isdir(self._wal_dir):
            return 0
        rows, files = [], []
        for name in sorted(os.listdir(self._wal_dir)):
            if not name.endswith(".jsonl"):
                continue
            host, _, rest = name.partition("~")
            pid = int(rest.split("-", 1)[0]) if rest.split("-", 1)[0].isdigit() else -1
            if host == socket.gethostname() and pid > 0 and _alive(pid):
                continue   # a live writer (another run on this warehouse)
            path = os.path.join(self._wal_dir, name)
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rows.append(_row_from_json(json.loads(line)))
                    except (ValueError, KeyError, TypeError):
                        continue   # the line a kill cut short
            files.append(path)
        if rows:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self.wh.write_table(["ledger", f"part-{stamp}-recovered-{uuid.uuid4().hex[:8]}.parquet"],
                                pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA))
        for path in files:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        return len(rows)

    # ------------------------------------------------------------------ reading

    def files(self) -> list[str]:
        """The live parts: every part minus those a compaction has merged into a newer one."""
        return live_parts(self.wh)

    def lookup(self, keys: Iterable[str]) -> dict[str, CallResult]:
        """Final results for those of ``keys`` that have one (buffered rows included)."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, CallResult] = {}
        if not keys:
            return out
        with self._lock:
            for k in keys:
                row = self._pending.get(k)
                if row is not None and row["outcome"] not in self._retry_outcomes:
                    out[k] = row_to_result(row)
        rest = [k for k in keys if k not in out]
        files = self.files()
        if not rest or not files:
            return out
        con = duckdb_connect(None if self.wh.is_local else self.wh.root)
        try:
            con.register("wanted", pa.table({"key": rest}))
            rel = con.sql(
                f"SELECT {_RESULT_COLS} FROM read_parquet({_list_sql(files)}) "
                f"WHERE {self.hit_filter} AND key IN (SELECT key FROM wanted) "
                f"QUALIFY row_number() OVER (PARTITION BY key ORDER BY finished_at DESC) = 1"
            )
            for row in rel.to_arrow_table().to_pylist():
                out[row["key"]] = row_to_result(row)
        finally:
            con.close()
        return out

    def final_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` already hold a final outcome (cheap: reads only two columns)."""
        keys = list(dict.fromkeys(keys))
        found: set[str] = set()
        with self._lock:
            found.update(k for k in keys if k in self._pending)
        files = self.files()
        rest = [k for k in keys if k not in found]
        if not rest or not files:
            return found
        con = duckdb_connect(None if self.wh.is_local else self.wh.root)
        try:
            con.register("wanted", pa.table({"key": rest}))
            rel = con.sql(f"SELECT DISTINCT key FROM read_parquet({_list_sql(files)}) "
                          f"WHERE {self.hit_filter} AND key IN (SELECT key FROM wanted)")
            found.update(rel.to_arrow_table().column("key").to_pylist())
        finally:
            con.close()
        return found

    def remaining(self, keys: Iterable[str]) -> list[str]:
        """The planned keys without a final outcome, in plan order (duplicates kept once).

        An anti-join in DuckDB: only the remaining keys come back to Python, so planning against a
        multi-million-row ledger stays fast and small (see bench/resume.py).
        """
        keys = list(dict.fromkeys(keys))
        if not keys:
            return []
        files = self.files()
        if files:
            con = duckdb_connect(None if self.wh.is_local else self.wh.root)
            try:
                con.register("wanted", pa.table({"i": pa.array(range(len(keys)), pa.int64()), "key": keys}))
                rel = con.sql(f"SELECT w.key FROM wanted w ANTI JOIN (SELECT key FROM read_parquet({_list_sql(files)}) "
                              f"WHERE {self.hit_filter}) f ON w.key = f.key ORDER BY w.i")
                rest = rel.to_arrow_table().column("key").to_pylist()
            finally:
                con.close()
        else:
            rest = keys
        with self._lock:
            return [k for k in rest if k not in self._pending]

    def batch_state(self, keys: Iterable[str]) -> dict[str, tuple[str | None, int]]:
        """For each of ``keys`` without a final outcome that was ever submitted in a provider batch:
        (the batch it is pending in, or None when its last batch ended without answering it, the number of
        batches it was submitted in). Keys never submitted are absent."""
        keys = list(dict.fromkeys(keys))
        out: dict[str, tuple[str | None, int]] = {}
        if not keys:
            return out
        with self._lock:
            buffered = [r for r in self._buf if r["key"] in set(keys)]
        rows: list[dict[str, Any]] = []
        files = self.files()
        if files:
            con = duckdb_connect(None if self.wh.is_local else self.wh.root)
            try:
                con.register("wanted", pa.table({"key": keys}))
                rows = con.sql(
                    f"SELECT key, outcome, final, batch_id, finished_at, outcome IN ('permanent_error', 'parse_error') "
                    f"AS soft FROM read_parquet({_list_sql(files)}) WHERE key IN (SELECT key FROM wanted)"
                ).to_arrow_table().to_pylist()
            finally:
                con.close()
        for r in buffered:
            rows.append({"key": r["key"], "outcome": r["outcome"], "final": r["final"], "batch_id": r["batch_id"],
                         "finished_at": r["finished_at"], "soft": r["outcome"] in ("permanent_error", "parse_error")})
        by_key: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_key.setdefault(r["key"], []).append(r)
        for key, rs in by_key.items():
            if any(r["final"] and not (self._retry_outcomes and r["soft"]) for r in rs):
                continue
            subs = {r["batch_id"] for r in rs if r["outcome"] == BATCH_SUBMITTED}
            if not subs:
                continue
            last = max(rs, key=lambda r: (r["finished_at"], r["outcome"] != BATCH_SUBMITTED))
            out[key] = (last["batch_id"] if last["outcome"] == BATCH_SUBMITTED else None, len(subs))
        return out

    def batch_rows(self, batch_id: str) -> list[dict[str, Any]]:
        """The journal rows of one provider batch (one per submitted key)."""
        self.flush()
        files = self.files()
        if not files:
            return []
        con = duckdb_connect(None if self.wh.is_local else self.wh.root)
        try:
            rows = con.sql(f"SELECT * FROM read_parquet({_list_sql(files)}) WHERE batch_id = $b AND outcome = "
                           f"'{BATCH_SUBMITTED}' QUALIFY row_number() OVER (PARTITION BY key ORDER BY finished_at) = 1",
                           params={"b": batch_id}).to_arrow_table().to_pylist()
        finally:
            con.close()
        return rows

    def calls_by_run(self, run_id: str) -> int:
        """How many calls this run sent (rows it appended, repairs included)."""
        self.flush()
        files = self.files()
        if not files:
            return 0
        con = duckdb_connect(None if self.wh.is_local else self.wh.root)
        try:
            return int(con.sql(f"SELECT count(DISTINCT (key, finished_at)) FROM read_parquet({_list_sql(files)}) "
                               f"WHERE run_id = '{run_id}' AND outcome <> '{BATCH_SUBMITTED}'").fetchall()[0][0])
        finally:
            con.close()

    def spent_by_run(self, run_id_prefix: str) -> float:
        files = self.files()
        total = 0.0
        with self._lock:
            total += sum(float(r.get("cost_usd") or 0) for r in self._buf if (r.get("run_id") or "").startswith(run_id_prefix))
        if files:
            con = duckdb_connect(None if self.wh.is_local else self.wh.root)
            try:
                v = con.sql(f"SELECT coalesce(sum(cost_usd), 0) FROM (SELECT DISTINCT key, finished_at, attempts, "
                            f"cost_usd FROM read_parquet({_list_sql(files)}) "
                            f"WHERE starts_with(run_id, '{run_id_prefix}'))").fetchall()[0][0]
                total += float(v or 0)
            finally:
                con.close()
        return total

    # ------------------------------------------------------------------ maintenance

    def compact(self, min_files: int = 8, grace_s: float | None = None) -> int:
        """Merge the live parts into one, if there are ``min_files`` of them; returns how many were merged.

        Safe with concurrent runs and readers on local disk and object storage:

        - one compaction at a time: a lease file (``ledger/_compaction.lock``) created with an exclusive
          create; a lease older than :data:`LEASE_S` belongs to a dead compaction and is broken;
        - nothing disappears under a reader: the merged part is written first, then a manifest in
          ``ledger/_retired/`` names the parts it replaces. Readers read the manifests before listing the
          parts and skip the retired ones (so a merged part is always listed when its sources are
          skipped); the retired parts are deleted by a later compaction, :data:`RETIRE_GRACE_S` after.
          A crash anywhere leaves duplicates, which every reader drops by key, never a loss.
        """
        self.flush()
        grace = RETIRE_GRACE_S if grace_s is None else grace_s
        token = acquire_lease(self.wh)
        if token is None:   # another run is compacting: its merge covers these parts or the next one will
            return 0
        try:
            purge_retired(self.wh, grace)
            files = self.files()
            if len(files) < min_files:
                return 0
            table = self.wh.read_table(files)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            merged = f"part-{stamp}-compact-{uuid.uuid4().hex[:8]}.parquet"
            self.wh.write_table(["ledger", merged],
                                table.cast(LEDGER_SCHEMA) if table.schema != LEDGER_SCHEMA else table)
            crashpoint("compact")
            manifest = {"merged": merged, "parts": [f.rsplit("/", 1)[-1] for f in files], "retired_at": time.time()}
            self.wh.write_text(f"ledger/_retired/{merged.removesuffix('.parquet')}.json", json.dumps(manifest))
            return len(files)
        finally:
            release_lease(self.wh, token)


#: how long a compaction's lease on the ledger lasts; an older lease is taken as a dead compaction's
LEASE_S = 600.0
#: how long merged-away parts stay on disk after their compaction (a reader that listed them keeps working)
RETIRE_GRACE_S = 900.0
LOCK = "ledger/_compaction.lock"


def _read_json(wh: Warehouse, rel: str) -> dict[str, Any] | None:
    try:
        with wh.fs.open(wh._fs_path(*rel.split("/")), "rb") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def retired_parts(wh: Warehouse) -> dict[str, dict[str, Any]]:
    """The compaction manifests still on disk, by file name."""
    out = {}
    for path in wh.glob("ledger", "_retired", "*.json"):
        name = path.rsplit("/", 1)[-1]
        data = _read_json(wh, f"ledger/_retired/{name}")
        if data is not None:
            out[name] = data
    return out


def live_parts(wh: Warehouse) -> list[str]:
    """The ledger parts a reader should read. The manifests are read first, then the parts listed: a part is
    skipped only when a manifest says so, and a manifest is written after its merged part, so every row
    stays readable (at worst twice, which readers dedupe by key)."""
    retired = {p for m in retired_parts(wh).values() for p in m.get("parts", [])}
    return [f for f in wh.glob("ledger", "part-*.parquet") if f.rsplit("/", 1)[-1] not in retired]


def _read_lease(wh: Warehouse) -> dict[str, Any] | None:
    """The lease file's content. An exclusive create makes the file before its content is written, so an empty
    or partial lease is read again for a moment before it counts as a dead holder's (else two compactions could
    both hold the lease, and their merged parts would hold the same rows twice)."""
    for _ in range(10):
        held = _read_json(wh, LOCK)
        if held is not None or not wh.exists(*LOCK.split("/")):
            return held
        time.sleep(0.05)
    return None


def _holder_dead(held: dict[str, Any]) -> bool:
    """A lease taken by a process of this host that no longer exists (killed mid-compaction): no need to wait for
    it to expire. Leases from other hosts wait for their expiry."""
    if held.get("host") != socket.gethostname() or not isinstance(held.get("pid"), int):
        return False
    try:
        os.kill(held["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:   # alive, under another user
        return False
    return False


def acquire_lease(wh: Warehouse) -> str | None:
    """Take the compaction lease; returns its token, or None when a live lease is held by someone else."""
    token = uuid.uuid4().hex
    path = wh._fs_path(*LOCK.split("/"))
    wh.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    for _ in range(2):
        try:
            with wh.fs.open(path, "xb") as fh:   # an exclusive create: O_EXCL, or a conditional put
                fh.write(json.dumps({"token": token, "pid": os.getpid(), "host": socket.gethostname(),
                                     "expires": time.time() + LEASE_S}).encode())
            return token
        except FileExistsError:
            held = _read_lease(wh)
            if held is not None and float(held.get("expires", 0)) > time.time() and not _holder_dead(held):
                return None
            try:   # a dead compaction's lease (expired, its process gone, or never written): break it once
                if _read_json(wh, LOCK) == held:   # unchanged since read: nobody took it meanwhile
                    wh.fs.rm(path)
            except FileNotFoundError:
                pass
    return None


def release_lease(wh: Warehouse, token: str) -> None:
    held = _read_json(wh, LOCK)
    if held is not None and held.get("token") == token:
        try:
            wh.fs.rm(wh._fs_path(*LOCK.split("/")))
        except FileNotFoundError:
            pass


def purge_retired(wh: Warehouse, grace_s: float) -> int:
    """Delete the parts that compactions retired more than ``grace_s`` ago (then their manifests)."""
    removed = 0
    for name, m in retired_parts(wh).items():
        if float(m.get("retired_at", 0)) + grace_s > time.time():
            continue
        for part in m.get("parts", []):
            try:
                wh.fs.rm(wh._fs_path("ledger", part))
                removed += 1
            except FileNotFoundError:
                pass
        try:
            wh.fs.rm(wh._fs_path("ledger", "_retired", name))
        except FileNotFoundError:
            pass
    return removed


def _list_sql(files: list[str]) -> str:
    return "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
