"""Batch execution: calls sent through the providers' native batch APIs (about half price, answered within
24 hours), durable across restarts.

A call is batched when the run spec says so (``batch:``, see :class:`specstress.runspec.BatchSpec`). For such
calls the engine hands the keys to a :class:`BatchRunner`, which:

1. asks the ledger which keys already sit in a provider batch (:meth:`Ledger.batch_state`) and reattaches to
   those batches: a killed run never submits a pending key again;
2. submits the rest, one batch per model and at most ``max_requests`` keys, each request's custom id being its
   ledger key; the batch id and the submitted keys are journalled in the ledger (one ``batch_submitted`` row
   per key, written through to disk) as soon as the provider returns the id, before any waiting;
3. polls each batch from one asyncio task on the engine's loop (no thread is held while polling; polls are
   ``poll_s`` apart, and a poll that fails is tried again at the next one);
4. when a batch ends, writes a result row for every key it holds at once (so the answers of one batch land
   while others still wait), priced at the batch rate; structured outputs are parsed, and repaired once at
   realtime, as for any call;
5. gives the keys a batch did not answer (expired, cancelled, errored) to the ``on_unfinished`` policy:
   ``resubmit`` in a new batch up to ``max_resubmits`` times, then realtime; or ``realtime`` at once. Either
   way the budget gate applies: a batch is submitted only when its estimated cost fits in what is left.

The one window in which a key can be submitted twice: the provider created the batch but the process died
before the id reached the ledger (between two statements). Submissions are not retried after a timeout for
the same reason: the batch may exist.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from specstress.domain import CallRequest, CallResult, Outcome, Usage
from specstress.providers.base import BatchItem, ProviderError, classify_common, is_fatal
from specstress.warehouse.ledger import journal_row, make_row, request_of
from specstress.warehouse.store import utcnow

#: error kinds after which a batch submission certainly did not happen (safe to submit again at once)
_SAFE_TO_RESUBMIT = frozenset({"rate_limit", "overloaded", "server", "connection"})


class BatchRunner:
    """The batch side of one engine. All coroutines run on the engine's loop."""

    def __init__(self, engine: Any, cfg: Any) -> None:
        self.e = engine
        self.cfg = cfg
        self._waiters: dict[str, asyncio.Future[dict[str, CallResult]]] = {}
        self._reqs: dict[str, dict[str, CallRequest]] = defaultdict(dict)   # batch id -> its requests known here
        self._place_lock: asyncio.Lock | None = None
        self.answered: dict[str, CallResult] = {}   # found final while placing (read once by run)
        self.submitted_batches = 0
        self.submitted_keys = 0

    # ------------------------------------------------------------------ entry points

    async def run(self, reqs: list[CallRequest], stage: str) -> list[CallResult]:
        """Outcomes of ``reqs`` (none of them final in the ledger when called)."""
        results: dict[str, CallResult] = {}
        pending = {r.key: r for r in reqs}
        for _ in range(int(self.cfg.max_resubmits) + 3):
            if not pending or self.e.fatal or self.e.budget_hit:
                break
            attach, realtime, not_sent = await self._place(pending, stage)
            for k in [k for k in pending if k in self.answered]:
                results[k] = self.answered.pop(k)
                pending.pop(k)
            for k in not_sent:
                results[k] = self._not_sent(k)
                pending.pop(k, None)
            got = await asyncio.gather(*(self._wait(bid, stage) for bid in attach))
            for bid, answers in zip(attach, got, strict=True):
                for k in attach[bid]:
                    res = answers.get(k)
                    if res is not None and res.final:
                        results[k] = res
                        pending.pop(k, None)
            if realtime:
                outs = await asyncio.gather(*(self._realtime(r, stage) for r in realtime))
                for r, res in zip(realtime, outs, strict=True):
                    results[r.key] = res
                    pending.pop(r.key, None)
        for k in pending:
            results.setdefault(k, CallResult(key=k, outcome=Outcome.RETRYABLE_ERROR,
                                             error="batch: not answered yet; the next attempt reattaches or resubmits"))
        return [results[r.key] for r in reqs]

    async def presubmit(self, reqs: list[CallRequest], stage: str) -> int:
        """Submit (without waiting) every key of ``reqs`` that is neither final nor in a batch: a stage's shards
        then wait for batches that all run at once. Returns the number of keys submitted."""
        if not reqs:
            return 0
        done = await asyncio.to_thread(self.e.ledger.final_keys, [r.key for r in reqs])
        pending = {r.key: r for r in reqs if r.key not in done}
        before = self.submitted_keys
        if pending:
            await self._place(pending, stage, fresh_only=True)
        return self.submitted_keys - before

    # ------------------------------------------------------------------ placing keys in batches

    async def _place(self, pending: dict[str, CallRequest], stage: str, fresh_only: bool = False
                     ) -> tuple[dict[str, list[str]], list[CallRequest], list[str]]:
        """(batch id -> keys to wait for, requests to send at realtime, keys not sent for the budget)."""
        if self._place_lock is None:
            self._place_lock = asyncio.Lock()
        async with self._place_lock:   # one shard at a time reads the journal and submits: no key goes twice
            state = await asyncio.to_thread(self.e.ledger.batch_state, list(pending))
            # keys absent from the journal may have been answered since the caller's lookup (a batch of another
            # shard ended): those are done, never submitted again
            finals = await asyncio.to_thread(self.e.ledger.lookup, [k for k in pending if k not in state])
            self.answered.update(finals)
            attach: dict[str, list[str]] = defaultdict(list)
            fresh: list[CallRequest] = []
            realtime: list[CallRequest] = []
            for k, r in pending.items():
                if k in finals:
                    continue
                bid, n = state.get(k, (None, 0))
                if bid:
                    attach[bid].append(k)
                    self._reqs[bid].setdefault(k, r)
                elif n == 0 or (self.cfg.on_unfinished == "resubmit" and n <= int(self.cfg.max_resubmits)):
                    fresh.append(r)
                else:
                    realtime.append(r)
            if fresh_only:
                realtime = []
            not_sent: list[str] = []
            by_model: dict[str, list[CallRequest]] = defaultdict(list)
            for r in fresh:
                by_model[r.model_id].append(r)
            size = int(self.cfg.max_requests)
            for group in by_model.values():
                for i in range(0, len(group), size):
                    chunk = group[i:i + size]
                    bid = await self._submit(chunk, stage)
                    if bid is None:
                        not_sent.extend(r.key for r in chunk)
                    else:
                        attach[bid].extend(r.key for r in chunk)
            return dict(attach), realtime, not_sent

    def _estimate(self, reqs: list[CallRequest]) -> float:
        price = self.e._price_for(reqs[0])
        if price is None:
            return 0.0
        total = 0.0
        for r in reqs:
            out = min(int(r.params.get("max_tokens") or 512), 700)
            total += _cost(price, Usage(input_tokens=r.prompt_chars // 4, output_tokens=out))
        return total

    async def _submit(self, chunk: list[CallRequest], stage: str) -> str | None:
        """Submit one batch and journal it; None when the budget cannot cover it."""
        est = self._estimate(chunk)
        if self.e.run_cost + self.e.batch_reserved + est > self.e.budget_left:
            self.e.budget_hit = True
            return None
        adapter = self.e._adapter(chunk[0])
        label = f"{self.e.run_id}:{stage}:{chunk[0].key[:16]}"
        delay = 1.0
        for attempt in range(int(self.e.policy.max_attempts)):
            try:
                bid = await adapter.batch_submit(chunk, label)
                break
            except Exception as exc:  # noqa: BLE001 - classified below
                err = exc if isinstance(exc, ProviderError) else classify_common(exc)
                if is_fatal(err):
                    self.e.fatal = (f"{chunk[0].provider} refused a batch for {chunk[0].model_id!r} ({err.kind}, "
                                    f"HTTP {err.status}): {err}. Fix the key or the model id, then run again.")
                    raise
                if err.kind not in _SAFE_TO_RESUBMIT or attempt + 1 >= int(self.e.policy.max_attempts):
                    raise
                self.e.emit("retry", stage, delay_s=delay, error_kind=err.kind)
                await asyncio.sleep(err.retry_after if err.retry_after is not None else delay)
                delay = min(delay * 2, 30.0)
        rows = [journal_row(r, self.e.run_id, bid) for r in chunk]
        await asyncio.to_thread(self._journal, rows)
        self.e.batch_reserved += est
        self._reqs[bid].update({r.key: r for r in chunk})
        self.submitted_batches += 1
        self.submitted_keys += len(chunk)
        self.e.emit("batch_submitted", stage, n=len(chunk))
        return bid

    def _journal(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.e.ledger.append(row, flush=False)
        self.e.ledger.flush()

    # ------------------------------------------------------------------ waiting

    def _wait(self, bid: str, stage: str) -> asyncio.Future[dict[str, CallResult]]:
        fut = self._waiters.get(bid)
        if fut is None or (fut.done() and (fut.cancelled() or fut.exception() is not None)):
            fut = self._waiters[bid] = asyncio.ensure_future(self._watch(bid, stage))
        return asyncio.shield(fut)

    async def _watch(self, bid: str, stage: str) -> dict[str, CallResult]:
        reqs = self._reqs[bid]
        for row in await asyncio.to_thread(self.e.ledger.batch_rows, bid):   # a reattached batch's requests
            reqs.setdefault(row["key"], request_of(row))
        if not reqs:
            return {}
        first = next(iter(reqs.values()))
        adapter = self.e._adapter(first)
        started, cancelled, missing = time.monotonic(), False, False
        self.e.emit("batch_waiting", stage, n=len(reqs))
        while True:
            try:
                if await adapter.batch_status(bid) == "ended":
                    break
            except ProviderError as err:
                if err.kind == "not_found":   # the provider no longer knows it: its keys go to the policy
                    missing = True
                    break
                if is_fatal(err):
                    self.e.fatal = f"{first.provider} refused to show batch {bid} ({err.kind}): {err}"
                    raise
                self.e.emit("rate_limited" if err.kind in ("rate_limit", "overloaded") else "retry", stage,
                            error_kind=err.kind, delay_s=float(self.cfg.poll_s))
            if not cancelled and time.monotonic() - started > float(self.cfg.max_wait_h) * 3600:
                try:
                    await adapter.batch_cancel(bid)
                    cancelled = True
                except ProviderError:
                    pass
            await asyncio.sleep(float(self.cfg.poll_s))
        items: dict[str, BatchItem] = {}
        if not missing:
            items = await self._results(adapter, bid, reqs, stage)
        done = await asyncio.to_thread(self.e.ledger.lookup, list(reqs))   # answered meanwhile (another process)
        out: dict[str, CallResult] = dict(done)
        for key, req in reqs.items():
            if key in done:
                continue
            out[key] = await self._record(req, items.get(key), bid, stage, missing)
        await asyncio.to_thread(self.e.ledger.flush)
        self.e.batch_reserved = max(0.0, self.e.batch_reserved - self._estimate(list(reqs.values())))
        self.e.emit("batch_ended", stage, n=len(reqs))
        return out

    async def _results(self, adapter: Any, bid: str, reqs: dict[str, CallRequest], stage: str) -> dict[str, BatchItem]:
        for _ in range(max(3, int(self.e.policy.max_attempts))):
            try:
                return await adapter.batch_results(bid, reqs)
            except ProviderError as err:
                if is_fatal(err) or err.kind in ("bad_request", "internal"):
                    raise
                self.e.emit("retry", stage, error_kind=err.kind, delay_s=float(self.cfg.poll_s))
                await asyncio.sleep(float(self.cfg.poll_s))
        return await adapter.batch_results(bid, reqs)

    async def _record(self, req: CallRequest, item: BatchItem | None, bid: str, stage: str,
                      missing: bool) -> CallResult:
        started = utcnow()
        if item is not None and item.reply is not None:
            raw = item.reply
            vector = raw.vectors[0] if raw.vectors and len(raw.vectors) == 1 else None
            parsed = raw.parsed if raw.vectors is None or len(raw.vectors) == 1 else {"vectors": raw.vectors}
            res = CallResult(key=req.key, outcome=raw.outcome, text=raw.text, parsed=parsed, vector=vector,
                             usage=raw.usage, attempts=1, served_model=raw.served_model)
            if res.outcome == Outcome.OK and req.schema is not None and req.kind == "chat":
                res = await self.e._parse_or_repair(req, res, stage)
        elif item is not None and item.error is not None:
            err = item.error
            outcome = Outcome.PERMANENT_ERROR if err.kind == "bad_request" else Outcome.RETRYABLE_ERROR
            res = CallResult(key=req.key, outcome=outcome, attempts=1,
                             error=f"batch {bid}: {err.kind}" + (f" (HTTP {err.status})" if err.status else "")
                             + f": {err}"[:1500])
        else:
            why = "the provider does not know the batch" if missing else (item.unfinished if item else "no answer")
            res = CallResult(key=req.key, outcome=Outcome.RETRYABLE_ERROR, attempts=1,
                             error=f"batch {bid} ended without answering it ({why})")
        price = self.e._price_for(req)
        res.cost_usd = _cost(price, res.usage) if price is not None else 0.0
        self.e.run_cost += res.cost_usd
        self.e.emit("cost", stage, key=req.key, cost_usd=res.cost_usd)
        self.e.emit("call_ended", stage, key=req.key, outcome=str(res.outcome), final=res.final)
        self.e.ledger.append(make_row(req, res, self.e.run_id, started, [], batch_id=bid), flush=False)
        return res

    async def _realtime(self, req: CallRequest, stage: str) -> CallResult:
        try:
            return await self.e._dedup_call(req, stage)
        except Exception as exc:  # noqa: BLE001 - per-item outcome
            return CallResult(key=req.key, outcome=Outcome.RETRYABLE_ERROR, error=f"internal: {exc!r}"[:500])

    def _not_sent(self, key: str) -> CallResult:
        return CallResult(key=key, outcome=Outcome.RETRYABLE_ERROR, error="not sent: the run's budget is spent")


def _cost(price: Any, usage: Usage) -> float:
    """The batch price of ``usage`` (the price table's batch discount for the model's provider)."""
    return float(price.cost(usage, batch=True, cache_write_tokens=usage.cache_write_tokens))
