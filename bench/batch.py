"""Batch mode under kill -9: N calls (default 100,000) through the emulator's batch APIs across the three
providers (OpenAI Batch files, Anthropic Message Batches, Gemini batches, each through its real SDK), with the
worker killed with SIGKILL ``--kills`` times while its batches are pending and resumed each time.

The worker is the real engine and ledger (no Prefect): it submits every call (``Engine.presubmit``), then waits
for them (``run_calls``). Goals: every key completed exactly once by the emulator (its stats), nothing lost (every
key final in the ledger), and resume overhead under 10 s per restart (a resumed worker's start until it is
waiting again on the batches it reattached to).

    python bench/batch.py                 # 100,000 calls, 3 kills
    python bench/batch.py --calls 6000    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import scratch_dir  # noqa: E402

DEMO = ROOT / "specs" / "runs" / "demo.yaml"
MODELS = ("guardian", "pragmatist", "individualist")   # openai, anthropic, google panel models of the demo


def _requests(n: int) -> list:
    from specstress.domain import CallRequest
    from specstress.runspec import load_run_spec

    spec = load_run_spec(DEMO)
    out = []
    for i in range(n):
        entry = spec.model(MODELS[i % len(MODELS)])
        out.append(CallRequest(provider=entry.provider, model=entry.model, model_id=entry.id, endpoint="emulator",
                               system="You answer briefly.", params={"max_tokens": 64}, purpose="bench",
                               messages=[{"role": "user", "content": f"Question {i}: which matters more here?"}]))
    return out


def worker(args: argparse.Namespace) -> None:
    """One (re)started run: reattach or submit, report when waiting, then wait for every answer."""
    t0 = time.monotonic()
    from specstress.context import RunContext
    from specstress.providers.engine import Engine

    ctx = RunContext.create(str(DEMO), {"warehouse": args.warehouse, "batch.mode": "batch", "batch.poll_s": 0.5,
                                        "batch.max_requests": args.batch_size, "budget_usd": 1000.0},
                            emulator_url=args.url, quiet=True)
    engine = Engine(ctx)
    reqs = _requests(args.calls)
    try:
        submitted = engine.presubmit(reqs, "bench")
        print(json.dumps({"event": "waiting", "after_s": round(time.monotonic() - t0, 3), "submitted": submitted,
                          "batches": engine.batches.submitted_batches}), flush=True)
        out = engine.run_calls(reqs, "bench")
        bad = [r for r in out if not r.final]
        print(json.dumps({"event": "done", "after_s": round(time.monotonic() - t0, 3), "not_final": len(bad)}),
              flush=True)
    finally:
        engine.close()


def _stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=30) as fh:
        return json.loads(fh.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--delay", type=float, default=20.0, help="emulator batch_delay_s")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--warehouse", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    from tests.conftest import make_emulator

    emu = make_emulator().start()
    emu.set_faults(emu.state.faults.model_copy(update={"batch_delay_s": args.delay}))
    with scratch_dir("batch") as tmp:
        base = [sys.executable, str(Path(__file__).resolve()), "--worker", "--calls", str(args.calls),
                "--batch-size", str(args.batch_size), "--warehouse", str(tmp / "wh"), "--url", emu.url]
        overheads, first_wait = [], None
        t_all = time.monotonic()
        for attempt in range(args.kills + 1):
            started = time.monotonic()
            proc = subprocess.Popen(base, stdout=subprocess.PIPE, text=True, start_new_session=True)
            line = json.loads(proc.stdout.readline() or "{}")
            waiting_after = time.monotonic() - started
            if attempt == 0:
                first_wait = waiting_after
            else:
                overheads.append(waiting_after)
            print(f"start {attempt}: waiting after {waiting_after:.2f} s (submitted {line.get('submitted')} keys in "
                  f"{line.get('batches')} new batches)", flush=True)
            if attempt < args.kills:
                time.sleep(min(2.0, args.delay / 4))
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                print(f"  killed with SIGKILL while {_stats(emu.url).get('batches')} batches were pending", flush=True)
            else:
                done = json.loads(proc.stdout.readline() or "{}")
                proc.wait()
                print(f"  finished: {done}", flush=True)
        wall = time.monotonic() - t_all
        st = _stats(emu.url)
        from specstress.warehouse.ledger import Ledger
        from specstress.warehouse.store import Warehouse

        keys = [r.key for r in _requests(args.calls)]
        final = Ledger(Warehouse(str(tmp / "wh"))).final_keys(keys)
    emu.stop()
    print()
    print(f"calls: {args.calls:,} across openai / anthropic / google batch APIs; kills: {args.kills}; wall {wall:.1f} s")
    print(f"emulator: {st['batches']} batches, {st['batch_items_submitted']:,} items submitted, "
          f"{st['keys_submitted_more_than_once']} keys submitted twice, {st['completed_keys']:,} keys completed, "
          f"max completions per key {st['max_completions_per_key']}")
    print(f"ledger: {len(final):,} of {len(keys):,} keys final (lost: {len(keys) - len(final)})")
    print(f"first start until waiting: {first_wait:.2f} s; resume overhead per restart: "
          + ", ".join(f"{o:.2f} s" for o in overheads)
          + f" (goal < 10 s each: {'met' if overheads and max(overheads) < 10 else 'MISSED'})")
    ok = (st["max_completions_per_key"] == 1 and st["keys_submitted_more_than_once"] == 0 and len(final) == len(keys))
    print("exactly once, nothing lost:", "met" if ok else "MISSED")


if __name__ == "__main__":
    main()
