"""Concurrency and rate limits per (provider, model).

* In flight: an AIMD window. It halves on a 429 (at most once per cool-down) and grows by about
  one slot per window's worth of successes, between ``min_in_flight`` and ``max_in_flight``.
* Requests and tokens per minute: leaky buckets from ``aiolimiter`` (a maintained library),
  sized to one second of traffic at 95% of the configured rate so that bursts stay under the
  provider's own window.

All of it lives on the engine's one event loop.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any

from aiolimiter import AsyncLimiter

SAFETY = 0.95


class AIMDWindow:
    def __init__(self, max_in_flight: int, min_in_flight: int = 1, start: int | None = None,
                 cooldown_s: float = 1.0) -> None:
        self.max = max(1, max_in_flight)
        self.min = max(1, min(min_in_flight, self.max))
        self.limit = float(start if start is not None else self.max)
        self.in_flight = 0
        self.cooldown_s = cooldown_s
        self._last_cut = 0.0
        self._cond = asyncio.Condition()
        self.cuts = 0
        self.peak = 0

    async def acquire(self) -> None:
        async with self._cond:
            while self.in_flight >= int(self.limit):
                await self._cond.wait()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    async def release(self) -> None:
        async with self._cond:
            self.in_flight -= 1
            # the window may have grown since the waiters queued: wake as many as now fit
            self._cond.notify(max(1, int(self.limit) - self.in_flight))

    def on_success(self) -> None:
        if self.limit < self.max:
            self.limit = min(float(self.max), self.limit + 1.0 / max(1.0, self.limit))

    def on_rate_limited(self) -> None:
        now = time.monotonic()
        if now - self._last_cut >= self.cooldown_s:
            self._last_cut = now
            self.limit = max(float(self.min), self.limit / 2.0)
            self.cuts += 1


class ModelLimiter:
    """The gate every request to one (provider, model) passes through."""

    def __init__(self, max_in_flight: int, min_in_flight: int = 1, rpm: float | None = None,
                 tpm: float | None = None) -> None:
        self.window = AIMDWindow(max_in_flight, min_in_flight)
        self.rpm = rpm
        self.tpm = tpm
        self.requests = AsyncLimiter(rpm * SAFETY / 60.0, 1.0) if rpm else None
        self.tokens = AsyncLimiter(tpm * SAFETY / 60.0, 1.0) if tpm else None
        self.throttled_s = 0.0

    @asynccontextmanager
    async def slot(self, est_tokens: int = 0) -> Any:
        t0 = time.monotonic()
        await self.window.acquire()
        try:
            if self.requests is not None:
                await self.requests.acquire()
            if self.tokens is not None and est_tokens > 0:
                await self.tokens.acquire(min(float(est_tokens), self.tokens.max_rate))
            self.throttled_s += time.monotonic() - t0
            yield
        finally:
            await self.window.release()

    def on_success(self) -> None:
        self.window.on_success()

    def on_rate_limited(self) -> None:
        self.window.on_rate_limited()
