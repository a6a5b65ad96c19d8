"""Anthropic messages (API version 2026-10-21): extended-thinking budget, effort, and native
structured outputs (``output_config.format``). Sampling parameters no longer exist in this API."""

from __future__ import annotations

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
    request_headers,
    status_error,
)

#: Subclasses of RateLimitError (429) that a wait cannot cure: the account's spend limit is reached.
_SPEND_LIMITS = ("ContractSpendLimitReachedError", "EnforcedSpendLimitReachedError")


def _classes(names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    import anthropic

    return tuple(c for c in (getattr(anthropic, n, None) for n in names) if isinstance(c, type))


def classify(exc: BaseException) -> ProviderError:
    """Map an exception of the ``anthropic`` SDK (or of its transport) onto a :class:`ProviderError`, by type."""
    import anthropic

    if isinstance(exc, anthropic.APIStatusError):  # an HTTP error status: RateLimitError, OverloadedError, ...
        status = int(exc.status_code)
        headers = exc.response.headers
        if isinstance(exc, anthropic.RateLimitError):
            spend_limit = _classes(_SPEND_LIMITS)
            return status_error(exc, status, "auth" if spend_limit and isinstance(exc, spend_limit)
                                else "rate_limit", headers)
        if isinstance(exc, anthropic.OverloadedError):  # 529
            return status_error(exc, status, "overloaded", headers)
        if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
            return status_error(exc, status, "auth", headers)
        if isinstance(exc, anthropic.NotFoundError):
            return status_error(exc, status, "not_found", headers)
        if isinstance(exc, anthropic.InternalServerError):  # 5xx; "overloaded" bodies are overload
            return status_error(exc, status, "overloaded" if kind_for_status(status, str(exc)) == "overloaded"
                                else "server", headers)
        # BadRequestError (400: the request, or the account when its body says so), PaymentRequiredError
        # (402: auth), RequestTimeoutError (408: server), ConflictError, UnprocessableEntityError, ...
        return status_error(exc, status, None, headers)
    if isinstance(exc, anthropic.APITimeoutError):  # before APIConnectionError, its base
        return ProviderError("timeout", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError("connection", f"{type(exc).__name__}: {exc}")
    if isinstance(exc, anthropic.APIResponseValidationError):
        return ProviderError("server", f"malformed response body ({type(exc).__name__}: {exc})")
    return classify_common(exc)


class AnthropicAdapter(Classifier):
    provider = "anthropic"

    def __init__(self, api_key: str, base_url: str | None, timeout: float, api: str | None = None,
                 transport: str = "httpx") -> None:
        import anthropic

        self.client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout,
            http_client=aiohttp_client(anthropic, timeout) if transport == "aiohttp" else None)

    def classify(self, exc: BaseException) -> ProviderError:
        return classify(exc)

    async def complete(self, req: CallRequest) -> RawReply:
        try:
            return await self._messages(req)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    async def _messages(self, req: CallRequest) -> RawReply:
        kwargs = self._body(req)
        kwargs["extra_headers"] = request_headers(req)
        return _reply(await self.client.messages.create(**kwargs), req)

    def _body(self, req: CallRequest) -> dict[str, Any]:
        """The messages request body (the same for a realtime call and a batch item)."""
        p = req.params
        kwargs: dict[str, Any] = {
            "model": req.model,
            "max_tokens": int(p.get("max_tokens") or 1024),
            "messages": list(req.messages),
        }
        if req.system:
            # the system prompt is our stable prefix (rubric, spec, instructions): cache it
            kwargs["system"] = [{"type": "text", "text": req.system, "cache_control": {"type": "ephemeral"}}]
        thinking = p.get("thinking_budget")
        if thinking:
            kwargs["thinking"] = {"type": "enabled", "budget_tokens": max(1024, int(thinking))}
            kwargs["max_tokens"] = max(kwargs["max_tokens"], max(1024, int(thinking)) + 1024)
        # API version 2026-10-21 (anthropic SDK 2.x) rejects temperature, top_p and top_k; the run spec
        # check refuses them for anthropic models, so they are never sent.
        output_config: dict[str, Any] = {}
        if p.get("reasoning_effort"):
            output_config["effort"] = p["reasoning_effort"] if p["reasoning_effort"] != "minimal" else "low"
        if req.schema:
            # Native structured outputs: the response text is JSON that fits the schema.
            output_config["format"] = {"type": "json_schema", "schema": req.schema["schema"]}
        if output_config:
            kwargs["output_config"] = output_config
        return kwargs

    # ------------------------------------------------------------------ Message Batches

    async def batch_submit(self, reqs: list[CallRequest], label: str) -> str:
        try:
            b = await self.client.messages.batches.create(
                requests=[{"custom_id": r.key, "params": self._body(r)} for r in reqs])  # type: ignore[misc]
            return str(b.id)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    async def batch_status(self, batch_id: str) -> str:
        try:
            b = await self.client.messages.batches.retrieve(batch_id)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None
        return "ended" if b.processing_status == "ended" else "pending"

    async def batch_cancel(self, batch_id: str) -> None:
        try:
            await self.client.messages.batches.cancel(batch_id)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    async def batch_results(self, batch_id: str, reqs: dict[str, CallRequest]) -> dict[str, BatchItem]:
        try:
            out: dict[str, BatchItem] = {}
            async for line in await self.client.messages.batches.results(batch_id):
                key = line.custom_id
                res = line.result
                if res.type == "succeeded":
                    out[key] = BatchItem(key, reply=_reply(res.message, reqs.get(key)))
                elif res.type == "errored":
                    err = getattr(getattr(res, "error", None), "error", None)
                    etype = str(getattr(err, "type", "api_error"))
                    status = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                              "not_found_error": 404, "rate_limit_error": 429, "overloaded_error": 529}.get(etype, 500)
                    out[key] = BatchItem(key, error=ProviderError(
                        kind_for_status(status, etype), f"batch item {etype}: {getattr(err, 'message', '')}",
                        status=status))
                else:   # expired or canceled: never ran
                    out[key] = BatchItem(key, unfinished=str(res.type))
            return out
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    async def embed(self, req: CallRequest) -> RawReply:
        raise ProviderError("bad_request", "Anthropic has no embedding API; use kind: local or an OpenAI/Gemini model")

    async def aclose(self) -> None:
        await self.client.close()


def _reply(r: Any, req: CallRequest | None) -> RawReply:
    """A messages response, realtime or from a batch, as a :class:`RawReply`."""
    schema_name = req.schema["name"] if req is not None and req.schema else None
    texts: list[str] = []
    parsed = None
    for block in r.content or []:
        btype = getattr(block, "type", None)
        if btype == "text":
            texts.append(block.text)
        elif btype == "tool_use" and schema_name and block.name == schema_name:
            parsed = block.input  # older servers answering through a tool
    usage = _usage(r.usage)
    text = "".join(texts) if texts else None
    stop = r.stop_reason
    if stop == "refusal":
        return RawReply(Outcome.REFUSAL, text=text, usage=usage, served_model=r.model)
    if stop == "max_tokens":
        return RawReply(Outcome.TRUNCATED, text=text, parsed=parsed, usage=usage, served_model=r.model)
    if stop in ("end_turn", "stop_sequence", "tool_use", "pause_turn", None):
        return RawReply(Outcome.OK, text=text, parsed=parsed, usage=usage, served_model=r.model)
    # A stop reason this version does not know: the call was answered and billed, so it is final.
    # Running out of room is a truncation; anything else is kept as an answer.
    if any(w in str(stop) for w in ("max", "exceed", "context", "length")):
        return RawReply(Outcome.TRUNCATED, text=text, parsed=parsed, usage=usage, served_model=r.model)
    return RawReply(Outcome.OK, text=text, parsed=parsed, usage=usage, served_model=r.model)


def _usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    fresh = int(getattr(u, "input_tokens", 0) or 0)
    read = int(getattr(u, "cache_read_input_tokens", 0) or 0)
    created = int(getattr(u, "cache_creation_input_tokens", 0) or 0)
    out = int(getattr(u, "output_tokens", 0) or 0)
    details = getattr(u, "output_tokens_details", None)
    reasoning = int(getattr(details, "thinking_tokens", 0) or getattr(details, "reasoning_tokens", 0) or 0) if details else 0
    return Usage(input_tokens=fresh + read + created, cached_input_tokens=read, output_tokens=out,
                 reasoning_tokens=reasoning, cache_write_tokens=created)
