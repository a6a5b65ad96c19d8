"""Benchmark: a rerun of the finished demo against its first run, in one script.

    python bench/rerun.py

Both are `specstress run specs/runs/demo.yaml` in a fresh process on a scratch warehouse (the embedded
emulator, Prefect's temporary server). The rerun finds every artefact built and the report current, so it
starts neither Prefect nor the emulator. Goal: the rerun's wall time <= 10% of the first run's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import scratch_dir  # noqa: E402


def timed_run(warehouse: Path, *extra: str) -> float:
    cmd = [sys.executable, "-m", "specstress", "run", str(ROOT / "specs" / "runs" / "demo.yaml"), "--quiet",
           "--set", f"warehouse={warehouse}", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    with scratch_dir("rerun") as root:
        first = timed_run(root / "wh")
        rerun = timed_run(root / "wh")
        again = timed_run(root / "wh")
        print(f"first run {first:.1f} s; reruns {rerun:.2f} s and {again:.2f} s "
              f"(= {100 * rerun / first:.1f}% and {100 * again / first:.1f}% of the first; goal <= 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
