"""Run every benchmark, one after the other: `make bench` (add --quick for a smoke run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("fanout", ["fanout.py"], ["--calls", "2000", "--limited-calls", "2000"]),
    ("limits", ["limits.py"], ["--calls", "600"]),
    ("kcenter", ["kcenter.py"], ["--quick"]),
    ("analytics", ["analytics.py"], ["--quick"]),
    ("resume", ["resume.py"], ["--quick"]),
    ("uncertainty", ["uncertainty.py"], ["--quick"]),
    ("rerun", ["rerun.py"], []),
    ("explorer", ["explorer.py"], ["--quick"]),
]


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    failed = []
    for name, script, quick_args in BENCHES:
        print(f"\n===== {name} =====", flush=True)
        cmd = [sys.executable, str(HERE / script[0])] + (quick_args if quick else [])
        if subprocess.run(cmd).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
