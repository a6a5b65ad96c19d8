"""The Prefect tasks: one per shard of planned calls, one per computed artefact.

A shard task reads its planned items, turns them into calls, sends them through the engine (so
through the ledger: finished calls are never sent or paid again), and writes one Parquet part.
When some calls end without a final outcome it raises :class:`ShardIncomplete`; Prefect retries
the task with exponential backoff and jitter, and the retry re-sends only those calls. Budget
stops, fatal provider errors and spec errors are not retried.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task

from specstress.context import RunContext
from specstress.errors import BudgetExceeded, FatalProviderError, SpecError
from specstress.tasks.base import Inputs, Sender
from specstress.tasks.registry import stage_by_name
from specstress.warehouse.store import ArtefactLoader, Warehouse

NO_RETRY = (BudgetExceeded, FatalProviderError, SpecError)


def _exception_of(state: Any) -> BaseException | None:
    """The exception behind a failed state, for sync and async tasks alike.

    For async tasks ``state.result()`` hands back a coroutine instead of raising (see
    STACK.md), so the exception is read from ``state.data`` when needed.
    """
    try:
        res = state.result(raise_on_failure=False)
    except BaseException as exc:  # noqa: BLE001
        return exc
    if hasattr(res, "close") and hasattr(res, "send"):  # a coroutine
        res.close()
        res = None
    if isinstance(res, BaseException):
        return res
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    return None


def should_retry(task: Any, task_run: Any, state: Any) -> bool:
    exc = _exception_of(state)
    return not isinstance(exc, NO_RETRY)


def estimate_cost(ctx: RunContext, requests: list[Any], calls_factor: float = 1.0, stage: str | None = None) -> float:
    """Dollars a shard's calls are expected to cost, on the same basis as ``specstress plan``: prompt characters
    / 4 in, and the typical output (``max_tokens`` capped at 700) out; at the batch price where ``stage``'s calls
    to a model run in batch mode."""
    from specstress.domain import Usage
    from specstress.prices import TYPICAL_OUTPUT_TOKENS, PriceTable

    spec = ctx.spec
    prices = PriceTable.load(spec.resolve(spec.prices))
    total = 0.0
    for r in requests:
        p = prices.for_entry(spec.model(r.model_id))
        if p is None:
            continue
        out = min(int(r.params.get("max_tokens") or 512), TYPICAL_OUTPUT_TOKENS)
        batched = stage is not None and spec.batched(r.model_id, stage)
        total += p.cost(Usage(input_tokens=r.prompt_chars // 4, output_tokens=out), batch=batched)
    return total * calls_factor


def check_budget(ctx: RunContext, engine: Any, next_cost: float, stage: str) -> None:
    spent = ctx_spent(ctx, engine)
    budget = ctx.spec.budget_usd
    if spent + next_cost > budget:
        engine.flush()
        raise BudgetExceeded(
            f"stopping before the next {stage} shard: spent ${spent:.4f} of the ${budget:.2f} budget and the shard "
            f"could cost up to ${next_cost:.4f}. Everything finished is kept; raise budget_usd and run again to "
            "resume where this stopped.")


def ctx_spent(ctx: RunContext, engine: Any) -> float:
    return float(ctx.spent_before) + engine.ledger.spent_by_run(ctx.run_id)


@task(name="shard", retry_condition_fn=should_retry, persist_result=False)
def shard_task(stage_name: str, ctx_dict: dict[str, Any], artefact_id: str, shard_index: int, plan_path: str,
               part_name: str) -> dict[str, Any]:
    """Run one shard of a call stage and write its Parquet part (idempotent)."""

    from specstress.providers.engine import get_engine

    ctx = RunContext.from_dict(ctx_dict)
    stage = stage_by_name(stage_name)
    wh = Warehouse(ctx.warehouse_root)
    if wh.part_exists(stage_name, artefact_id, part_name):
        return {"shard": shard_index, "reused": True, "calls": 0, "cache_hits": 0, "sent": 0, "retries": 0,
                "cost_usd": 0.0, "rows": 0}
    items = [json.loads(x) for x in wh.read_table([plan_path]).column("item").to_pylist()]
    engine = get_engine(ctx)
    first = stage.first_requests(ctx, items)
    check_budget(ctx, engine, estimate_cost(ctx, first, stage.calls_per_item, stage_name), stage_name)
    t0 = time.monotonic()
    send = Sender(engine, stage_name)
    table: pa.Table = stage.run_shard(ctx, items, send)
    if stage.schema is not None:
        table = table.cast(stage.schema)
    engine.flush()  # the ledger holds the shard's calls before its part exists
    wh.write_part(stage_name, artefact_id, part_name, table)
    res = send.results
    sent = [r for r in res if not r.cached]
    return {
        "shard": shard_index, "reused": False, "rows": table.num_rows, "calls": len(res),
        "cache_hits": len(res) - len(sent), "sent": len(sent),
        "retries": sum(max(0, r.attempts - 1) for r in sent), "cost_usd": sum(r.cost_usd for r in sent),
        "seconds": round(time.monotonic() - t0, 3), "pid": os.getpid(),
    }


@task(name="compute", retry_condition_fn=should_retry, persist_result=False)
def compute_task(stage_name: str, ctx_dict: dict[str, Any], artefact_id: str, input_ids: dict[str, str]) -> dict[str, Any]:
    """Compute a whole artefact (no sharding) and write it as one part."""

    ctx = RunContext.from_dict(ctx_dict)
    stage = stage_by_name(stage_name)
    wh = Warehouse(ctx.warehouse_root)
    part = wh.part_name(0)
    if not wh.part_exists(stage_name, artefact_id, part):
        table = stage.compute(ctx, Inputs(input_ids, ArtefactLoader(wh)))
        if stage.schema is not None:
            table = table.cast(stage.schema)
        wh.write_part(stage_name, artefact_id, part, table)
    else:
        table = pq.read_table(wh.path("artefacts", stage_name, artefact_id, part)) if wh.is_local else \
            wh.read_artefact(stage_name, artefact_id)
    return {"rows": table.num_rows, "summary": stage.summarize(table)}
