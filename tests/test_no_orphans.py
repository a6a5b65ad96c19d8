"""No orphans: SIGKILL of `specstress run` leaves none of the processes it started (Prefect's temporary API
server, the Dask scheduler's workers and nannies) alive after 10 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from specstress.watchdog import _alive, descendants
from tests.conftest import DEMO, ROOT


def _cmdline(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog reads /proc")
def test_sigkill_of_a_run_leaves_no_child_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}   # Prefect's own temporary server
    env.update({"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "DO_NOT_TRACK": "1"})
    cmd = [sys.executable, "-m", "specstress", "run", str(DEMO), "--quiet",
           "--set", f"warehouse={tmp_path / 'wh'}", "--set", "task_runner.kind=dask",
           "--set", "task_runner.dask_workers=2", "--set", "emulator.faults.latency_ms=200"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen: dict[int, int] = {}
        deadline = time.monotonic() + 150
        # wait until the run has started Prefect's server and the Dask workers (and the watchdog)
        while time.monotonic() < deadline and proc.poll() is None:
            seen.update(descendants(proc.pid))
            cmdlines = [_cmdline(p) for p in seen]
            if any("uvicorn" in c for c in cmdlines) and sum("multiprocessing" in c or "dask" in c
                                                              for c in cmdlines) >= 2:
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(2)
        seen.update(descendants(proc.pid))
        assert any("uvicorn" in _cmdline(p) for p in seen), [_cmdline(p) for p in seen]
        assert len(seen) >= 4, [_cmdline(p) for p in seen]    # watchdog, server, at least two worker processes
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < 10 and any(_alive(p, s) for p, s in seen.items()):
            time.sleep(0.2)
        left = [(p, _cmdline(p)) for p, s in seen.items() if _alive(p, s)]
        assert not left, f"still running 10 s after SIGKILL: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p, s in list(seen.items()) if "seen" in locals() else []:
            if _alive(p, s):
                os.kill(p, signal.SIGKILL)
