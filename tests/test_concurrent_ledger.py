"""Concurrent runs on one ledger: writers flushing and compacting at once, readers reading all the while.
No row is lost, no reader fails, duplicates never survive a purge, and one compaction runs at a time."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time

import duckdb
import pyarrow.parquet as pq

from specstress.domain import CallRequest, CallResult, Outcome, Usage
from specstress.warehouse.ledger import LOCK, Ledger, acquire_lease, live_parts, make_row, release_lease
from specstress.warehouse.store import Warehouse, utcnow

WRITERS = 3
ROWS = 300
GRACE_S = 2.0


def _req(q: str) -> CallRequest:
    return CallRequest(provider="openai", model="m", model_id="m", messages=[{"role": "user", "content": q}],
                       purpose="test")


def _append(led: Ledger, q: str, run_id: str) -> None:
    r = _req(q)
    res = CallResult(key=r.key, outcome=Outcome.OK, text="t", usage=Usage(10, 0, 5, 0), cost_usd=0.001, attempts=1)
    led.append(make_row(r, res, run_id, utcnow(), [200]))


def _writer(root: str, w: int) -> None:
    led = Ledger(Warehouse(root), flush_rows=15, flush_seconds=999)
    for i in range(ROWS):
        _append(led, f"w{w}-{i}", f"run-{w}")
        if i % 40 == 39:
            led.compact(min_files=3, grace_s=GRACE_S)   # compaction forced during every writer
    led.flush()
    led.compact(min_files=2, grace_s=GRACE_S)


def _reader(root: str, stop, out) -> None:
    wh = Warehouse(root)
    keys = [_req(f"w{w}-{i}").key for w in range(WRITERS) for i in range(ROWS)]
    seen: set[str] = set()
    reads, errors, lost = 0, [], 0
    while not stop.is_set():
        try:
            found = Ledger(wh).final_keys(keys)
            lost += len(seen - found)          # a key once visible must stay visible
            seen |= found
            files = live_parts(wh)
            if files:
                duckdb.sql(f"SELECT count(*) FROM read_parquet({json.dumps(files)})").fetchall()
            reads += 1
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
    out.put({"reads": reads, "errors": errors, "lost": lost, "seen": len(seen)})


def test_writers_compacting_at_once_lose_nothing_and_readers_never_fail(tmp_path):
    root = str(tmp_path / "wh")
    Warehouse(root)
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    reader = ctx.Process(target=_reader, args=(root, stop, out))
    reader.start()
    writers = [ctx.Process(target=_writer, args=(root, w)) for w in range(WRITERS)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(120)
        assert p.exitcode == 0
    stop.set()
    result = out.get(timeout=60)
    reader.join(30)
    assert result["errors"] == [] and result["lost"] == 0 and result["reads"] > 5, result
    wh = Warehouse(root)
    led = Ledger(wh)
    keys = {_req(f"w{w}-{i}").key for w in range(WRITERS) for i in range(ROWS)}
    assert led.final_keys(keys) == keys
    time.sleep(GRACE_S + 0.1)
    led.compact(min_files=1, grace_s=GRACE_S)    # merges everything, retiring the rest
    time.sleep(GRACE_S + 0.1)
    led.compact(min_files=10**6, grace_s=GRACE_S)  # only purges what is past its grace
    files = live_parts(wh)
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    assert len(files) == 1 and rows == len(keys)   # every row once: no loss, no duplicate left
    assert len(wh.glob("ledger", "part-*.parquet")) == 1 and not wh.glob("ledger", "_retired", "*.json")
    assert abs(led.spent_by_run("run-") - 0.001 * len(keys)) < 1e-6


def test_one_compaction_at_a_time_and_a_dead_lease_is_broken(tmp_path):
    wh = Warehouse(str(tmp_path))
    first = acquire_lease(wh)
    assert first is not None
    assert acquire_lease(wh) is None                       # held: a second compaction skips
    led = Ledger(wh, flush_rows=1)
    for i in range(3):
        _append(led, f"x{i}", "r")
    led.flush()
    assert led.compact(min_files=1) == 0 and len(led.files()) == 3   # nothing merged while the lease is held
    release_lease(wh, first)
    assert led.compact(min_files=1) == 3 and len(led.files()) == 1
    # a lease whose holder died (expired) is broken by the next compaction
    wh.write_text(LOCK, json.dumps({"token": "dead", "pid": 1, "expires": time.time() - 1}))
    token = acquire_lease(wh)
    assert token is not None and token != "dead"
    release_lease(wh, token)
    assert not wh.exists(*LOCK.split("/"))
    # a live lease of a process of this host that is gone (killed mid-compaction) is broken at once; a live
    # lease of another host, or of a process still running, is not
    import socket
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = socket.gethostname()
    wh.write_text(LOCK, json.dumps({"token": "killed", "pid": gone.pid, "host": here, "expires": time.time() + 600}))
    token = acquire_lease(wh)
    assert token not in (None, "killed")
    release_lease(wh, token)
    for held in ({"pid": gone.pid, "host": here + "-elsewhere"}, {"pid": os.getpid(), "host": here}):
        wh.write_text(LOCK, json.dumps({"token": "live", **held, "expires": time.time() + 600}))
        assert acquire_lease(wh) is None, held
        wh.fs.rm(wh._fs_path(*LOCK.split("/")))
