"""Prefect for real: a `prefect server` on loopback, a process work pool, `prefect deploy --all` from
prefect.yaml, a worker running the demo deployment while the emulator forces shard retries (proved
through the Prefect API), and the fan-out on a local Dask cluster of two worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from specstress.emulator import free_port
from specstress.warehouse import views
from specstress.warehouse.store import Warehouse
from tests.conftest import DEMO, make_emulator

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.server


def _postgres_bin() -> Path | None:
    """The PostgreSQL server programs (Debian's postgresql package, or any initdb/pg_ctl on PATH)."""
    import glob
    import shutil

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A throwaway PostgreSQL cluster on loopback for Prefect's database (trust auth, a free port)."""
    import shutil

    pg_bin = _postgres_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql when it is missing)")
    import tempfile

    # Not under pytest's basetemp: that is 0700 and owned by the test user, so the postgres user could not reach it.
    root = Path(tempfile.mkdtemp(prefix="specstress-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:   # PostgreSQL refuses to run as root: run it as the postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(root, 0o777)
        shutil.chown(sock, "postgres")
    port = free_port()
    init = subprocess.run([*as_user, str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                           "-E", "UTF8"], capture_output=True, text=True)
    assert init.returncode == 0, f"initdb failed: {init.stderr[-2000:]}"
    subprocess.run([*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(root / "pg.log"), "-w", "-o",
                    f"-c listen_addresses=127.0.0.1 -c port={port} -k {sock}", "start"], check=True,
                   capture_output=True)
    try:
        createdb = str(pg_bin / "createdb") if (pg_bin / "createdb").exists() else "createdb"
        subprocess.run([*as_user, createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "prefect"],
                       check=True, capture_output=True)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"
    finally:
        subprocess.run([*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def real_server(request, tmp_path_factory):
    """`prefect server start` on loopback, on its default SQLite database and on PostgreSQL (Prefect's advice for
    anything beyond local development)."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "WARNING", "PWD": str(ROOT)})
    db = request.param
    if db == "postgresql":
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = request.getfixturevalue("postgres")
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 150
    while True:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).read().strip() == b"true":
                break
        except Exception:  # noqa: BLE001
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("prefect server did not become healthy:\n" + (home / "server.log").read_text()[-3000:])
        time.sleep(1)
    try:
        yield {"url": url, "env": env, "home": home, "db": db}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def run(cmd: list[str], env: dict, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


TRIGGER = textwrap.dedent("""
    import json, sys
    from prefect.deployments import run_deployment
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId, TaskRunFilter
    params = json.loads(sys.argv[1])
    fr = run_deployment("stress-test/demo", parameters=params, timeout=900)
    with get_client(sync_client=True) as c:
        children = c.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[fr.id])))
        tasks = c.read_task_runs(limit=200)
        artifacts = c.read_artifacts(limit=200)
    print(json.dumps({"state": fr.state.type.value, "name": fr.name,
                      "tasks": [[t.name, t.run_count, t.state_name] for t in tasks],
                      "artifacts": sorted({a.key for a in artifacts if a.key}),
                      "children": len(children)}))
""")


def test_deployments_worker_and_visible_retries(real_server, tmp_path):
    env = real_server["env"]
    prefect = str(BIN / "prefect")
    run([prefect, "work-pool", "create", "specstress", "--type", "process"], env)
    out = run([prefect, "--no-prompt", "deploy", "--all"], env, timeout=600).stdout
    assert "stress-test/demo" in out
    over = {"pairs.count": 8, "warehouse": str(tmp_path / "wh"), "name": "deployed",
            "shards": {"size": 5000, "task_retries": 3, "retry_delay_s": 0.5},
            "retry": {"max_attempts": 2, "max_call_seconds": 30, "request_timeout_s": 5, "backoff_base_s": 0.01,
                      "backoff_max_s": 0.02},
            "emulator.faults": {"outages": [{"model": "sim-guardian", "status": 503, "requests": 30}]}}
    emu = make_emulator(DEMO, **over).start()
    worker = subprocess.Popen([prefect, "worker", "start", "--pool", "specstress", "--limit", "1"], env=env, cwd=ROOT,
                              stdout=open(tmp_path / "worker.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                              start_new_session=True)
    try:
        params = {"spec_path": "specs/runs/demo.yaml", "overrides": over, "emulator_url": emu.url, "quiet": True}
        r = run([sys.executable, "-c", TRIGGER, json.dumps(params)], env, timeout=1000)
        info = json.loads(r.stdout.strip().splitlines()[-1])
        assert info["state"] == "COMPLETED", (info, (tmp_path / "worker.log").read_text()[-4000:])
        assert info["name"] == "deployed"  # the parent flow run carries the run's name (`name` was overridden)
        assert info["children"] >= 16  # one subflow per stage
        retried = [t for t in info["tasks"] if t[1] > 1]
        assert any(name.startswith("responses-shard") for name, _, _ in retried), info["tasks"]
        assert any(k.startswith("deployed-responses") for k in info["artifacts"]), info["artifacts"]
        assert any(k.endswith("-progress") for k in info["artifacts"])
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:   # a worker still shutting down its polling loop: end it
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        emu.stop()
    wh = str(tmp_path / "wh")
    n = views.query(wh, "select count(*) as n from classifications where status = 'ok'").to_pylist()[0]["n"]
    assert n > 0
    assert emu.stats()["max_completions_per_key"] == 1


def test_fanout_on_dask_with_two_worker_processes(real_server, tmp_path):
    if real_server["db"] != "sqlite":
        pytest.skip("the Dask fan-out runs once, against the SQLite-backed server")
    env = real_server["env"]
    wh = tmp_path / "wh"
    r = run([str(BIN / "specstress"), "run", str(DEMO), "--set", "task_runner.kind=dask",
             "--set", "task_runner.dask_workers=2", "--set", "task_runner.max_workers=4", "--set", "pairs.count=6", "--set", "shards.size=20",
             "--set", f"warehouse={wh}", "--set", "name=dasktest", "--json", "--quiet"], env, timeout=900)
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert summary["status"] == "completed"
    lineage = {row["stage"]: json.loads(row["summary_json"]) for row in Warehouse(str(wh)).lineage().to_pylist()}
    pids = lineage["responses"]["calls"]["worker_pids"]
    assert len(pids) >= 2, pids  # the shards ran in two Dask worker processes
    n = views.query(str(wh), "select count(*) as n from responses").to_pylist()[0]["n"]
    assert n > 0
