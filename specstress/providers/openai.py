"""OpenAI: chat completions, the Responses API (reasoning models with an effort), embeddings.

Also the base of the xAI, OpenAI-compatible and sim adapters, which speak the same protocol.
"""

from __future__ import annotations

import json
from typing import Any

from specstress.domain import CallRequest, Outcome, Usage
from specstress.providers.base import (
    BatchItem,
    Classifier,
    ProviderError,
    RawReply,
    aiohttp_client,
    classify_common,
    kind_for_status,
    prompt_cache_key,
    request_headers,
    status_error,
)


def classify(exc: BaseException) -> ProviderError:
    """Map an exception of the ``openai`` SDK (or of its transport) onto a :class:`ProviderError`, by type."""
    import openai

    if isinstance(exc, openai.APIStatusError):  # an HTTP error status: RateLimitError, NotFoundError, ...
        status = int(exc.status_code)
        headers = exc.response.headers
        if isinstance(exc, openai.RateLimitError):
            return status_error(exc, status, "rate_limit", headers)
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return status_error(exc, status, "auth", headers)
        if isinstance(exc, openai.NotFoundError):
            return status_error(exc, status, "not_found", headers)
        if isinstance(exc, openai.InternalServerError):  # 5xx; 529 and "overloaded" bodies are overload
            return status_error(exc, status, "overloaded" if kind_for_status(status, str(exc)) == "overloaded"
                                else "server", headers)
        # BadRequestError (400: the request, or the account when its body says so), ConflictError,
        # UnprocessableEntityError and statuses without a class of their own (402, 408, ...)
        return status_error(exc, status, None, headers)
    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError, its base
        return ProviderError("timeout", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError("connection", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError("server", f"malformed response body ({type(exc).__name__}: {exc})")
    return classify_common(exc)


class OpenAIAdapter(Classifier):
    provider = "openai"
    default_base_url: str | None = None

    def __init__(self, api_key: str, base_url: str | None, timeout: float, api: str | None = None,
                 transport: str = "httpx") -> None:
        import openai  # imported lazily: keeps `specstress --help` fast

        self.api = api
        self.client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url or self.default_base_url,
            max_retries=0,  # one retry layer: ours
            timeout=timeout,
            http_client=aiohttp_client(openai, timeout) if transport == "aiohttp" else None,
        )

    def classify(self, exc: BaseException) -> ProviderError:
        return classify(exc)

    def _use_responses(self, req: CallRequest) -> bool:
        if self.api:
            return self.api == "responses"
        return bool(req.params.get("reasoning_effort"))

    async def complete(self, req: CallRequest) -> RawReply:
        try:
            if self._use_responses(req):
                return await self._responses(req)
            return await self._chat(req)
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes raw
            raise self.classify(exc) from None

    # ------------------------------------------------------------------ chat completions

    async def _chat(self, req: CallRequest) -> RawReply:
        # The hot path: the SDK's generic ``post`` (its documented way to call any endpoint) with the body built
        # here and the options of ``chat.completions.create``, which would first run the SDK's type-driven
        # transform over the body (about 170 µs a call, the largest single cost of a call, and an identity for the
        # plain JSON we send: tests/test_hot_path.py compares the two requests) and then build a ChatCompletion
        # model that is only read. ``cast_to=object`` hands back the decoded JSON.
        data = await self.client.post("/chat/completions", body=self._chat_body(req), cast_to=object,
                                      options={"headers": request_headers(req), "security": {"bearer_auth": True}})
        return _chat_reply_data(data)

    def _chat_body(self, req: CallRequest) -> dict[str, Any]:
        """The chat-completions request body (the same for a realtime call and a batch line)."""
        p = req.params
        messages: list[dict[str, Any]] = []
        if req.system:
            messages.append({"role": "system", "content": req.system})
        messages.extend(req.messages)
        kwargs: dict[str, Any] = {"model": req.model, "messages": messages}
        if p.get("max_tokens"):
            kwargs["max_completion_tokens"] = p["max_tokens"]
        for k in ("temperature", "top_p", "seed", "reasoning_effort"):
            if p.get(k) is not None:
                kwargs[k] = p[k]
        if req.schema:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": req.schema["name"], "schema": req.schema["schema"], "strict": False},
            }
        cache_key = prompt_cache_key(req) if self.provider == "openai" else None
        if cache_key:
            kwargs["prompt_cache_key"] = cache_key
        return kwargs

    # ------------------------------------------------------------------ responses API

    async def _responses(self, req: CallRequest) -> RawReply:
        kwargs = self._responses_body(req)
        kwargs["extra_headers"] = request_headers(req)
        return _responses_reply(await self.client.responses.create(**kwargs))

    def _responses_body(self, req: CallRequest) -> dict[str, Any]:
        p = req.params
        kwargs: dict[str, Any] = {"model": req.model, "input": list(req.messages)}
        if req.system:
            kwargs["instructions"] = req.system
        if p.get("max_tokens"):
            kwargs["max_output_tokens"] = p["max_tokens"]
        for k in ("temperature", "top_p"):
            if p.get(k) is not None:
                kwargs[k] = p[k]
        if p.get("reasoning_effort"):
            kwargs["reasoning"] = {"effort": p["reasoning_effort"]}
        if req.schema:
            kwargs["text"] = {"format": {"type": "json_schema", "name": req.schema["name"],
                                         "schema": req.schema["schema"], "strict": False}}
        cache_key = prompt_cache_key(req) if self.provider == "openai" else None
        if cache_key:
            kwargs["prompt_cache_key"] = cache_key
        return kwargs

    # ------------------------------------------------------------------ embeddings

    async def embed(self, req: CallRequest) -> RawReply:
        try:
            kwargs = self._embed_body(req)
            kwargs["extra_headers"] = request_headers(req)
            return _embed_reply(await self.client.embeddings.create(**kwargs))
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    def _embed_body(self, req: CallRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": req.model, "input": [m["content"] for m in req.messages]}
        if req.params.get("dimensions"):
            kwargs["dimensions"] = req.params["dimensions"]
        return kwargs

    # ------------------------------------------------------------------ the Batch API

    def _batch_line(self, req: CallRequest) -> tuple[str, dict[str, Any]]:
        if req.kind == "embedding":
            return "/v1/embeddings", self._embed_body(req)
        if self._use_responses(req):
            return "/v1/responses", self._responses_body(req)
        return "/v1/chat/completions", self._chat_body(req)

    async def batch_submit(self, reqs: list[CallRequest], label: str) -> str:
        """Upload the requests as one JSONL file (custom id = ledger key) and create a batch; returns its id."""
        try:
            lines, urls = [], set()
            for req in reqs:
                url, body = self._batch_line(req)
                urls.add(url)
                lines.append(json.dumps({"custom_id": req.key, "method": "POST", "url": url, "body": body},
                                        ensure_ascii=False))
            if len(urls) != 1:
                raise ProviderError("internal", f"one batch must use one endpoint, got {sorted(urls)}")
            data = ("\n".join(lines) + "\n").encode("utf-8")
            f = await self.client.files.create(file=(f"{label}.jsonl", data, "application/jsonl"), purpose="batch")
            b = await self.client.batches.create(input_file_id=f.id, endpoint=urls.pop(),  # type: ignore[arg-type]
                                                 completion_window="24h", metadata={"specstress": label[:500]})
            return str(b.id)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    async def batch_status(self, batch_id: str) -> str:
        """``pending`` or ``ended`` (completed, expired, cancelled or failed)."""
        try:
            b = await self.client.batches.retrieve(batch_id)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None
        return "ended" if b.status in ("completed", "expired", "cancelled", "failed") else "pending"

    async def batch_cancel(self, batch_id: str) -> None:
        try:
            await self.client.batches.cancel(batch_id)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    async def batch_results(self, batch_id: str, reqs: dict[str, CallRequest]) -> dict[str, BatchItem]:
        """Every answered or failed item of an ended batch, by custom id; items it never ran are absent."""
        try:
            b = await self.client.batches.retrieve(batch_id)
            out: dict[str, BatchItem] = {}
            for file_id in (b.output_file_id, b.error_file_id):
                if not file_id:
                    continue
                content = await self.client.files.content(file_id)
                for line in content.text.splitlines():
                    if line.strip():
                        item = self._batch_item(json.loads(line), b.endpoint)
                        if item is not None:
                            out[item.key] = item
            return out
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    def _batch_item(self, line: dict[str, Any], endpoint: str) -> BatchItem | None:
        from openai.types import CreateEmbeddingResponse
        from openai.types.chat import ChatCompletion
        from openai.types.responses import Response

        key = str(line.get("custom_id") or "")
        resp = line.get("response") or None
        if not key:
            return None
        if resp is None:   # not run: the batch expired or was cancelled
            err = line.get("error") or {}
            return BatchItem(key, unfinished=str(err.get("code") or "not run"))
        status = int(resp.get("status_code") or 0)
        body = resp.get("body") or {}
        if status != 200:
            msg = json.dumps(body.get("error") if isinstance(body, dict) else body)[:500]
            return BatchItem(key, error=ProviderError(kind_for_status(status, msg), f"batch item HTTP {status}: {msg}",
                                                      status=status))
        if "embeddings" in endpoint:
            return BatchItem(key, reply=_embed_reply(CreateEmbeddingResponse.model_validate(body)))
        if "responses" in endpoint:
            return BatchItem(key, reply=_responses_reply(Response.model_validate(body)))
        return BatchItem(key, reply=_chat_reply(ChatCompletion.model_validate(body)))

    async def aclose(self) -> None:
        await self.client.close()


def _chat_reply(r: Any) -> RawReply:
    """The reply of a ChatCompletion model (batch results)."""
    return _chat_reply_data(r.model_dump())


def _chat_reply_data(d: Any) -> RawReply:
    """The reply of a chat completion's JSON body. Fields the API always sends are indexed (a body without them
    fails as an internal error, as attribute access on the SDK's model did), optional ones read with a default."""
    if isinstance(d, str):   # a body without a JSON content type: the SDK hands back its text
        try:
            d = json.loads(d)
        except ValueError:
            pass   # not JSON: fails below, an internal error
    choices = d["choices"]
    usage = _chat_usage_data(d.get("usage"))
    if not choices:
        return RawReply(Outcome.CONTENT_FILTER, usage=usage, served_model=d["model"])
    ch = choices[0]
    msg = ch["message"]
    text = msg.get("content") if msg else None
    refusal = msg.get("refusal") if msg else None
    finish = ch["finish_reason"]
    if refusal:
        outcome, text = Outcome.REFUSAL, refusal
    elif finish == "length":
        outcome = Outcome.TRUNCATED
    elif finish == "content_filter":
        outcome = Outcome.CONTENT_FILTER
    else:
        outcome = Outcome.OK
    return RawReply(outcome, text=text, usage=usage, served_model=d["model"])


def _responses_reply(r: Any) -> RawReply:
    texts: list[str] = []
    refusal = None
    for item in r.output or []:
        if getattr(item, "type", None) != "message":
            continue
        for c in getattr(item, "content", None) or []:
            ctype = getattr(c, "type", None)
            if ctype == "output_text":
                texts.append(c.text)
            elif ctype == "refusal":
                refusal = getattr(c, "refusal", None) or "refused"
    text = "".join(texts) if texts else None
    usage = _responses_usage(r.usage)
    status = getattr(r, "status", "completed")
    if refusal:
        return RawReply(Outcome.REFUSAL, text=refusal, usage=usage, served_model=r.model)
    if status == "incomplete":
        reason = getattr(getattr(r, "incomplete_details", None), "reason", None)
        outcome = Outcome.CONTENT_FILTER if reason == "content_filter" else Outcome.TRUNCATED
        return RawReply(outcome, text=text, usage=usage, served_model=r.model)
    if status == "failed":
        raise ProviderError("server", f"response failed: {getattr(r, 'error', None)}")
    return RawReply(Outcome.OK, text=text, usage=usage, served_model=r.model)


def _embed_reply(r: Any) -> RawReply:
    vectors = [list(d.embedding) for d in sorted(r.data, key=lambda d: d.index)]
    usage = Usage(input_tokens=int(getattr(r.usage, "prompt_tokens", 0) or 0))
    return RawReply(Outcome.OK, vectors=vectors, usage=usage, served_model=r.model)


def _chat_usage_data(u: Any) -> Usage:
    if u is None:
        return Usage()
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (u.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return Usage(int(u["prompt_tokens"] or 0), int(cached), int(u["completion_tokens"] or 0), int(reasoning))


def _responses_usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    cached = getattr(getattr(u, "input_tokens_details", None), "cached_tokens", None) or 0
    reasoning = getattr(getattr(u, "output_tokens_details", None), "reasoning_tokens", None) or 0
    return Usage(int(u.input_tokens or 0), int(cached), int(u.output_tokens or 0), int(reasoning))
