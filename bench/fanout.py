"""Fan-out benchmark: the whole call path against the emulator over real HTTP, beside two baselines.

    python bench/fanout.py [--calls 8000] [--models 4] [--latency-ms 50] [--concurrency 100,300]
                           [--rpm 6000] [--limited-calls 16000] [--repeat 1]

The emulator runs in its own process (on the other core of a 2-core machine). In one run:

1. Rate-limited: the real responses stage (plan -> Prefect shard tasks -> engine -> limiter -> retries ->
   ledger -> Parquet parts) sends ``--limited-calls`` calls to ``--models`` models, each limited to ``--rpm``
   at the emulator and in the run spec. Prints achieved throughput / the configured limit (goal >= 0.9) over
   the stage's wall time and over the window from the first request to the last reply (ledger timestamps),
   and the share of requests answered 429 (goal <= 2%).
2. For each ``--concurrency`` (calls in flight), limits lifted, against one fresh emulator:
   - the whole path (the same stage; the run spec's default transport, the SDKs' aiohttp);
   - the default-SDK loop (the baseline): ``openai.AsyncOpenAI`` with its default httpx transport, called from
     a bare asyncio loop (a semaphore for the concurrency);
   - the same loop on the SDK's aiohttp transport (for reference);
   - the raw floor: the same JSON POSTed to /v1/chat/completions with aiohttp directly, no SDK.
   The three loops run in a fresh interpreter each (importing only their client library, as scripts of their
   own would); the whole path in this one.
   Prints calls/s and each loop's own CPU ms per call, whole / default SDK (goal >= 1.5), whole / raw
   (goal >= 0.4), and the keys the emulator completed more than once during the whole path (goal 0). The
   emulator's own CPU per request is printed too: it bounds the raw floor.

``--repeat n`` runs each unlimited measurement n times and keeps the fastest (other processes share the cores).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import cpu_seconds, scratch_dir  # noqa: E402

if "PREFECT_HOME" not in os.environ:   # a throwaway Prefect home, removed at exit (its baseline loops inherit it)
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="bench-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def start_emulator(port: int, spec: Path, faults: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "specstress", "emulator", "--port", str(port), "--spec", str(spec),
                             "--faults", json.dumps(faults)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/_emulator/health"
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=0.5)
            return proc
        except Exception:  # noqa: BLE001
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("emulator did not start")


def emu(port: int, path: str, body: dict | None = None) -> dict:
    url = f"http://127.0.0.1:{port}{path}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


def write_spec(tmp: Path, port: int, models: int, rpm: float | None, concurrency: int, shard: int,
               transport: str = "aiohttp", task_runner: dict | None = None) -> Path:
    import yaml

    demo = yaml.safe_load((ROOT / "specs" / "runs" / "demo.yaml").read_text())
    limits = {"max_in_flight": max(1, concurrency // models)}
    if rpm:
        limits["rpm"] = rpm
    entries = [{"id": f"m{i}", "provider": "openai", "model": f"sim-bench-{i}", "base_url": "emulator",
                "price_as": "gpt-6-luna", "params": {"max_tokens": 200}, "limits": limits} for i in range(models)]
    spec = {
        "name": "fanout", "seed": 1, "warehouse": str(tmp / "wh"), "budget_usd": 1_000_000,
        "prices": str(ROOT / "specs" / "prices.yaml"),
        "taxonomy": {"source": "file", "path": str(ROOT / "specs" / "taxonomy" / "seed.yaml")},
        "pairs": {"count": 10},
        "models": entries + [{"id": "gen", "provider": "sim", "model": "sim-writer", "price_as": "gpt-6-luna"}],
        "roles": {"generators": [{"model": "gen"}], "panel": [e["id"] for e in entries], "rubric": "gen",
                  "matcher": "gen"},
        "shards": {"size": shard, "task_retries": 3, "retry_delay_s": 1},
        "retry": {"max_attempts": 10, "max_call_seconds": 120, "request_timeout_s": 30, "backoff_base_s": 0.05,
                  "backoff_max_s": 1.0},
        "task_runner": task_runner or {"kind": "threads", "max_workers": 4},
        "transport": transport,
        "emulator": {"enabled": False, "url": f"http://127.0.0.1:{port}",
                     "personas": [{"name": e["model"], "weights": {}} for e in entries],
                     "sim": demo["emulator"]["sim"]},
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "fanout.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def seed_inputs(ctx, n_scenarios: int) -> dict[str, str]:
    """Write a scenarios and a diversity artefact so that the responses stage has work to plan."""
    import pyarrow as pa

    from specstress.tasks.diversity import DIVERSITY_SCHEMA
    from specstress.tasks.registry import artefact_ids
    from specstress.tasks.scenarios import SCENARIOS_SCHEMA
    from specstress.warehouse.store import Warehouse

    ids = artefact_ids(ctx.spec)
    wh = Warehouse(ctx.warehouse_root)
    rows = [{"scenario_id": f"s{i:07d}", "pair_id": f"p{i // 3}", "nudge": "neutral", "value1": "harm prevention",
             "value2": "user autonomy", "query": f"I care about harm prevention but user autonomy matters too. "
             f"What should I do in case {i}?", "generator": "gen", "status": "ok", "error": None, "call_key": None}
            for i in range(n_scenarios)]
    wh.write_part("scenarios", ids["scenarios"], wh.part_name(0), pa.Table.from_pylist(rows, schema=SCENARIOS_SCHEMA))
    wh.commit_artefact(artefact_id=ids["scenarios"], stage="scenarios", stage_version="bench", input_ids=[],
                       config={}, template_hashes={}, run_id="bench")
    div = pa.table({"scenario_id": [r["scenario_id"] for r in rows], "kept": [True] * len(rows),
                    "center_id": [r["scenario_id"] for r in rows], "distance": [0.0] * len(rows)},
                   schema=DIVERSITY_SCHEMA)
    wh.write_part("diversity", ids["diversity"], wh.part_name(0), div)
    wh.commit_artefact(artefact_id=ids["diversity"], stage="diversity", stage_version="bench", input_ids=[],
                       config={}, template_hashes={}, run_id="bench")
    return ids


def run_stage(spec_path: Path, n_scenarios: int) -> tuple[float, dict, float]:
    """Run the responses stage in a Prefect flow: (seconds, the stage's result, this process's CPU seconds), both
    measured around the stage inside the flow (the flow's own start-up is not the call path)."""
    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    from specstress.context import RunContext
    from specstress.flows.runner import execute_stage
    from specstress.providers.engine import close_engine
    from specstress.tasks.registry import stage_by_name

    ctx = RunContext.create(spec_path, quiet=True)
    ids = seed_inputs(ctx, n_scenarios)
    out: dict = {}

    @flow(name="bench-fanout", task_runner=ThreadPoolTaskRunner(max_workers=ctx.spec.task_runner.max_workers))
    def bench_flow() -> None:
        t0, c0 = time.perf_counter(), cpu_seconds()
        res = execute_stage(ctx, stage_by_name("responses"), ids)
        close_engine(ctx.run_id)
        out["seconds"], out["cpu"] = time.perf_counter() - t0, cpu_seconds() - c0
        out["result"] = res

    bench_flow()
    return out["seconds"], out["result"], out["cpu"]


def ledger_window(warehouse: Path) -> tuple[int, float]:
    """(calls, seconds from the first call's start to the last call's end) from the ledger's rows."""
    import duckdb

    parts = str(warehouse / "ledger" / "part-*.parquet")
    n, lo, hi = duckdb.sql(f"SELECT count(*), min(started_at), max(finished_at) FROM read_parquet('{parts}') "
                           "WHERE outcome = 'ok'").fetchall()[0]
    return int(n), (hi - lo).total_seconds()


def user_text(i: int) -> str:
    return f"I care about harm prevention but user autonomy matters too. What should I do in case {i}?"


async def sdk_loop(port: int, calls: int, models: int, concurrency: int, transport: str = "httpx") -> float:
    """The openai SDK called from a bare asyncio loop: its default httpx transport, or its aiohttp one."""
    import openai

    client = openai.AsyncOpenAI(api_key="bench", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=30,
                                http_client=openai.DefaultAioHttpClient(timeout=30) if transport == "aiohttp" else None)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            r = await client.chat.completions.create(
                model=f"sim-bench-{i % models}", max_completion_tokens=200,
                messages=[{"role": "user", "content": user_text(i)}])
            assert r.choices

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    dt = time.perf_counter() - t0
    await client.close()
    return dt


async def raw_loop(port: int, calls: int, models: int, concurrency: int) -> float:
    """The floor: the same JSON POSTed with aiohttp directly (no SDK), the reply decoded."""
    import aiohttp

    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"authorization": "Bearer bench", "content-type": "application/json"}
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(i: int) -> None:
            body = {"model": f"sim-bench-{i % models}", "max_completion_tokens": 200,
                    "messages": [{"role": "user", "content": user_text(i)}]}
            async with sem:
                async with session.post(url, data=json.dumps(body), headers=headers) as resp:
                    data = await resp.json()
                    assert resp.status == 200 and data["choices"], data

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(calls)))
        return time.perf_counter() - t0


LOOPS = ("sdk_httpx", "sdk_aiohttp", "raw")


def run_loop(kind: str, port: int, calls: int, models: int, concurrency: int) -> dict:
    """Run a baseline loop in a fresh interpreter (this script with --loop): it imports only its client library,
    as a script of its own would, not this process's Prefect and specstress (whose heap would make its garbage
    collections dearer). Returns its seconds and its own CPU seconds."""
    out = subprocess.run([sys.executable, __file__, "--loop", kind, "--port", str(port), "--calls", str(calls),
                          "--models", str(models), "--concurrency", str(concurrency)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def loop_main(kind: str, port: int, calls: int, models: int, concurrency: int) -> None:
    def run(n: int) -> float:
        if kind == "raw":
            return asyncio.run(raw_loop(port, n, models, concurrency))
        return asyncio.run(sdk_loop(port, n, models, concurrency, kind.split("_", 1)[1]))

    run(200)   # warm-up: imports, the client's first requests
    c0 = cpu_seconds()
    secs = run(calls)
    print(json.dumps({"seconds": secs, "cpu": cpu_seconds() - c0}))


def proc_cpu(pid: int) -> float:
    """CPU seconds of another process (the emulator), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def best_of(repeat: int, measure) -> dict:
    """Run ``measure`` (returns seconds, CPU seconds, emulator CPU seconds and extras) ``repeat`` times; keep the
    fastest."""
    runs = [measure() for _ in range(max(1, repeat))]
    return min(runs, key=lambda r: r["seconds"])


def unlimited(tmp: Path, port: int, calls: int, models: int, concurrency: int, shard: int, latency_ms: float,
              repeat: int) -> dict[str, dict]:
    n_scen = calls // models
    first = write_spec(tmp / "free-0", port, models, None, concurrency, shard)
    proc = start_emulator(port, first, {"latency_ms": latency_ms})
    out: dict[str, dict] = {}
    runs = [0]
    try:
        def whole() -> dict:
            runs[0] += 1
            spec = write_spec(tmp / f"free-{runs[0]}", port, models, None, concurrency, shard)
            emu(port, "/_emulator/reset", {})
            e0 = proc_cpu(proc.pid)
            secs, _, cpu = run_stage(spec, n_scen)
            st = emu(port, "/_emulator/stats")
            return {"seconds": secs, "cpu": cpu, "emu_cpu": proc_cpu(proc.pid) - e0,
                    "dup_keys": st["keys_completed_more_than_once"], "completed": st["completed_keys"]}

        def loop(kind: str) -> dict:
            e0 = proc_cpu(proc.pid)
            r = run_loop(kind, port, calls, models, concurrency)
            return {**r, "emu_cpu": proc_cpu(proc.pid) - e0}

        # warm-up: imports, Prefect's task machinery, the emulator's first requests
        run_stage(write_spec(tmp / "warm", port, models, None, concurrency, shard), 200 // models)
        out["whole"] = best_of(repeat, whole)
        for kind in ("sdk_httpx", "sdk_aiohttp", "raw"):
            out[kind] = best_of(repeat, lambda kind=kind: loop(kind))
    finally:
        proc.terminate()
        proc.wait()
    for r in out.values():
        r["rate"] = calls / r["seconds"]
        r["cpu_ms"] = 1000 * r["cpu"] / calls
        r["emu_cpu_ms"] = 1000 * r["emu_cpu"] / calls
    return out


def limited(tmp: Path, port: int, calls: int, models: int, rpm: float, concurrency: int, shard: int,
            latency_ms: float) -> dict:
    spec = write_spec(tmp / "limited", port, models, rpm, concurrency, shard)
    proc = start_emulator(port, spec, {"latency_ms": latency_ms, "rpm": {"sim-bench-*": rpm}})
    try:
        secs, _, _ = run_stage(spec, calls // models)
        st = emu(port, "/_emulator/stats")
    finally:
        proc.terminate()
        proc.wait()
    n, window = ledger_window(tmp / "limited" / "wh")
    limit = models * rpm / 60.0
    return {"seconds": secs, "rate": calls / secs, "limit": limit, "ratio": calls / secs / limit,
            "window_s": window, "window_ratio": n / window / limit,
            "share_429": st["served_429"] / max(1, st["requests"]), "requests": st["requests"],
            "dup_keys": st["keys_completed_more_than_once"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=8000, help="calls per unlimited measurement")
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--rpm", type=float, default=6000.0, help="per-model requests per minute (limited phase)")
    ap.add_argument("--limited-calls", type=int, default=16000, help="calls of the rate-limited phase (0: skip it)")
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", default="100,300", help="calls in flight, comma-separated")
    ap.add_argument("--shard", type=int, default=2000, help="items per shard task")
    ap.add_argument("--repeat", type=int, default=1, help="runs per unlimited measurement; the fastest is kept")
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument("--loop", choices=LOOPS, help=argparse.SUPPRESS)   # internal: run one baseline loop
    args = ap.parse_args()
    concurrencies = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    if args.loop:
        loop_main(args.loop, args.port, args.calls, args.models, concurrencies[0])
        return
    calls = (args.calls // args.models) * args.models
    print(f"fanout benchmark: {calls} calls per measurement, {args.models} models, {args.latency_ms:.0f} ms "
          f"latency, concurrency {', '.join(map(str, concurrencies))}, {os.cpu_count()} cores", flush=True)
    ok = True
    with scratch_dir("fanout") as tmp:
        if args.limited_calls:
            lcalls = (args.limited_calls // args.models) * args.models
            lim = limited(tmp, args.port, lcalls, args.models, args.rpm, concurrencies[0], args.shard,
                          args.latency_ms)
            print(f"\nrate-limited: {lcalls} calls, {args.models} models at {args.rpm:g} rpm each (emulator and "
                  f"run spec), concurrency {concurrencies[0]}")
            print(f"{'measurement':<52} {'value':>10} {'goal':>9}")
            print("-" * 73)
            print(f"{'configured limit (calls/s)':<52} {lim['limit']:>10.1f}")
            print(f"{'achieved over the stage (calls/s)':<52} {lim['rate']:>10.1f}")
            print(f"{'  / limit':<52} {lim['ratio']:>10.3f} {'>= 0.90':>9}")
            print(f"{'achieved, first request to last reply (calls/s)':<52} "
                  f"{lim['window_ratio'] * lim['limit']:>10.1f}")
            print(f"{'  / limit':<52} {lim['window_ratio']:>10.3f}")
            print(f"{'requests answered 429':<52} {100 * lim['share_429']:>9.2f}% {'<= 2%':>9}")
            print(f"{'keys completed more than once':<52} {lim['dup_keys']:>10d} {'0':>9}")
            ok &= lim["ratio"] >= 0.9 and lim["share_429"] <= 0.02 and lim["dup_keys"] == 0
        for i, conc in enumerate(concurrencies):
            r = unlimited(tmp / f"c{conc}", args.port + 1 + i, calls, args.models, conc, args.shard,
                          args.latency_ms, args.repeat)
            w, base, raw = r["whole"], r["sdk_httpx"], r["raw"]
            print(f"\nno limits, concurrency {conc} ({calls} calls each)")
            print(f"{'loop':<44} {'calls/s':>9} {'CPU ms/call':>12} {'emulator CPU ms/call':>21}")
            print("-" * 89)
            for name, key in (("whole path (Prefect, engine, ledger; aiohttp)", "whole"),
                              ("default SDK loop (openai, httpx): baseline", "sdk_httpx"),
                              ("SDK loop on its aiohttp transport", "sdk_aiohttp"),
                              ("raw aiohttp loop, no SDK: floor", "raw")):
                print(f"{name:<44} {r[key]['rate']:>9.1f} {r[key]['cpu_ms']:>12.3f} {r[key]['emu_cpu_ms']:>21.3f}")
            vs_base, vs_raw = w["rate"] / base["rate"], w["rate"] / raw["rate"]
            print(f"{'whole / default SDK':<44} {vs_base:>9.2f}   goal >= 1.5")
            print(f"{'whole / raw floor':<44} {vs_raw:>9.2f}   goal >= 0.4")
            print(f"{'keys completed more than once (whole path)':<44} {w['dup_keys']:>9d}   goal 0 "
                  f"({w['completed']} keys completed)")
            ok &= vs_base >= 1.5 and vs_raw >= 0.4 and w["dup_keys"] == 0 and w["completed"] == calls
    print("\nall goals met" if ok else "\nsome goal missed")


if __name__ == "__main__":
    main()
