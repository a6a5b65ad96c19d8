"""Cross-worker limits: two Dask workers share each model's limits, together within them.

    python bench/limits.py [--rpm 1200] [--models 2] [--calls 3000] [--workers 2] [--shard 50]

The emulator (its own process) answers 429 beyond ``--rpm`` requests per minute per model (its token bucket
holds one second), and the run spec limits each model to the same ``--rpm``. The responses stage runs with
``task_runner: {kind: dask, dask_workers: 2}``: Prefect shard tasks on a local Dask cluster of two worker
processes, each with its own engine, which takes 1/2 of every model's rpm, tpm and in-flight window
(``flows/runner.py`` ``limit_share_for``, ``providers/engine.py`` ``limiter_share``).

Prints the combined achieved rate / the limit R (all models) over two windows: the stage's wall time (Dask task
start-up in the workers and the stage's bookkeeping included) and from the first call's start to the last
call's end (the ledger's timestamps: the steady state; goal >= 0.9 on this one), the share of requests answered
429 (goal <= 1%), and how the calls split between the worker processes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import scratch_dir  # noqa: E402
from fanout import emu, ledger_window, seed_inputs, start_emulator, write_spec  # noqa: E402


def run_dask_stage(spec_path: Path, n_scenarios: int) -> tuple[float, dict]:
    """The responses stage under the run spec's Dask task runner (a local cluster, made before the clock starts)."""
    from prefect import flow

    from specstress.context import RunContext
    from specstress.flows.runner import dask_cluster_for, execute_stage, limit_share_for, task_runner_for
    from specstress.providers.engine import close_engine
    from specstress.tasks.registry import stage_by_name

    ctx = RunContext.create(spec_path, quiet=True)
    ids = seed_inputs(ctx, n_scenarios)
    out: dict = {}
    with dask_cluster_for(ctx):
        ctx.limit_share = limit_share_for(ctx)   # as the stage flows do: each worker takes 1/2 of the limits
        out["share"] = ctx.limit_share

        @flow(name="bench-limits", task_runner=task_runner_for(ctx))
        def bench_flow() -> None:
            t0 = time.perf_counter()
            out["result"] = execute_stage(ctx, stage_by_name("responses"), ids)
            out["seconds"] = time.perf_counter() - t0
            close_engine(ctx.run_id)

        bench_flow()
    return out["seconds"], out


def share_prefect_server() -> Any:
    """Start Prefect's temporary API server in this process and point the Dask workers at it (they inherit the
    environment); else each worker starts a server of its own, which outlives the worker."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    return server


def per_worker(warehouse: Path) -> list[tuple[str, int]]:
    """Calls per writer process (the ledger parts are named by their writer's pid)."""
    import duckdb

    parts = str(warehouse / "ledger" / "part-*.parquet")
    rows = duckdb.sql(f"SELECT split_part(split_part(filename, 'part-', 2), '-', 2) AS pid, count(*) "
                      f"FROM read_parquet('{parts}', filename=true) GROUP BY 1 ORDER BY 1").fetchall()
    return [(str(p), int(n)) for p, n in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rpm", type=float, default=1200.0, help="R: requests per minute per model (emulator and spec)")
    ap.add_argument("--models", type=int, default=2)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    ap.add_argument("--threads", type=int, default=2, help="threads (shard tasks at once) per worker")
    ap.add_argument("--shard", type=int, default=50, help="items (calls) per shard task")
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--port", type=int, default=18865)
    args = ap.parse_args()
    n_scen = args.calls // args.models
    calls = n_scen * args.models
    limit = args.models * args.rpm / 60.0
    print(f"limits benchmark: {calls} calls to {args.models} models, R = {args.rpm:g} requests/minute per model "
          f"(emulator and run spec), {args.workers} Dask workers x {args.threads} threads, shards of {args.shard}, "
          f"{os.cpu_count()} cores", flush=True)
    tr = {"kind": "dask", "dask_workers": args.workers, "max_workers": args.workers * args.threads}
    with scratch_dir("limits") as tmp:
        spec = write_spec(tmp, args.port, args.models, args.rpm, 32 * args.models, args.shard, task_runner=tr)
        proc = start_emulator(args.port, spec, {"latency_ms": args.latency_ms, "rpm": {"sim-bench-*": args.rpm}})
        server = share_prefect_server()
        try:
            secs, out = run_dask_stage(spec, n_scen)
            st = emu(args.port, "/_emulator/stats")
        finally:
            proc.terminate()
            proc.wait()
            if server is not None:
                server.stop()
        n, window = ledger_window(tmp / "wh")
        workers = per_worker(tmp / "wh")
    share_429 = st["served_429"] / max(1, st["requests"])
    print(f"\n{'measurement':<56} {'value':>10} {'goal':>9}")
    print("-" * 77)
    print(f"{'limit R, all models (calls/s)':<56} {limit:>10.2f}")
    print(f"{'limit share per worker (limit_share)':<56} {out['share']:>10d}")
    print(f"{'combined, over the stage: ' + f'{secs:.1f} s (calls/s)':<56} {calls / secs:>10.2f}")
    print(f"{'  / R':<56} {calls / secs / limit:>10.3f}")
    print(f"{'combined, first call to last reply: ' + f'{window:.1f} s (calls/s)':<56} {n / window:>10.2f}")
    print(f"{'  / R':<56} {n / window / limit:>10.3f} {'>= 0.90':>9}")
    print(f"{'requests answered 429':<56} {100 * share_429:>9.2f}% {'<= 1%':>9}")
    print(f"{'requests the emulator served':<56} {st['requests']:>10d}")
    print(f"{'keys completed more than once':<56} {st['keys_completed_more_than_once']:>10d} {'0':>9}")
    print(f"{'calls per worker process (ledger writer pid: calls)':<56} "
          f"{', '.join(f'{p}: {c}' for p, c in workers):>10}")
    ok = n / window / limit >= 0.9 and share_429 <= 0.01 and st["keys_completed_more_than_once"] == 0
    print("\nall goals met" if ok else "\nsome goal missed")


if __name__ == "__main__":
    main()
