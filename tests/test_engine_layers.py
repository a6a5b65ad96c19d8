"""The call engine's layers, each alone: no HTTP, no Prefect.

* classification: each adapter module maps its own SDK's exceptions onto kinds by type (real SDK
  exception instances), never by class name;
* the retry policy: backoff honours Retry-After, attempts and wall time are bounded;
* the engine over an in-memory store and a fake adapter: ledger hits are not sent, duplicates in
  flight are sent once, the budget stops the run, a parse error is repaired once, observers see
  every step, and every call carries its ledger key in ``X-Client-Request-Id``.
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import threading
import time
from pathlib import Path

import anthropic
import httpx
import httpx2
import openai
import pytest
from google.genai import errors as genai_errors

from specstress.domain import CallRequest, CallResult, Outcome, Usage
from specstress.errors import BudgetExceeded, FatalProviderError
from specstress.providers import anthropic as anthropic_adapter
from specstress.providers import google as google_adapter
from specstress.providers import openai as openai_adapter
from specstress.providers.base import TRACE_HEADER, ProviderError, RawReply, request_headers
from specstress.providers.engine import CallEngine
from specstress.providers.limiter import ModelLimiter
from specstress.providers.observers import Counters, EngineEvent, ProgressLine
from specstress.providers.retry import (
    RetryPolicy,
    call_with_retries,
    is_fatal,
    is_permanent,
    should_retry,
)
from specstress.providers.store import MemoryStore
from specstress.schemas import TOPICS, schema_spec
from specstress.warehouse.ledger import make_row
from specstress.warehouse.store import utcnow

ROOT = Path(__file__).resolve().parents[1]
TOPIC = next(iter(TOPICS))
REQ = httpx2.Request("POST", "https://api.example.test/v1/x")


def response(status: int, headers: dict[str, str] | None = None, lib=httpx2) -> httpx2.Response:
    return lib.Response(status, headers=headers or {}, request=lib.Request("POST", "https://api.example.test/v1/x"))


# ---------------------------------------------------------------------- classification by type


def kind(err: ProviderError) -> tuple[str, int | None]:
    return err.kind, err.status


def test_openai_exceptions_by_type():
    c = openai_adapter.classify
    e = c(openai.RateLimitError("slow down", response=response(429, {"retry-after": "2"}), body=None))
    assert kind(e) == ("rate_limit", 429) and e.retry_after == 2.0 and should_retry(e)
    assert kind(c(openai.AuthenticationError("bad key", response=response(401), body=None))) == ("auth", 401)
    assert kind(c(openai.PermissionDeniedError("no", response=response(403), body=None))) == ("auth", 403)
    e = c(openai.NotFoundError("no such model", response=response(404), body=None))
    assert kind(e) == ("not_found", 404) and is_fatal(e) and not should_retry(e)
    e = c(openai.BadRequestError("max_tokens too large", response=response(400), body=None))
    assert kind(e) == ("bad_request", 400) and is_permanent(e) and not should_retry(e)
    e = c(openai.BadRequestError("insufficient_quota: check your billing", response=response(400), body=None))
    assert kind(e) == ("auth", 400) and is_fatal(e)
    assert kind(c(openai.InternalServerError("boom", response=response(500), body=None))) == ("server", 500)
    assert kind(c(openai.InternalServerError("busy", response=response(529), body=None))) == ("overloaded", 529)
    assert kind(c(openai.APIStatusError("pay", response=response(402), body=None))) == ("auth", 402)
    assert kind(c(openai.ConflictError("conflict", response=response(409), body=None))) == ("server", 409)
    assert c(openai.APITimeoutError(REQ)).kind == "timeout"
    assert c(openai.APIConnectionError(request=REQ)).kind == "connection"
    assert c(json.JSONDecodeError("Expecting value", '{"id": ', 7)).kind == "server"


def test_classification_follows_types_not_names():
    class Throttled(openai.RateLimitError):  # a renamed SDK class keeps its meaning
        pass

    class RateLimitError(Exception):  # a look-alike name from elsewhere means nothing
        status_code = 429

    assert openai_adapter.classify(Throttled("x", response=response(429), body=None)).kind == "rate_limit"
    assert openai_adapter.classify(RateLimitError("x")).kind == "internal"
    assert anthropic_adapter.classify(RateLimitError("x")).kind == "internal"
    assert google_adapter.classify(RateLimitError("x")).kind == "internal"
    source = (ROOT / "specstress" / "providers" / "base.py").read_text()
    assert "__mro__" not in source and "__name__ ==" not in source


def test_anthropic_exceptions_by_type():
    c = anthropic_adapter.classify
    e = c(anthropic.RateLimitError("slow", response=response(429, {"retry-after-ms": "1500"}), body=None))
    assert kind(e) == ("rate_limit", 429) and e.retry_after == 1.5
    e = c(anthropic.OverloadedError("overloaded", response=response(529), body=None))
    assert kind(e) == ("overloaded", 529) and should_retry(e)
    assert kind(c(anthropic.InternalServerError("boom", response=response(500), body=None))) == ("server", 500)
    assert kind(c(anthropic.AuthenticationError("bad key", response=response(401), body=None))) == ("auth", 401)
    assert kind(c(anthropic.NotFoundError("model", response=response(404), body=None))) == ("not_found", 404)
    assert kind(c(anthropic.BadRequestError("bad", response=response(400), body=None))) == ("bad_request", 400)
    e = c(anthropic.BadRequestError("Your credit balance is too low", response=response(400), body=None))
    assert kind(e) == ("auth", 400)
    if hasattr(anthropic, "PaymentRequiredError"):
        assert c(anthropic.PaymentRequiredError("pay", response=response(402), body=None)).kind == "auth"
    assert c(anthropic.APITimeoutError(REQ)).kind == "timeout"
    assert c(anthropic.APIConnectionError(request=REQ)).kind == "connection"


def test_google_exceptions_by_type():
    c = google_adapter.classify

    def client_error(code: int, status: str, headers=None) -> genai_errors.ClientError:
        return genai_errors.ClientError(code, {"error": {"code": code, "message": "m", "status": status}},
                                        response(code, headers))

    e = c(client_error(429, "RESOURCE_EXHAUSTED", {"retry-after": "3"}))
    assert kind(e) == ("rate_limit", 429) and e.retry_after == 3.0
    assert kind(c(client_error(400, "INVALID_ARGUMENT"))) == ("bad_request", 400)
    assert kind(c(client_error(403, "PERMISSION_DENIED"))) == ("auth", 403)
    assert kind(c(client_error(404, "NOT_FOUND"))) == ("not_found", 404)
    server = genai_errors.ServerError(503, {"error": {"code": 503, "message": "later", "status": "UNAVAILABLE"}},
                                      response(503))
    assert kind(c(server)) == ("server", 503)
    overloaded = genai_errors.ServerError(529, {"error": {"code": 529, "message": "x", "status": "INTERNAL"}},
                                          response(529))
    assert kind(c(overloaded)) == ("overloaded", 529)
    # google-genai does not wrap transport errors: those of httpx2 (or httpx) arrive as they are
    assert c(httpx2.ReadTimeout("read timed out", request=REQ)).kind == "timeout"
    assert c(httpx2.ConnectError("refused", request=REQ)).kind == "connection"
    assert c(httpx.ConnectTimeout("timed out")).kind == "timeout"
    assert c(httpx.RemoteProtocolError("peer closed")).kind == "connection"


def test_adapters_answer_should_retry_and_is_fatal():
    from specstress.providers.anthropic import AnthropicAdapter
    from specstress.providers.google import GoogleAdapter
    from specstress.providers.openai import OpenAIAdapter
    from specstress.providers.xai import XAIAdapter

    for cls, rate, auth in [
        (OpenAIAdapter, openai.RateLimitError("x", response=response(429), body=None),
         openai.AuthenticationError("x", response=response(401), body=None)),
        (XAIAdapter, openai.RateLimitError("x", response=response(429), body=None),
         openai.AuthenticationError("x", response=response(401), body=None)),
        (AnthropicAdapter, anthropic.OverloadedError("x", response=response(529), body=None),
         anthropic.AuthenticationError("x", response=response(401), body=None)),
        (GoogleAdapter, genai_errors.ClientError(429, {"error": {"message": "x"}}, response(429)),
         genai_errors.ClientError(401, {"error": {"message": "x"}}, response(401))),
    ]:
        adapter = object.__new__(cls)  # classification needs no client
        assert adapter.should_retry(rate) and not adapter.is_fatal(rate), cls
        assert adapter.is_fatal(auth) and not adapter.should_retry(auth), cls


# ---------------------------------------------------------------------- the retry policy


def test_backoff_is_jittered_capped_and_honours_retry_after():
    p = RetryPolicy(backoff_base_s=1.0, backoff_max_s=4.0)
    for attempt, (lo, hi) in {1: (0.5, 1.0), 2: (1.0, 2.0), 3: (2.0, 4.0), 6: (2.0, 4.0)}.items():
        waits = [p.backoff(attempt) for _ in range(50)]
        assert all(lo <= w <= hi for w in waits), (attempt, min(waits), max(waits))
        assert len(set(waits)) > 1  # jittered
    assert all(5.0 <= p.backoff(1, retry_after=5.0) <= 7.55 for _ in range(20))  # never before Retry-After
    assert all(0.3 <= p.backoff(6, retry_after=0.3) <= 0.5 for _ in range(20))  # nor much after it
    import random

    a = RetryPolicy(rng=random.Random(7))
    b = RetryPolicy(rng=random.Random(7))
    assert [a.backoff(2) for _ in range(5)] == [b.backoff(2) for _ in range(5)]  # seeded


def run(coro):
    return asyncio.run(coro)


class Script:
    """A ``send`` that fails with the given errors, then answers."""

    def __init__(self, *errors: ProviderError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> RawReply:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return RawReply(Outcome.OK, text="fine")


def test_retries_wait_for_retry_after_and_record_every_attempt():
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    retries: list[tuple[str, float]] = []
    send = Script(ProviderError("rate_limit", "429", status=429, retry_after=0.3),
                  ProviderError("overloaded", "529", status=529, retry_after=0.2),
                  ProviderError("timeout", "hung"))
    log = run(call_with_retries(send, RetryPolicy(backoff_base_s=0.01, backoff_max_s=0.02), sleep=sleep,
                                on_retry=lambda e, d: retries.append((e.kind, d))))
    assert log.reply is not None and log.error is None and log.attempts == 4 and send.calls == 4
    assert log.statuses == [429, 529, 200]
    assert slept[0] >= 0.3 and slept[1] >= 0.2 and slept[2] <= 0.02
    assert log.waited_s == pytest.approx(sum(slept))
    assert [k for k, _ in retries] == ["rate_limit", "overloaded", "timeout"]


def test_attempts_and_wall_time_are_bounded():
    async def sleep(s: float) -> None:
        pass

    always = Script(*[ProviderError("server", "500", status=500) for _ in range(20)])
    log = run(call_with_retries(always, RetryPolicy(max_attempts=3, backoff_base_s=0.0), sleep=sleep))
    assert log.attempts == 3 == always.calls and log.error.kind == "server" and log.statuses == [500] * 3
    # a wait that would cross max_call_seconds is not started
    slow = Script(*[ProviderError("rate_limit", "429", status=429, retry_after=5.0) for _ in range(5)])
    t0 = time.monotonic()
    log = run(call_with_retries(slow, RetryPolicy(max_attempts=10, max_call_seconds=2.0)))
    assert log.attempts == 1 and log.waited_s == 0 and time.monotonic() - t0 < 1.0
    for err in (ProviderError("auth", "401", status=401), ProviderError("bad_request", "400", status=400),
                ProviderError("internal", "bug")):
        once = Script(err, err)
        log = run(call_with_retries(once, RetryPolicy(), sleep=sleep))
        assert log.attempts == 1 and log.error is err, err.kind


# ---------------------------------------------------------------------- the engine over fakes


class FakeAdapter:
    provider = "fake"

    def __init__(self, delay_s: float = 0.0, script: dict[str, list[object]] | None = None) -> None:
        self.delay_s = delay_s
        self.script = script or {}
        self.sent: list[CallRequest] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()

    async def complete(self, req: CallRequest) -> RawReply:
        with self._lock:
            self.sent.append(req)
            self.headers.append(request_headers(req))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        steps = self.script.get(req.purpose)
        step = steps.pop(0) if steps else None
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, RawReply):
            return step
        return RawReply(Outcome.OK, text=f"answer to {req.messages[0]['content']}",
                        usage=Usage(input_tokens=10, output_tokens=5), served_model="fake-1")

    async def embed(self, req: CallRequest) -> RawReply:
        raise ProviderError("bad_request", "no embeddings")

    async def aclose(self) -> None:
        pass


class DollarPerCall:
    def cost(self, usage: Usage) -> float:
        return 1.0 if usage.output_tokens else 0.0


class Recorder:
    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def on_event(self, event: EngineEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def req(text: str, purpose: str = "test", **kw) -> CallRequest:
    return CallRequest(provider="fake", model="fake-1", model_id="fk", messages=[{"role": "user", "content": text}],
                       purpose=purpose, **kw)


@pytest.fixture
def make_engine():
    made: list[CallEngine] = []

    def make(adapter: FakeAdapter, store: MemoryStore | None = None, **kw) -> CallEngine:
        kw.setdefault("policy", RetryPolicy(max_attempts=4, backoff_base_s=0.001, backoff_max_s=0.01))
        eng = CallEngine(store if store is not None else MemoryStore(), lambda r: adapter, run_id="run-1", **kw)
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng.close()


def test_ledger_hits_are_not_sent(make_engine):
    store = MemoryStore()
    cached = req("already answered")
    store.append(make_row(cached, CallResult(key=cached.key, outcome=Outcome.OK, text="old"), "run-0", utcnow(), [200]))
    adapter = FakeAdapter()
    eng = make_engine(adapter, store)
    fresh = req("new question")
    results = eng.run_calls([cached, fresh], "stage")
    assert results[0].cached and results[0].text == "old"
    assert results[1].outcome == Outcome.OK and not results[1].cached
    assert [r.key for r in adapter.sent] == [fresh.key]
    assert eng.counters["stage"].hits == 1 and eng.counters["stage"].sent == 1
    assert [r["key"] for r in store.rows] == [cached.key, fresh.key]
    assert store.rows[1]["attempts"] == 1 and store.rows[1]["http_statuses"] == "200"
    eng.run_calls([fresh], "stage")  # its own row is now a hit
    assert len(adapter.sent) == 1


def test_duplicates_in_flight_are_sent_once(make_engine):
    adapter = FakeAdapter(delay_s=0.2)
    eng = make_engine(adapter)
    r = req("the same question")
    out: list[CallResult] = []
    threads = [threading.Thread(target=lambda: out.extend(eng.run_calls([req("the same question")], "s")))
               for _ in range(3)]
    for t in threads:
        t.start()
    same_batch = eng.run_calls([r, req("the same question")], "s")
    for t in threads:
        t.join()
    assert len(adapter.sent) == 1
    assert {x.text for x in out + same_batch} == {"answer to the same question"}


def test_every_call_carries_its_key_in_the_tracing_header(make_engine):
    adapter = FakeAdapter()
    eng = make_engine(adapter)
    reqs = [req(f"q{i}") for i in range(3)]
    eng.run_calls(reqs, "s")
    assert sorted(h[TRACE_HEADER] for h in adapter.headers) == sorted(r.key for r in reqs)


def test_budget_stops_the_run_before_sending(make_engine):
    adapter = FakeAdapter()
    store = MemoryStore()
    eng = make_engine(adapter, store, price_for=lambda r: DollarPerCall(), budget_usd=3.0, spent_before=1.5)
    eng.run_calls([req("a"), req("b")], "s")  # $2 spent of the $1.50 left: the next attempt is refused
    with pytest.raises(BudgetExceeded):
        eng.run_calls([req("c")], "s")
    assert len(adapter.sent) == 2
    last = store.rows[-1]
    assert last["outcome"] == Outcome.RETRYABLE_ERROR and not last["final"] and last["attempts"] == 0
    assert "budget" in last["error"]
    assert store.spent_by_run("run-1") == 2.0


def test_fatal_error_stops_the_run(make_engine):
    adapter = FakeAdapter(script={"test": [ProviderError("auth", "bad key", status=401)]})
    eng = make_engine(adapter)
    with pytest.raises(FatalProviderError, match="Fix the key"):
        eng.run_calls([req("x")], "s")
    with pytest.raises(FatalProviderError):
        eng.run_calls([req("y")], "s")  # nothing more is sent
    assert len(adapter.sent) == 1


def test_parse_error_is_repaired_once(make_engine):
    good = json.dumps({"topics": [TOPIC], "reasoning": "r"})
    adapter = FakeAdapter(script={"tag": [RawReply(Outcome.OK, text="not json")],
                                  "tag:repair": [RawReply(Outcome.OK, text=good)]})
    store = MemoryStore()
    eng = make_engine(adapter, store)
    r = req("tag this", purpose="tag", schema=schema_spec("topics"))
    [res] = eng.run_calls([r], "s")
    assert res.outcome == Outcome.OK and res.error == "repaired" and res.parsed["topics"] == [TOPIC]
    assert [x.purpose for x in adapter.sent] == ["tag", "tag:repair"]
    assert [row["purpose"] for row in store.rows] == ["tag:repair", "tag"]
    # a repair that fails too is not repaired again: the answer is a final parse_error
    adapter2 = FakeAdapter(script={"tag": [RawReply(Outcome.OK, text="nope")],
                                   "tag:repair": [RawReply(Outcome.OK, text="still nope")]})
    eng2 = make_engine(adapter2)
    [res2] = eng2.run_calls([req("tag that", purpose="tag", schema=schema_spec("topics"))], "s")
    assert res2.outcome == Outcome.PARSE_ERROR and res2.final
    assert [x.purpose for x in adapter2.sent] == ["tag", "tag:repair"]


def test_observers_see_every_step(make_engine):
    adapter = FakeAdapter(script={"test": [ProviderError("rate_limit", "429", status=429, retry_after=0.01)]})
    rec = Recorder()
    store = MemoryStore()
    eng = make_engine(adapter, store, price_for=lambda r: DollarPerCall(), observers=[rec])
    hit = req("cached")
    store.append(make_row(hit, CallResult(key=hit.key, outcome=Outcome.OK), "run-0", utcnow(), [200]))
    eng.expect("s", 2)
    [_, res] = eng.run_calls([hit, req("fresh")], "s")
    assert res.attempts == 2 and res.wait_s >= 0.01
    kinds = rec.kinds()
    for k in ("expected", "planned", "cache_hit", "call_started", "rate_limited", "retry", "cost", "call_ended"):
        assert k in kinds, k
    assert kinds.index("call_started") < kinds.index("retry") < kinds.index("call_ended")
    retry = next(e for e in rec.events if e.kind == "retry")
    assert retry.error_kind == "rate_limit" and retry.delay_s >= 0.01
    c = eng.counters["s"]
    assert (c.expected, c.planned, c.hits, c.sent, c.done, c.retries, c.rate_limited) == (2, 2, 1, 1, 1, 1, 1)
    assert c.cost_usd == 1.0 and eng.run_cost == 1.0 and dict(c.outcomes) == {"ok": 1}


def test_progress_line_is_an_observer():
    counters = Counters()
    out = io.StringIO()
    line = ProgressLine(counters, budget_usd=5.0, stream=out)
    for e in (EngineEvent("expected", "responses", n=10), EngineEvent("planned", "responses", n=4),
              EngineEvent("cache_hit", "responses", n=1), EngineEvent("call_started", "responses"),
              EngineEvent("retry", "responses", delay_s=1.25), EngineEvent("rate_limited", "responses"),
              EngineEvent("cost", "responses", cost_usd=0.5), EngineEvent("call_ended", "responses", outcome="ok")):
        counters.on_event(e)
        line.on_event(e)
    line.print(force=True)
    assert out.getvalue() == ("[responses] 2/10 calls · 1 cached · 1 retries (1.2s waited) · 1 rate-limited"
                              " · $0.5000 this stage · $0.5000 run / $5.00 budget\n")
    line.print()  # nothing moved: no second line
    assert out.getvalue().count("\n") == 1


def test_a_failing_observer_does_not_break_calls(make_engine):
    class Broken:
        def on_event(self, event: EngineEvent) -> None:
            raise RuntimeError("observer bug")

    eng = make_engine(FakeAdapter(), observers=[Broken()])
    [res] = eng.run_calls([req("x")], "s")
    assert res.outcome == Outcome.OK


def test_limits_are_per_provider_and_model(make_engine):
    made: list[tuple[str, str]] = []

    def limiter_for(r: CallRequest) -> ModelLimiter:
        made.append((r.provider, r.model))
        return ModelLimiter(2)

    eng = make_engine(FakeAdapter(delay_s=0.02), limiter_for=limiter_for)
    eng.run_calls([req(f"q{i}") for i in range(10)], "s")
    assert made == [("fake", "fake-1")]
    assert eng.limiter_stats()["fake:fake-1"]["peak_in_flight"] <= 2


def test_engine_has_no_emulator_branch():
    path = ROOT / "specstress" / "providers" / "engine.py"
    source = path.read_text()
    assert "x-specstress-key" not in source.lower() and "endpoint.startswith" not in source
    strings = [n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [s for s in strings if "emulator" in s.lower()]
    r = req("x")
    assert request_headers(r) == {TRACE_HEADER: r.key}


def test_engine_prints_progress_unless_quiet(make_engine, capsys):
    loud = make_engine(FakeAdapter(), quiet=False, budget_usd=2.0)
    loud.expect("s", 3)
    loud.run_calls([req("a"), req("b")], "s")
    loud.print_progress(force=True)
    assert capsys.readouterr().err.splitlines()[-1].startswith("[s] 2/3 calls · 0 cached · 0 retries")
    quiet = make_engine(FakeAdapter())
    quiet.run_calls([req("c")], "s")
    quiet.print_progress(force=True)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------- limits shared across processes


def test_each_of_n_processes_takes_its_share_of_a_models_limits():
    from specstress.providers.engine import limiter_share
    from specstress.runspec import Limits

    lim = limiter_share(Limits(max_in_flight=10, min_in_flight=4, rpm=600, tpm=1_000_000), 4)
    assert (lim.window.max, lim.window.min, lim.rpm, lim.tpm) == (3, 3, 150, 250_000)
    one = limiter_share(Limits(max_in_flight=10, rpm=600), 1)
    assert (one.window.max, one.rpm, one.tpm) == (10, 600, None)
    assert limiter_share(Limits(max_in_flight=2), 8).window.max == 1     # never below one call in flight


def test_the_run_knows_how_many_processes_share_the_limits(tmp_path):
    from specstress.context import RunContext
    from specstress.flows.runner import limit_share_for
    from tests.conftest import DEMO

    assert limit_share_for(RunContext.create(DEMO, {"warehouse": str(tmp_path)})) == 1          # threads
    dask = RunContext.create(DEMO, {"warehouse": str(tmp_path), "task_runner.kind": "dask",
                                    "task_runner.dask_workers": 3})
    assert limit_share_for(dask) == 3          # the run's own local cluster
    assert RunContext.from_dict({**dask.to_dict(), "limit_share": 3}).limit_share == 3   # travels to workers


def test_two_processes_together_stay_within_a_models_in_flight_limit():
    """Two engines, as two Dask workers would run them, each with the run's ``limit_share`` of 2: at no moment do
    more calls than the model's max_in_flight reach the server."""
    from specstress.providers.engine import limiter_share
    from specstress.runspec import Limits

    limits = Limits(max_in_flight=4)
    peak, now, lock = [0], [0], threading.Lock()

    async def worker() -> None:
        lim = limiter_share(limits, 2)

        async def one() -> None:
            async with lim.slot():
                with lock:
                    now[0] += 1
                    peak[0] = max(peak[0], now[0])
                await asyncio.sleep(0.005)
                with lock:
                    now[0] -= 1

        await asyncio.gather(*(one() for _ in range(40)))

    threads = [threading.Thread(target=asyncio.run, args=(worker(),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] <= 4


def test_the_sdks_send_through_aiohttp_unless_the_spec_says_httpx():
    """``transport: aiohttp`` (the default) gives the openai and anthropic clients the SDKs' own aiohttp transport;
    ``transport: httpx`` keeps their httpx default. (google-genai uses aiohttp whenever it is installed.)"""
    from specstress.providers.anthropic import AnthropicAdapter
    from specstress.providers.openai import OpenAIAdapter
    from specstress.runspec import RunSpec

    assert RunSpec.model_fields["transport"].default == "aiohttp"
    for cls in (OpenAIAdapter, AnthropicAdapter):
        fast = cls(api_key="k", base_url="http://127.0.0.1:9/v1", timeout=5.0, transport="aiohttp")
        plain = cls(api_key="k", base_url="http://127.0.0.1:9/v1", timeout=5.0, transport="httpx")
        assert "Aiohttp" in type(fast.client._client).__mro__[1].__name__, type(fast.client._client).__mro__
        assert not any("Aiohttp" in c.__name__ for c in type(plain.client._client).__mro__)
