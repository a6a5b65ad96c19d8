"""The one provider interface, and the error classification every adapter maps onto.

An adapter turns a :class:`CallRequest` into one HTTP call with its provider's own SDK (SDK
retries off) and returns a :class:`RawReply`, or raises :class:`ProviderError` with a ``kind``:

=============  =====================================  ==========================
kind           typical cause                          handling
=============  =====================================  ==========================
rate_limit     HTTP 429                               back off, honour Retry-After
overloaded     HTTP 529 / "overloaded"                back off, honour Retry-After
server         HTTP 5xx, malformed body               retry with backoff
timeout        read/connect timeout, hang             retry with backoff
connection     connection refused/reset               retry with backoff
auth           HTTP 401/403                           stop the run (fix the key)
not_found      HTTP 404 (unknown model)               stop the run (fix the model id)
bad_request    other 4xx                              permanent error for this call
internal       a bug on our side (unexpected shape)   not retried, not final
=============  =====================================  ==========================
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from specstress.domain import CallRequest, Usage
from specstress.secrets import redact

RETRYABLE_KINDS = frozenset({"rate_limit", "overloaded", "server", "timeout", "connection"})
FATAL_KINDS = frozenset({"auth", "not_found"})


class ProviderError(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(redact(message) or kind)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS


@dataclass(slots=True)
class RawReply:
    """What one successful HTTP exchange produced, before structured parsing."""

    outcome: str  # ok | refusal | content_filter | truncated
    text: str | None = None
    parsed: Any = None
    vectors: list[list[float]] | None = None
    usage: Usage = field(default_factory=Usage)
    served_model: str | None = None
    status: int = 200


class Adapter(Protocol):
    provider: str

    async def complete(self, req: CallRequest) -> RawReply: ...

    async def embed(self, req: CallRequest) -> RawReply: ...

    async def aclose(self) -> None: ...


#: 400 bodies that mean "your credentials or account", not "your request": fix and rerun, never cache.
_ACCOUNT_400 = re.compile(r"api[_ ]?key|credential|credit balance|billing|insufficient[_ ]quota|"
                          r"unauthori[sz]ed|not authori[sz]ed", re.IGNORECASE)


def kind_for_status(status: int | None, body: str = "") -> str:
    if status is None:
        return "server"
    if status == 429:
        return "rate_limit"
    if status == 529 or "overloaded" in body.lower():
        return "overloaded"
    if status in (401, 402, 403) or (status == 400 and _ACCOUNT_400.search(body)):
        return "auth"
    if status == 404:
        return "not_found"
    if status in (408, 409) or status >= 500:
        return "server"
    return "bad_request"


def retry_after_from_headers(headers: Any) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        ra = headers.get("retry-after")
        if ra is None:
            return None
        try:
            return max(0.0, float(ra))
        except ValueError:
            import email.utils
            import time

            when = email.utils.parsedate_to_datetime(ra)
            return max(0.0, when.timestamp() - time.time())
    except Exception:
        return None


def classify_exception(exc: BaseException) -> ProviderError:
    """Map any SDK or transport exception onto a :class:`ProviderError` (message redacted)."""
    if isinstance(exc, ProviderError):
        return exc
    name = type(exc).__name__
    mro = {c.__name__ for c in type(exc).__mro__}
    msg = f"{name}: {exc}"
    if isinstance(exc, json.JSONDecodeError):
        return ProviderError("server", f"malformed response body ({exc.msg})")
    status = getattr(exc, "status_code", None)
    if status is None:
        code = getattr(exc, "code", None)
        status = code if isinstance(code, int) else None
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if status is not None:
        kind = kind_for_status(int(status), str(exc))
        if name == "OverloadedError":
            kind = "overloaded"
        return ProviderError(kind, msg, status=int(status), retry_after=retry_after_from_headers(headers))
    if "Timeout" in name or "TimeoutException" in mro or isinstance(exc, TimeoutError):
        return ProviderError("timeout", msg)
    if "APIConnectionError" in mro or "ConnectError" in mro or "TransportError" in mro or isinstance(
            exc, ConnectionError):
        return ProviderError("connection", msg)
    if "RemoteProtocolError" in mro or "DecodingError" in mro:
        return ProviderError("server", msg)
    return ProviderError("internal", msg)


def messages_text(req: CallRequest) -> str:
    return "\n".join(m.get("content") or "" for m in req.messages)
