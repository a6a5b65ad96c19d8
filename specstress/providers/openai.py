"""OpenAI: chat completions, the Responses API (reasoning models with an effort), embeddings.

Also the base of the xAI, OpenAI-compatible and sim adapters, which speak the same protocol.
"""

from __future__ import annotations

from typing import Any

from specstress.domain import CallRequest, Outcome, Usage
from specstress.providers.base import RawReply, classify_exception


class OpenAIAdapter:
    provider = "openai"
    default_base_url: str | None = None

    def __init__(self, api_key: str, base_url: str | None, timeout: float, api: str | None = None) -> None:
        import openai  # imported lazily: keeps `specstress --help` fast

        self.api = api
        self.client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url or self.default_base_url,
            max_retries=0,  # one retry layer: ours
            timeout=timeout,
        )

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
            raise classify_exception(exc) from None

    # ------------------------------------------------------------------ chat completions

    async def _chat(self, req: CallRequest) -> RawReply:
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
        if req.meta.get("extra_headers"):
            kwargs["extra_headers"] = req.meta["extra_headers"]
        r = await self.client.chat.completions.create(**kwargs)
        if not r.choices:
            return RawReply(Outcome.CONTENT_FILTER, usage=_chat_usage(r.usage), served_model=r.model)
        ch = r.choices[0]
        msg = ch.message
        text = msg.content if msg else None
        refusal = getattr(msg, "refusal", None) if msg else None
        if refusal:
            outcome, text = Outcome.REFUSAL, refusal
        elif ch.finish_reason == "length":
            outcome = Outcome.TRUNCATED
        elif ch.finish_reason == "content_filter":
            outcome = Outcome.CONTENT_FILTER
        else:
            outcome = Outcome.OK
        return RawReply(outcome, text=text, usage=_chat_usage(r.usage), served_model=r.model)

    # ------------------------------------------------------------------ responses API

    async def _responses(self, req: CallRequest) -> RawReply:
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
        if req.meta.get("extra_headers"):
            kwargs["extra_headers"] = req.meta["extra_headers"]
        r = await self.client.responses.create(**kwargs)
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
            from specstress.providers.base import ProviderError

            raise ProviderError("server", f"response failed: {getattr(r, 'error', None)}")
        return RawReply(Outcome.OK, text=text, usage=usage, served_model=r.model)

    # ------------------------------------------------------------------ embeddings

    async def embed(self, req: CallRequest) -> RawReply:
        try:
            inputs = [m["content"] for m in req.messages]
            kwargs: dict[str, Any] = {"model": req.model, "input": inputs}
            if req.params.get("dimensions"):
                kwargs["dimensions"] = req.params["dimensions"]
            if req.meta.get("extra_headers"):
                kwargs["extra_headers"] = req.meta["extra_headers"]
            r = await self.client.embeddings.create(**kwargs)
            vectors = [list(d.embedding) for d in sorted(r.data, key=lambda d: d.index)]
            usage = Usage(input_tokens=int(getattr(r.usage, "prompt_tokens", 0) or 0))
            return RawReply(Outcome.OK, vectors=vectors, usage=usage, served_model=r.model)
        except Exception as exc:  # noqa: BLE001
            raise classify_exception(exc) from None

    async def aclose(self) -> None:
        await self.client.close()


def _chat_usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    cached = getattr(getattr(u, "prompt_tokens_details", None), "cached_tokens", None) or 0
    reasoning = getattr(getattr(u, "completion_tokens_details", None), "reasoning_tokens", None) or 0
    return Usage(int(u.prompt_tokens or 0), int(cached), int(u.completion_tokens or 0), int(reasoning))


def _responses_usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    cached = getattr(getattr(u, "input_tokens_details", None), "cached_tokens", None) or 0
    reasoning = getattr(getattr(u, "output_tokens_details", None), "reasoning_tokens", None) or 0
    return Usage(int(u.input_tokens or 0), int(cached), int(u.output_tokens or 0), int(reasoning))
