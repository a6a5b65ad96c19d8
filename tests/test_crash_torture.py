"""Crash torture: the demo killed with SIGKILL at 20 seeded points (a ledger part, a shard plan, an artefact part, a
lineage row, a run record, the report and a compaction manifest, each caught between its temporary file and the
rename into place, and compactions mid-run and at the end between the merged part and its manifest), resumed each
time with the same command, ends with the very artefact ids and view rows of an uninterrupted run. Between
kills no view shows a partial artefact, and only calls in flight at a kill are ever sent twice."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from tests.conftest import DEMO, ROOT

#: (crash point, which visit) in the order the runs meet them; seeded so that a failure can be replayed
SEED = 20261204


def _points() -> list[tuple[str, int, bool]]:
    """(point, visit, force compactions): each resumed run dies at the first visit of its point, counted from its
    own start. Points met while calls are made come first, in a seeded order, so that each run makes a little
    progress (a ledger flush holds at most 250 calls); a lineage row is written when a stage commits, and the run
    record and the report at a run's end, so those come last. With ``force``, SPECSTRESS_COMPACT_EVERY=2 makes the
    run compact its ledger while it writes, so that kills land inside a compaction (its merged part written, its
    manifest not) and inside a manifest's write."""
    rnd = random.Random(SEED)
    early = ([("write:ledger", 1, False)] * 5 + [("write:plans", 1, False)] * 3 + [("write:artefacts", 1, False)] * 4
             + [("compact", 1, True), ("compact", 1, True), ("write_text:ledger", 1, True)])
    rnd.shuffle(early)
    return early + [("write:lineage", 1, False)] * 3 + [("write:runs", 2, False), ("write_text:reports", 1, False)]


def _no_partial_artefacts(root: str) -> int:
    """Every committed artefact (a lineage row) has all its parts, with the row count its lineage records."""
    lineage = os.path.join(root, "lineage")
    n = 0
    for name in os.listdir(lineage) if os.path.isdir(lineage) else []:
        if not name.endswith(".parquet"):
            continue
        row = pq.read_table(os.path.join(lineage, name)).to_pylist()[0]
        folder = os.path.join(root, "artefacts", row["stage"], row["artefact_id"])
        parts = sorted(f for f in os.listdir(folder) if f.startswith("part-") and f.endswith(".parquet"))
        assert len(parts) == row["part_count"], (row["stage"], parts, row["part_count"])
        assert sum(pq.read_metadata(os.path.join(folder, f)).num_rows for f in parts) == row["row_count"]
        n += 1
    return n


@pytest.mark.slow
def test_killed_at_planted_points_the_demo_resumes_to_the_same_warehouse(demo_run, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from specstress.warehouse import views
    from specstress.warehouse.store import Warehouse

    root = str(tmp_path / "wh")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API") and k not in ("SPECSTRESS_CRASH_AT", "SPECSTRESS_COMPACT_EVERY")}
    # the session's Prefect test server: a run killed and resumed 20 times need not start its own each time
    env.update({"PREFECT_API_URL": str(PREFECT_API_URL.value()), "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    emulator = subprocess.Popen([sys.executable, "-m", "specstress", "emulator", "--spec", str(DEMO), "--port",
                                 str(port), "--faults", json.dumps({"latency_ms": 15, "rate_429": 0.02})],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cmd = [sys.executable, "-m", "specstress", "run", str(DEMO), "--quiet", "--json", "--set", f"warehouse={root}",
           "--emulator-url", f"http://127.0.0.1:{port}"]
    killed = []
    try:
        _wait_for(port)
        for point, visit, force in _points():
            planted = {**env, "SPECSTRESS_CRASH_AT": f"{point}:{visit}"}
            if force:
                planted["SPECSTRESS_COMPACT_EVERY"] = "2"
            proc = subprocess.run(cmd, cwd=ROOT, env=planted, capture_output=True, text=True, timeout=600)
            killed.append((point, visit, proc.returncode))
            assert proc.returncode in (-9, 0), proc.stderr[-2000:]
            _no_partial_artefacts(root)              # between kills: no view can see half an artefact
            for view in ("scenarios", "responses", "classifications", "disagreement"):
                views.query(root, f"select count(*) from {view}")
        final = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert final.returncode == 0, final.stderr[-3000:]
        stats = _stats(port)
    finally:
        emulator.kill()
        emulator.wait(10)
    assert len(killed) == 20 and all(rc == -9 for _, _, rc in killed), f"{killed}"
    summary = json.loads(final.stdout)
    ours = {r["run_id"]: r for r in Warehouse(root).latest_runs()}[summary["run_id"]]
    clean = {r["run_id"]: r for r in Warehouse(demo_run["warehouse"]).latest_runs()}[demo_run["summary"]["run_id"]]
    assert json.loads(ours["artefacts_json"]) == json.loads(clean["artefacts_json"])
    assert _no_partial_artefacts(root) > 0
    for view in ("scenarios", "responses", "classifications", "disagreement", "value_priorities", "refusals",
                 "compliance", "outliers", "topics", "uncertainty"):
        q = f"select * from {view}"
        mine = sorted(map(_canonical, views.query(root, q, run=summary["run_id"]).to_pylist()))
        theirs = sorted(map(_canonical, views.query(demo_run["warehouse"], q,
                                                    run=demo_run["summary"]["run_id"]).to_pylist()))
        if view in ("responses", "refusals", "classifications", "compliance", "topics"):
            mine, theirs = len(mine), len(theirs)   # text equal, but latency/cost columns differ per run
        assert mine == theirs, view
    # a call answered and recorded is never sent again (the write-ahead log keeps what a kill cut off before a
    # flush); only a call in flight when a kill landed is sent again, once per kill it was caught by
    assert stats["max_completions_per_key"] <= 1 + sum(rc == -9 for _, _, rc in killed)
    in_flight_bound = 32 * len(killed)
    assert stats["keys_completed_more_than_once"] <= in_flight_bound, stats
    print(f"kills: {killed}; keys completed twice: {stats['keys_completed_more_than_once']} "
          f"of {stats['completed_keys']}")


def _canonical(row: dict) -> str:
    """A row as text, floats to 9 significant digits (DuckDB's parallel sums may differ in the last bit)."""
    return repr({k: (float(f"{v:.9g}") if isinstance(v, float) else v) for k, v in row.items()})


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/stats", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("the emulator did not start")


def _stats(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/stats", timeout=10) as fh:
        return json.loads(fh.read())
