"""The parent flow: one subflow per stage, in DAG order, then the report.

``stress_test(spec_path)`` validates the spec, runs the preflight checks and the budget gate
before anything is sent, starts the loopback emulator in-process when the spec asks for it,
records the run, and runs every stage (each one is skipped when its artefact already exists).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from specstress.context import RunContext
from specstress.errors import BudgetExceeded
from specstress.flows import planning
from specstress.flows.runner import artifact_key, dask_cluster_for, reuse_stage
from specstress.flows.stages import overrides_source, parent_run_name, run_stage_subflow
from specstress.providers.engine import close_engine
from specstress.providers.services import run_services
from specstress.secrets import redact
from specstress.tasks.registry import active_stages, artefact_ids
from specstress.tasks.report import write_report
from specstress.warehouse.ledger import Ledger
from specstress.warehouse.store import Warehouse, utcnow


@flow(name="stress-test", flow_run_name=parent_run_name, task_runner=ThreadPoolTaskRunner(max_workers=4))
def stress_test(spec_path: str, overrides: dict[str, Any] | None = None, run_id: str | None = None,
                emulator_url: str | None = None, quiet: bool = False, resend_errors: bool = False) -> dict[str, Any]:
    """Run a whole stress test from a run spec; returns a summary (paths, stages, costs)."""
    ctx = RunContext.create(spec_path, overrides, run_id=run_id, emulator_url=emulator_url, quiet=quiet,
                            resend_errors=resend_errors, overrides_from=overrides_source())
    spec = ctx.spec
    wh = Warehouse(ctx.warehouse_root)
    warnings = planning.preflight(spec, ctx.emulator_url or "http://emulator.invalid")
    if not quiet:
        planning.print_warnings(warnings)
    ctx.spent_before = planning.spent_before(ctx)
    estimate = planning.check_budget(ctx, planning.plan(ctx))
    started = utcnow()
    ids = artefact_ids(spec)
    base_run = {"run_id": ctx.run_id, "name": spec.run_name, "spec_path": ctx.spec_path, "spec_hash": spec.spec_hash(),
                "started_at": started, "overrides_json": json.dumps(spec.effective_overrides(), default=str)}
    wh.record_run({**base_run, "status": "running", "seq": 0, "message": f"estimate ${estimate:.4f}"})
    results: list[dict[str, Any]] = []
    status, message, report_path = "failed", "", None
    t0 = time.monotonic()
    with run_services(spec, ctx.emulator_url, quiet) as services, dask_cluster_for(ctx):
        ctx.emulator_url = ctx.emulator_url or services.url
        try:
            for stage in active_stages(spec):
                if not quiet:
                    print(f"stage {stage.name}: starting", file=sys.stderr)
                existing = wh.lineage_row(ids[stage.name])
                # a stage already in the warehouse needs no subflow: resuming a long run costs seconds, not one
                # Prefect subflow per finished stage
                res = (reuse_stage(ctx, stage, ids[stage.name], existing) if existing is not None
                       else run_stage_subflow(stage.name, ctx))
                results.append(res)
                services.after_stage(stage.name, lambda n=stage.name: wh.read_artefact(n, ids[n]))
                if not quiet:
                    print(_stage_line(res), file=sys.stderr)
            report_path = write_report(ctx, ids, results)
            status, message = "completed", "ok"
        except BudgetExceeded as exc:
            status, message = "stopped", str(exc)
            raise
        except Exception as exc:
            status, message = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            close_engine(ctx.run_id)
            calls_sent = sum((r.get("calls") or {}).get("sent", 0) for r in results)
            hits = sum((r.get("calls") or {}).get("cache_hits", 0) for r in results)
            ledger = Ledger(wh)
            spent = ledger.spent_by_run(ctx.run_id)  # every process's calls, Dask workers included
            calls_sent = ledger.calls_by_run(ctx.run_id)
            done = {r["stage"]: r["artefact_id"] for r in results}
            wh.record_run({**base_run, "status": status, "seq": 1, "finished_at": utcnow(),
                           "artefacts_json": json.dumps(done), "calls_sent": calls_sent, "cache_hits": hits,
                           "spent_usd": spent, "message": redact(message)[:2000], "report_path": report_path})
            _publish_summary(ctx, results, status, calls_sent, hits, spent, report_path, time.monotonic() - t0)
            try:
                Ledger(wh).compact(min_files=32)
            except Exception:  # noqa: BLE001
                pass
    summary = {
        "run_id": ctx.run_id, "name": spec.run_name, "status": status, "warehouse": ctx.warehouse_root,
        "report": report_path, "seconds": round(time.monotonic() - t0, 2), "spent_usd": round(spent, 6),
        "calls_sent": calls_sent, "cache_hits": hits,
        "stages": [{k: r[k] for k in ("stage", "status", "rows", "artefact_id")} for r in results],
        "built": [r["stage"] for r in results if r["status"] == "built"],
    }
    summary.update(services.stats())  # e.g. the emulator's counters, when the run started one
    try:  # say where the results are in the flow run's log too (a worker shows no CLI output)
        from prefect import get_run_logger

        get_run_logger().info("run %s %s: warehouse %s, report %s (query it with --run %s)", ctx.run_id, status,
                              ctx.warehouse_root, report_path, spec.run_name)
    except Exception:  # noqa: BLE001
        pass
    return summary


def _stage_line(res: dict[str, Any]) -> str:
    calls = res.get("calls") or {}
    extra = ""
    if calls:
        extra = (f", {calls['calls']} calls ({calls['cache_hits']} cached, {calls['retries']} retries, "
                 f"${calls['cost_usd']:.4f})")
    return f"stage {res['stage']}: {res['status']}, {res['rows']} rows{extra} [{res.get('seconds', 0)}s]"


def summary_markdown(ctx: RunContext, results: list[dict[str, Any]], status: str, calls_sent: int, cache_hits: int,
                     spent_usd: float, report_path: str | None, seconds: float) -> str:
    """The parent run's summary artifact: stages built or reused, calls, cost, where the results are.
    Holds no API key (keys live only in the environment) and goes through ``redact`` all the same."""
    spec = ctx.spec
    built = [r["stage"] for r in results if r["status"] == "built"]
    reused = [r["stage"] for r in results if r["status"] == "reused"]
    overrides = spec.effective_overrides()
    lines = [f"## {spec.run_name}: {status}", "",
             f"- run id: `{ctx.run_id}` (query it with `specstress sql ... --run {spec.run_name}`)",
             f"- run spec: `{ctx.spec_path}`",
             "- overrides: " + (", ".join(f"`{k}={json.dumps(v, default=str)}`" for k, v in overrides.items())
                                or "none"),
             f"- stages: {len(built)} built, {len(reused)} reused from the warehouse"
             + (f", {len(results)} of them done" if status != "completed" else ""),
             f"- calls sent: {calls_sent}, answered from the ledger: {cache_hits}",
             f"- cost: ${spent_usd:.4f} (budget ${spec.budget_usd:.2f})",
             f"- wall time: {seconds:.1f} s",
             f"- warehouse: `{ctx.warehouse_root}`",
             f"- report: `{report_path}`" if report_path else "- report: not written",
             "", "| stage | status | rows | calls | from the ledger | cost |", "|---|---|---|---|---|---|"]
    for r in results:
        c = r.get("calls") or {}
        cost = f"${c['cost_usd']:.4f}" if c else ""
        lines.append(f"| {r['stage']} | {r['status']} | {r.get('rows', 0)} | {c.get('calls', '')} | "
                     f"{c.get('cache_hits', '')} | {cost} |")
    return redact("\n".join(lines))


def _publish_summary(ctx: RunContext, results: list[dict[str, Any]], status: str, calls_sent: int, cache_hits: int,
                     spent_usd: float, report_path: str | None, seconds: float) -> None:
    """Best effort: an artifact never fails the run."""
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(
            markdown=summary_markdown(ctx, results, status, calls_sent, cache_hits, spent_usd, report_path, seconds),
            key=artifact_key(ctx.spec.run_name, "summary"), description=f"{ctx.spec.run_name}: run summary")
    except Exception:  # noqa: BLE001
        pass
