"""Running one stage: find it by id or build it (plan, shard, map tasks, commit), and publish
what it made and cost as Prefect artifacts."""

from __future__ import annotations

import json
import re
import sys
import time
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from specstress.context import RunContext
from specstress.errors import BudgetExceeded, FatalProviderError, SpecError
from specstress.hashing import short_id
from specstress.tasks.base import Inputs, Stage
from specstress.tasks.registry import input_ids, template_hashes_for
from specstress.warehouse.store import ArtefactLoader, Warehouse


def artifact_key(*parts: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:100]


def task_runner_for(ctx: RunContext) -> Any:
    spec = ctx.spec
    tr = spec.task_runner
    if tr.kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise SpecError("task_runner.kind is 'dask' but prefect-dask is not installed. Fix: "
                            "pip install 'specstress[dask]' (prefect-dask), or use kind: threads.") from exc
        address = tr.dask_address or ctx.dask_address
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": tr.dask_workers, "processes": True,
                                              "threads_per_worker": max(1, tr.max_workers // tr.dask_workers)})
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=tr.max_workers)


def _publish(ctx: RunContext, stage: Stage, result: dict[str, Any]) -> None:
    """A markdown and a table artifact per stage (best effort: never fails the stage)."""
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        spec = ctx.spec
        summary = result.get("summary") or {}
        lines = [f"### {stage.name} ({result['status']})", "",
                 f"- artefact: `{result['artefact_id']}`", f"- rows: {result.get('rows', 0)}"]
        calls = result.get("calls")
        if calls:
            lines += [f"- calls: {calls['calls']} ({calls['cache_hits']} from the ledger, {calls['sent']} sent)",
                      f"- retries: {calls['retries']}", f"- cost: ${calls['cost_usd']:.4f}",
                      f"- shards: {calls['shards']} ({calls['reused_shards']} reused)"]
        if summary:
            lines += ["", "```json", json.dumps(summary, indent=2, default=str)[:4000], "```"]
        key = artifact_key(spec.run_name, stage.name.replace("_", "-"))
        create_markdown_artifact(markdown="\n".join(lines), key=key,
                                 description=f"{spec.run_name}: {stage.name} summary")
        row = {"stage": stage.name, "status": result["status"], "rows": result.get("rows", 0),
               "artefact": result["artefact_id"]}
        if calls:
            row.update({k: calls[k] for k in ("calls", "cache_hits", "sent", "retries", "cost_usd", "shards")})
        create_table_artifact(table=[row], key=key + "-table", description=f"{spec.run_name}: {stage.name} numbers")
    except Exception:  # noqa: BLE001 - artifacts are a convenience
        pass


def reused_markdown(stage: str, result: dict[str, Any], lineage: dict[str, Any]) -> str:
    """The short note of a stage whose artefact was already in the warehouse."""
    made = lineage.get("created_at")
    by = lineage.get("run_id")
    return "\n".join([
        f"### {stage}: reused", "",
        f"Artefact `{result['artefact_id']}` ({result['rows']} rows) was already in the warehouse"
        + (f", built by run `{by}`" if by else "") + (f" at {made:%Y-%m-%d %H:%M:%S} UTC" if made else "")
        + ". Nothing was recomputed and no call was sent."])


def _publish_reused(ctx: RunContext, stage: Stage, result: dict[str, Any], lineage: dict[str, Any]) -> None:
    """Best effort, as :func:`_publish`: the stage's artifact key says it was reused this time."""
    try:
        from prefect.artifacts import create_markdown_artifact

        name = ctx.spec.run_name
        create_markdown_artifact(markdown=reused_markdown(stage.name, result, lineage),
                                 key=artifact_key(name, stage.name.replace("_", "-")),
                                 description=f"{name}: {stage.name} reused from the warehouse")
    except Exception:  # noqa: BLE001 - artifacts are a convenience
        pass


_WORKERS_AT: dict[str, int] = {}


def limit_share_for(ctx: RunContext) -> int:
    """How many processes send this run's calls at once, so that each takes its share of every model's limits
    (rpm, tpm, in flight): 1 with threads; under Dask the worker count, asked of the scheduler when the run uses
    an existing cluster, else ``task_runner.dask_workers``."""
    tr = ctx.spec.task_runner
    if tr.kind != "dask":
        return 1
    address = tr.dask_address or ctx.dask_address
    if not address:
        return tr.dask_workers
    if address not in _WORKERS_AT:
        try:
            from distributed import Client

            with Client(address, timeout=10) as client:
                _WORKERS_AT[address] = max(1, len(client.scheduler_info().get("workers", {})))
        except Exception as exc:  # noqa: BLE001 - the scheduler did not answer: assume the spec's worker count
            print(f"warning: could not count the Dask workers at {address} ({type(exc).__name__}); each worker "
                  f"takes 1/{tr.dask_workers} of the limits (task_runner.dask_workers)", file=sys.stderr)
            return tr.dask_workers
    return _WORKERS_AT[address]


@contextmanager
def dask_cluster_for(ctx: RunContext) -> Any:
    """One local Dask cluster for the whole run (rather than one per stage), when the spec asks for Dask
    without giving a cluster address."""
    tr = ctx.spec.task_runner
    if tr.kind != "dask" or tr.dask_address or ctx.dask_address:
        yield None
        return
    import logging

    from distributed import LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = LocalCluster(n_workers=tr.dask_workers, processes=True,
                           threads_per_worker=max(1, tr.max_workers // tr.dask_workers), dashboard_address=None)
    ctx.dask_address = cluster.scheduler_address
    try:
        yield cluster
    finally:
        ctx.dask_address = None
        cluster.close()


@contextmanager
def _progress(ctx: RunContext, stage: Stage, total: int) -> Any:
    state: dict[str, Any] = {"id": None}
    try:
        from prefect.artifacts import create_progress_artifact

        state["id"] = create_progress_artifact(
            progress=0.0, key=artifact_key(ctx.spec.run_name, stage.name.replace("_", "-"), "progress"),
            description=f"{ctx.spec.run_name}: {stage.name} shards done")
    except Exception:  # noqa: BLE001
        state["id"] = None

    def update(done: int) -> None:
        if state["id"] is None:
            return
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(artifact_id=state["id"], progress=100.0 * done / max(1, total))
        except Exception:  # noqa: BLE001
            pass

    yield update


def reuse_stage(ctx: RunContext, stage: Stage, aid: str, existing: dict[str, Any]) -> dict[str, Any]:
    """The summary of a stage whose artefact exists (and its 'reused' artifact in Prefect)."""
    reused = {"stage": stage.name, "artefact_id": aid, "status": "reused", "rows": existing["row_count"],
              "summary": json.loads(existing["summary_json"] or "{}"), "seconds": 0.0}
    _publish_reused(ctx, stage, reused, existing)
    return reused


def presubmit_batches(ctx: RunContext, stage: Stage, engine: Any, shards: list[list[dict[str, Any]]],
                      part_names: list[str], wh: Warehouse, aid: str) -> int:
    """When some of the stage's models run in batch mode, submit the first calls of every unfinished shard to
    the providers' batch APIs before any shard task runs: the batches then run together, and each shard task
    only waits for (or reattaches to) its batch. Without this, a thread pool of N would hold N batches at a time."""
    spec = ctx.spec
    if spec.batch.mode != "batch" or not any(spec.batched(m, stage.name) for m in stage.models_used(spec)):
        return 0
    reqs = []
    for chunk, part in zip(shards, part_names, strict=True):
        if not wh.part_exists(stage.name, aid, part):
            reqs.extend(stage.first_requests(ctx, chunk))
    n = engine.presubmit(reqs, stage.name)
    if n and not ctx.quiet:
        print(f"[{stage.name}] {n} calls submitted to provider batches; waiting for them "
              f"(polling every {spec.batch.poll_s:g} s)", file=sys.stderr)
    return n


def execute_stage(ctx: RunContext, stage: Stage, ids: dict[str, str]) -> dict[str, Any]:
    """Build ``stage``'s artefact unless it exists; returns a small summary dict."""
    from specstress.tasks.shard import compute_task, shard_task

    spec = ctx.spec
    wh = Warehouse(ctx.warehouse_root)
    aid = ids[stage.name]
    t0 = time.monotonic()
    existing = wh.lineage_row(aid)
    if existing is not None:
        return reuse_stage(ctx, stage, aid, existing)
    inputs = Inputs(input_ids(stage, ids, spec), ArtefactLoader(wh))
    for name, iid in inputs.ids.items():
        if not wh.has_artefact(iid):
            raise RuntimeError(f"stage {stage.name} needs the {name} artefact {iid}, which does not exist yet. "
                               f"Run the stages before {stage.name} first (or the whole stress-test flow).")
    calls_summary = None
    opts = dict(retries=spec.shards.task_retries, retry_delay_seconds=_delays(spec), retry_jitter_factor=0.5)
    if stage.kind == "calls":
        items = stage.plan(ctx, inputs)
        size = stage.shard_size(spec)
        shards = [items[i:i + size] for i in range(0, len(items), size)]
        plan_paths, part_names = [], []
        for i, chunk in enumerate(shards):
            # Plans and parts are named by their content: a resumed run with another shard size never
            # reuses a part made from different items.
            payload = [json.dumps(it, ensure_ascii=False, sort_keys=True) for it in chunk]
            tag = short_id(payload, 10)
            rel = ["plans", stage.name, aid, f"shard-{i:05d}-{tag}.parquet"]
            if not wh.exists(*rel):
                wh.write_table(rel, pa.table({"item": payload}))
            plan_paths.append(wh.path(*rel))
            part_names.append(wh.part_name(i, tag))
        ctx_dict = ctx.to_dict()
        from specstress.providers.engine import get_engine

        engine = get_engine(ctx)
        engine.expect(stage.name, round(len(items) * stage.calls_per_item))
        presubmit_batches(ctx, stage, engine, shards, part_names, wh, aid)
        runner_task = shard_task.with_options(**opts, task_run_name=f"{stage.name}-shard-{{shard_index}}")
        with _progress(ctx, stage, len(shards)) as update:
            futures = [runner_task.submit(stage.name, ctx_dict, aid, i, plan_paths[i], part_names[i])
                       for i in range(len(shards))]
            results, errors = [], []
            for done, fut in enumerate(futures, start=1):
                try:
                    results.append(fut.result())
                except (BudgetExceeded, FatalProviderError, SpecError):
                    _cancel(futures)
                    raise
                except Exception as exc:  # noqa: BLE001
                    errors.append(exc)
                update(done)
        engine.print_progress(force=True)
        if errors:
            raise errors[0]
        calls_summary = {
            "shards": len(shards), "reused_shards": sum(1 for r in results if r.get("reused")),
            "calls": sum(r["calls"] for r in results), "cache_hits": sum(r["cache_hits"] for r in results),
            "sent": sum(r["sent"] for r in results), "retries": sum(r["retries"] for r in results),
            "cost_usd": round(sum(r["cost_usd"] for r in results), 6),
            "worker_pids": sorted({r["pid"] for r in results if r.get("pid")}),
        }
        table_rows = None
        expected = part_names
        if not shards:  # an empty stage still gets one empty part
            wh.write_part(stage.name, aid, wh.part_name(0), stage.schema.empty_table() if stage.schema else pa.table({}))
            expected = [wh.part_name(0)]
        cols = list(stage.summary_columns) if stage.summary_columns else None
        summary = stage.summarize(wh.read_artefact(stage.name, aid, cols))
    else:
        out = compute_task.with_options(**opts, task_run_name=f"{stage.name}-compute")(
            stage.name, ctx.to_dict(), aid, inputs.ids)
        summary, table_rows, expected = out["summary"], out["rows"], [wh.part_name(0)]
    if calls_summary:
        summary = {**summary, "calls": calls_summary}
    row = wh.commit_artefact(artefact_id=aid, stage=stage.name, stage_version=stage.version, input_ids=list(inputs.ids.values()),
                             config=stage.config(spec), template_hashes=template_hashes_for(stage, spec), run_id=ctx.run_id,
                             summary=summary, expected_parts=expected)
    result = {"stage": stage.name, "artefact_id": aid, "status": "built", "rows": row["row_count"] if table_rows is None
              else table_rows, "summary": summary, "calls": calls_summary, "seconds": round(time.monotonic() - t0, 2)}
    _publish(ctx, stage, result)
    return result


def _delays(spec: Any) -> list[float]:
    base = spec.shards.retry_delay_s
    return [base * (2 ** i) for i in range(max(1, spec.shards.task_retries))]


def _cancel(futures: list[Any]) -> None:
    for f in futures:
        try:
            f.cancel()
        except Exception:  # noqa: BLE001
            pass
