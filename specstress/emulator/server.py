"""The loopback provider emulator: the real SDKs' wire formats, served over real HTTP.

Endpoints (shapes the openai, anthropic and google-genai SDKs expect):

* ``POST /v1/chat/completions``, ``POST /v1/responses``, ``POST /v1/embeddings``   (OpenAI, xAI, compatible)
* ``POST /v1/messages``                                                          (Anthropic)
* ``POST /v1beta/models/{model}:generateContent``, ``:embedContent``, ``:batchEmbedContents`` (Gemini;
  ``/v1/...`` too)
* ``GET /_emulator/stats``, ``POST /_emulator/faults``, ``POST /_emulator/reset``, ``GET /_emulator/health``

Every request passes the fault knobs (outages, per-model RPM/TPM limits, 429/500/503/529 rates,
latency, hangs, malformed bodies, refusals, truncation), then the simulated model answers.
The stats count requests, statuses, 429s served and successful completions per ledger key (every
client request carries it in the standard ``X-Client-Request-Id`` tracing header; the older
``x-specstress-key`` is still read); the credential headers are never stored, and returned only by
the ``echo_auth_rate`` fault, which imitates a proxy that echoes them so that tests can prove the
client scrubs them.
"""

from __future__ import annotations

import asyncio
import fnmatch
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
            "uptime_s": round(time.monotonic() - self.started, 3),
        }

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


def _error_body(protocol: str, status: int) -> dict[str, Any]:
    if protocol == "anthropic":
        etype = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": etype, "message": f"emulated {status}"}}
    if protocol == "google":
        st = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
        return {"error": {"code": status, "message": f"emulated {status}", "status": st}}
    return {"error": {"message": f"emulated {status}", "type": "rate_limit_exceeded" if status == 429 else "server_error",
                      "code": None}}


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


class Emulator:
    """Build the ASGI app around an :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.openai_chat, methods=["POST"]),
            Route("/v1/responses", self.openai_responses, methods=["POST"]),
            Route("/v1/embeddings", self.openai_embeddings, methods=["POST"]),
            Route("/v1/messages", self.anthropic_messages, methods=["POST"]),
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

    async def _serve(self, request: Request, protocol: str, endpoint: str, model: str, est_in: int,
                     produce: Any) -> Response:
        st = self.state
        st.requests += 1
        st.by_model[model] += 1
        st.by_endpoint[endpoint] += 1
        st.in_flight += 1
        st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            fault = st.pre_fault(model, est_in)
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
            body, out_tokens = produce()
            if f.usage_multiplier != 1.0:
                _scale_usage(body, f.usage_multiplier)
            st.tokens_in += est_in
            st.tokens_out += out_tokens
            st.by_status[200] += 1
            key = request.headers.get("x-client-request-id") or request.headers.get("x-specstress-key")
            if key:
                st.completions[key] += 1
            else:
                st.completions_no_key += 1
            return JSONResponse(body)
        finally:
            st.in_flight -= 1

    def _sim(self, model: str, system: str | None, messages: list[dict[str, str]], schema: str | None,
             salt: str) -> SimReply:
        reply = self.state.agent.respond(model, system, messages, schema, salt)
        f = self.state.faults
        rng = self.state.rng
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

    # ------------------------------------------------------------------ OpenAI

    async def openai_chat(self, request: Request) -> Response:
        body = await request.json()
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
        salt = (request.headers.get("x-client-request-id") or request.headers.get("x-specstress-key")
                or json.dumps(body, sort_keys=True))
        est_in = _tokens((system or "") + "".join(m["content"] for m in messages))

        def produce() -> tuple[dict[str, Any], int]:
            reply = self._sim(model, system, messages, schema, salt)
            text = self._reply_text(reply)
            finish = {"stop": "stop", "length": "length", "filter": "content_filter"}.get(reply.finish, "stop")
            msg: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            if reply.finish == "refusal":
                msg = {"role": "assistant", "content": None, "refusal": text}
            out = _tokens(text)
            return {
                "id": f"chatcmpl-{abs(hash(salt)) % 10**12}", "object": "chat.completion", "created": int(time.time()),
                "model": f"{model}-emu-2026-11",
                "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
                "usage": {"prompt_tokens": est_in, "completion_tokens": out, "total_tokens": est_in + out,
                          "prompt_tokens_details": {"cached_tokens": 0},
                          "completion_tokens_details": {"reasoning_tokens": 0}},
            }, out

        return await self._serve(request, "openai", "chat", model, est_in, produce)

    async def openai_responses(self, request: Request) -> Response:
        body = await request.json()
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
        salt = (request.headers.get("x-client-request-id") or request.headers.get("x-specstress-key")
                or json.dumps(body, sort_keys=True))
        est_in = _tokens((system or "") + "".join(m["content"] for m in messages))

        def produce() -> tuple[dict[str, Any], int]:
            reply = self._sim(model, system, messages, schema, salt)
            text = self._reply_text(reply)
            reasoning = {"low": 64, "medium": 256, "high": 1024}.get(effort or "", 0)
            out = _tokens(text) + reasoning
            content: list[dict[str, Any]]
            if reply.finish == "refusal":
                content = [{"type": "refusal", "refusal": text}]
            else:
                content = [{"type": "output_text", "text": text, "annotations": []}]
            status = "incomplete" if reply.finish == "length" else "completed"
            return {
                "id": f"resp_{abs(hash(salt)) % 10**12}", "object": "response", "created_at": int(time.time()),
                "model": f"{model}-emu-2026-11", "status": status,
                "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
                "output": [{"type": "reasoning", "id": "rs_1", "summary": []},
                           {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                            "content": content}],
                "usage": {"input_tokens": est_in, "output_tokens": out, "total_tokens": est_in + out,
                          "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens_details": {"reasoning_tokens": reasoning}},
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            }, out

        return await self._serve(request, "openai", "responses", model, est_in, produce)

    async def openai_embeddings(self, request: Request) -> Response:
        body = await request.json()
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

        return await self._serve(request, "openai", "embeddings", model, est_in, produce)

    # ------------------------------------------------------------------ Anthropic

    async def anthropic_messages(self, request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model"))
        system = _text_of(body.get("system")) or None
        messages = [{"role": m.get("role"), "content": _text_of(m.get("content"))} for m in body.get("messages") or []]
        schema = None
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {}
        fmt = (body.get("output_config") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("schema") or {}).get("title")
        elif tools:
            schema = choice.get("name") if choice.get("type") == "tool" else tools[0].get("name")
        for banned in ("temperature", "top_p", "top_k"):
            if banned in body:  # as the real API version 2026-10-21 does
                return JSONResponse({"type": "error", "error": {"type": "invalid_request_error",
                                     "message": f"{banned}: Extra inputs are not permitted"}}, status_code=400)
        thinking = (body.get("thinking") or {}).get("budget_tokens") or 0
        salt = (request.headers.get("x-client-request-id") or request.headers.get("x-specstress-key")
                or json.dumps(body, sort_keys=True))
        est_in = _tokens((system or "") + "".join(m["content"] for m in messages))

        def produce() -> tuple[dict[str, Any], int]:
            reply = self._sim(model, system, messages, schema, salt)
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
            return {
                "id": f"msg_{abs(hash(salt)) % 10**12}", "type": "message", "role": "assistant",
                "model": f"{model}-emu-20261130", "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": est_in, "output_tokens": out, "cache_read_input_tokens": 0,
                          "cache_creation_input_tokens": 0},
            }, out

        return await self._serve(request, "anthropic", "messages", model, est_in, produce)

    # ------------------------------------------------------------------ Gemini

    async def gemini(self, request: Request) -> Response:
        path_model = request.path_params["model"]
        if ":" not in path_model:
            return JSONResponse(_error_body("google", 404), status_code=404)
        model, method = path_model.rsplit(":", 1)
        body = await request.json()
        if method in ("embedContent", "batchEmbedContents"):
            return await self._gemini_embed(request, model, method, body)
        if method != "generateContent":
            return JSONResponse(_error_body("google", 404), status_code=404)
        sys_parts = ((body.get("systemInstruction") or {}).get("parts")) or []
        system = "".join(p.get("text", "") for p in sys_parts) or None
        messages = []
        for c in body.get("contents") or []:
            role = "assistant" if c.get("role") == "model" else "user"
            messages.append({"role": role, "content": "".join(p.get("text", "") for p in c.get("parts") or [])})
        gc = body.get("generationConfig") or {}
        # The Gemini API reads protobuf JSON, which accepts camelCase and snake_case field names alike.
        js = gc.get("responseJsonSchema") or gc.get("response_json_schema") or gc.get("responseSchema")
        schema = (js or {}).get("title") if js else None
        tc = gc.get("thinkingConfig") or gc.get("thinking_config") or {}
        thinking = tc.get("thinkingBudget") or tc.get("thinking_budget") or 0
        salt = (request.headers.get("x-client-request-id") or request.headers.get("x-specstress-key")
                or json.dumps(body, sort_keys=True))
        est_in = _tokens((system or "") + "".join(m["content"] for m in messages))

        def produce() -> tuple[dict[str, Any], int]:
            reply = self._sim(model, system, messages, schema, salt)
            text = self._reply_text(reply)
            out = _tokens(text)
            thoughts = min(int(thinking), 200)
            if reply.finish == "refusal":
                cand = {"content": {"role": "model", "parts": []}, "finishReason": "SAFETY", "index": 0}
            else:
                cand = {"content": {"role": "model", "parts": [{"text": text}]},
                        "finishReason": "MAX_TOKENS" if reply.finish == "length" else "STOP", "index": 0}
            return {"candidates": [cand],
                    "usageMetadata": {"promptTokenCount": est_in, "candidatesTokenCount": out,
                                      "thoughtsTokenCount": thoughts, "totalTokenCount": est_in + out + thoughts},
                    "modelVersion": f"{model}-emu-001"}, out + thoughts

        return await self._serve(request, "google", "generateContent", model, est_in, produce)

    async def _gemini_embed(self, request: Request, model: str, method: str, body: dict[str, Any]) -> Response:
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

        return await self._serve(request, "google", method, model, est_in, produce)


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
