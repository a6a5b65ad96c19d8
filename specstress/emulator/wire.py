"""What the emulator's realtime endpoints and its batch APIs share: a parsed call, a refused request, and the
providers' error bodies (a module of its own, so that :mod:`.server` and :mod:`.batches` import it, not each other)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _error_body(protocol: str, status: int) -> dict[str, Any]:
    if protocol == "anthropic":
        etype = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": etype, "message": f"emulated {status}"}}
    if protocol == "google":
        st = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
        return {"error": {"code": status, "message": f"emulated {status}", "status": st}}
    return {"error": {"message": f"emulated {status}", "type": "rate_limit_exceeded" if status == 429 else "server_error",
                      "code": None}}



class RequestRefused(Exception):
    """A request the provider refuses before the model answers (a 4xx with the provider's error body)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {json.dumps(body)[:200]}")
        self.status = status
        self.body = body


@dataclass
class Call:
    """One parsed request: what the fault knobs need before the model answers (model, input tokens), and
    ``produce`` (the response body and its output tokens), or the provider's refusal (``error``)."""

    model: str
    est_in: int
    produce: Callable[[], tuple[dict[str, Any], int]]
    error: tuple[int, dict[str, Any]] | None = None

    def answer(self) -> tuple[dict[str, Any], int]:
        """(response JSON, output tokens); raises :class:`RequestRefused` for a refused request."""
        if self.error is not None:
            raise RequestRefused(*self.error)
        return self.produce()
