"""The loopback provider emulator: the real SDKs' wire formats, served over real HTTP.

Endpoints (shapes the openai, anthropic and google-genai SDKs expect):

* ``POST /v1/chat/completions``, ``POST /v1/responses``, ``POST /v1/embeddings``   (OpenAI, xAI, compatible)
* ``POST /v1/messages``                                                          (Anthropic)
* ``POST /v1beta/models/{model}:generateContent``, ``:embedContent``, ``:batchEmbedContents`` (Gemini;
  ``/v1/...`` too)
* the batch APIs: ``/v1/files``, ``/v1/batches`` (OpenAI), ``/v1/messages/batches`` (Anthropic),
  ``:batchGenerateContent`` and ``/v1beta/batches`` (Gemini); see :mod:`specstress.emulator.batches`
* ``GET /_emulator/stats``, ``POST /_emulator/faults``, ``POST /_emulator/reset``, ``GET /_emulator/health``

Every request passes the fault knobs (outages, per-model RPM/TPM limits, 429/500/503/529 rates,
latency, hangs, malformed bodies, refusals, truncation), then the simulated model answers.
The stats count requests, statuses, 429s served and successful completions per ledger key (every
client request carries it in the standard ``X-Client-Request-Id`` tracing header; the older
``x-specstress-key`` is still read); the credential headers are never stored, and returned only by
the ``echo_auth_rate`` fault, which imitates a proxy that echoes them so that tests can prove the
client scrubs them.

Each endpoint's "request body -> response body" logic is a method (``openai_chat_call``, ...) that needs no
HTTP request, so that a batch item answers exactly what the realtime call with the same key answers. Prompt
caching is emulated in the usage (``Faults.cache_min_tokens``; a set of seen system prompts on the state).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import random
import socket
import threading
import time
from collections import defaultdict
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from specstress.embedding import hashed_embedding
from specstress.emulator import hostile
from specstress.emulator.config import Faults, Persona, SimSpec
from specstress.emulator.wire import Call, _error_body
from specstress.sim.agent import SimAgent, SimReply
from specstress.taxonomy import ValueIndex


class _Bucket:
    """Token bucket: ``rate`` per second, one second of burst."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.t = time.monotonic()

    def take(self, n: float = 1.0) -> float:
        """Take ``n`` tokens; returns 0, or the seconds to wait when there are not enough."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
        self.t = now
        n = min(n, self.capacity)
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate


class EmulatorState:
    def __init__(self, agent: SimAgent, faults: Faults, seed: int = 0) -> None:
        self.agent = agent
        self.faults = faults
        self.rng = random.Random(seed)
        self.started = time.monotonic()
        # provider-side state that outlives reset_stats: batches and files (specstress.emulator.batches),
        # each key's batch submissions so far, and the prompt prefixes a provider has cached
        self.batches: dict[str, Any] = {}
        self.files: dict[str, Any] = {}
        self.submission_no: dict[str, int] = defaultdict(int)
        self.cache_seen: set[tuple[str, ...]] = set()
        self.reset_stats()

    def reset_stats(self) -> None:
        self.requests = 0
        self.by_model: dict[str, int] = defaultdict(int)
        self.by_status: dict[int, int] = defaultdict(int)
        self.by_endpoint: dict[str, int] = defaultdict(int)
        self.served_429 = 0
        self.completions: dict[str, int] = defaultdict(int)
        self.completions_no_key = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.hangs = 0
        self.malformed = 0
        self.hostile = 0
        self.disconnected = 0
        self.batches_created = 0
        self.batch_items_submitted = 0
        self.submissions: dict[str, int] = defaultdict(int)
        self.batch_items: dict[str, int] = defaultdict(int)
        self.batch_unavailable = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._outage_start = time.monotonic()
        self._outage_counts: dict[int, int] = defaultdict(int)

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self._buckets = {}
        self._outage_start = time.monotonic()
        self._outage_counts = defaultdict(int)

    def stats(self) -> dict[str, Any]:
        dup = {k: n for k, n in self.completions.items() if n > 1}
        return {
            "requests": self.requests,
            "by_model": dict(self.by_model),
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "by_endpoint": dict(self.by_endpoint),
            "served_429": self.served_429,
            "completions": sum(self.completions.values()) + self.completions_no_key,
            "completed_keys": len(self.completions),
            "duplicate_completions": dup,
            "max_completions_per_key": max(self.completions.values(), default=0),
            "keys_completed_more_than_once": sum(1 for v in self.completions.values() if v > 1),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "max_in_flight": self.max_in_flight,
            "hangs": self.hangs,
            "malformed": self.malformed,
            "hostile": self.hostile,
            "disconnected": self.disconnected,
            "batches": self.batches_created,
            "batch_items_submitted": self.batch_items_submitted,
            "batch_items": {k: self.batch_items.get(k, 0) for k in ("succeeded", "errored", "expired", "canceled")},
            "batch_unavailable": self.batch_unavailable,
            "keys_submitted_more_than_once": sum(1 for v in self.submissions.values() if v > 1),
            "max_submissions_per_key": max(self.submissions.values(), default=0),
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "uptime_s": round(time.monotonic() - self.started, 3),
        }

    def cached_before(self, *key: str) -> bool:
        """Whether a provider cached this prompt prefix before (and it is cached from now on)."""
        seen = key in self.cache_seen
        self.cache_seen.add(key)
        return seen

    # ------------------------------------------------------------------ faults

    def _limit(self, kind: str, table: dict[str, float], model: str, amount: float) -> float:
        for pattern, per_minute in table.items():
            if fnmatch.fnmatch(model, pattern):
                b = self._buckets.get((kind, pattern + "|" + model))
                if b is None:
                    b = self._buckets[(kind, pattern + "|" + model)] = _Bucket(per_minute)
                return b.take(amount)
        return 0.0

    def pre_fault(self, model: str, est_tokens: int) -> tuple[int, float | None] | None:
        """A fault to answer with instead of a completion: (status, retry_after) or None."""
        f = self.faults
        for i, o in enumerate(f.outages):
            if not fnmatch.fnmatch(model, o.model):
                continue
            active = True
            if o.seconds is not None and time.monotonic() - self._outage_start > o.seconds:
                active = False
            if o.requests is not None:
                if self._outage_counts[i] >= o.requests:
                    active = False
                else:
                    self._outage_counts[i] += 1 if active else 0
            if active:
                return o.status, (f.retry_after_s if o.status in (429, 529) else None)
        wait = self._limit("rpm", f.rpm, model, 1.0)
        if wait > 0:
            return 429, wait
        wait = self._limit("tpm", f.tpm, model, float(est_tokens))
        if wait > 0:
            return 429, wait
        r = self.rng.random()
        edge = f.rate_429
        if r < edge:
            return 429, f.retry_after_s
        edge += f.rate_500
        if r < edge:
            return 500, None
        edge += f.rate_503
        if r < edge:
            return 503, None
        edge += f.rate_529
        if r < edge:
            return 529, f.retry_after_s
        return None


def _scale_usage(body: dict[str, Any], k: float) -> None:
    """Multiply every token count of a response body (the ``usage_multiplier`` fault)."""
    for key in ("usage", "usageMetadata"):
        u = body.get(key)
        if isinstance(u, dict):
            for name, v in list(u.items()):
                if isinstance(v, int) and "token" in name.lower():
                    u[name] = int(v * k)


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                out.append(str(part.get("text") or part.get("content") or ""))
            else:
                out.append(str(part))
        return "".join(out)
    return str(content)


def _tokens(text: str | None) -> int:
    return max(1, len(text or "") // 4)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _header_key(request: Request) -> str | None:
    """The ledger key a request carries (``X-Client-Request-Id``; the older ``x-specstress-key``)."""
    return request.headers.get("x-client-request-id") or request.headers.get("x-specstress-key")


class Emulator:
    """Build the ASGI app around an :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        from specstress.emulator.batches import BatchAPI

        self.state = state
        self.batch_api = BatchAPI(self)
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.openai_chat, methods=["POST"]),
            Route("/v1/responses", self.openai_responses, methods=["POST"]),
            Route("/v1/embeddings", self.openai_embeddings, methods=["POST"]),
            Route("/v1/messages", self.anthropic_messages, methods=["POST"]),
            *self.batch_api.routes(),
            Route("/{version:str}/models/{model:path}", self.gemini, methods=["POST"]),
            Route("/_emulator/stats", self.stats, methods=["GET"]),
            Route("/_emulator/faults", self.set_faults, methods=["POST", "GET"]),
            Route("/_emulator/reset", self.reset, methods=["POST"]),
            Route("/_emulator/health", self.health, methods=["GET"]),
        ])

    # ------------------------------------------------------------------ control

    async def stats(self, request: Request) -> Response:
        out = self.state.stats()
        if request.query_params.get("keys"):
            out["completions_by_key"] = dict(self.state.completions)
            out["submissions_by_key"] = dict(self.state.submissions)
        return JSONResponse(out)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def reset(self, request: Request) -> Response:
        self.state.reset_stats()
        return JSONResponse({"ok": True})

    async def set_faults(self, request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            merged = self.state.faults.model_dump()
            merged.update(body or {})
            self.state.set_faults(Faults.model_validate(merged))
        return JSONResponse(self.state.faults.model_dump())

    # ------------------------------------------------------------------ the common path

    def complete(self, call: Call, key: str | None) -> dict[str, Any]:
        """The model answers ``call``: its response body, counted as a completion of ``key`` (realtime or batch)."""
        st = self.state
        body, out_tokens = call.answer()
        if st.faults.usage_multiplier != 1.0:
            _scale_usage(body, st.faults.usage_multiplier)
        st.tokens_in += call.est_in
        st.tokens_out += out_tokens
        if key:
            st.completions[key] += 1
        else:
            st.completions_no_key += 1
        return body

    async def _serve(self, request: Request, protocol: str, endpoint: str, call: Call) -> Response:
        st = self.state
        model = call.model
        st.requests += 1
        st.by_model[model] += 1
        st.by_endpoint[endpoint] += 1
        st.in_flight += 1
        st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            fault = st.pre_fault(model, call.est_in)
            if fault is not None:
                status, retry_after = fault
                st.by_status[status] += 1
                headers = {}
                if status == 429:
                    st.served_429 += 1
                if retry_after is not None:
                    headers["retry-after-ms"] = str(int(retry_after * 1000))
                    headers["retry-after"] = str(max(1, int(round(retry_after))))
                return JSONResponse(_error_body(protocol, status), status_code=status, headers=headers)
            f = st.faults
            if f.echo_auth_rate and st.rng.random() < f.echo_auth_rate:
                # A misbehaving proxy that echoes the credential: the client must never store it.
                st.by_status[400] += 1
                cred = request.headers.get("authorization") or request.headers.get("x-api-key") or \
                    request.headers.get("x-goog-api-key") or ""
                return JSONResponse({"error": {"message": f"malformed request; the proxy saw {cred}", "type": "invalid_request_error"}},
                                    status_code=400)
            if f.hang_rate and st.rng.random() < f.hang_rate:
                # The server stalls and finally gives up: no completion is ever delivered for it.
                st.hangs += 1
                await asyncio.sleep(f.hang_s)
                if await request.is_disconnected():
                    st.disconnected += 1
                st.by_status[504] += 1
                return JSONResponse(_error_body(protocol, 504), status_code=504)
            delay = f.latency_ms / 1000.0
            if f.latency_jitter_ms:
                delay += st.rng.expovariate(1000.0 / f.latency_jitter_ms)
            if delay > 0:
                await asyncio.sleep(delay)
            if f.malformed_rate and st.rng.random() < f.malformed_rate:
                st.malformed += 1
                st.by_status[200] += 1
                return Response('{"id": "broken", "choices": [', media_type="application/json")
            # No disconnect check here: a real provider bills a call its client abandoned, so the emulator counts
            # it too (and Starlette's request.is_disconnected() probe made uvicorn drop live replies under load).
            body = self.complete(call, _header_key(request))
            st.by_status[200] += 1
            return JSONResponse(body)
        finally:
            st.in_flight -= 1

    def _sim(self, model: str, system: str | None, messages: list[dict[str, str]], schema: str | None,
             salt: str, rng: random.Random | None = None) -> SimReply:
        """The sim agent's reply, with the hostile, refusal and truncation knobs (drawn from ``rng``: a batch
        item passes one seeded by its key, so that its answer does not depend on when it is computed)."""
        reply = self.state.agent.respond(model, system, messages, schema, salt)
        f = self.state.faults
        rng = rng or self.state.rng
        if f.hostile_rate and schema in hostile.JUDGE_SCHEMAS and reply.data is not None and hostile.picked(salt, f.hostile_rate):
            self.state.hostile += 1
            return SimReply(data=hostile.hostile(reply.data, salt), finish=reply.finish)
        if reply.finish == "stop" and f.refusal_rate and rng.random() < f.refusal_rate:
            return SimReply(text="I'm not able to help with that request.", finish="refusal")
        if reply.finish == "stop" and f.truncation_rate and rng.random() < f.truncation_rate:
            text = reply.text if reply.text is not None else json.dumps(reply.data)
            return SimReply(text=text[: max(1, len(text) // 2)], finish="length")
        return reply

    @staticmethod
    def _reply_text(reply: SimReply) -> str:
        if reply.data is not None and reply.text is None:
            return json.dumps(reply.data)
        return reply.text or ""

    @staticmethod
    def _salt(request: Request, body: dict[str, Any]) -> str:
        return _header_key(request) or json.dumps(body, sort_keys=True)

    # ------------------------------------------------------------------ prompt caching (usage only)

    def _implicit_cache(self, provider: str, model: str, system: str | None, cache_key: str = "",
                        quantum: int = 1) -> tuple[int, int]:
        """OpenAI and Gemini: (read, write) cached tokens of a system prompt (per model and cache key): read
        when it was seen before, written the first time (only OpenAI reports writes)."""
        if not system:
            return 0, 0
        n = _tokens(system)
        seen = self.state.cached_before(provider, model, cache_key, _digest(system))
        if n < self.state.faults.cache_min_tokens:
            return 0, 0
        cached = n // quantum * quantum
        if not seen:
            if provider == "openai":
                self.state.cache_write_tokens += cached
            return 0, cached
        self.state.cache_read_tokens += cached
        return cached, 0

    def _anthropic_cache(self, model: str, system: Any) -> tuple[int, int]:
        """(cache read, cache write) tokens of a system prompt whose blocks carry ``cache_control`` breakpoints:
        the longest prefix cached before is read, the rest through the last breakpoint is written."""
        if not isinstance(system, list):
            return 0, 0
        prefixes = [_text_of(system[: i + 1]) for i, block in enumerate(system)
                    if isinstance(block, dict) and block.get("cache_control")]
        eligible = [p for p in prefixes if _tokens(p) >= self.state.faults.cache_min_tokens]
        if not eligible:
            return 0, 0
        seen = [self.state.cached_before("anthropic", model, _digest(p)) for p in eligible]
        read = next((_tokens(p) for p, s in zip(reversed(eligible), reversed(seen), strict=True) if s), 0)
        write = max(0, _tokens(eligible[-1]) - read)
        self.state.cache_read_tokens += read
        self.state.cache_write_tokens += write
        return read, write

    # ------------------------------------------------------------------ OpenAI

    def openai_chat_call(self, body: dict[str, Any], salt: str, rng: random.Random | None = None) -> Call:
        """A chat-completions request body as a :class:`Call` (``salt``: the ledger key)."""
        model = str(body.get("model"))
        system = None
        messages = []
        for m in body.get("messages") or []:
            role = m.get("role")
            if role in ("system", "developer"):
                system = (system + "\n" if system else "") + _text_of(m.get("content"))
            else:
                messages.append({"role": role, "content": _text_of(m.get("content"))})
        rf = body.get("response_format") or {}
        schema = (rf.get("json_schema") or {}).get("name") if rf.get("type") == "json_schema" else None
        cache_key = str(body.get("prompt_cache_key") or "")
        est_in = _tokens((system or "") + "".join(m["content"] for m in messages))

        def produce() -> tuple[dict[str, Any], int]:
            reply = self._sim(model, system, messages, schema, salt, rng)
            text = self._reply_text(reply)
            finish = {"stop": "stop", "length": "length", "filter": "content_filter"}.get(reply.finish, "stop")
            msg: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            if reply.finish == "refusal":
                msg = {"role": "assistant", "content": None, "refusal": text}
            out = _tokens(text)
            cached, written = self._implicit_cache("openai", model, system, cache_key, 128)
            return {
                "id": f"chatcmpl-{abs(hash(salt)) % 10**12}", "object": "chat.completion", "created": int(time.time()),
                "model": f"{model}-emu-2026-11",
                "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": est_in, "completion_tokens": out, "total_tokens": est_in + out,
                          "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
                          "completion_tokens_details": {"reasoning_tokens": 0}},
            }, out

        return Call(model, est_in, produce)

    def openai_chat_body(self, body: dict[str, Any], key: str) -> tuple[dict[str, Any], int]:
        """(chat completion JSON, output tokens) for a request body and its ledger key."""
        return self.openai_chat_call(body, key).answer()

    async def openai_chat(self, request: Request) -> Response:
        body = await request.json()
        return await self._serve(request, "openai", "chat", self.openai_chat_call(body, self._salt(request, body)))

    def openai_responses_call(self, body: dict[str, Any], salt: str, rng: random.Random | None = None) -> Call:
        """A responses-API request body as a :class:`Call`."""
        model = str(body.get("model"))
        system = body.get("instructions")
        inp = body.get("input")
        if isinstance(inp, str):
            messages = [{"role": "user", "content": inp}]
        else:
            messages = [{"role": m.get("role", "user"), "content": _text_of(m.get("content"))} for m in inp or []]
        fmt = ((body.get("text") or {}).get("format") or {})
        schema = fmt.get("name") if fmt.get("type") == "json_schema" else None
        effort = (body.get("reasoning") or {}).get("effort")
        cache_key = str(body.get("prompt_cache_key") or "")
        est_in = _tokens((system or "") + "".join(m["content"] for m in messages))

        def produce() -> tuple[dict[str, Any], int]:
            reply = self._sim(model, system, messages, schema, salt, rng)
            text = self._reply_text(reply)
            reasoning = {"low": 64, "medium": 256, "high": 1024}.get(effort or "", 0)
            out = _tokens(text) + reasoning
            content: list[dict[str, Any]]
            if reply.finish == "refusal":
                content = [{"type": "refusal", "refusal": text}]
            else:
                content = [{"type": "output_text", "text": text, "annotations": []}]
            status = "incomplete" if reply.finish == "length" else "completed"
            cached, written = self._implicit_cache("openai", model, system, cache_key, 128)
            return {
                "id": f"resp_{abs(hash(salt)) % 10**12}", "object": "response", "created_at": int(time.time()),
                "model": f"{model}-emu-2026-11", "status": status,
                "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
                "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
                           {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                            "content": content}],
                "usage": {"input_tokens": est_in, "output_tokens": out, "total_tokens": est_in + out,
                          "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
                          "output_tokens_details": {"reasoning_tokens": reasoning}},
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            }, out

        return Call(model, est_in, produce)

    def openai_responses_body(self, body: dict[str, Any], key: str) -> tuple[dict[str, Any], int]:
        """(response JSON, output tokens) for a responses-API request body and its ledger key."""
        return self.openai_responses_call(body, key).answer()

    async def openai_responses(self, request: Request) -> Response:
        body = await request.json()
        call = self.openai_responses_call(body, self._salt(request, body))
        return await self._serve(request, "openai", "responses", call)

    def openai_embeddings_call(self, body: dict[str, Any], salt: str = "", rng: random.Random | None = None) -> Call:
        """An embeddings request body as a :class:`Call` (embeddings depend on the text only)."""
        model = str(body.get("model"))
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        dims = int(body.get("dimensions") or 768)
        est_in = sum(_tokens(t) for t in inputs or [])

        def produce() -> tuple[dict[str, Any], int]:
            data = [{"object": "embedding", "index": i, "embedding": hashed_embedding(t, dims).tolist()}
                    for i, t in enumerate(inputs or [])]
            return {"object": "list", "data": data, "model": f"{model}-emu",
                    "usage": {"prompt_tokens": est_in, "total_tokens": est_in}}, 0

        return Call(model, est_in, produce)

    def openai_embeddings_body(self, body: dict[str, Any], key: str = "") -> tuple[dict[str, Any], int]:
        """(embeddings JSON, 0) for an embeddings request body."""
        return self.openai_embeddings_call(body, key).answer()

    async def openai_embeddings(self, request: Request) -> Response:
        body = await request.json()
        return await self._serve(request, "openai", "embeddings", self.openai_embeddings_call(body))

    # ------------------------------------------------------------------ Anthropic

    def anthropic_messages_call(self, body: dict[str, Any], salt: str, rng: random.Random | None = None) -> Call:
        """A messages request body as a :class:`Call` (refused, as the API does, when it sets sampling knobs)."""
        model = str(body.get("model"))
        raw_system = body.get("system")
        system = _text_of(raw_system) or None
        messages = [{"role": m.get("role"), "content": _text_of(m.get("content"))} for m in body.get("messages") or []]
        schema = None
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {}
        fmt = (body.get("output_config") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("schema") or {}).get("title")
        elif tools:
            schema = choice.get("name") if choice.get("type") == "tool" else tools[0].get("name")
        thinking = (body.get("thinking") or {}).get("budget_tokens") or 0
        est_in = _tokens((system or "") + "".join(m["content"] for m in messages))
        error = None
        for banned in ("temperature", "top_p", "top_k"):
            if banned in body:  # as the real API version 2026-10-21 does
                error = (400, {"type": "error", "error": {"type": "invalid_request_error",
                                                          "message": f"{banned}: Extra inputs are not permitted"}})
                break

        def produce() -> tuple[dict[str, Any], int]:
            reply = self._sim(model, system, messages, schema, salt, rng)
            content: list[dict[str, Any]] = []
            stop = {"stop": "end_turn", "length": "max_tokens", "refusal": "refusal"}.get(reply.finish, "end_turn")
            if thinking:
                content.append({"type": "thinking", "thinking": "(emulated reasoning)", "signature": "emu"})
            if schema and tools and reply.data is not None and reply.finish == "stop":
                content.append({"type": "tool_use", "id": "toolu_emu", "name": schema, "input": reply.data})
                stop = "tool_use"
                text_len = len(json.dumps(reply.data))
            else:
                text = self._reply_text(reply)
                content.append({"type": "text", "text": text})
                text_len = len(text)
            out = max(1, text_len // 4) + min(int(thinking), 200)
            read, write = self._anthropic_cache(model, raw_system)
            return {
                "id": f"msg_{abs(hash(salt)) % 10**12}", "type": "message", "role": "assistant",
                "model": f"{model}-emu-20261130", "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": max(0, est_in - read - write), "output_tokens": out,
                          "cache_read_input_tokens": read, "cache_creation_input_tokens": write},
            }, out

        return Call(model, est_in, produce, error)

    def anthropic_messages_body(self, body: dict[str, Any], key: str) -> tuple[dict[str, Any], int]:
        """(message JSON, output tokens) for a messages request body and its ledger key; raises
        :class:`RequestRefused` for a body the API refuses."""
        return self.anthropic_messages_call(body, key).answer()

    async def anthropic_messages(self, request: Request) -> Response:
        body = await request.json()
        call = self.anthropic_messages_call(body, self._salt(request, body))
        if call.error is not None:
            return JSONResponse(call.error[1], status_code=call.error[0])
        return await self._serve(request, "anthropic", "messages", call)

    # ------------------------------------------------------------------ Gemini

    async def gemini(self, request: Request) -> Response:
        path_model = request.path_params["model"]
        if ":" not in path_model:
            return JSONResponse(_error_body("google", 404), status_code=404)
        model, method = path_model.rsplit(":", 1)
        if method == "batchGenerateContent":
            return await self.batch_api.gemini_create(request, model)
        body = await request.json()
        if method in ("embedContent", "batchEmbedContents"):
            return await self._serve(request, "google", method, self.gemini_embed_call(model, method, body))
        if method != "generateContent":
            return JSONResponse(_error_body("google", 404), status_code=404)
        call = self.gemini_generate_call(model, body, self._salt(request, body))
        return await self._serve(request, "google", "generateContent", call)

    def gemini_generate_call(self, model: str, body: dict[str, Any], salt: str,
                             rng: random.Random | None = None) -> Call:
        """A generateContent request body as a :class:`Call`."""
        gc = body.get("generationConfig") or {}
        # a batch's inlined request may carry the system instruction inside its generation config
        sys_content = body.get("systemInstruction") or body.get("system_instruction") or \
            gc.get("systemInstruction") or gc.get("system_instruction") or {}
        sys_parts = (sys_content.get("parts") if isinstance(sys_content, dict) else None) or []
        system = "".join(p.get("text", "") for p in sys_parts) or None
        messages = []
        for c in body.get("contents") or []:
            role = "assistant" if c.get("role") == "model" else "user"
            messages.append({"role": role, "content": "".join(p.get("text", "") for p in c.get("parts") or [])})
        # The Gemini API reads protobuf JSON, which accepts camelCase and snake_case field names alike.
        js = gc.get("responseJsonSchema") or gc.get("response_json_schema") or gc.get("responseSchema")
        schema = (js or {}).get("title") if js else None
        tc = gc.get("thinkingConfig") or gc.get("thinking_config") or {}
        thinking = tc.get("thinkingBudget") or tc.get("thinking_budget") or 0
        est_in = _tokens((system or "") + "".join(m["content"] for m in messages))

        def produce() -> tuple[dict[str, Any], int]:
            reply = self._sim(model, system, messages, schema, salt, rng)
            text = self._reply_text(reply)
            out = _tokens(text)
            thoughts = min(int(thinking), 200)
            if reply.finish == "refusal":
                cand = {"content": {"role": "model", "parts": []}, "finishReason": "SAFETY", "index": 0}
            else:
                cand = {"content": {"role": "model", "parts": [{"text": text}]},
                        "finishReason": "MAX_TOKENS" if reply.finish == "length" else "STOP", "index": 0}
            usage: dict[str, Any] = {"promptTokenCount": est_in, "candidatesTokenCount": out,
                                     "thoughtsTokenCount": thoughts, "totalTokenCount": est_in + out + thoughts}
            cached = self._implicit_cache("google", model, system)[0]
            if cached:
                usage["cachedContentTokenCount"] = cached
            return {"candidates": [cand], "usageMetadata": usage, "modelVersion": f"{model}-emu-001"}, out + thoughts

        return Call(model, est_in, produce)

    def gemini_body(self, model: str, body: dict[str, Any], key: str) -> tuple[dict[str, Any], int]:
        """(generateContent JSON, output tokens) for a request body to ``model`` and its ledger key."""
        return self.gemini_generate_call(model, body, key).answer()

    def gemini_embed_call(self, model: str, method: str, body: dict[str, Any]) -> Call:
        """An embedContent or batchEmbedContents request body as a :class:`Call`."""
        if method == "embedContent":
            reqs = [body]
        else:
            reqs = body.get("requests") or []
        texts = ["".join(p.get("text", "") for p in (r.get("content") or {}).get("parts") or []) for r in reqs]
        dims = int((reqs[0].get("outputDimensionality") if reqs else None) or 768)
        est_in = sum(_tokens(t) for t in texts)

        def produce() -> tuple[dict[str, Any], int]:
            embs = [{"values": hashed_embedding(t, dims).tolist()} for t in texts]
            if method == "embedContent":
                return {"embedding": embs[0]}, 0
            return {"embeddings": embs}, 0

        return Call(model, est_in, produce)


# --------------------------------------------------------------------------- running it


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class EmulatorServer:
    """The emulator on a loopback port, in a background thread of this process."""

    def __init__(self, index: ValueIndex, personas: list[Persona], sim: SimSpec, faults: Faults | None = None,
                 seed: int = 0, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.state = EmulatorState(SimAgent(index, personas, sim, seed), faults or Faults(), seed)
        self.emulator = Emulator(self.state)
        self.host = host
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config(self) -> uvicorn.Config:
        return uvicorn.Config(self.emulator.app, host=self.host, port=self.port, log_level="warning",
                              access_log=False, backlog=2048, timeout_keep_alive=30, lifespan="off")

    def start(self) -> EmulatorServer:
        self._server = uvicorn.Server(self.config())
        self._thread = threading.Thread(target=self._server.run, name="specstress-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the emulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def serve_forever(self) -> None:
        uvicorn.Server(self.config()).run()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def set_faults(self, faults: Faults) -> None:
        self.state.set_faults(faults)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
