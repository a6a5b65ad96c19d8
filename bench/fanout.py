"""Fan-out benchmark: the whole call path against the emulator, over real HTTP.

    python bench/fanout.py [--calls 20000] [--models 4] [--rpm 6000] [--latency-ms 50] [--concurrency 64]

The emulator runs in its own process (its own core). Three measurements, one run:

1. Rate-limited: the real responses stage (plan -> Prefect shard tasks -> engine -> limiter -> ledger ->
   Parquet parts) sends ``--calls`` calls to ``--models`` models, each limited to ``--rpm`` at the
   emulator and in the run spec. Prints achieved throughput as a ratio of the configured limit (goal
   >= 0.9) and the share of requests that met a 429 (goal <= 2%).
2. Unlimited, whole path: the same stage with the limits lifted.
3. Unlimited, bare: an asyncio loop calling the openai SDK client directly at the same concurrency
   (the baseline). Prints whole path / bare (goal >= 0.7).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import cpu_seconds, scratch_dir  # noqa: E402

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bench-prefect-"))
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
               transport: str = "aiohttp") -> Path:
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
        "task_runner": {"kind": "threads", "max_workers": 4},
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


def run_stage(spec_path: Path, n_scenarios: int) -> tuple[float, dict]:
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
        t0 = time.perf_counter()
        res = execute_stage(ctx, stage_by_name("responses"), ids)
        close_engine(ctx.run_id)
        out["seconds"] = time.perf_counter() - t0
        out["result"] = res

    bench_flow()
    return out["seconds"], out["result"]


async def bare_loop(port: int, calls: int, models: int, concurrency: int, transport: str = "httpx") -> float:
    import openai

    client = openai.AsyncOpenAI(api_key="bench", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=30,
                                http_client=openai.DefaultAioHttpClient(timeout=30) if transport == "aiohttp" else None)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await client.chat.completions.create(
                model=f"sim-bench-{i % models}", max_completion_tokens=200,
                messages=[{"role": "user", "content": f"I care about harm prevention but user autonomy matters too. "
                                                      f"What should I do in case {i}?"}])

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    dt = time.perf_counter() - t0
    await client.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--rpm", type=float, default=6000.0, help="per-model requests per minute (limited phase)")
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--shard", type=int, default=2000)
    ap.add_argument("--port", type=int, default=18765)
    args = ap.parse_args()
    n_scen = max(1, args.calls // args.models)
    calls = n_scen * args.models
    print(f"fanout benchmark: {calls} calls, {args.models} models, {args.latency_ms:.0f} ms latency, "
          f"concurrency {args.concurrency}, {os.cpu_count()} cores")
    results = {}
    with scratch_dir("fanout") as tmp:
        # 1. rate limited
        spec = write_spec(tmp / "limited", args.port, args.models, args.rpm, args.concurrency, args.shard)
        faults = {"latency_ms": args.latency_ms, "rpm": {"sim-bench-*": args.rpm}}
        proc = start_emulator(args.port, spec, faults)
        try:
            secs, _ = run_stage(spec, n_scen)
            st = emu(args.port, "/_emulator/stats")
        finally:
            proc.terminate()
            proc.wait()
        limit = args.models * args.rpm / 60.0
        results["limited"] = {"seconds": secs, "rate": calls / secs, "limit": limit, "ratio": calls / secs / limit,
                              "share_429": st["served_429"] / max(1, st["requests"]), "requests": st["requests"],
                              "dup": st["max_completions_per_key"]}
        # 2. unlimited, whole path
        spec = write_spec(tmp / "free", args.port + 1, args.models, None, args.concurrency, args.shard)
        proc = start_emulator(args.port + 1, spec, {"latency_ms": args.latency_ms})
        try:
            cpu0 = cpu_seconds()
            secs, _ = run_stage(spec, n_scen)
            whole_cpu = cpu_seconds() - cpu0
            st2 = emu(args.port + 1, "/_emulator/stats")
            # 3. bare loops against the same emulator process, on each transport (CPU of this process per call)
            bare, bare_cpu = {}, {}
            for transport in ("httpx", "aiohttp"):
                cpu0 = cpu_seconds()
                bare[transport] = asyncio.run(bare_loop(args.port + 1, calls, args.models, args.concurrency,
                                                        transport))
                bare_cpu[transport] = cpu_seconds() - cpu0
        finally:
            proc.terminate()
            proc.wait()
        # 4. the whole path again on httpx, the SDKs' default transport
        spec = write_spec(tmp / "free-httpx", args.port + 2, args.models, None, args.concurrency, args.shard,
                          transport="httpx")
        proc = start_emulator(args.port + 2, spec, {"latency_ms": args.latency_ms})
        try:
            cpu0 = cpu_seconds()
            secs_httpx, _ = run_stage(spec, n_scen)
            whole_httpx_cpu = cpu_seconds() - cpu0
        finally:
            proc.terminate()
            proc.wait()
        results["whole"] = {"seconds": secs, "rate": calls / secs, "dup": st2["max_completions_per_key"],
                            "cpu_ms": 1000 * whole_cpu / calls}
        results["whole_httpx"] = {"rate": calls / secs_httpx, "cpu_ms": 1000 * whole_httpx_cpu / calls}
        results["bare"] = {"seconds": bare["httpx"], "rate": calls / bare["httpx"],
                           "cpu_ms": 1000 * bare_cpu["httpx"] / calls}
        results["bare_aiohttp"] = {"rate": calls / bare["aiohttp"], "cpu_ms": 1000 * bare_cpu["aiohttp"] / calls}
    lim, whole, bare_r = results["limited"], results["whole"], results["bare"]
    print()
    print(f"{'measurement':<44} {'value':>12} {'goal':>10}")
    print("-" * 68)
    print(f"{'rate-limited throughput (calls/s)':<44} {lim['rate']:>12.1f} {'':>10}")
    print(f"{'configured limit (calls/s)':<44} {lim['limit']:>12.1f} {'':>10}")
    print(f"{'throughput / limit':<44} {lim['ratio']:>12.3f} {'>= 0.90':>10}")
    print(f"{'requests that met a 429':<44} {100 * lim['share_429']:>11.2f}% {'<= 2%':>10}")
    print(f"{'whole path, no limits (calls/s)':<44} {whole['rate']:>12.1f} {'':>10}")
    print(f"{'bare asyncio + SDK loop (calls/s), baseline':<44} {bare_r['rate']:>12.1f} {'':>10}")
    print(f"{'whole path / bare loop':<44} {whole['rate'] / bare_r['rate']:>12.3f} {'>= 0.70':>10}")
    print(f"{'max completions per ledger key':<44} {max(lim['dup'], whole['dup']):>12d} {'1':>10}")
    ba, wh_ = results["bare_aiohttp"], results["whole_httpx"]
    print()
    print(f"{'transport (no limits)':<28} {'calls/s':>9} {'CPU ms/call':>12}")
    print("-" * 51)
    for name, r in (("bare SDK, httpx (baseline)", bare_r), ("bare SDK, aiohttp", ba),
                    ("whole path, httpx", wh_), ("whole path, aiohttp", whole)):
        print(f"{name:<28} {r['rate']:>9.1f} {r['cpu_ms']:>12.2f}")
    print(f"aiohttp / httpx CPU per call: bare {ba['cpu_ms'] / bare_r['cpu_ms']:.2f}, "
          f"whole path {whole['cpu_ms'] / wh_['cpu_ms']:.2f} (the emulator's CPU is in its own process)")


if __name__ == "__main__":
    main()
