"""Limits shared across processes: the responses stage on two Dask worker processes against an emulator that
answers 429 beyond R requests per minute per model, with the run spec's limit at the same R. Each worker's engine
takes half of every model's rpm (``limit_share``), so together they stay within R: at most 1% of requests meet a
429, both workers send calls, and no key is completed twice. The achieved rate is a performance figure and lives
in ``bench/limits.py`` (this test runs that benchmark, smaller)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_two_dask_workers_together_stay_within_each_models_rpm(tmp_path):
    from tests.test_crash_torture import _free_port

    r = subprocess.run([sys.executable, "bench/limits.py", "--calls", "800", "--rpm", "1200", "--shard", "50",
                        "--port", str(_free_port())], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    share = float(re.search(r"requests answered 429\s+([\d.]+)%", out).group(1))
    dup = int(re.search(r"keys completed more than once\s+(\d+)", out).group(1))
    split = re.search(r"calls per worker process \(ledger writer pid: calls\)\s+(.*)", out).group(1)
    per_worker = [int(n) for n in re.findall(r":\s*(\d+)", split)]
    served = int(re.search(r"requests the emulator served\s+(\d+)", out).group(1))
    print(out)
    assert share <= 1.0, out
    assert dup == 0
    assert len(per_worker) >= 2 and min(per_worker) > 0, f"one worker sent everything: {split}"
    assert served >= 800
