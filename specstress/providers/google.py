"""Google Gemini through google-genai: generate_content with thinking config, and embeddings.

google-genai retries nothing unless given ``HttpRetryOptions``; we give it none. Its timeouts are
in milliseconds. The client is kept on the adapter: a client used in the expression that created
it can be closed underneath.
"""

from __future__ import annotations

from typing import Any

from specstress.domain import CallRequest, Outcome, Usage
from specstress.providers.base import (
    BatchItem,
    Classifier,
    ProviderError,
    RawReply,
    classify_common,
    kind_for_status,
    request_headers,
    status_error,
)

_FILTERED = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY"}


def classify(exc: BaseException) -> ProviderError:
    """Map an exception of ``google-genai`` onto a :class:`ProviderError`, by type.

    ``ClientError`` (4xx) and ``ServerError`` (5xx) carry the HTTP status in ``.code``; the kind comes
    from it (429 rate limit, 529 or an "overloaded" message overload, 401/403 auth, 404 not found).
    Transport errors are not wrapped by google-genai: httpx/httpx2 timeouts and transport errors, and
    malformed bodies, are classified by :func:`classify_common`.
    """
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        status = int(exc.code) if isinstance(exc.code, int) else None
        headers = getattr(exc.response, "headers", None)
        if status is None:
            return ProviderError("server", f"{type(exc).__name__}: {exc}")
        return status_error(exc, status, None, headers)  # ClientError (4xx), ServerError (5xx), other statuses
    return classify_common(exc)


class GoogleAdapter(Classifier):
    provider = "google"

    def __init__(self, api_key: str, base_url: str | None, timeout: float, api: str | None = None,
                 transport: str = "httpx") -> None:
        # google-genai sends async calls through aiohttp whenever aiohttp is installed (a dependency here), so
        # ``transport`` needs no switch of its own
        from google import genai
        from google.genai import types

        self._types = types
        opts: dict[str, Any] = {"timeout": int(timeout * 1000)}
        if base_url:
            opts["base_url"] = base_url
        self.client = genai.Client(api_key=api_key, http_options=types.HttpOptions(**opts))

    def classify(self, exc: BaseException) -> ProviderError:
        return classify(exc)

    async def complete(self, req: CallRequest) -> RawReply:
        try:
            return await self._generate(req)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    async def _generate(self, req: CallRequest) -> RawReply:
        t = self._types
        cfg, contents = self._body(req)
        cfg["http_options"] = t.HttpOptions(headers=request_headers(req))
        r = await self.client.aio.models.generate_content(
            model=req.model, contents=contents, config=t.GenerateContentConfig(**cfg))
        return _reply(r, req)

    def _body(self, req: CallRequest) -> tuple[dict[str, Any], list[Any]]:
        """(config, contents) of a generate_content call (the same for a realtime call and a batch item).
        Gemini caches a repeated prefix implicitly: the system instruction (our stable prefix) comes first."""
        t = self._types
        p = req.params
        cfg: dict[str, Any] = {}
        if req.system:
            cfg["system_instruction"] = req.system
        if p.get("max_tokens"):
            cfg["max_output_tokens"] = int(p["max_tokens"])
        for k in ("temperature", "top_p", "seed"):
            if p.get(k) is not None:
                cfg[k] = p[k]
        if p.get("thinking_budget") is not None:
            cfg["thinking_config"] = t.ThinkingConfig(thinking_budget=int(p["thinking_budget"]))
        if req.schema:
            cfg["response_mime_type"] = "application/json"
            cfg["response_json_schema"] = req.schema["schema"]
        contents = [
            t.Content(role="model" if m["role"] == "assistant" else "user", parts=[t.Part(text=m["content"])])
            for m in req.messages
        ]
        return cfg, contents

    # ------------------------------------------------------------------ batch mode

    async def batch_submit(self, reqs: list[CallRequest], label: str) -> str:
        t = self._types
        models = {r.model for r in reqs}
        if len(models) != 1:
            raise ProviderError("internal", f"one Gemini batch serves one model, got {sorted(models)}")
        try:
            src = []
            for r in reqs:
                cfg, contents = self._body(r)
                src.append(t.InlinedRequest(contents=contents, config=t.GenerateContentConfig(**cfg),
                                            metadata={"key": r.key}))
            job = await self.client.aio.batches.create(model=models.pop(), src=src,
                                                       config=t.CreateBatchJobConfig(display_name=label[:120]))
            return str(job.name)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    async def batch_status(self, batch_id: str) -> str:
        try:
            job = await self.client.aio.batches.get(name=batch_id)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None
        return "ended" if _state(job) in _ENDED else "pending"

    async def batch_cancel(self, batch_id: str) -> None:
        try:
            await self.client.aio.batches.cancel(name=batch_id)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    async def batch_results(self, batch_id: str, reqs: dict[str, CallRequest]) -> dict[str, BatchItem]:
        try:
            job = await self.client.aio.batches.get(name=batch_id)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None
        out: dict[str, BatchItem] = {}
        dest = getattr(job, "dest", None)
        for item in (getattr(dest, "inlined_responses", None) or []):
            key = str((item.metadata or {}).get("key") or "")
            if not key:
                continue
            if item.response is not None:
                out[key] = BatchItem(key, reply=_reply(item.response, reqs.get(key)))
                continue
            err = item.error
            code = int(getattr(err, "code", 0) or 0)
            status_name = str(getattr(err, "status", "") or "")
            if status_name in ("DEADLINE_EXCEEDED", "CANCELLED") or code in (4, 1):
                out[key] = BatchItem(key, unfinished=status_name.lower() or "not run")
            else:
                status = code if code >= 400 else 500
                out[key] = BatchItem(key, error=ProviderError(kind_for_status(status, status_name),
                                                              f"batch item {status_name}: {getattr(err, 'message', '')}",
                                                              status=status))
        return out


    async def embed(self, req: CallRequest) -> RawReply:
        try:
            t = self._types
            cfg: dict[str, Any] = {}
            if req.params.get("dimensions"):
                cfg["output_dimensionality"] = int(req.params["dimensions"])
            cfg["http_options"] = t.HttpOptions(headers=request_headers(req))
            r = await self.client.aio.models.embed_content(
                model=req.model, contents=[m["content"] for m in req.messages],
                config=t.EmbedContentConfig(**cfg))
            vectors = [list(e.values or []) for e in (r.embeddings or [])]
            return RawReply(Outcome.OK, vectors=vectors, usage=Usage(
                input_tokens=sum(len(m["content"]) // 4 for m in req.messages)), served_model=req.model)
        except Exception as exc:  # noqa: BLE001
            raise self.classify(exc) from None

    async def aclose(self) -> None:
        await self.client.aio.aclose()


def _state(job: Any) -> str:
    st = getattr(job, "state", None)
    return str(getattr(st, "name", None) or st or "")


_ENDED = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
                    "JOB_STATE_PARTIALLY_SUCCEEDED"})


def _reply(r: Any, req: CallRequest | None) -> RawReply:
    """A generate_content response, realtime or from a batch, as a :class:`RawReply`."""
    usage = _usage(r.usage_metadata)
    served = getattr(r, "model_version", None) or (req.model if req is not None else None)
    cands = r.candidates or []
    if not cands:
        return RawReply(Outcome.CONTENT_FILTER, usage=usage, served_model=served)
    cand = cands[0]
    texts = [part.text for part in (cand.content.parts if cand.content and cand.content.parts else [])
             if getattr(part, "text", None) and not getattr(part, "thought", False)]
    text = "".join(texts) if texts else None
    reason = getattr(cand.finish_reason, "name", None) or (str(cand.finish_reason) if cand.finish_reason else None)
    if reason == "MAX_TOKENS":
        return RawReply(Outcome.TRUNCATED, text=text, usage=usage, served_model=served)
    if reason in _FILTERED:
        return RawReply(Outcome.CONTENT_FILTER, text=text, usage=usage, served_model=served)
    return RawReply(Outcome.OK, text=text, usage=usage, served_model=served)



def _usage(u: Any) -> Usage:
    if u is None:
        return Usage()
    prompt = int(getattr(u, "prompt_token_count", 0) or 0)
    cached = int(getattr(u, "cached_content_token_count", 0) or 0)
    cand = int(getattr(u, "candidates_token_count", 0) or 0)
    thoughts = int(getattr(u, "thoughts_token_count", 0) or 0)
    return Usage(input_tokens=prompt, cached_input_tokens=cached, output_tokens=cand + thoughts,
                 reasoning_tokens=thoughts)
