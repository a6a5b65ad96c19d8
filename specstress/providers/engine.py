"""The call engine: every provider call of a process goes through here, and through the ledger.

One engine per (process, run). It owns one asyncio loop in a background thread, the provider
clients (created and closed on that loop), one :class:`ModelLimiter` per (provider, model), and
the ledger writer. Prefect shard tasks, running on worker threads, hand it batches of requests
and block until every request has an outcome; concurrent shards share the same limits.

``run_calls`` = look the keys up in the ledger (hits cost nothing and contact nobody), send the
misses through one retry layer, append one ledger row per ended call, return results in order.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from specstress.domain import CallRequest, CallResult, Outcome, Usage
from specstress.errors import FatalProviderError
from specstress.prices import ModelPrice, PriceTable
from specstress.providers.base import FATAL_KINDS, ProviderError, RawReply, classify_exception
from specstress.providers.limiter import ModelLimiter
from specstress.secrets import redact
from specstress.warehouse.ledger import Ledger, make_row
from specstress.warehouse.store import Warehouse, utcnow


@dataclass
class StageCounters:
    planned: int = 0
    expected: int = 0
    hits: int = 0
    sent: int = 0
    done: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    failed: int = 0
    cost_usd: float = 0.0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "cache_hits": self.hits, "sent": self.sent, "done": self.done,
                "retries": self.retries, "rate_limited": self.rate_limited, "waited_s": round(self.waited_s, 2),
                "failed": self.failed,
                "cost_usd": round(self.cost_usd, 6), "outcomes": dict(self.outcomes)}


class Engine:
    """See the module docstring. Use :func:`get_engine` to share one per run and process."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.warehouse = Warehouse(ctx.warehouse_root)
        self.ledger = Ledger(self.warehouse, resend_errors=bool(getattr(ctx, "resend_errors", False)))
        self.prices = PriceTable.load(self.spec.resolve(self.spec.prices))
        self.retry = self.spec.retry
        self.emulator_url = ctx.emulator_url
        self._adapters: dict[str, Any] = {}
        self._limiters: dict[tuple[str, str], ModelLimiter] = {}
        self._inflight: dict[str, asyncio.Future[CallResult]] = {}
        self.counters: dict[str, StageCounters] = defaultdict(StageCounters)
        self.run_cost = 0.0
        # money this invocation may spend: the budget minus what earlier invocations of the run spent
        self.budget_left = float(self.spec.budget_usd) - float(getattr(ctx, "spent_before", 0.0) or 0.0)
        self.budget_hit = False
        self.fatal: str | None = None
        self._rng = random.Random(self.spec.seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="specstress-engine", daemon=True)
        self._thread.start()
        self._closed = False
        self._progress_stage: str | None = None
        self._last_print = 0.0
        self.quiet = bool(getattr(ctx, "quiet", False))
        self._ticker = asyncio.run_coroutine_threadsafe(self._tick(), self._loop)

    # ------------------------------------------------------------------ public, thread-safe

    def run_calls(self, requests: list[CallRequest], stage: str) -> list[CallResult]:
        """Outcomes for ``requests`` in order. Blocks the calling thread (never the engine loop)."""
        if self.fatal:
            raise FatalProviderError(self.fatal)
        c = self.counters[stage]
        c.planned += len(requests)
        self._progress_stage = stage
        hits = self.ledger.lookup(r.key for r in requests)
        c.hits += sum(1 for r in requests if r.key in hits)
        misses = [r for r in requests if r.key not in hits]
        results: dict[str, CallResult] = dict(hits)
        if misses:
            fut = asyncio.run_coroutine_threadsafe(self._send_all(misses, stage), self._loop)
            for req, res in zip(misses, fut.result(), strict=True):
                results[req.key] = res
        self.ledger.flush_if_due()
        if self.fatal:
            self.ledger.flush()
            raise FatalProviderError(self.fatal)
        if self.budget_hit:
            self.ledger.flush()
            from specstress.errors import BudgetExceeded

            raise BudgetExceeded(
                f"stopped in stage {stage}: this run has spent ${self.run_cost:.4f} and reached its budget "
                f"(${self.spec.budget_usd:.2f} in all). Calls already in flight finished and are kept; raise "
                "budget_usd and run again to resume where this stopped.")
        return [results[r.key] for r in requests]

    def flush(self) -> None:
        self.ledger.flush()

    def expect(self, stage: str, calls: int) -> None:
        """Announce a stage's planned calls, so that progress shows a fixed total from the start."""
        self.counters[stage].expected = max(self.counters[stage].expected, calls)
        self._progress_stage = stage

    def limiter_stats(self) -> dict[str, Any]:
        return {f"{p}:{m}": {"limit": round(lim.window.limit, 2), "peak_in_flight": lim.window.peak,
                             "cuts": lim.window.cuts} for (p, m), lim in self._limiters.items()}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ticker.cancel()
        try:
            asyncio.run_coroutine_threadsafe(self._aclose(), self._loop).result(timeout=30)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self.ledger.flush()

    # ------------------------------------------------------------------ the loop side

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
            self.counters[stage].hits += 1
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
            from specstress.providers import make_adapter

            entry = self.spec.model(req.model_id)
            a = make_adapter(entry, self.emulator_url, self.retry.request_timeout_s)
            self._adapters[req.model_id] = a
        return a

    def _limiter(self, req: CallRequest) -> ModelLimiter:
        k = (req.provider, req.model)
        lim = self._limiters.get(k)
        if lim is None:
            lim = self._limiters.get(k)
            entry = self.spec.model(req.model_id)
            lim = ModelLimiter(entry.limits.max_in_flight, entry.limits.min_in_flight, entry.limits.rpm,
                               entry.limits.tpm)
            self._limiters[k] = lim
        return lim

    def _price(self, req: CallRequest) -> ModelPrice | None:
        return self.prices.for_entry(self.spec.model(req.model_id))

    async def _call(self, req: CallRequest, stage: str) -> CallResult:
        """Send one call with retries, parse it, repair once if needed, append its ledger row."""
        c = self.counters[stage]
        c.sent += 1
        started = utcnow()
        res, statuses = await self._send_with_retries(req, c)
        if res.outcome == Outcome.OK and req.schema is not None and req.kind == "chat":
            res = await self._parse_or_repair(req, res, stage)
        price = self._price(req)
        res.cost_usd = price.cost(res.usage) if price else 0.0
        c.cost_usd += res.cost_usd
        self.run_cost += res.cost_usd
        c.done += 1
        c.outcomes[str(res.outcome)] += 1
        if not res.final:
            c.failed += 1
        self.ledger.append(make_row(req, res, self.ctx.run_id, started, statuses), flush=False)
        return res

    async def _send_with_retries(self, req: CallRequest, c: StageCounters) -> tuple[CallResult, list[int]]:
        policy = self.retry
        adapter = self._adapter(req)
        limiter = self._limiter(req)
        if req.endpoint.startswith("emulator"):
            req.meta.setdefault("extra_headers", {})["x-specstress-key"] = req.key
        est_tokens = req.prompt_chars // 4 + int(req.params.get("max_tokens") or 256)
        t_start = time.monotonic()
        attempts = 0
        waited = 0.0
        statuses: list[int] = []
        last: ProviderError | None = None
        while True:
            if self.run_cost >= self.budget_left:
                self.budget_hit = True
                return CallResult(key=req.key, outcome=Outcome.RETRYABLE_ERROR, attempts=attempts, wait_s=waited,
                                  error="not sent: the run's budget is spent"), statuses
            attempts += 1
            t0 = time.monotonic()
            try:
                async with limiter.slot(est_tokens):
                    call = adapter.embed(req) if req.kind == "embedding" else adapter.complete(req)
                    raw: RawReply = await asyncio.wait_for(call, timeout=policy.request_timeout_s + 5.0)
                limiter.on_success()
                statuses.append(raw.status)
                return self._result(req, raw, attempts, waited, time.monotonic() - t0), statuses
            except (ProviderError, TimeoutError, Exception) as exc:  # noqa: BLE001
                err = classify_exception(exc) if not isinstance(exc, ProviderError) else exc
                if isinstance(exc, TimeoutError):
                    err = ProviderError("timeout", "request exceeded its timeout")
                last = err
                if err.status:
                    statuses.append(err.status)
            if last.kind in ("rate_limit", "overloaded"):
                c.rate_limited += 1
                limiter.on_rate_limited()
            if last.kind in FATAL_KINDS:
                self.fatal = (f"{req.provider} refused {req.model_id!r} ({last.kind}, HTTP {last.status}): "
                              f"{last}. Fix the key or the model id in the run spec, then run again: "
                              "finished calls are kept.")
                return self._error(req, Outcome.RETRYABLE_ERROR, last, attempts, waited), statuses
            if last.kind == "bad_request":
                return self._error(req, Outcome.PERMANENT_ERROR, last, attempts, waited), statuses
            if not last.retryable:
                return self._error(req, Outcome.RETRYABLE_ERROR, last, attempts, waited), statuses
            delay = self._backoff(attempts, last)
            elapsed = time.monotonic() - t_start
            if attempts >= policy.max_attempts or elapsed + delay > policy.max_call_seconds:
                return self._error(req, Outcome.RETRYABLE_ERROR, last, attempts, waited), statuses
            c.retries += 1
            c.waited_s += delay
            waited += delay
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int, err: ProviderError) -> float:
        base = self.retry.backoff_base_s * (2 ** (attempt - 1))
        delay = min(self.retry.backoff_max_s, base) * (0.5 + self._rng.random() / 2)  # jitter
        if err.retry_after is not None:
            delay = max(err.retry_after, min(delay, err.retry_after * 1.5 + 0.05))
        return delay

    def _result(self, req: CallRequest, raw: RawReply, attempts: int, waited: float, latency: float) -> CallResult:
        vector = raw.vectors[0] if raw.vectors and len(raw.vectors) == 1 else None
        parsed = raw.parsed
        if raw.vectors is not None and len(raw.vectors) != 1:
            parsed = {"vectors": raw.vectors}
        return CallResult(key=req.key, outcome=raw.outcome, text=raw.text, parsed=parsed, vector=vector,
                          usage=raw.usage, latency_s=latency, attempts=attempts, wait_s=waited,
                          served_model=raw.served_model)

    def _error(self, req: CallRequest, outcome: str, err: ProviderError, attempts: int, waited: float) -> CallResult:
        msg = f"{err.kind}" + (f" (HTTP {err.status})" if err.status else "") + f": {err}"
        return CallResult(key=req.key, outcome=outcome, error=redact(msg)[:2000], attempts=attempts, wait_s=waited)

    async def _parse_or_repair(self, req: CallRequest, res: CallResult, stage: str) -> CallResult:
        from specstress.schemas import parse_output

        obj, err = parse_output(req.schema["name"], res.text, res.parsed)
        if obj is not None:
            res.parsed = obj
            return res
        repair = repair_request(req, res.text if res.text is not None else _dump(res.parsed), err or "invalid")
        c = self.counters[stage]
        c.sent += 1
        started = utcnow()
        rres, statuses = await self._send_with_retries(repair, c)
        if rres.outcome == Outcome.OK:
            robj, rerr = parse_output(req.schema["name"], rres.text, rres.parsed)
            if robj is not None:
                rres.parsed = robj
            else:
                rres.outcome = Outcome.PARSE_ERROR
                rres.error = f"parse error after repair: {rerr}"
        price = self._price(repair)
        rres.cost_usd = price.cost(rres.usage) if price else 0.0
        c.cost_usd += rres.cost_usd
        self.run_cost += rres.cost_usd
        self.ledger.append(make_row(repair, rres, self.ctx.run_id, started, statuses), flush=False)
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

    # ------------------------------------------------------------------ progress

    def print_progress(self, force: bool = False) -> None:
        if self.quiet:
            return
        stage = self._progress_stage
        if stage is None:
            return
        now = time.monotonic()
        if not force and now - self._last_print < 2.0:
            return
        c = self.counters[stage]
        signature = (stage, c.hits, c.done, c.retries)
        if not force and signature == getattr(self, "_last_signature", None):
            return
        self._last_signature = signature
        self._last_print = now
        done = c.hits + c.done
        budget = self.spec.budget_usd
        line = (f"[{stage}] {done}/{max(c.expected, c.planned, done)} calls · {c.hits} cached · {c.retries} retries"
                f" ({c.waited_s:.1f}s waited) · {c.rate_limited} rate-limited · ${c.cost_usd:.4f} this stage"
                f" · ${self.run_cost:.4f} run / ${budget:.2f} budget")
        print(line, file=sys.stderr, flush=True)


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


__all__ = ["Engine", "get_engine", "close_engine", "StageCounters", "Usage"]
