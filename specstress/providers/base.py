"""The one provider interface, and the error classification every adapter maps onto.

An adapter turns a :class:`CallRequest` into one HTTP call with its provider's own SDK (SDK
retries off) and returns a :class:`RawReply`, or raises :class:`ProviderError` with a ``kind``.
Each adapter module classifies its own SDK's exceptions by type (``isinstance`` against the SDK's
exception classes, never by class name); what a kind means for the retry layer is decided here:

=============  =====================================  ==========================
kind           typical cause                          handling
=============  =====================================  ==========================
rate_limit     HTTP 429                               back off, honour Retry-After
overloaded     HTTP 529 / "overloaded"                back off, honour Retry-After
server         HTTP 5xx, malformed body               retry with backoff
timeout        read/connect timeout, hang             retry with backoff
connection     connection refused/reset               retry with backoff
auth           HTTP 401/402/403, account errors       stop the run (fix the key)
not_found      HTTP 404 (unknown model)               stop the run (fix the model id)
bad_request    other 4xx                              permanent error for this call
internal       a bug on our side (unexpected shape)   not retried, not final
=============  =====================================  ==========================

Every request carries its ledger key in the standard ``X-Client-Request-Id`` tracing header
(see :func:`request_headers`), whichever provider serves it.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from specstress.domain import CallRequest, Usage
from specstress.secrets import redact

RETRYABLE_KINDS = frozenset({"rate_limit", "overloaded", "server", "timeout", "connection"})
FATAL_KINDS = frozenset({"auth", "not_found"})
PERMANENT_KINDS = frozenset({"bad_request"})
RATE_LIMIT_KINDS = frozenset({"rate_limit", "overloaded"})

#: The tracing header that carries a call's ledger key (OpenAI documents it; others ignore it).
TRACE_HEADER = "X-Client-Request-Id"


class ProviderError(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(redact(message) or kind)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS


def should_retry(err: BaseException) -> bool:
    """A classified error worth another attempt (rate limits, overload, 5xx, timeouts, connection)."""
    return isinstance(err, ProviderError) and err.kind in RETRYABLE_KINDS


def is_fatal(err: BaseException) -> bool:
    """A classified error that stops the run: no call to this model can succeed until the spec or key changes."""
    return isinstance(err, ProviderError) and err.kind in FATAL_KINDS


def is_permanent(err: BaseException) -> bool:
    """A classified error that ends this call for good (a final ``permanent_error``)."""
    return isinstance(err, ProviderError) and err.kind in PERMANENT_KINDS


def is_rate_limited(err: BaseException) -> bool:
    return isinstance(err, ProviderError) and err.kind in RATE_LIMIT_KINDS


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


@dataclass(slots=True)
class BatchItem:
    """One item of an ended provider batch: its reply, its error, or why it never ran (expired, cancelled)."""

    key: str
    reply: RawReply | None = None
    error: ProviderError | None = None
    unfinished: str | None = None


class Adapter(Protocol):
    provider: str

    async def complete(self, req: CallRequest) -> RawReply: ...

    async def embed(self, req: CallRequest) -> RawReply: ...

    async def aclose(self) -> None: ...


class Classifier:
    """Mixin of the adapters: ``classify`` maps an exception of the adapter's SDK onto a
    :class:`ProviderError`; ``should_retry`` and ``is_fatal`` answer from that classification."""

    def classify(self, exc: BaseException) -> ProviderError:
        return classify_common(exc)

    def should_retry(self, exc: BaseException) -> bool:
        return should_retry(self.classify(exc))

    def is_fatal(self, exc: BaseException) -> bool:
        return is_fatal(self.classify(exc))


def request_headers(req: CallRequest) -> dict[str, str]:
    """The headers every request carries: its ledger key for tracing, plus any the request asks for."""
    return {TRACE_HEADER: req.key, **dict(req.meta.get("extra_headers") or {})}


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


def status_error(exc: BaseException, status: int, kind: str | None = None, headers: Any = None) -> ProviderError:
    """A :class:`ProviderError` for an HTTP error status (kind from the status unless given)."""
    msg = f"{type(exc).__name__}: {exc}"
    return ProviderError(kind or kind_for_status(status, str(exc)), msg, status=status,
                         retry_after=retry_after_from_headers(headers))


@lru_cache(maxsize=1)
def _transport_classes() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...],
                                  tuple[type[BaseException], ...]]:
    """(timeouts, transport errors, body-decoding errors) of the HTTP libraries the SDKs use:
    httpx, and httpx2 (its fork, which the openai, anthropic and google-genai SDKs use when present)."""
    timeouts: list[type[BaseException]] = []
    transport: list[type[BaseException]] = []
    decoding: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(mod.TimeoutException)
        transport.append(mod.TransportError)
        decoding.append(mod.DecodingError)
    return tuple(timeouts), tuple(transport), tuple(decoding)


def transport_error(exc: BaseException) -> ProviderError | None:
    """Classify an HTTP-library exception that reached us unwrapped (google-genai raises them as they are)."""
    timeouts, transport, decoding = _transport_classes()
    msg = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, timeouts):
        return ProviderError("timeout", msg)
    if isinstance(exc, decoding):
        return ProviderError("server", msg)
    if isinstance(exc, transport):
        return ProviderError("connection", msg)
    return None


def aiohttp_client(sdk: Any, timeout: float) -> Any:
    """The SDK's own aiohttp transport (``DefaultAioHttpClient``: about half the CPU per call of httpx's), or
    None (the SDK's httpx default) when aiohttp is not installed."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return None
    return sdk.DefaultAioHttpClient(timeout=timeout)


def classify_common(exc: BaseException) -> ProviderError:
    """What every adapter shares: our own errors, malformed bodies, timeouts, and transport errors.
    Anything else is ``internal`` (a bug on our side: not retried, not final)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, json.JSONDecodeError):
        return ProviderError("server", f"malformed response body ({exc.msg})")
    if isinstance(exc, TimeoutError):
        return ProviderError("timeout", f"{type(exc).__name__}: {exc}" if str(exc) else "request exceeded its timeout")
    if isinstance(exc, ConnectionError):
        return ProviderError("connection", f"{type(exc).__name__}: {exc}")
    err = transport_error(exc)
    if err is not None:
        return err
    return ProviderError("internal", f"{type(exc).__name__}: {exc}")


def prompt_cache_key(req: CallRequest) -> str | None:
    """A routing hint for the provider's prompt cache: calls with the same system prompt (our stable prefix:
    rubric, spec, instructions) share it. Not part of the call key."""
    if not req.system:
        return None
    import hashlib

    return "ss-" + hashlib.sha256(f"{req.model}\n{req.system}".encode()).hexdigest()[:24]


def messages_text(req: CallRequest) -> str:
    return "\n".join(m.get("content") or "" for m in req.messages)
