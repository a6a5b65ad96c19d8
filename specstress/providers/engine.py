"""The call engine: every provider call of a process goes through here, and through the ledger.

It is built from small layers, each testable alone:

1. the call store (:mod:`.store`): the ledger, behind a protocol; hits cost nothing and contact nobody;
2. the retry policy (:mod:`.retry`): which errors retry, backoff honouring Retry-After, bounds;
3. the limiter (:mod:`.limiter`): in-flight window and rate buckets per (provider, model);
4. the adapters: one small module per provider, each classifying its own SDK's exceptions;
5. the observers (:mod:`.observers`): counters and the progress line, fed with events.

What is left here is the orchestration: de-duplicate calls in flight, stop at the budget or on a
fatal error, repair a structured output once, and append one store row per ended call.

One engine per (process, run). It owns one asyncio loop in a background thread, the provider
clients (created and closed on that loop), one limiter per (provider, model), and the store
writer. Prefect shard tasks, running on worker threads, hand it batches of requests and block
until every request has an outcome; concurrent shards share the same limits.
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from specstress.domain import CallRequest, CallResult, Outcome, Usage
from specstress.errors import BudgetExceeded, FatalProviderError
from specstress.prices import ModelPrice, PriceTable
from specstress.providers import gcpolicy
from specstress.providers.base import Adapter, ProviderError, RawReply, classify_common
from specstress.providers.batch import BatchRunner
from specstress.providers.limiter import ModelLimiter
from specstress.providers.observers import Counters, EngineEvent, Observer, StageCounters, make_progress
from specstress.providers.retry import (
    Attempts,
    NotSent,
    RetryPolicy,
    call_with_retries,
    is_fatal,
    is_permanent,
    is_rate_limited,
)
from specstress.providers.store import CallStore
from specstress.secrets import redact
from specstress.warehouse.ledger import Ledger, make_row
from specstress.warehouse.store import Warehouse, utcnow

NOT_SENT_BUDGET = "not sent: the run's budget is spent"


class CallEngine:
    """The engine's core, from its parts. :class:`Engine` builds one from a run context."""

    def __init__(self, store: CallStore, adapter_for: Callable[[CallRequest], Adapter], *, run_id: str,
                 policy: RetryPolicy | None = None,
                 limiter_for: Callable[[CallRequest], ModelLimiter] | None = None,
                 price_for: Callable[[CallRequest], ModelPrice | None] | None = None,
                 budget_usd: float = math.inf, spent_before: float = 0.0, request_timeout_s: float = 120.0,
                 observers: Iterable[Observer] = (), quiet: bool = True,
                 batched: Callable[[CallRequest, str], bool] | None = None, batch: Any = None) -> None:
        self.ledger = store
        self.run_id = run_id
        self.policy = policy or RetryPolicy()
        self.request_timeout_s = request_timeout_s
        self._adapter_for = adapter_for
        self._limiter_for = limiter_for or (lambda req: ModelLimiter(64))
        self._price_for = price_for or (lambda req: None)
        self._adapters: dict[str, Any] = {}
        self._limiters: dict[tuple[str, str], ModelLimiter] = {}
        self._inflight: dict[str, asyncio.Future[CallResult]] = {}
        self.stats = Counters()
        self.progress = make_progress(self.stats, budget_usd, quiet)
        self.observers: list[Observer] = [self.stats, *([self.progress] if self.progress else []), *observers]
        self.run_cost = 0.0
        # money this invocation may spend: the budget minus what earlier invocations of the run spent
        self.budget_usd = budget_usd
        self.budget_left = float(budget_usd) - float(spent_before or 0.0)
        self.budget_hit = False
        self.batch_reserved = 0.0   # the estimated cost of batches submitted and not yet ended
        self.fatal: str | None = None
        # calls that go through the providers' batch APIs (see specstress.providers.batch)
        self._batched = batched if batch is not None and batched is not None else None
        self.batches = BatchRunner(self, batch) if self._batched is not None else None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="specstress-engine", daemon=True)
        self._thread.start()
        self._closed = False
        self._ticker = asyncio.run_coroutine_threadsafe(self._tick(), self._loop)
        gcpolicy.engine_started()   # fewer collections while calls are in flight (see gcpolicy)

    # ------------------------------------------------------------------ public, thread-safe

    @property
    def counters(self) -> dict[str, StageCounters]:
        return self.stats.by_stage

    def emit(self, kind: str, stage: str, **fields: Any) -> None:
        event = EngineEvent(kind, stage, **fields)  # type: ignore[arg-type]
        for obs in self.observers:
            try:
                obs.on_event(event)
            except Exception as exc:  # noqa: BLE001 - an observer never breaks a call
                print(f"warning: engine observer {type(obs).__name__} failed: {exc!r}", file=sys.stderr)

    def run_calls(self, requests: list[CallRequest], stage: str) -> list[CallResult]:
        """Outcomes for ``requests`` in order. Blocks the calling thread (never the engine loop)."""
        if self.fatal:
            raise FatalProviderError(self.fatal)
        self.emit("planned", stage, n=len(requests))
        hits = self.ledger.lookup(r.key for r in requests)
        self.emit("cache_hit", stage, n=sum(1 for r in requests if r.key in hits))
        misses = [r for r in requests if r.key not in hits]
        results: dict[str, CallResult] = dict(hits)
        if misses:
            fut = asyncio.run_coroutine_threadsafe(self._send_misses(misses, stage), self._loop)
            for req, res in zip(misses, fut.result(), strict=True):
                results[req.key] = res
        self.ledger.flush_if_due()
        if self.fatal:
            self.ledger.flush()
            raise FatalProviderError(self.fatal)
        if self.budget_hit:
            self.ledger.flush()
            raise BudgetExceeded(
                f"stopped in stage {stage}: this run has spent ${self.run_cost:.4f} and reached its budget "
                f"(${self.budget_usd:.2f} in all). Calls already in flight finished and are kept; raise "
                "budget_usd and run again to resume where this stopped.")
        return [results[r.key] for r in requests]

    def flush(self) -> None:
        self.ledger.flush()

    def presubmit(self, requests: list[CallRequest], stage: str) -> int:
        """Submit the batched ones of ``requests`` to the providers' batch APIs without waiting (a stage's first
        calls, before its shards run, so that every shard's batch runs at once). Returns the keys submitted."""
        if self.batches is None or self._batched is None:
            return 0
        batched = [r for r in requests if self._batched(r, stage)]
        if not batched:
            return 0
        fut = asyncio.run_coroutine_threadsafe(self.batches.presubmit(batched, stage), self._loop)
        n = fut.result()
        if self.fatal:
            raise FatalProviderError(self.fatal)
        return n

    def expect(self, stage: str, calls: int) -> None:
        """Announce a stage's planned calls, so that progress shows a fixed total from the start."""
        self.emit("expected", stage, n=calls)

    def print_progress(self, force: bool = False) -> None:
        if self.progress is not None:
            self.progress.print(force)

    def limiter_stats(self) -> dict[str, Any]:
        return {f"{p}:{m}": {"limit": round(lim.window.limit, 2), "peak_in_flight": lim.window.peak,
                             "cuts": lim.window.cuts} for (p, m), lim in self._limiters.items()}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ticker.cancel()
        if self.progress is not None and hasattr(self.progress, "close"):
            self.progress.close()
        drain_s = self.request_timeout_s + 10.0
        try:
            # Calls still in flight (another shard's, when one shard hit the budget or the flow failed) finish
            # and reach the ledger: closing their HTTP clients under them would lose replies already paid for.
            asyncio.run_coroutine_threadsafe(self._drain(drain_s), self._loop).result(timeout=drain_s + 5.0)
        except Exception:  # noqa: BLE001 - close anyway; what did not finish is sent again on resume
            pass
        try:
            asyncio.run_coroutine_threadsafe(self._aclose(), self._loop).result(timeout=30)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        gcpolicy.engine_closed()
        self.ledger.flush()

    # ------------------------------------------------------------------ the loop side

    async def _drain(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _aclose(self) -> None:
        for a in self._adapters.values():
            try:
                await a.aclose()
            except Exception:
                pass
        self._adapters.clear()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            try:
                if self.ledger.flush_due():
                    await asyncio.to_thread(self.ledger.flush)  # Parquet writes stay off the event loop
                self.print_progress()
            except Exception as exc:  # noqa: BLE001 - keep ticking; the rows stay buffered for the next try
                print(f"warning: ledger flush failed, will retry: {redact(str(exc))}", file=sys.stderr)

    async def _send_misses(self, reqs: list[CallRequest], stage: str) -> list[CallResult]:
        """Batched calls through the batch runner, the others at once; both concurrently."""
        if self._batched is None or self.batches is None:
            return await self._send_all(reqs, stage)
        in_batch = [self._batched(r, stage) for r in reqs]
        batch_reqs = [r for r, b in zip(reqs, in_batch, strict=True) if b]
        if not batch_reqs:
            return await self._send_all(reqs, stage)
        now_reqs = [r for r, b in zip(reqs, in_batch, strict=True) if not b]
        got_batch, got_now = await asyncio.gather(self.batches.run(batch_reqs, stage), self._send_all(now_reqs, stage))
        by_key = {res.key: res for res in (*got_batch, *got_now)}
        return [by_key[r.key] for r in reqs]

    async def _send_all(self, reqs: list[CallRequest], stage: str) -> list[CallResult]:
        async def one(r: CallRequest) -> CallResult:
            try:
                return await self._dedup_call(r, stage)
            except Exception as exc:  # noqa: BLE001 - per-item outcome, siblings unaffected
                return CallResult(key=r.key, outcome=Outcome.RETRYABLE_ERROR, error=redact(f"internal: {exc!r}"))

        return list(await asyncio.gather(*(one(r) for r in reqs)))

    async def _dedup_call(self, req: CallRequest, stage: str) -> CallResult:
        fut = self._inflight.get(req.key)
        if fut is not None:
            return await asyncio.shield(fut)
        done = self.ledger.pending_result(req.key)  # finished by a concurrent shard since its lookup
        if done is not None:
            self.emit("cache_hit", stage, key=req.key)
            return done
        fut = self._loop.create_future()
        self._inflight[req.key] = fut
        try:
            res = await self._call(req, stage)
            fut.set_result(res)
            return res
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        finally:
            self._inflight.pop(req.key, None)
            if not fut.done():
                fut.cancel()

    def _adapter(self, req: CallRequest) -> Any:
        a = self._adapters.get(req.model_id)
        if a is None:
            a = self._adapter_for(req)
            self._adapters[req.model_id] = a
        return a

    def _limiter(self, req: CallRequest) -> ModelLimiter:
        k = (req.provider, req.model)
        lim = self._limiters.get(k)
        if lim is None:
            lim = self._limiters[k] = self._limiter_for(req)
        return lim

    def _charge(self, req: CallRequest, res: CallResult, stage: str) -> None:
        price = self._price_for(req)
        if price is None:
            res.cost_usd = 0.0
        elif res.usage.cache_write_tokens:   # a prompt-cache write, priced at the model's write rate
            res.cost_usd = price.cost(res.usage, cache_write_tokens=res.usage.cache_write_tokens)
        else:
            res.cost_usd = price.cost(res.usage)
        self.run_cost += res.cost_usd
        self.emit("cost", stage, key=req.key, cost_usd=res.cost_usd)

    async def _call(self, req: CallRequest, stage: str) -> CallResult:
        """Send one call with retries, parse it, repair once if needed, append its store row."""
        self.emit("call_started", stage, key=req.key)
        started = utcnow()
        res, statuses = await self._send_with_retries(req, stage)
        if res.outcome == Outcome.OK and req.schema is not None and req.kind == "chat":
            res = await self._parse_or_repair(req, res, stage)
        self._charge(req, res, stage)
        self.emit("call_ended", stage, key=req.key, outcome=str(res.outcome), final=res.final)
        self.ledger.append(make_row(req, res, self.run_id, started, statuses), flush=False)
        return res

    async def _send_with_retries(self, req: CallRequest, stage: str) -> tuple[CallResult, list[int]]:
        adapter = self._adapter(req)
        limiter = self._limiter(req)
        classify: Callable[[BaseException], ProviderError] = getattr(adapter, "classify", classify_common)
        est_tokens = req.prompt_chars // 4 + int(req.params.get("max_tokens") or 256)

        async def send() -> RawReply:
            async with limiter.slot(est_tokens):
                call = adapter.embed(req) if req.kind == "embedding" else adapter.complete(req)
                try:
                    async with asyncio.timeout(self.request_timeout_s + 5.0):   # not wait_for: no task a call
                        raw: RawReply = await call
                except TimeoutError:
                    raise ProviderError("timeout", "request exceeded its timeout") from None
            limiter.on_success()
            return raw

        def before_attempt() -> None:
            if self.run_cost >= self.budget_left:
                self.budget_hit = True
                raise NotSent(NOT_SENT_BUDGET)

        def on_failure(err: ProviderError) -> None:
            if is_rate_limited(err):
                self.emit("rate_limited", stage, key=req.key, error_kind=err.kind)
                limiter.on_rate_limited()

        def on_retry(err: ProviderError, delay: float) -> None:
            self.emit("retry", stage, key=req.key, delay_s=delay, error_kind=err.kind)

        log = await call_with_retries(send, self.policy, classify=classify, before_attempt=before_attempt,
                                      on_failure=on_failure, on_retry=on_retry)
        return self._outcome(req, log), log.statuses

    def _outcome(self, req: CallRequest, log: Attempts) -> CallResult:
        if log.reply is not None:
            return self._result(req, log.reply, log)
        if log.not_sent is not None or log.error is None:
            return CallResult(key=req.key, outcome=Outcome.RETRYABLE_ERROR, attempts=log.attempts,
                              wait_s=log.waited_s, error=log.not_sent or "not sent")
        err = log.error
        if is_fatal(err):
            self.fatal = (f"{req.provider} refused {req.model_id!r} ({err.kind}, HTTP {err.status}): "
                          f"{err}. Fix the key or the model id in the run spec, then run again: "
                          "finished calls are kept.")
        outcome = Outcome.PERMANENT_ERROR if is_permanent(err) else Outcome.RETRYABLE_ERROR
        msg = f"{err.kind}" + (f" (HTTP {err.status})" if err.status else "") + f": {err}"
        return CallResult(key=req.key, outcome=outcome, error=redact(msg)[:2000], attempts=log.attempts,
                          wait_s=log.waited_s)

    def _result(self, req: CallRequest, raw: RawReply, log: Attempts) -> CallResult:
        vector = raw.vectors[0] if raw.vectors and len(raw.vectors) == 1 else None
        parsed = raw.parsed
        if raw.vectors is not None and len(raw.vectors) != 1:
            parsed = {"vectors": raw.vectors}
        return CallResult(key=req.key, outcome=raw.outcome, text=raw.text, parsed=parsed, vector=vector,
                          usage=raw.usage, latency_s=log.latency_s, attempts=log.attempts, wait_s=log.waited_s,
                          served_model=raw.served_model)

    async def _parse_or_repair(self, req: CallRequest, res: CallResult, stage: str) -> CallResult:
        from specstress.schemas import parse_output

        obj, err = parse_output(req.schema["name"], res.text, res.parsed)
        if obj is not None:
            res.parsed = obj
            return res
        repair = repair_request(req, res.text if res.text is not None else _dump(res.parsed), err or "invalid")
        self.emit("call_started", stage, key=repair.key, repair=True)
        started = utcnow()
        rres, statuses = await self._send_with_retries(repair, stage)
        if rres.outcome == Outcome.OK:
            robj, rerr = parse_output(req.schema["name"], rres.text, rres.parsed)
            if robj is not None:
                rres.parsed = robj
            else:
                rres.outcome = Outcome.PARSE_ERROR
                rres.error = f"parse error after repair: {rerr}"
        self._charge(repair, rres, stage)
        self.emit("call_ended", stage, key=repair.key, outcome=str(rres.outcome), final=rres.final, repair=True)
        self.ledger.append(make_row(repair, rres, self.run_id, started, statuses), flush=False)
        if rres.outcome == Outcome.OK:
            res.parsed = rres.parsed
            res.error = "repaired"
            return res
        if not rres.final:
            # The original answer is paid for: it is recorded as a final parse_error (never sent again);
            # stages that re-ask do so with a new sample, so nothing is paid twice.
            res.outcome = Outcome.PARSE_ERROR
            res.error = f"{err}; the repair did not finish: {rres.error}"
            return res
        res.outcome = Outcome.PARSE_ERROR
        res.error = f"{err}; repair: {rres.error or rres.outcome}"
        return res


class Engine(CallEngine):
    """The engine of a run: the ledger of its warehouse, its models' adapters, limits and prices.
    Use :func:`get_engine` to share one per run and process."""

    def __init__(self, ctx: Any, *, store: CallStore | None = None, observers: Iterable[Observer] = ()) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.warehouse = Warehouse(ctx.warehouse_root)
        self.prices = PriceTable.load(self.spec.resolve(self.spec.prices))
        self.retry = self.spec.retry
        if store is None:
            store = Ledger(self.warehouse, resend_errors=bool(getattr(ctx, "resend_errors", False)), wal=True)
        super().__init__(
            store, self._make_adapter, run_id=ctx.run_id, policy=RetryPolicy.from_spec(self.retry, self.spec.seed),
            limiter_for=self._make_limiter, price_for=self._price, budget_usd=float(self.spec.budget_usd),
            spent_before=float(getattr(ctx, "spent_before", 0.0) or 0.0),
            request_timeout_s=float(self.retry.request_timeout_s), observers=observers,
            quiet=bool(getattr(ctx, "quiet", False)),
            batched=lambda req, stage: self.spec.batched(req.model_id, stage), batch=self.spec.batch)

    def _make_adapter(self, req: CallRequest) -> Any:
        from specstress.providers import make_adapter

        return make_adapter(self.spec.model(req.model_id), self.ctx.emulator_url, self.retry.request_timeout_s,
                            self.spec.transport)

    def _make_limiter(self, req: CallRequest) -> ModelLimiter:
        return limiter_share(self.spec.model(req.model_id).limits, self.ctx.limit_share)

    def _price(self, req: CallRequest) -> ModelPrice | None:
        return self.prices.for_entry(self.spec.model(req.model_id))


def limiter_share(limits: Any, share: int) -> ModelLimiter:
    """This process's part of a model's limits when ``share`` processes send to it at once (Dask workers):
    rpm and tpm divided by ``share``, the in-flight window too (at least 1 each), so that the processes
    together stay within what the run spec allows."""
    share = max(1, share)
    top = max(1, -(-int(limits.max_in_flight) // share))
    return ModelLimiter(top, min(int(limits.min_in_flight), top), limits.rpm / share if limits.rpm else None,
                        limits.tpm / share if limits.tpm else None)


def _dump(obj: Any) -> str:
    import json

    return json.dumps(obj) if obj is not None else ""


def repair_request(req: CallRequest, bad_output: str, error: str) -> CallRequest:
    """One follow-up call that shows the model its invalid output and the validation error."""
    from specstress.prompts import load_template

    tpl = load_template("repair")
    _, user = tpl.render(error=error, schema_name=req.schema["name"] if req.schema else "output")
    messages = list(req.messages) + [{"role": "assistant", "content": bad_output or "(empty)"},
                                     {"role": "user", "content": user}]
    return CallRequest(provider=req.provider, model=req.model, messages=messages, system=req.system,
                       params=req.params, schema=req.schema, template_hash=tpl.hash, sample_index=req.sample_index,
                       endpoint=req.endpoint, purpose=f"{req.purpose}:repair", model_id=req.model_id, kind=req.kind,
                       meta={})


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(ctx: Any) -> Engine:
    """The engine of ``ctx.run_id`` in this process (made on first use, e.g. in a Dask worker)."""
    with _ENGINES_LOCK:
        eng = _ENGINES.get(ctx.run_id)
        if eng is None or eng._closed:
            eng = Engine(ctx)
            _ENGINES[ctx.run_id] = eng
        return eng


def close_engine(run_id: str) -> Engine | None:
    with _ENGINES_LOCK:
        eng = _ENGINES.pop(run_id, None)
    if eng is not None:
        eng.close()
    return eng


__all__ = ["CallEngine", "Engine", "get_engine", "close_engine", "limiter_share", "repair_request", "StageCounters",
           "Usage"]
