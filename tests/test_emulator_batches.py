"""The emulator's native batch APIs and prompt-caching usage, driven by the real openai, anthropic and
google-genai SDKs over loopback HTTP: every item is answered as the realtime call with the same key is,
submissions are counted per key, and the batch fault knobs (item failures, expiry, cancel, poll errors,
outages) come out the way each SDK reports them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.types.messages import MessageBatchIndividualResponse
from google import genai
from google.genai import errors as genai_errors
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from pydantic import ValidationError

from specstress.emulator.config import Faults
from tests.conftest import make_emulator

DELAY = 0.2
OA_MODEL, AN_MODEL, GG_MODEL = "sim-guardian", "sim-pragmatist", "sim-individualist"
SYSTEM = "You are a careful assistant. Answer the user's dilemma in a few sentences."


def keys(tag: str, n: int = 5) -> list[str]:
    """Deterministic 64-hex ledger keys, distinct per test."""
    return [hashlib.sha256(f"{tag}-{i}".encode()).hexdigest() for i in range(n)]


def question(i: int) -> str:
    return f"My team must decide by Friday whether to share a patient's data with a researcher (case {i}). What now?"


@pytest.fixture(scope="module")
def emu():
    server = make_emulator(faults=Faults(batch_delay_s=DELAY)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(emu):
    emu.set_faults(Faults(batch_delay_s=DELAY))
    emu.state.reset_stats()
    yield


def set_faults(emu, **knobs: Any) -> None:
    emu.set_faults(Faults(**{"batch_delay_s": DELAY, **knobs}))


def oa_client(emu) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="test-key", base_url=emu.url + "/v1", max_retries=0)


def an_client(emu) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="test-key", base_url=emu.url, max_retries=0)


def gg_client(emu) -> genai.Client:
    return genai.Client(api_key="test-key", http_options={"base_url": emu.url})


async def until(probe, timeout: float = 10.0):
    """Poll ``probe`` (an async function returning (ended, value)) until it reports ended."""
    deadline = time.monotonic() + timeout
    while True:
        ended, value = await probe()
        if ended:
            return value
        assert time.monotonic() < deadline, "the batch did not end"
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- OpenAI


def oa_line(key: str, i: int, url: str = "/v1/chat/completions", system: str = SYSTEM) -> dict[str, Any]:
    if url == "/v1/responses":
        body: dict[str, Any] = {"model": OA_MODEL, "instructions": system, "input": question(i)}
    elif url == "/v1/embeddings":
        body = {"model": "text-embedding-3-small", "input": [question(i)]}
    else:
        body = {"model": OA_MODEL, "messages": [{"role": "system", "content": system},
                                                {"role": "user", "content": question(i)}]}
    return {"custom_id": key, "method": "POST", "url": url, "body": body}


async def oa_submit(client: openai.AsyncOpenAI, lines: list[dict[str, Any]], endpoint: str = "/v1/chat/completions"):
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    f = await client.files.create(file=("batch.jsonl", data, "application/jsonl"), purpose="batch")
    assert f.id.startswith("file-") and f.bytes == len(data) and f.purpose == "batch"
    assert (await client.files.content(f.id)).content == data
    return await client.batches.create(input_file_id=f.id, endpoint=endpoint,  # type: ignore[arg-type]
                                       completion_window="24h", metadata={"stage": "test"})


async def oa_wait(client: openai.AsyncOpenAI, batch_id: str):
    async def probe():
        b = await client.batches.retrieve(batch_id)
        return b.status in ("completed", "expired", "cancelled", "failed"), b
    return await until(probe)


async def oa_lines(client: openai.AsyncOpenAI, file_id: str | None) -> dict[str, dict[str, Any]]:
    if not file_id:
        return {}
    text = (await client.files.content(file_id)).text
    return {line["custom_id"]: line for line in map(json.loads, text.splitlines()) if line}


def test_openai_batch_answers_as_realtime(emu):
    ks = keys("oa-rt")

    async def run():
        client = oa_client(emu)
        try:
            b = await oa_submit(client, [oa_line(k, i) for i, k in enumerate(ks)])
            assert b.id.startswith("batch_") and b.status == "in_progress" and b.output_file_id is None
            assert b.request_counts.total == 5 and b.metadata == {"stage": "test"}
            b = await oa_wait(client, b.id)
            assert b.status == "completed" and b.completed_at and b.error_file_id is None
            assert (b.request_counts.completed, b.request_counts.failed) == (5, 0)
            out = await oa_lines(client, b.output_file_id)
            assert set(out) == set(ks)
            listed = await client.batches.list()
            assert b.id in [x.id for x in listed.data]
            for i, k in enumerate(ks):
                line = out[k]
                ChatCompletion.model_validate(line["response"]["body"])   # strictly, as a batch reader parses it
                assert line["id"].startswith("batch_req_") and line["error"] is None
                assert line["response"]["status_code"] == 200 and line["response"]["request_id"].startswith("req_")
                batch_text = line["response"]["body"]["choices"][0]["message"]["content"]
                rt = await client.chat.completions.create(
                    model=OA_MODEL, messages=oa_line(k, i)["body"]["messages"], extra_headers={"X-Client-Request-Id": k})
                assert rt.choices[0].message.content == batch_text
        finally:
            await client.close()

    asyncio.run(run())
    stats = emu.stats()
    assert stats["batches"] == 1 and stats["batch_items_submitted"] == 5
    assert stats["max_submissions_per_key"] == 1 and stats["keys_submitted_more_than_once"] == 0
    assert stats["max_completions_per_key"] == 2 and stats["completed_keys"] == 5   # batch + realtime
    assert stats["batch_items"]["succeeded"] == 5
    assert {"file_upload", "file_content", "batch_create", "batch_get", "batch_list"} <= set(stats["by_endpoint"])
    assert stats["tokens_in"] > 0 and stats["tokens_out"] > 0
    by_key = httpx.get(f"{emu.url}/_emulator/stats", params={"keys": 1}).json()
    assert by_key["submissions_by_key"] == {k: 1 for k in ks}


def test_openai_responses_and_embeddings_batches(emu):
    async def run():
        client = oa_client(emu)
        try:
            for url, tag in (("/v1/responses", "oa-resp"), ("/v1/embeddings", "oa-emb")):
                ks = keys(tag, 2)
                b = await oa_wait(client, (await oa_submit(client, [oa_line(k, i, url) for i, k in enumerate(ks)],
                                                           url)).id)
                out = await oa_lines(client, b.output_file_id)
                assert set(out) == set(ks)
                body = out[ks[0]]["response"]["body"]
                if url == "/v1/responses":
                    Response.model_validate(body)
                    rt = await client.responses.create(model=OA_MODEL, instructions=SYSTEM, input=question(0),
                                                       extra_headers={"X-Client-Request-Id": ks[0]})
                    text = body["output"][1]["content"][0]["text"]
                    assert rt.output_text == text
                else:
                    CreateEmbeddingResponse.model_validate(body)
                    rt = await client.embeddings.create(model="text-embedding-3-small", input=[question(0)])
                    assert rt.data[0].embedding == body["data"][0]["embedding"]
        finally:
            await client.close()

    asyncio.run(run())


def test_openai_invalid_input_file_fails_the_batch(emu):
    async def run():
        client = oa_client(emu)
        try:
            ks = keys("oa-bad", 2)
            b = await oa_submit(client, [oa_line(ks[0], 0), oa_line(ks[1], 1, "/v1/responses")])
            assert b.status == "failed" and b.errors is not None
            assert [e.code for e in b.errors.data or []] == ["mismatched_endpoint"]
        finally:
            await client.close()

    asyncio.run(run())


# --------------------------------------------------------------------------- Anthropic


def an_params(i: int, system: Any = SYSTEM, **extra: Any) -> dict[str, Any]:
    return {"model": AN_MODEL, "max_tokens": 300, "system": system,
            "messages": [{"role": "user", "content": question(i)}], **extra}


async def an_wait(client: anthropic.AsyncAnthropic, batch_id: str):
    async def probe():
        b = await client.messages.batches.retrieve(batch_id)
        return b.processing_status == "ended", b
    return await until(probe)


async def an_results(client: anthropic.AsyncAnthropic, batch_id: str) -> dict[str, Any]:
    return {line.custom_id: line.result async for line in await client.messages.batches.results(batch_id)}


def test_anthropic_batch_answers_as_realtime(emu):
    ks = keys("an-rt")
    bad = keys("an-bad", 1)[0]

    async def run():
        client = an_client(emu)
        try:
            reqs = [{"custom_id": k, "params": an_params(i)} for i, k in enumerate(ks)]
            reqs.append({"custom_id": bad, "params": an_params(9, temperature=0.5)})
            b = await client.messages.batches.create(requests=reqs)  # type: ignore[arg-type]
            assert b.id.startswith("msgbatch_") and b.processing_status == "in_progress" and b.results_url is None
            assert b.request_counts.processing == 6
            b = await an_wait(client, b.id)
            assert b.ended_at is not None and b.results_url and b.results_url.startswith("http://")
            assert b.results_url.endswith(f"/v1/messages/batches/{b.id}/results")
            assert (b.request_counts.succeeded, b.request_counts.errored, b.request_counts.processing) == (5, 1, 0)
            results = await an_results(client, b.id)
            assert set(results) == {*ks, bad}
            raw = httpx.get(b.results_url, headers={"x-api-key": "test-key"})
            assert raw.status_code == 200 and raw.headers["content-type"].startswith("application/x-jsonl")
            for line in raw.text.splitlines():   # strictly, every line
                MessageBatchIndividualResponse.model_validate_json(line)
            assert results[bad].type == "errored" and results[bad].error.error.type == "invalid_request_error"
            for i, k in enumerate(ks):
                assert results[k].type == "succeeded"
                rt = await client.messages.create(**an_params(i), extra_headers={"X-Client-Request-Id": k})
                assert rt.content[0].text == results[k].message.content[0].text
            listed = await client.messages.batches.list()
            assert b.id in [x.id for x in listed.data]
        finally:
            await client.close()

    asyncio.run(run())
    stats = emu.stats()
    assert stats["batches"] == 1 and stats["batch_items_submitted"] == 6 and stats["max_submissions_per_key"] == 1
    assert stats["max_completions_per_key"] == 2 and stats["batch_items"]["errored"] == 1
    assert "batch_results" in stats["by_endpoint"]


# --------------------------------------------------------------------------- Gemini


def gg_src(ks: list[str], system: str = SYSTEM) -> list[dict[str, Any]]:
    return [{"contents": [{"role": "user", "parts": [{"text": question(i)}]}],
             "config": {"system_instruction": system, "temperature": 0.3}, "metadata": {"key": k}}
            for i, k in enumerate(ks)]


async def gg_wait(client: genai.Client, name: str):
    async def probe():
        job = await client.aio.batches.get(name=name)
        return job.state is not None and job.state.name not in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"), job
    return await until(probe)


def test_gemini_batch_answers_as_realtime(emu):
    ks = keys("gg-rt")

    async def run():
        client = gg_client(emu)
        try:
            job = await client.aio.batches.create(model=GG_MODEL, src=gg_src(ks),  # type: ignore[arg-type]
                                                  config={"display_name": "gg-rt"})
            assert job.name and job.name.startswith("batches/") and job.state.name == "JOB_STATE_PENDING"
            assert job.display_name == "gg-rt" and job.model == f"models/{GG_MODEL}"
            job = await gg_wait(client, job.name)
            assert job.state.name == "JOB_STATE_SUCCEEDED" and job.end_time is not None
            items = job.dest.inlined_responses
            assert [(it.metadata or {}).get("key") for it in items] == ks   # request order
            for i, (k, it) in enumerate(zip(ks, items, strict=True)):
                assert it.error is None and it.response is not None
                rt = await client.aio.models.generate_content(
                    model=GG_MODEL, contents=question(i),
                    config={"system_instruction": SYSTEM, "temperature": 0.3,
                            "http_options": {"headers": {"X-Client-Request-Id": k}}})
                assert rt.text == it.response.text
                assert rt.usage_metadata.prompt_token_count == it.response.usage_metadata.prompt_token_count
            names = [j.name async for j in await client.aio.batches.list()]
            assert job.name in names
        finally:
            await client.aio.aclose()

    asyncio.run(run())
    stats = emu.stats()
    assert stats["batches"] == 1 and stats["batch_items_submitted"] == 5 and stats["max_completions_per_key"] == 2


# --------------------------------------------------------------------------- fault knobs, every provider


PROVIDERS = ["openai", "anthropic", "google"]


async def submit_and_end(emu, provider: str, ks: list[str], cancel: bool = False) -> dict[str, str]:
    """Submit a batch of ``ks``, wait for its end (or cancel it at once): {key: outcome} as each SDK reports
    it (succeeded | errored | expired | canceled), and the batch's final status."""
    out: dict[str, str] = {}
    if provider == "openai":
        client = oa_client(emu)
        try:
            b = await oa_submit(client, [oa_line(k, i) for i, k in enumerate(ks)])
            b = await client.batches.cancel(b.id) if cancel else await oa_wait(client, b.id)
            for k, line in {**await oa_lines(client, b.output_file_id),
                            **await oa_lines(client, b.error_file_id)}.items():
                if line["response"] is None:
                    out[k] = {"batch_expired": "expired", "batch_cancelled": "canceled"}[line["error"]["code"]]
                else:
                    out[k] = "succeeded" if line["response"]["status_code"] == 200 else "errored"
            out["_status"] = b.status
        finally:
            await client.close()
    elif provider == "anthropic":
        client = an_client(emu)
        try:
            b = await client.messages.batches.create(
                requests=[{"custom_id": k, "params": an_params(i)} for i, k in enumerate(ks)])  # type: ignore[misc]
            if cancel:
                b = await client.messages.batches.cancel(b.id)
                assert b.cancel_initiated_at is not None
            b = await an_wait(client, b.id)
            out = {k: r.type for k, r in (await an_results(client, b.id)).items()}
            out["_status"] = "cancelled" if b.cancel_initiated_at else b.processing_status
        finally:
            await client.close()
    else:
        client = gg_client(emu)
        try:
            job = await client.aio.batches.create(model=GG_MODEL, src=gg_src(ks))  # type: ignore[arg-type]
            if cancel:
                await client.aio.batches.cancel(name=job.name)
            job = await gg_wait(client, job.name)
            for it in job.dest.inlined_responses:
                k = it.metadata["key"]
                if it.response is not None:
                    out[k] = "succeeded"
                else:
                    out[k] = {4: "expired", 1: "canceled"}.get(it.error.code, "errored")
            out["_status"] = job.state.name
        finally:
            await client.aio.aclose()
    return out


@pytest.mark.parametrize("provider", PROVIDERS)
def test_failure_rate_one_errors_every_item(emu, provider):
    set_faults(emu, batch_item_failure_rate=1.0)
    ks = keys(f"fail-{provider}")
    out = asyncio.run(submit_and_end(emu, provider, ks))
    assert {k: out[k] for k in ks} == {k: "errored" for k in ks}
    stats = emu.stats()
    assert stats["batch_items"]["errored"] == 5 and stats["completions"] == 0


def test_a_resubmitted_key_may_succeed(emu):
    set_faults(emu, batch_item_failure_rate=0.5)
    ks = keys("resubmit", 16)
    first = asyncio.run(submit_and_end(emu, "anthropic", ks))
    failed = [k for k in ks if first[k] == "errored"]
    assert 0 < len(failed) < len(ks)
    again = asyncio.run(submit_and_end(emu, "anthropic", failed))
    assert any(again[k] == "succeeded" for k in failed)   # picked by key and submission number
    stats = emu.stats()
    assert stats["max_submissions_per_key"] == 2 and stats["keys_submitted_more_than_once"] == len(failed)
    assert stats["max_completions_per_key"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_expired_batch_answers_its_first_half(emu, provider):
    set_faults(emu, batch_expiry_rate=1.0)
    ks = keys(f"expire-{provider}")
    out = asyncio.run(submit_and_end(emu, provider, ks))
    assert [out[k] for k in ks] == ["succeeded"] * 2 + ["expired"] * 3
    assert out["_status"] in ("expired", "ended", "JOB_STATE_EXPIRED")
    assert emu.stats()["batch_items"]["expired"] == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cancel_ends_the_batch_at_once(emu, provider):
    set_faults(emu, batch_delay_s=30.0)
    ks = keys(f"cancel-{provider}")
    t0 = time.monotonic()
    out = asyncio.run(submit_and_end(emu, provider, ks, cancel=True))
    assert time.monotonic() - t0 < 10
    assert {k: out[k] for k in ks} == {k: "canceled" for k in ks}
    assert out["_status"] in ("cancelled", "JOB_STATE_CANCELLED")
    assert emu.stats()["completions"] == 0


def test_outage_and_poll_errors_are_503s_the_sdks_raise(emu):
    async def run():
        oa, an, gg = oa_client(emu), an_client(emu), gg_client(emu)
        try:
            set_faults(emu, batch_outage_s=30.0)
            with pytest.raises(openai.APIStatusError) as e1:
                await oa_submit(oa, [oa_line(keys("outage-oa", 1)[0], 0)])
            with pytest.raises(anthropic.APIStatusError) as e2:
                await an.messages.batches.create(requests=[{"custom_id": "k", "params": an_params(0)}])
            with pytest.raises(genai_errors.ServerError) as e3:
                await gg.aio.batches.create(model=GG_MODEL, src=gg_src(keys("outage-gg", 1)))  # type: ignore[arg-type]
            assert e1.value.status_code == e2.value.status_code == e3.value.code == 503
            # the outage over, every poll fails instead (creates still work)
            set_faults(emu, batch_poll_error_rate=1.0)
            b = await an.messages.batches.create(requests=[{"custom_id": keys("poll", 1)[0],
                                                            "params": an_params(0)}])
            job = await gg.aio.batches.create(model=GG_MODEL, src=gg_src(keys("poll-gg", 1)))  # type: ignore[arg-type]
            with pytest.raises(anthropic.InternalServerError):
                await an.messages.batches.retrieve(b.id)
            with pytest.raises(genai_errors.ServerError):
                await gg.aio.batches.get(name=job.name)
            with pytest.raises(openai.InternalServerError):
                await oa.batches.list()
            set_faults(emu)
            assert (await an_wait(an, b.id)).processing_status == "ended"
        finally:
            await oa.close()
            await an.close()
            await gg.aio.aclose()

    asyncio.run(run())
    stats = emu.stats()
    assert stats["batch_unavailable"] >= 6 and stats["by_status"]["503"] >= 6 and stats["batches"] == 2


def test_faults_endpoint_sets_and_validates_the_batch_knobs(emu):
    r = httpx.post(f"{emu.url}/_emulator/faults", json={"batch_item_failure_rate": 0.25, "batch_outage_s": 0.0,
                                                        "batch_expiry_rate": 0.1, "batch_poll_error_rate": 0.05,
                                                        "batch_delay_s": 0.5, "cache_min_tokens": 256})
    assert r.status_code == 200
    f = emu.state.faults
    assert (f.batch_item_failure_rate, f.batch_expiry_rate, f.batch_poll_error_rate, f.batch_delay_s,
            f.cache_min_tokens) == (0.25, 0.1, 0.05, 0.5, 256)
    for bad in ({"batch_item_failure_rate": 1.5}, {"batch_delay_s": -1}, {"cache_min_tokens": -1}):
        with pytest.raises(ValidationError):
            Faults(**bad)
    defaults = Faults()
    assert (defaults.batch_delay_s, defaults.batch_item_failure_rate, defaults.batch_expiry_rate,
            defaults.batch_poll_error_rate, defaults.batch_outage_s, defaults.cache_min_tokens) == (1.0, 0, 0, 0, 0, 1024)


# --------------------------------------------------------------------------- prompt caching


LONG = " ".join(f"Rule {i}: weigh every value the user names before answering." for i in range(40))   # ~600 tokens


def test_anthropic_cache_control_writes_then_reads(emu):
    set_faults(emu, cache_min_tokens=100)
    system = [{"type": "text", "text": "Anthropic rubric. " + LONG, "cache_control": {"type": "ephemeral"}}]
    prefix = len(system[0]["text"]) // 4

    async def run():
        client = an_client(emu)
        try:
            first = await client.messages.create(**an_params(0, system=system))
            second = await client.messages.create(**an_params(1, system=system))
            plain = await client.messages.create(**an_params(2, system="Uncached. " + LONG))
            plain2 = await client.messages.create(**an_params(3, system="Uncached. " + LONG))
            short = [{"type": "text", "text": "Too short to cache.", "cache_control": {"type": "ephemeral"}}]
            await client.messages.create(**an_params(4, system=short))
            tiny = await client.messages.create(**an_params(5, system=short))
            b = await client.messages.batches.create(
                requests=[{"custom_id": keys("an-cache", 1)[0], "params": an_params(6, system=system)}])
            await an_wait(client, b.id)
            batched = next(iter((await an_results(client, b.id)).values())).message
            return first, second, plain, plain2, tiny, batched
        finally:
            await client.close()

    first, second, plain, plain2, tiny, batched = asyncio.run(run())
    assert (first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens) == (prefix, 0)
    assert (second.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens) == (0, prefix)
    assert (batched.usage.cache_creation_input_tokens, batched.usage.cache_read_input_tokens) == (0, prefix)
    full = (len(system[0]["text"]) + len(question(1))) // 4
    assert second.usage.input_tokens == full - prefix    # input_tokens excludes cache reads and writes
    for r in (plain, plain2, tiny):
        assert (r.usage.cache_creation_input_tokens, r.usage.cache_read_input_tokens) == (0, 0)
    assert emu.stats()["cache_read_tokens"] == 2 * prefix and emu.stats()["cache_write_tokens"] == prefix


def test_openai_and_gemini_cache_a_repeated_system_prompt(emu):
    set_faults(emu, cache_min_tokens=128)
    system = "OpenAI rubric. " + LONG
    n = len(system) // 4
    gsystem = "Gemini rubric. " + LONG

    async def run():
        oa, gg = oa_client(emu), gg_client(emu)
        try:
            def msgs(i):
                return [{"role": "system", "content": system}, {"role": "user", "content": question(i)}]
            first = await oa.chat.completions.create(model=OA_MODEL, messages=msgs(0), prompt_cache_key="ss-a")
            second = await oa.chat.completions.create(model=OA_MODEL, messages=msgs(1), prompt_cache_key="ss-a")
            other_key = await oa.chat.completions.create(model=OA_MODEL, messages=msgs(2), prompt_cache_key="ss-b")
            r1 = await oa.responses.create(model="sim-scholar", instructions=system, input=question(3))
            r2 = await oa.responses.create(model="sim-scholar", instructions=system, input=question(4))
            bk = keys("oa-cache", 2)
            b = await oa_submit(oa, [oa_line(k, 5 + i, system=system) for i, k in enumerate(bk)])
            out = await oa_lines(oa, (await oa_wait(oa, b.id)).output_file_id)
            lines = [out[k]["response"]["body"]["usage"]["prompt_tokens_details"]["cached_tokens"] for k in bk]
            g1 = await gg.aio.models.generate_content(model=GG_MODEL, contents=question(6),
                                                      config={"system_instruction": gsystem})
            g2 = await gg.aio.models.generate_content(model=GG_MODEL, contents=question(7),
                                                      config={"system_instruction": gsystem})
            return first, second, other_key, r1, r2, lines, g1, g2
        finally:
            await oa.close()
            await gg.aio.aclose()

    first, second, other_key, r1, r2, lines, g1, g2 = asyncio.run(run())
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert first.usage.prompt_tokens_details.cache_write_tokens == n // 128 * 128   # written the first time
    assert second.usage.prompt_tokens_details.cached_tokens == n // 128 * 128 > 0
    assert second.usage.prompt_tokens == (len(system) + len(question(1))) // 4   # still counts all input
    assert other_key.usage.prompt_tokens_details.cached_tokens == 0
    assert r1.usage.input_tokens_details.cached_tokens == 0
    assert r2.usage.input_tokens_details.cached_tokens == n // 128 * 128
    assert (r1.usage.input_tokens_details.cache_write_tokens, r2.usage.input_tokens_details.cache_write_tokens) == \
        (n // 128 * 128, 0)
    # batch lines are cached alike: these send no prompt_cache_key (a cache apart from the keyed calls above)
    assert lines == [0, n // 128 * 128]
    assert g1.usage_metadata.cached_content_token_count is None
    assert g2.usage_metadata.cached_content_token_count == len(gsystem) // 4
    assert g2.usage_metadata.prompt_token_count == (len(gsystem) + len(question(7))) // 4
