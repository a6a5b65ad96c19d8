"""Benchmark: "plan the remaining work" against a paper-scale call ledger.

    python bench/resume.py            # 4,000,000 ledger rows, 4,000,000 planned keys (3.8M already final)
    python bench/resume.py --quick    # 400,000 / 400,000

remaining = planned keys - keys with a final outcome. Timed through the real code path
(``Ledger.remaining``: an anti-join in DuckDB that returns only the remaining keys) and, in the same
run, a naive baseline (every final ledger key into a Python set via pyarrow, then a set difference)
and ``Ledger.final_keys`` (a semi-join that returns every final key, which planning used before). Each runs in a fresh subprocess, so its peak RSS (VmHWM)
is its own; the planned keys are loaded before timing (a real plan holds them already). The same
ledger rows are written in several layouts (``--layouts``): compacted (40 parts), fragmented (400)
and never compacted (parts of 250 rows as the Ledger flushes them: 16,000 at 4M rows). Computing the call
keys themselves (sha256 of canonical JSON via ``CallRequest.key``) is timed separately.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import current_rss_mb, peak_rss_mb, scratch_dir  # noqa: E402

from specstress.warehouse.ledger import LEDGER_SCHEMA  # noqa: E402

FINAL_SPLIT = [("ok", 0.965), ("refusal", 0.02), ("parse_error", 0.008), ("content_filter", 0.004),
               ("truncated", 0.002), ("permanent_error", 0.001)]
MODELS = [("anthropic", "claude-opus-4"), ("anthropic", "claude-sonnet-4"), ("openai", "gpt-4.1"), ("openai", "o3"),
          ("google", "gemini-2.5-pro"), ("xai", "grok-4")]
APPROACHES = ("remaining", "naive_set", "final_keys")






def load_plan(path: str) -> list[str]:
    """The planned keys as a list of Python strings (what a real plan holds), read in batches."""
    keys: list[str] = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=250_000, columns=["key"]):
        keys.extend(batch.column(0).to_pylist())
    return keys


def sha_keys(start: int, stop: int) -> list[str]:
    return [hashlib.sha256(b"call-%d" % i).hexdigest() for i in range(start, stop)]


# --------------------------------------------------------------------------- synthetic ledger


def build(tmp: Path, n_planned: int, seed: int = 11) -> dict:
    """Keys 0..n_planned-1 are planned. 95% of them have a final row; 2.5% of the planned keys only a
    retryable_error row; 2.5% were never sent. Another 2.5% of rows are retryable errors of keys that
    later succeeded. So the ledger has n_planned rows: 95% final, 5% retryable_error."""
    rng = np.random.default_rng(seed)
    n_final = int(n_planned * 0.95)
    n_retry_open = int(n_planned * 0.025)
    n_retry_done = n_planned - n_final - n_retry_open
    keys = pa.array(sha_keys(0, n_planned))
    pq.write_table(pa.table({"key": keys}), tmp / "plan.parquet")

    idx = np.concatenate([np.arange(n_final), np.arange(n_final, n_final + n_retry_open),
                          rng.choice(n_final, n_retry_done, replace=False)])
    n = len(idx)
    final = np.zeros(n, dtype=bool)
    final[:n_final] = True
    names = np.array([o for o, _ in FINAL_SPLIT] + ["retryable_error"])
    outcome = np.full(n, len(FINAL_SPLIT))
    outcome[:n_final] = rng.choice(len(FINAL_SPLIT), n_final, p=[p for _, p in FINAL_SPLIT])
    ok = outcome == 0
    m = rng.integers(0, len(MODELS), n)
    provider = pa.array([p for p, _ in MODELS]).take(pa.array(m))
    model = pa.array([x for _, x in MODELS]).take(pa.array(m))
    str_idx = pa.array(idx).cast(pa.string())
    request_json = pc.binary_join_element_wise(
        '{"endpoint":"default","kind":"chat","messages":[{"content":"Scenario ', str_idx,
        ': a user asks for help with a decision that trades off two values ...","role":"user"}],'
        '"model":"', model, '","params":{"max_tokens":700,"temperature":0.7},"provider":"', provider,
        '","sample_index":0,"schema":null,"system":null,"template_hash":null}', "")
    text = pc.if_else(pa.array(ok), pc.binary_join_element_wise("I would weigh both sides of case ", str_idx,
                                                               " and suggest a middle path ...", ""), None)
    err = pc.if_else(pa.array(final), None, pa.scalar("HTTP 529 overloaded"))
    start = np.datetime64("2025-06-01T00:00:00", "us") + np.sort(rng.integers(0, 86_400 * 10**6 * 20, n))
    latency = rng.gamma(2.0, 4.0, n)
    tin = rng.integers(150, 900, n)
    tout = np.where(ok, rng.integers(100, 700, n), 0)
    table = pa.table({
        "key": keys.take(pa.array(idx)),
        "run_id": pa.array(np.full(n, "run-20250601-paper")),
        "purpose": pa.array(np.full(n, "responses")),
        "provider": provider, "model": model, "model_id": model,
        "endpoint": pa.array(np.full(n, "default")), "served_model": model,
        "template_hash": pa.nulls(n, pa.string()), "sample_index": pa.array(np.zeros(n, dtype=np.int32)),
        "request_json": request_json, "outcome": pa.array(names).take(pa.array(outcome)),
        "final": pa.array(final), "text": text, "parsed_json": pa.nulls(n, pa.string()),
        "vector": pa.nulls(n, pa.list_(pa.float32())), "error": err,
        "input_tokens": pa.array(tin), "cached_input_tokens": pa.array(np.zeros(n, dtype=np.int64)),
        "output_tokens": pa.array(tout), "reasoning_tokens": pa.array(np.zeros(n, dtype=np.int64)),
        "cost_usd": pa.array(tin * 3e-6 + tout * 1.5e-5), "latency_s": pa.array(latency),
        "attempts": pa.array(np.where(final, 1, 3).astype(np.int32)), "wait_s": pa.array(np.zeros(n)),
        "http_statuses": pa.array(np.where(final, "200", "529,529,529")), "batch_id": pa.nulls(n, pa.string()),
        "started_at": pa.array(start).cast(pa.timestamp("us", tz="UTC")),
        "finished_at": pa.array(start + (latency * 1e6).astype("timedelta64[us]")).cast(pa.timestamp("us", tz="UTC")),
    }, schema=LEDGER_SCHEMA)
    # the order calls ended in: retried keys' errors come before their final rows often enough; shuffle
    table = table.take(pa.array(rng.permutation(n)))
    return {"table": table, "planned": n_planned, "expected_remaining": n_planned - n_final}


def write_layout(table: pa.Table, root: Path, parts: int) -> int:
    """Write the ledger as ``parts`` parts, named as the Ledger names them."""
    folder = root / "ledger"
    folder.mkdir(parents=True)
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    size = 0
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        path = folder / f"part-20250601T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}-bench-{i:06d}.parquet"
        pq.write_table(table.slice(a, b - a), path, compression="zstd")
        size += path.stat().st_size
    return size


# --------------------------------------------------------------------------- approaches (worker side)


def remaining_final_keys(root: str, planned: list[str]) -> list[str]:
    """The previous path: every final key back to Python as a set."""
    from specstress.warehouse.ledger import Ledger
    from specstress.warehouse.store import Warehouse

    found = Ledger(Warehouse(root)).final_keys(planned)
    return [k for k in planned if k not in found]


def remaining_naive_set(root: str, planned: list[str]) -> list[str]:
    """Baseline: every final key into a Python set, then a set difference."""
    files = sorted(str(p) for p in Path(root, "ledger").glob("part-*.parquet"))
    finals: set[str] = set()
    for f in files:
        t = pq.read_table(f, columns=["key", "final"])
        finals.update(t.filter(t.column("final")).column("key").to_pylist())
    return [k for k in planned if k not in finals]


def remaining_ledger(root: str, planned: list[str]) -> list[str]:
    """The real code path: ``Ledger.remaining`` (what ``specstress plan`` uses)."""
    from specstress.warehouse.ledger import Ledger
    from specstress.warehouse.store import Warehouse

    return Ledger(Warehouse(root)).remaining(planned)


REMAINING = {"remaining": remaining_ledger, "naive_set": remaining_naive_set, "final_keys": remaining_final_keys}


def hash_requests(n: int) -> tuple[list[str], int]:
    """n response-stage requests, as ``make_request`` builds them, and their keys."""
    from specstress.domain import CallRequest

    params = {"max_tokens": 700, "temperature": 0.7}
    keys = []
    for i in range(n):
        m = MODELS[i % len(MODELS)]
        req = CallRequest(provider=m[0], model=m[1], model_id=m[1], purpose="responses", params=params,
                          messages=[{"role": "user", "content": f"Scenario {i}: I manage a small team and one "
                                     "colleague keeps missing deadlines because of a family illness. Should I "
                                     "report it to my manager, as company policy says, or cover for them quietly "
                                     "for a few more weeks? I care about fairness to the rest of the team too."}])
        keys.append(req.key)
    return keys, len(set(keys))


def worker(args: argparse.Namespace) -> None:
    out: dict = {}
    if args.worker == "hash":
        import specstress.domain  # noqa: F401

        base = current_rss_mb()
        t0 = time.perf_counter()
        keys, distinct = hash_requests(args.n)
        out = {"seconds": time.perf_counter() - t0, "count": len(keys), "distinct": distinct}
    else:
        import duckdb  # noqa: F401

        import specstress.warehouse.ledger  # noqa: F401

        planned = load_plan(args.plan)
        base = current_rss_mb()
        t0 = time.perf_counter()
        remaining = REMAINING[args.worker](args.root, planned)
        out = {"seconds": time.perf_counter() - t0, "count": len(remaining),
               "digest": hashlib.sha256("\n".join(sorted(remaining)).encode()).hexdigest()[:16]}
    out.update(base_rss_mb=base, peak_rss_mb=peak_rss_mb())
    Path(args.result).write_text(json.dumps(out))


def run_worker(tmp: Path, mode: str, **kw: str) -> dict:
    result = tmp / f"result-{mode}-{time.monotonic_ns()}.json"
    cmd = [sys.executable, __file__, "--worker", mode, "--result", str(result)]
    for k, v in kw.items():
        cmd += [f"--{k}", str(v)]
    subprocess.run(cmd, check=True)
    return json.loads(result.read_text())


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=4_000_000, help="planned keys = ledger rows")
    ap.add_argument("--quick", action="store_true", help="400,000 keys")
    ap.add_argument("--layouts", default="compacted=40,fragmented=400,unflushed=rows:250",
                    help="name=PARTS or name=rows:ROWS_PER_PART,... ledger layouts to test (the Ledger flushes "
                         "every 250 rows, so a never-compacted ledger has rows/250 parts)")
    ap.add_argument("--hash", type=int, default=None, help="requests to hash (default: --keys)")
    ap.add_argument("--skip", default="", help="comma-separated approaches to skip")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--tmp", default=None, help="parent dir for the temp warehouses")
    ap.add_argument("--worker", choices=[*APPROACHES, "hash"], help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--plan", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    n = 400_000 if args.quick else args.keys
    n_hash = args.hash if args.hash is not None else n

    import duckdb

    print(f"cores: {os.cpu_count()}  duckdb {duckdb.__version__}  pyarrow {pa.__version__}")
    with scratch_dir("resume", keep=args.keep, parent=args.tmp) as tmp:
        t0 = time.perf_counter()
        data = build(tmp, n)
        layouts = {}
        for spec in args.layouts.split(","):
            name, value = spec.split("=", 1)
            parts = -(-data["table"].num_rows // int(value[5:])) if value.startswith("rows:") else int(value)
            root = tmp / name
            size = write_layout(data["table"], root, parts)
            layouts[name] = (root, parts, size)
        rows = data["table"].num_rows
        finals = int(pc.sum(data["table"].column("final")).as_py())
        del data["table"]
        print(f"built a ledger of {rows:,} rows ({finals / rows:.0%} final, {rows - finals:,} retryable_error), "
              f"{n:,} planned keys, {data['expected_remaining']:,} expected remaining, in {time.perf_counter() - t0:.1f}s")
        for name, (_, parts, size) in layouts.items():
            print(f"  {name:<10} {parts:>5} parts, {size / 2**20:,.0f} MiB")

        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        skip = set(filter(None, args.skip.split(",")))
        results: dict[tuple[str, str], dict] = {}
        for name, (root, _, _) in layouts.items():
            for approach in APPROACHES:
                if approach in skip:
                    continue
                results[(name, approach)] = run_worker(tmp, approach, root=str(root), plan=str(tmp / "plan.parquet"))

        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print()
        print(f"{'layout':<12}{'approach':<25}{'seconds':>9}{'naive/this':>12}{'peak RSS':>11}{'plan held':>11}"
              f"{'remaining':>11}  agrees")
        expected = data["expected_remaining"]
        all_agree = True
        for (name, approach), r in results.items():
            naive = results.get((name, "naive_set"))
            ratio = f"{naive['seconds'] / r['seconds']:.2f}x" if naive else "-"
            agree = r["count"] == expected and (naive is None or r["digest"] == naive["digest"])
            all_agree &= agree
            label = {"remaining": "Ledger.remaining", "naive_set": "naive Python set",
                     "final_keys": "Ledger.final_keys (old)"}[approach]
            print(f"{name:<12}{label:<25}{r['seconds']:>9.2f}{ratio:>12}{r['peak_rss_mb']:>8.0f} MB"
                  f"{r['base_rss_mb']:>8.0f} MB{r['count']:>11,}  {'yes' if agree else 'NO'}")
        print("(each row: a fresh process; plan held = its RSS with the planned keys loaded, before timing; "
              "peak RSS = its high-water mark, plan included)")
        print(f"remaining counts {'agree' if all_agree else 'DIFFER'} (expected {expected:,})")
        worst = max((r["seconds"] for (_, a), r in results.items() if a == "remaining"), default=None)
        if worst is not None:
            print(f"goal (Ledger.remaining path <= 30 s at this size): {'MET' if worst <= 30 else 'NOT MET'} "
                  f"(slowest layout {worst:.1f} s)" + ("" if n == 4_000_000 else f"  [note: {n:,} keys, not 4M]"))

        if n_hash:
            h = run_worker(tmp, "hash", n=str(n_hash))
            print()
            print(f"computing call keys: {h['count']:,} CallRequest(...).key (sha256 of canonical JSON) in "
                  f"{h['seconds']:.1f} s = {h['seconds'] / h['count'] * 1e6:.1f} us/key "
                  f"({h['distinct']:,} distinct), peak RSS {h['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
