"""A warehouse on S3: the demo against an S3-compatible server on loopback (moto in server mode), killed with
SIGKILL part-way and resumed with the same command. DuckDB reads through the warehouse's fsspec filesystem
(s3fs), since its httpfs extension cannot be downloaded offline."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import DEMO, ROOT

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

BUCKET = "specstress-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port())
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}", "SPECSTRESS_DUCKDB_FSSPEC": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import boto3

    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=BUCKET)
    try:
        yield env
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def _ledger_parts(fs, root: str) -> list[str]:
    try:
        return fs.glob(root.removeprefix("s3://") + "/ledger/part-*.parquet")
    except FileNotFoundError:
        return []


@pytest.mark.slow
def test_demo_on_s3_killed_and_resumed(s3, tmp_path, demo_run):
    """SIGKILL once the ledger has parts on S3, resume with the same command: the run completes with the artefact
    ids its spec determines, the scenarios of the uninterrupted local demo for the same pairs, answers SQL
    through DuckDB, and the resume pays only for what the killed run had not recorded. (A third of the demo's
    pairs: samples nest, so they are the local demo's first 50.)"""
    from prefect.settings import PREFECT_API_URL

    from specstress.runspec import load_run_spec
    from specstress.tasks.registry import artefact_ids
    from specstress.warehouse import views
    from specstress.warehouse.store import Warehouse

    root = f"s3://{BUCKET}/wh-{int(time.time())}"
    port = _free_port()
    env = {**os.environ, **s3, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env = {k: v for k, v in env.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())   # the session's Prefect server, started once
    emulator = subprocess.Popen([sys.executable, "-m", "specstress", "emulator", "--spec", str(DEMO), "--port", str(port),
                                 "--faults", json.dumps({"latency_ms": 20})],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cmd = [sys.executable, "-m", "specstress", "run", str(DEMO), "--quiet", "--json", "--set", f"warehouse={root}",
           "--set", "pairs.count=50", "--emulator-url", f"http://127.0.0.1:{port}"]
    try:
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3["AWS_ENDPOINT_URL"]})
        first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and first.poll() is None and len(_ledger_parts(fs, root)) < 3:
            time.sleep(0.5)
            fs.invalidate_cache()
        assert first.poll() is None, "the run ended before it could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        killed_parts = len(_ledger_parts(fs, root))
        assert killed_parts >= 3
        resumed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        summary = json.loads(resumed.stdout)
        assert summary["status"] == "completed"
    finally:
        emulator.kill()
        emulator.wait(10)
    wh = Warehouse(root)
    assert not wh.is_local
    mine = {r["run_id"]: r for r in wh.latest_runs()}[summary["run_id"]]
    assert json.loads(mine["artefacts_json"]) == artefact_ids(load_run_spec(DEMO, {"warehouse": root,
                                                                                  "pairs.count": 50}))
    # the killed run's calls were kept: the resume sent fewer calls than the run needed in all
    needed = views.query(root, "select count(*) as n from calls where final").to_pylist()[0]["n"]
    assert 0 < summary["calls_sent"] < needed
    # the same scenarios as the local demo made for these pairs
    q = "select scenario_id, query from scenarios where pair_id in (select pair_id from value_pairs) order by 1"
    ours = views.query(root, q).to_pylist()
    pairs = {r["pair_id"] for r in views.query(root, "select pair_id from value_pairs").to_pylist()}
    theirs = [r for r in views.query(demo_run["warehouse"], "select scenario_id, query, pair_id from scenarios "
                                     "order by 1", run=demo_run["summary"]["run_id"]).to_pylist()
              if r["pair_id"] in pairs]
    assert len(pairs) == 50 and ours == [{"scenario_id": r["scenario_id"], "query": r["query"]} for r in theirs]
    # no temporary file became visible as a part: every listed part is a complete Parquet file
    import pyarrow.parquet as pq

    for part in _ledger_parts(fs, root):
        with fs.open(part, "rb") as fh:
            pq.read_metadata(fh)
