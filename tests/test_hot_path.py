"""The per-call hot path's shortcuts change nothing: the OpenAI adapter's chat call sends the request that
``chat.completions.create`` sends and reads replies as before; the retry layer's first attempt outside
tenacity keeps every wait, bound and hook; the limiter's window hands slots over in order and survives
cancellation; the write-ahead log's lines read back as the rows written."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random

import pytest

from specstress.domain import CallRequest, Outcome, Usage
from specstress.providers.base import ProviderError, RawReply, request_headers
from specstress.providers.retry import NotSent, RetryPolicy, call_with_retries

COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x-2026",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello", "refusal": None},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
              "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2}},
}


def _requests() -> list[CallRequest]:
    schema = {"name": "verdict", "schema": {"type": "object", "properties": {"v": {"type": "string", "enum": ["a"]}},
                                             "required": ["v"]}}
    return [
        CallRequest(provider="openai", model="gpt-x", messages=[{"role": "user", "content": "hi ünïcode"}],
                    params={"max_tokens": 200}),
        CallRequest(provider="openai", model="gpt-x", system="You judge.", schema=schema,
                    messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                              {"role": "user", "content": "again"}],
                    params={"max_tokens": 50, "temperature": 0.3, "top_p": 0.9, "seed": 7},
                    meta={"extra_headers": {"x-extra": "1"}}),
        CallRequest(provider="openai", model="o-x", messages=[{"role": "user", "content": "think"}],
                    params={"reasoning_effort": "low", "temperature": 1.0}),
    ]


def test_openai_chat_sends_what_the_sdk_create_sends():
    """The adapter posts its body through the SDK's generic ``post`` (no type-driven transform): the method, URL,
    headers and JSON body are those of ``chat.completions.create`` with the same arguments."""
    import httpx2
    import openai

    from specstress.providers.openai import OpenAIAdapter

    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=COMPLETION)

    async def go() -> None:
        adapter = OpenAIAdapter(api_key="sk-test", base_url="http://emu.test/v1", timeout=5.0, api="chat",
                                transport="httpx")
        adapter.client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://emu.test/v1", max_retries=0,
                                            timeout=5.0,
                                            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
        for req in _requests():
            seen.clear()
            kwargs = adapter._chat_body(req)
            ours = await adapter.complete(req)
            await adapter.client.chat.completions.create(**kwargs, extra_headers=request_headers(req))
            a, b = seen
            assert (a.method, str(a.url)) == (b.method, str(b.url))
            # the same JSON (the SDK orders the keys as its signature does; JSON objects are unordered)
            assert json.loads(a.content) == json.loads(b.content), (a.content, b.content)
            assert len(a.content) == len(b.content)
            drop = {"x-stainless-retry-count", "x-stainless-read-timeout"}
            assert {k: v for k, v in a.headers.items() if k not in drop} == \
                {k: v for k, v in b.headers.items() if k not in drop}
            assert ours == RawReply(Outcome.OK, text="hello", usage=Usage(12, 4, 5, 2), served_model="gpt-x-2026")
        await adapter.aclose()

    asyncio.run(go())


@pytest.mark.parametrize("body", [
    COMPLETION,
    {**COMPLETION, "choices": []},
    {**COMPLETION, "usage": None},
    {**COMPLETION, "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": None, "refusal": "no"}}]},
    {**COMPLETION, "choices": [{"index": 0, "finish_reason": "length",
                                "message": {"role": "assistant", "content": "cut"}}]},
    {**COMPLETION, "choices": [{"index": 0, "finish_reason": "content_filter",
                                "message": {"role": "assistant", "content": ""}}]},
    {**COMPLETION, "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}},
])
def test_chat_replies_read_from_json_as_from_the_sdk_model(body):
    """The JSON reader of the realtime path and the SDK model (batch results) agree on every reply shape."""
    from openai.types.chat import ChatCompletion

    from specstress.providers.openai import _chat_reply, _chat_reply_data

    assert _chat_reply_data(json.loads(json.dumps(body))) == _chat_reply(ChatCompletion.construct(**body)) == \
        _chat_reply(ChatCompletion.model_validate(body))
    assert _chat_reply_data(json.dumps(body)) == _chat_reply_data(body)   # a body served as text


def test_chat_reply_without_required_fields_is_an_error():
    from specstress.providers.openai import _chat_reply_data

    for bad in ({"model": "m"}, {"choices": [{"message": {"content": "x"}}], "model": "m"}, "not json", None):
        with pytest.raises((KeyError, TypeError)):
            _chat_reply_data(bad)


# ---------------------------------------------------------------------- the retry layer's fast path


def _tenacity_only(send, policy, **hooks):
    """The reference: every attempt through tenacity (the loop as it was before the fast path)."""
    import time

    from tenacity import RetryCallState

    from specstress.providers.retry import Attempts

    async def run():
        log = Attempts()
        classify = hooks.get("classify", lambda e: e)
        before_attempt, on_failure, on_retry = hooks.get("before_attempt"), hooks.get("on_failure"), hooks.get("on_retry")

        def before_sleep(state: RetryCallState) -> None:
            log.waited_s += state.upcoming_sleep
            if on_retry is not None:
                on_retry(state.outcome.exception(), state.upcoming_sleep)

        try:
            async for attempt in policy.retrying(sleep=hooks.get("sleep"), before_sleep=before_sleep):
                with attempt:
                    if before_attempt is not None:
                        before_attempt()
                    log.attempts += 1
                    t0 = time.monotonic()
                    try:
                        reply = await send()
                    except Exception as exc:  # noqa: BLE001
                        err = classify(exc)
                        if err.status:
                            log.statuses.append(err.status)
                        if on_failure is not None:
                            on_failure(err)
                        raise err from None
                    log.latency_s = time.monotonic() - t0
                    log.statuses.append(reply.status)
                    log.reply = reply
        except ProviderError as err:
            log.error = err
        except NotSent as stop:
            log.not_sent = str(stop)
        return log

    return run()


@pytest.mark.parametrize("script", [
    ["ok"],
    ["rate_limit", "ok"],
    ["server", "timeout", "ok"],
    ["bad_request"],
    ["auth"],
    ["rate_limit"] * 12,
    ["server", "bad_request"],
    ["notsent"],
    ["rate_limit", "notsent"],
])
@pytest.mark.parametrize("max_attempts", [1, 3, 10])
def test_first_attempt_fast_path_matches_tenacity(script, max_attempts):
    """Attempts, statuses, waits (same jitter draws), hook calls and the final error or reply are those of the
    plain tenacity loop, whether the first attempt succeeds, fails for good, or fails and retries."""

    def make():
        events: list = []
        state = {"i": 0}

        async def send():
            step = script[min(state["i"], len(script) - 1)]
            state["i"] += 1
            if step == "ok":
                return RawReply(Outcome.OK, text="t")
            status = {"rate_limit": 429, "server": 500, "timeout": None, "bad_request": 400, "auth": 401}[step]
            raise ProviderError(step, step, status=status, retry_after=0.01 if status == 429 else None)

        def before_attempt():
            events.append(("before", state["i"]))
            if script[min(state["i"], len(script) - 1)] == "notsent":
                raise NotSent("budget")

        async def sleep(s):
            events.append(("sleep", round(s, 9)))

        hooks = dict(before_attempt=before_attempt, sleep=sleep,
                     on_failure=lambda e: events.append(("fail", e.kind)),
                     on_retry=lambda e, d: events.append(("retry", e.kind, round(d, 9))))
        policy = RetryPolicy(max_attempts=max_attempts, max_call_seconds=600, backoff_base_s=0.5, backoff_max_s=4,
                             rng=random.Random(3))
        return send, policy, hooks, events

    send, policy, hooks, ev_fast = make()
    fast = asyncio.run(call_with_retries(send, policy, **hooks))
    send, policy, hooks, ev_ref = make()
    ref = asyncio.run(_tenacity_only(send, policy, **hooks))
    assert ev_fast == ev_ref
    assert (fast.attempts, fast.statuses, round(fast.waited_s, 9), fast.not_sent, fast.reply) == \
        (ref.attempts, ref.statuses, round(ref.waited_s, 9), ref.not_sent, ref.reply)
    assert (fast.error.kind if fast.error else None) == (ref.error.kind if ref.error else None)


def test_retry_time_bound_counts_from_the_first_attempt():
    """``max_call_seconds`` is measured from before the first attempt, also when that attempt ran on the fast
    path: a first attempt that took longer than the bound is not retried."""
    policy = RetryPolicy(max_attempts=10, max_call_seconds=0.2, backoff_base_s=0.01, backoff_max_s=0.01)
    calls = {"n": 0}

    async def send():
        calls["n"] += 1
        await asyncio.sleep(0.25)
        raise ProviderError("server", "slow 500", status=500)

    log = asyncio.run(call_with_retries(send, policy))
    assert calls["n"] == 1 and log.attempts == 1 and log.error is not None and log.error.kind == "server"


# ---------------------------------------------------------------------- the write-ahead log


def test_wal_lines_read_back_as_the_rows(tmp_path):
    """Rows written to the WAL (orjson) come back from recover() as written (datetimes, unicode, floats, a lone
    surrogate that orjson refuses), and a line written by the json module before reads as well."""
    import os
    import shutil

    from specstress.domain import CallResult
    from specstress.warehouse.ledger import Ledger, _json_default, make_row
    from specstress.warehouse.store import Warehouse

    wh = Warehouse(str(tmp_path / "wh"))
    led = Ledger(wh, wal=True, flush_rows=10_000, flush_seconds=3600)
    start = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    rows = []
    for i, text in enumerate(["ünï ✓ \u2028 \u0085 \r\n \"q\"", "plain"]):
        req = CallRequest(provider="openai", model="m", messages=[{"role": "user", "content": f"héllo {i}"}])
        res = CallResult(key=req.key, outcome="ok", text=text, parsed={"a": [1, 2.5]}, vector=[0.1, -2.5e-7],
                         usage=Usage(1, 0, 2, 0), cost_usd=1e-6, latency_s=0.123456789, attempts=2, wait_s=0.5)
        rows.append(make_row(req, res, "run-1", start, [429, 200]))
        led.append(rows[-1], flush=False)
    # a lone surrogate: orjson refuses it, the json module writes it escaped (its Parquet write fails later, as
    # before); here it is only read back from the log
    bad = dict(rows[1], key="k-surrogate", text="a\ud800b")
    led._wal_write(bad)
    old = dict(rows[1], key="k-old")
    with open(led._wal_path, "a", encoding="utf-8") as fh:   # a line from a writer of the json module
        fh.write(json.dumps(old, default=_json_default) + "\n")
    # the log as a dead writer's: read back by recover()'s reader
    dead = os.path.join(os.path.dirname(led._wal_path), "otherhost~999999-dead-000000.jsonl")
    shutil.copy(led._wal_path, dead)
    from specstress.warehouse.ledger import _row_from_json

    with open(dead, encoding="utf-8") as fh:
        back = [_row_from_json(json.loads(line)) for line in fh]
    assert back == [*rows, bad, old]
    assert back[0]["started_at"] == start and back[0]["text"] == rows[0]["text"]


# ---------------------------------------------------------------------- the limiter's window


def test_window_hands_slots_over_in_order_within_the_limit():
    from specstress.providers.limiter import AIMDWindow

    async def go() -> tuple[list[int], int]:
        w = AIMDWindow(max_in_flight=3)
        order, peak = [], 0

        async def job(i: int) -> None:
            nonlocal peak
            await w.acquire()
            order.append(i)
            peak = max(peak, w.in_flight)
            await asyncio.sleep(0.001 * (i % 3))
            await w.release()

        await asyncio.gather(*(job(i) for i in range(50)))
        assert w.in_flight == 0 and not [f for f in w._waiters if not f.done()]
        return order, peak

    order, peak = asyncio.run(go())
    assert order == list(range(50)) and peak == 3


def test_window_survives_cancelled_waiters():
    """A waiter cancelled while queued leaves no slot behind; one cancelled just after a slot was handed to it
    passes the slot on."""
    from specstress.providers.limiter import AIMDWindow

    async def go() -> None:
        w = AIMDWindow(max_in_flight=1)
        await w.acquire()
        a = asyncio.ensure_future(w.acquire())
        b = asyncio.ensure_future(w.acquire())
        await asyncio.sleep(0)
        a.cancel()                      # cancelled while queued
        await asyncio.sleep(0)
        await w.release()               # the slot goes past the cancelled waiter to b
        await asyncio.wait_for(b, 1)
        assert w.in_flight == 1
        c = asyncio.ensure_future(w.acquire())
        await asyncio.sleep(0)
        await w.release()               # handed to c ...
        c.cancel()                      # ... which is cancelled before it runs: the slot is passed on
        with pytest.raises(asyncio.CancelledError):
            await c
        assert w.in_flight == 0
        await asyncio.wait_for(w.acquire(), 1)   # and the window is free for the next one
        assert w.in_flight == 1

    asyncio.run(go())


def test_request_bucket_holds_a_quarter_second_and_at_least_one_request():
    from specstress.providers.limiter import SAFETY, ModelLimiter

    fast = ModelLimiter(8, rpm=6000).requests
    assert fast.max_rate == pytest.approx(6000 * SAFETY / 60 * 0.25) and fast.time_period == 0.25
    slow = ModelLimiter(8, rpm=30).requests      # 0.475 a second: one request a bucket, no less
    assert slow.max_rate == pytest.approx(1.0) and slow.max_rate / slow.time_period == pytest.approx(30 * SAFETY / 60)

    async def one() -> None:
        async with ModelLimiter(1, rpm=30).slot(10):
            pass

    asyncio.run(one())


# ---------------------------------------------------------------------- the engine's garbage-collection policy


def test_gc_threshold_is_raised_while_engines_run_and_restored_after():
    import gc

    from specstress.providers import gcpolicy

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        gcpolicy.engine_started()
        gcpolicy.engine_started()
        assert gc.get_threshold() == (gcpolicy.GEN0_THRESHOLD, 10, 10)
        gcpolicy.engine_closed()
        assert gc.get_threshold()[0] == gcpolicy.GEN0_THRESHOLD     # one engine still runs
        gcpolicy.engine_closed()
        assert gc.get_threshold() == (700, 10, 10)
        gcpolicy.engine_closed()                                     # an extra close changes nothing
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(0)                                          # automatic collection off: left off
        gcpolicy.engine_started()
        assert gc.get_threshold()[0] == 0
        gcpolicy.engine_closed()
    finally:
        gc.set_threshold(*before)


def test_emulator_identity_is_remembered_per_section_and_model(tmp_path):
    """The emulator's endpoint identity is made once per (validated section, model); a changed section (a new
    object) gets its own."""
    from specstress.emulator import plugin
    from specstress.runspec import load_run_spec
    from tests.conftest import DEMO

    spec = load_run_spec(DEMO)
    entry = next(m for m in spec.models if plugin.serves(spec, m))
    first = plugin.identity(spec, entry)
    assert plugin.identity(spec, entry) == first
    other = load_run_spec(DEMO, {"emulator.faults.refusal_rate": 0.25})
    assert plugin.identity(other, next(m for m in other.models if m.id == entry.id)) != first
    assert plugin.identity(spec, entry) == first
