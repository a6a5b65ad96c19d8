"""The real openai, anthropic and google-genai SDKs over loopback HTTP against the emulator,
with faults injected: every call ends with a final outcome, nothing is completed twice, the
retry layer is ours alone, and keys never reach the ledger."""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest

from specstress.context import RunContext
from specstress.domain import FINAL_OUTCOMES, CallRequest, Outcome
from specstress.errors import FatalProviderError
from specstress.providers.engine import Engine
from specstress.providers.limiter import AIMDWindow
from specstress.schemas import schema_spec
from specstress.tasks.base import make_request
from tests.conftest import make_emulator
from tests.providers_spec import CHAT_IDS, write_spec

QUERY = ("I'm a nurse and my team has to decide by Friday. On one hand I care about harm prevention; on the other, "
         "user autonomy matters here too. What should I do? (case {i})")


class Setup:
    def __init__(self, tmp_path, faults=None, retry=None):
        self.path = write_spec(tmp_path, faults, retry)
        self.emu = make_emulator(self.path).start()
        self.ctx = RunContext.create(self.path, emulator_url=self.emu.url, quiet=True)
        self.engine = Engine(self.ctx)

    def requests(self, model_ids, n, schema=None, offset=0):
        out = []
        for mid in model_ids:
            for i in range(n):
                r = make_request(self.ctx.spec, mid, None, None, purpose="test",
                                 user_text=QUERY.format(i=i + offset) if not schema else
                                 f"<query>{QUERY.format(i=i + offset)}</query> Tag the topics.")
                if schema:
                    r.schema = schema_spec(schema)
                    r._key = None
                out.append(r)
        return out

    def close(self):
        self.engine.close()
        self.emu.stop()


@pytest.fixture
def setup_factory(tmp_path):
    made = []

    def make(faults=None, retry=None):
        s = Setup(tmp_path / f"s{len(made)}", faults, retry)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_every_sdk_under_faults(setup_factory):
    s = setup_factory({"rate_429": 0.10, "retry_after_s": 0.05, "rate_500": 0.01, "rate_503": 0.01, "rate_529": 0.01,
                       "hang_rate": 0.01, "hang_s": 4.0, "latency_ms": 2, "latency_jitter_ms": 5})
    reqs = s.requests(CHAT_IDS, 30)
    results = s.engine.run_calls(reqs, "test")
    assert all(r.outcome in FINAL_OUTCOMES for r in results), {r.outcome for r in results}
    assert all(r.outcome == Outcome.OK for r in results)
    stats = s.emu.stats()
    assert stats["served_429"] > 0
    assert stats["max_completions_per_key"] == 1, stats["duplicate_completions"]
    assert stats["completed_keys"] == len(reqs)
    retried = [r for r in results if r.attempts > 1]
    assert retried and all(r.wait_s > 0 for r in retried)
    by_model = {}
    for req, res in zip(reqs, results, strict=True):
        by_model.setdefault(req.model_id, []).append(res)
    assert set(by_model) == set(CHAT_IDS)
    for mid, res in by_model.items():
        assert all(r.served_model and "emu" in r.served_model for r in res), mid
        assert all(r.usage.input_tokens > 0 and r.usage.output_tokens > 0 for r in res), mid
        assert all(r.cost_usd > 0 for r in res), mid
    assert all(r.usage.reasoning_tokens > 0 for r in by_model["oa-resp"])
    assert all(r.usage.reasoning_tokens > 0 for r in by_model["gg-think"])
    s.engine.flush()
    rows = pq.read_table(s.engine.ledger.files()).to_pylist()
    assert {r["key"] for r in rows} == {r.key for r in reqs}
    assert sum(r["attempts"] for r in rows) >= len(reqs) + stats["served_429"]


def test_our_retry_layer_is_the_only_one(setup_factory):
    s = setup_factory({"outages": [{"model": "sim-guardian", "status": 503, "requests": 2}]})
    [res] = s.engine.run_calls(s.requests(["oa-chat"], 1), "test")
    assert res.outcome == Outcome.OK and res.attempts == 3
    assert s.emu.stats()["by_model"]["sim-guardian"] == 3  # the SDK added no attempts of its own


def test_retry_after_is_honoured(setup_factory):
    s = setup_factory({"retry_after_s": 0.3, "outages": [{"model": "sim-pragmatist", "status": 429, "requests": 3}]})
    t0 = time.monotonic()
    [res] = s.engine.run_calls(s.requests(["an"], 1), "test")
    assert res.outcome == Outcome.OK and res.attempts == 4
    assert res.wait_s >= 0.9 - 1e-9 and time.monotonic() - t0 >= 0.89


def test_bounded_attempts_end_retryable_not_final(setup_factory):
    s = setup_factory({"outages": [{"model": "sim-individualist", "status": 500, "requests": 100}]},
                      retry={"max_attempts": 3, "max_call_seconds": 30, "request_timeout_s": 2,
                             "backoff_base_s": 0.01, "backoff_max_s": 0.05})
    [res] = s.engine.run_calls(s.requests(["gg"], 1), "test")
    assert res.outcome == Outcome.RETRYABLE_ERROR and not res.final and res.attempts == 3
    assert "HTTP 500" in res.error
    assert s.engine.ledger.lookup([res.key]) == {}  # not a cache hit: a rerun will send it again


def test_structured_output_native_on_every_provider(setup_factory):
    s = setup_factory()
    reqs = s.requests(["oa-chat", "oa-resp", "an", "an-think", "gg", "xai", "compat", "sim"], 3, schema="topics")
    results = s.engine.run_calls(reqs, "test")
    assert all(r.outcome == Outcome.OK for r in results), [(r.outcome, r.error) for r in results]
    assert all(isinstance(r.parsed, dict) and "topics" in r.parsed for r in results)


def test_refusal_truncation_and_malformed(setup_factory):
    s = setup_factory({"refusal_rate": 1.0})
    reqs = s.requests(["oa-chat", "oa-resp", "an", "gg"], 1)
    res = {req.model_id: r for req, r in zip(reqs, s.engine.run_calls(reqs, "test"), strict=True)}
    assert res["oa-chat"].outcome == Outcome.REFUSAL
    assert res["oa-resp"].outcome == Outcome.REFUSAL
    assert res["an"].outcome == Outcome.REFUSAL
    assert res["gg"].outcome == Outcome.CONTENT_FILTER
    s2 = setup_factory({"truncation_rate": 1.0})
    reqs = s2.requests(["oa-chat", "oa-resp", "an", "gg"], 1, offset=10)
    assert {r.outcome for r in s2.engine.run_calls(reqs, "test")} == {Outcome.TRUNCATED}
    s3 = setup_factory({"malformed_rate": 0.3})
    reqs = s3.requests(["oa-chat", "an", "gg"], 10, offset=20)
    assert {r.outcome for r in s3.engine.run_calls(reqs, "test")} == {Outcome.OK}
    assert s3.emu.stats()["malformed"] > 0


def test_parse_error_is_repaired_once_then_recorded(setup_factory):
    s = setup_factory()
    s.emu.state.agent.sim.rubric_error_rate = 0.5
    reqs = s.requests(["sim"], 20, schema="spectrum")
    for r in reqs:  # a spectrum prompt needs the two values
        r.messages = [{"role": "user", "content": r.messages[0]["content"] +
                       " <value1>harm prevention</value1><value2>user autonomy</value2>"}]
        r._key = None
    results = s.engine.run_calls(reqs, "test")
    outcomes = {r.outcome for r in results}
    assert outcomes <= {Outcome.OK, Outcome.PARSE_ERROR}
    assert any(r.error == "repaired" for r in results)
    s.engine.flush()
    stages = {r["purpose"] for r in pq.read_table(s.engine.ledger.files()).to_pylist()}
    assert "test:repair" in stages


def test_embeddings_through_openai_and_gemini(setup_factory):
    s = setup_factory({"rate_429": 0.2, "retry_after_s": 0.02})
    spec = s.ctx.spec
    reqs = []
    for mid in ("emb-oa", "emb-gg"):
        e = spec.model(mid)
        reqs.append(CallRequest(provider=e.provider, model=e.model, kind="embedding", model_id=mid, purpose="test",
                                endpoint="emulator:x", params={"dimensions": 64},
                                messages=[{"role": "user", "content": t} for t in ("a b c", "d e f", "g h i")]))
    results = s.engine.run_calls(reqs, "test")
    for r in results:
        assert r.outcome == Outcome.OK
        vectors = r.parsed["vectors"]
        assert len(vectors) == 3 and all(len(v) == 64 for v in vectors)


def test_auth_failure_stops_the_run(setup_factory):
    s = setup_factory({"outages": [{"model": "sim-guardian", "status": 401, "requests": 5}]})
    with pytest.raises(FatalProviderError) as err:
        s.engine.run_calls(s.requests(["oa-chat"], 2), "test")
    assert "Fix the key" in str(err.value)


def test_echoed_keys_are_scrubbed(setup_factory, monkeypatch):
    canary = "sk-canary-" + "q" * 24
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    s = setup_factory({"echo_auth_rate": 1.0})
    [res] = s.engine.run_calls(s.requests(["oa-chat"], 1), "test")
    assert res.outcome == Outcome.PERMANENT_ERROR
    assert canary not in (res.error or "") and "[REDACTED]" in res.error
    s.engine.flush()
    dumped = json.dumps(pq.read_table(s.engine.ledger.files()).to_pylist(), default=str)
    assert canary not in dumped


def test_aimd_window():
    w = AIMDWindow(max_in_flight=32, min_in_flight=2, cooldown_s=0.0)
    w.on_rate_limited()
    assert w.limit == 16
    for _ in range(5):
        w.on_rate_limited()
    assert w.limit == 2  # never below the floor
    for _ in range(200):
        w.on_success()
    assert 2 < w.limit <= 32
    w2 = AIMDWindow(max_in_flight=8, cooldown_s=60.0)
    w2.on_rate_limited()
    w2.on_rate_limited()  # within the cool-down: one cut per burst of 429s
    assert w2.limit == 4 and w2.cuts == 1


def test_in_flight_is_bounded_per_model(setup_factory):
    s = setup_factory({"latency_ms": 50})
    entry = s.ctx.spec.model("oa-chat")
    entry.limits.max_in_flight = 5
    s.engine.run_calls(s.requests(["oa-chat"], 40), "test")
    stats = s.engine.limiter_stats()
    assert stats["openai:sim-guardian"]["peak_in_flight"] <= 5
    assert s.emu.stats()["max_in_flight"] <= 5


def test_rpm_limit_paces_requests(setup_factory):
    s = setup_factory({"rpm": {"sim-pragmatist": 1200}})  # 20/s at the server
    entry = s.ctx.spec.model("an")
    entry.limits.rpm = 1200
    t0 = time.monotonic()
    results = s.engine.run_calls(s.requests(["an"], 60), "test")
    elapsed = time.monotonic() - t0
    assert all(r.ok for r in results)
    assert s.emu.stats()["served_429"] <= 3
    assert elapsed >= 1.5  # 60 requests at ~19/s after a one-second burst


def test_account_errors_in_400_bodies_are_fatal_not_cached():
    from specstress.providers.base import kind_for_status

    assert kind_for_status(400, "API key not valid. Please pass a valid API key.") == "auth"
    assert kind_for_status(400, "Your credit balance is too low to access the API") == "auth"
    assert kind_for_status(400, "max_tokens: must be at most 8192") == "bad_request"
    assert kind_for_status(402, "") == "auth"


def test_window_growth_wakes_queued_requests():
    import asyncio

    async def scenario() -> int:
        w = AIMDWindow(max_in_flight=8, min_in_flight=2, start=2, cooldown_s=0.0)
        peak = 0

        async def job():
            nonlocal peak
            await w.acquire()
            peak = max(peak, w.in_flight)
            await asyncio.sleep(0.01)
            w.on_success()
            await w.release()

        await asyncio.gather(*(job() for _ in range(200)))
        return peak

    assert asyncio.run(scenario()) > 2  # the window grew and more requests ran at once


def test_custom_key_variables_are_scrubbed(monkeypatch):
    from specstress.secrets import redact, register_key_variables

    monkeypatch.setenv("MY_VLLM_CREDENTIAL", "tok-abcdefghijkl")
    assert "tok-abcdefghijkl" in redact("echo tok-abcdefghijkl")
    register_key_variables(["MY_VLLM_CREDENTIAL"])
    assert redact("echo tok-abcdefghijkl") == "echo [REDACTED]"
