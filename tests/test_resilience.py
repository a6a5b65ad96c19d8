"""Runs that fail, stop and resume: Prefect shard retries re-send only unfinished calls, the
budget gate refuses before anything is sent, a run stops cleanly when the next shard would cross
the budget and resumes without paying twice, the cost plan adds up, and keys stay off disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from specstress.context import RunContext
from specstress.errors import BudgetExceeded
from specstress.warehouse import views
from specstress.warehouse.store import Warehouse
from tests.conftest import DEMO, make_emulator

SMALL = {"pairs.count": 8}


@pytest.mark.slow
def test_shard_task_retry_resends_only_unfinished_calls(prefect_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    from specstress.flows.stress_test import stress_test

    over = {**SMALL, "warehouse": str(tmp_path), "name": "retrytest",
            "shards": {"size": 5000, "task_retries": 3, "retry_delay_s": 0.5},
            "retry": {"max_attempts": 2, "max_call_seconds": 30, "request_timeout_s": 5, "backoff_base_s": 0.01,
                      "backoff_max_s": 0.02},
            "emulator.faults": {"outages": [{"model": "sim-guardian", "status": 503, "requests": 30}]}}
    emu = make_emulator(DEMO, **over).start()
    try:
        summary = stress_test(str(DEMO), over, emulator_url=emu.url, quiet=True)
        assert summary["status"] == "completed"
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(task_run_filter=TaskRunFilter(
                name=TaskRunFilterName(any_=["responses-shard-0"])))
        assert runs, "the responses shard task run is recorded"
        assert max(r.run_count for r in runs) > 1, [(r.name, r.run_count, r.state_name) for r in runs]
        stats = emu.stats()
        assert stats["max_completions_per_key"] == 1
        n = views.query(str(tmp_path), "select count(*) as n from responses where model_id = 'scholar'",
                        summary["run_id"]).to_pylist()[0]["n"]
        assert stats["by_model"]["sim-scholar"] == n  # finished calls were not re-sent by the retry
        failed_first = views.query(str(tmp_path), """select count(*) as n from call_log
            where model_id = 'guardian' and not final""", summary["run_id"]).to_pylist()[0]["n"]
        assert failed_first > 0  # some guardian calls ended unfinished in the first attempt
    finally:
        emu.stop()


@pytest.mark.slow
def test_plan_arithmetic_and_exact_ledger_hits(prefect_server, tmp_path):
    from specstress.domain import Usage
    from specstress.flows import planning
    from specstress.flows.stress_test import stress_test
    from specstress.prices import PriceTable

    over = {**SMALL, "warehouse": str(tmp_path), "name": "plantest"}
    ctx = RunContext.create(DEMO, over)
    rows = planning.plan(ctx)
    prices = PriceTable.load(ctx.spec.resolve(ctx.spec.prices))
    assert rows
    for r in rows:
        p = prices.for_entry(ctx.spec.model(r.model_id))
        assert r.cost_usd == pytest.approx(p.cost(Usage(input_tokens=r.input_tokens, output_tokens=r.output_tokens)))
        assert r.remaining == r.calls and r.in_ledger == 0
    responses = [r for r in rows if r.stage == "responses"]
    assert {r.calls for r in responses} == {24}  # 8 pairs x 3 scenarios, per panel model
    assert planning.remaining_cost(rows) == pytest.approx(sum(r.cost_usd for r in rows))
    text = planning.format_plan(rows, ctx.spec)
    assert f"{planning.remaining_cost(rows):.2f}" in text

    emu = make_emulator(DEMO, **over).start()
    try:
        stress_test(str(DEMO), over, emulator_url=emu.url, quiet=True)
    finally:
        emu.stop()
    done = planning.plan(RunContext.create(DEMO, over))
    assert all(r.remaining == 0 and r.in_ledger == r.calls and r.cost_usd == 0 for r in done)
    # Changing only the judge: classification is planned for real, nothing of it is in the ledger.
    changed = planning.plan(RunContext.create(DEMO, {**over, "roles.matcher": "judge-claude"}))
    cls = [r for r in changed if r.stage == "classifications"]
    assert len(cls) == 1 and cls[0].exact and cls[0].in_ledger == 0 and cls[0].remaining > 0
    assert all(r.remaining == 0 for r in changed if r.stage in ("scenarios", "responses", "spectra"))


def test_budget_refusal_exit_3_and_nothing_sent(tmp_path):
    emu = make_emulator().start()
    try:
        r = subprocess.run([sys.executable, "-m", "specstress", "run", str(DEMO), "--emulator-url", emu.url,
                            "--set", f"warehouse={tmp_path}", "--set", "budget_usd=0.01"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 3, r.stderr
        assert "over budget_usd $0.01" in r.stderr and "estimated at $" in r.stderr
        assert emu.stats()["requests"] == 0
    finally:
        emu.stop()


@pytest.mark.slow
def test_budget_stop_mid_run_then_resume_without_paying_twice(prefect_server, tmp_path):
    from specstress.flows import planning
    from specstress.flows.stress_test import stress_test

    over = {**SMALL, "warehouse": str(tmp_path), "name": "budgettest"}
    est = planning.remaining_cost(planning.plan(RunContext.create(DEMO, over)))
    tight = {**over, "budget_usd": round(est * 1.2, 4), "emulator.faults.usage_multiplier": 400}
    emu = make_emulator(DEMO, **tight).start()
    try:
        with pytest.raises(BudgetExceeded) as err:
            stress_test(str(DEMO), tight, emulator_url=emu.url, quiet=True)
        assert "raise budget_usd and run again" in str(err.value)
        wh = Warehouse(str(tmp_path))
        assert wh.latest_runs()[0]["status"] == "stopped"
        sent_first = emu.stats()["completed_keys"]
        assert sent_first > 0
        # more money, normal token counts: the run resumes where it stopped
        from specstress.emulator.config import Faults

        emu.set_faults(Faults())
        # resumed with another shard size: no part made from other items is reused, nothing is lost
        resumed = {**over, "budget_usd": 1000, "shards.size": 7}
        summary = stress_test(str(DEMO), resumed, emulator_url=emu.url, quiet=True)
        assert summary["status"] == "completed"
        assert summary["cache_hits"] > 0
        assert emu.stats()["max_completions_per_key"] == 1
        kept = views.query(str(tmp_path), "select count(*) as n from scenarios where kept").to_pylist()[0]["n"]
        n = views.query(str(tmp_path), "select count(*) as n, count(distinct scenario_id || model_id) as k "
                                       "from responses").to_pylist()[0]
        assert n["n"] == n["k"] == kept * 6
    finally:
        emu.stop()


def _scan(path: Path, needles: list[str]) -> list[str]:
    """Files under ``path`` whose bytes, or whose Parquet rows, contain any needle."""
    hits = []
    for f in path.rglob("*"):
        if not f.is_file():
            continue
        data = f.read_bytes()
        text = data.decode("utf-8", "ignore")
        if f.suffix == ".parquet":
            text += json.dumps(pq.read_table(f).to_pylist(), default=str)
        if any(n in text for n in needles):
            hits.append(str(f))
    return hits


@pytest.mark.slow
def test_canary_keys_never_reach_disk(tmp_path):
    canaries = {"OPENAI_API_KEY": "sk-canaryopenai" + "a" * 20, "ANTHROPIC_API_KEY": "sk-ant-canary" + "b" * 20,
                "GEMINI_API_KEY": "AIzaCanaryGemini" + "c" * 20, "XAI_API_KEY": "xai-canary" + "d" * 20}
    home = tmp_path / "prefect-home"
    env = {**os.environ, **canaries, "PREFECT_HOME": str(home)}
    wh = tmp_path / "wh"
    r = subprocess.run([sys.executable, "-m", "specstress", "run", str(DEMO), "--set", f"warehouse={wh}",
                        "--set", "pairs.count=8", "--set", "emulator.faults.echo_auth_rate=0.03"],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    needles = list(canaries.values())
    assert not any(n in r.stdout + r.stderr for n in needles)
    assert _scan(wh, needles) == []
    assert _scan(home, needles) == []  # the Prefect database: logs, artifacts, parameters
    errors = views.query(str(wh), "select count(*) as n from calls where error like '%[REDACTED]%'").to_pylist()[0]["n"]
    assert errors > 0  # the echoed credentials were there, and were scrubbed
