"""Concurrency and rate limits per (provider, model).

* In flight: an AIMD window. It halves on a 429 (at most once per cool-down) and grows by about
  one slot per window's worth of successes, between ``min_in_flight`` and ``max_in_flight``.
* Requests and tokens per minute: leaky buckets from ``aiolimiter`` (a maintained library) at 95%
  of the configured rate, holding a quarter of a second of requests and one second of tokens, so
  that bursts stay under the provider's own window.

All of it lives on the engine's one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from aiolimiter import AsyncLimiter

SAFETY = 0.95
#: The request bucket holds this many seconds of traffic (at least one request). A provider's own bucket holds
#: about a second: a full second's burst from us at the start emptied it, and the jitter of arrivals then met
#: 429s until it had refilled (tens of seconds at 95% of the rate).
REQUEST_BURST_S = 0.25


def _bucket(per_second: float, burst_s: float) -> AsyncLimiter:
    capacity = max(1.0, per_second * burst_s)
    return AsyncLimiter(capacity, capacity / per_second)


class AIMDWindow:
    def __init__(self, max_in_flight: int, min_in_flight: int = 1, start: int | None = None,
                 cooldown_s: float = 1.0) -> None:
        self.max = max(1, max_in_flight)
        self.min = max(1, min(min_in_flight, self.max))
        self.limit = float(start if start is not None else self.max)
        self.in_flight = 0
        self.cooldown_s = cooldown_s
        self._last_cut = 0.0
        # Queued acquirers, first come first served. A release hands its slot straight to the next one (O(1)); an
        # asyncio.Condition here woke and re-queued waiters through a lock, and cost more per call the more calls
        # were queued (about a third of the engine's own time with a few thousand calls waiting).
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.cuts = 0
        self.peak = 0

    async def acquire(self) -> None:
        if not self._waiters and self.in_flight < int(self.limit):
            self._take()
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wake()   # room there may be, when the waiters ahead were cancelled
        try:
            await fut   # done when a release hands over its slot (counted in in_flight for us)
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():   # handed a slot as we were cancelled: pass it on
                self.in_flight -= 1
                self._wake()
            raise

    async def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _take(self) -> None:
        self.in_flight += 1
        if self.in_flight > self.peak:
            self.peak = self.in_flight

    def _wake(self) -> None:
        """Hand free slots to the queued acquirers; the window may have grown since they queued, so as many as
        now fit (cancelled ones are dropped)."""
        while self._waiters and self.in_flight < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self._take()
                fut.set_result(None)

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
        self.requests = _bucket(rpm * SAFETY / 60.0, REQUEST_BURST_S) if rpm else None
        self.tokens = AsyncLimiter(tpm * SAFETY / 60.0, 1.0) if tpm else None
        self.throttled_s = 0.0

    def slot(self, est_tokens: int = 0) -> _Slot:
        """``async with limiter.slot(n):`` one request (of about ``n`` tokens) in flight."""
        return _Slot(self, est_tokens)

    def on_success(self) -> None:
        self.window.on_success()

    def on_rate_limited(self) -> None:
        self.window.on_rate_limited()


class _Slot:
    """The async context manager of :meth:`ModelLimiter.slot` (a class: cheaper per call than a generator)."""

    __slots__ = ("lim", "est_tokens")

    def __init__(self, lim: ModelLimiter, est_tokens: int) -> None:
        self.lim = lim
        self.est_tokens = est_tokens

    async def __aenter__(self) -> None:
        lim = self.lim
        t0 = time.monotonic()
        await lim.window.acquire()
        try:
            if lim.requests is not None:
                await lim.requests.acquire()
            if lim.tokens is not None and self.est_tokens > 0:
                await lim.tokens.acquire(min(float(self.est_tokens), lim.tokens.max_rate))
        except BaseException:
            await lim.window.release()
            raise
        lim.throttled_s += time.monotonic() - t0

    async def __aexit__(self, *exc: object) -> None:
        await self.lim.window.release()
