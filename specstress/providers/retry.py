"""The one retry layer: which errors retry, how long to wait, when to give up.

* What retries is decided by the error's kind (see :mod:`specstress.providers.base`): rate limits,
  overload, 5xx, timeouts and connection errors retry; auth and not_found are fatal for the run;
  bad_request is permanent for the call. Adapters classify their own SDK's exceptions by type.
* The wait is exponential (``backoff_base_s * 2**(attempt-1)``, capped at ``backoff_max_s``) with
  jitter (x0.5 to x1.0, from a seeded generator), and never shorter than the server's
  ``Retry-After`` (nor much longer than it).
* Attempts are bounded by ``max_attempts`` and by ``max_call_seconds`` of wall time: no retry is
  started whose wait would cross the bound.

The loop is tenacity's :class:`~tenacity.AsyncRetrying` (entered only when a first attempt fails and
may retry); :func:`call_with_retries` records what the ledger keeps of it (attempts, HTTP statuses,
seconds waited).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_before_delay
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential

from specstress.providers.base import (
    FATAL_KINDS,
    PERMANENT_KINDS,
    RETRYABLE_KINDS,
    ProviderError,
    RawReply,
    classify_common,
    is_fatal,
    is_permanent,
    is_rate_limited,
    should_retry,
)

__all__ = ["RETRYABLE_KINDS", "FATAL_KINDS", "PERMANENT_KINDS", "should_retry", "is_fatal", "is_permanent",
           "is_rate_limited", "RetryPolicy", "BackoffWait", "Attempts", "NotSent", "call_with_retries"]


class NotSent(Exception):
    """Raised by a ``before_attempt`` hook to stop before an attempt is made (e.g. the budget is spent)."""


class BackoffWait(wait_base):
    """Tenacity wait: capped exponential backoff with jitter that honours ``Retry-After``."""

    def __init__(self, base_s: float, max_s: float, rng: random.Random) -> None:
        self.exponential = wait_exponential(multiplier=base_s, max=max_s)
        self.rng = rng

    def delay(self, retry_state: RetryCallState, retry_after: float | None) -> float:
        delay = self.exponential(retry_state) * (0.5 + self.rng.random() / 2)  # jitter
        if retry_after is not None:
            delay = max(retry_after, min(delay, retry_after * 1.5 + 0.05))
        return delay

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        return self.delay(retry_state, getattr(exc, "retry_after", None))


@dataclass
class RetryPolicy:
    """Bounds and backoff of the retry layer (``RetrySpec`` of the run spec, plus a seeded jitter source)."""

    max_attempts: int = 6
    max_call_seconds: float = 600.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_spec(cls, retry: Any, seed: int | None = None) -> RetryPolicy:
        return cls(max_attempts=int(retry.max_attempts), max_call_seconds=float(retry.max_call_seconds),
                   backoff_base_s=float(retry.backoff_base_s), backoff_max_s=float(retry.backoff_max_s),
                   rng=random.Random(seed))

    def wait(self) -> BackoffWait:
        return BackoffWait(self.backoff_base_s, self.backoff_max_s, self.rng)

    def stop(self) -> stop_base:
        return stop_after_attempt(self.max_attempts) | stop_before_delay(self.max_call_seconds)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return self.wait().delay(state, retry_after)

    def retrying(self, sleep: Callable[[float], Awaitable[None]] | None = None,
                 before_sleep: Callable[[RetryCallState], None] | None = None) -> AsyncRetrying:
        return AsyncRetrying(stop=self.stop(), wait=self.wait(), retry=retry_if_exception(should_retry),
                             sleep=sleep or asyncio.sleep, before_sleep=before_sleep, reraise=True)


@dataclass
class Attempts:
    """What one call's attempts came to: the reply, or the last error (or why nothing was sent)."""

    reply: RawReply | None = None
    error: ProviderError | None = None
    not_sent: str | None = None
    attempts: int = 0
    waited_s: float = 0.0
    latency_s: float = 0.0
    statuses: list[int] = field(default_factory=list)


async def call_with_retries(
    send: Callable[[], Awaitable[RawReply]],
    policy: RetryPolicy,
    *,
    classify: Callable[[BaseException], ProviderError] = classify_common,
    before_attempt: Callable[[], None] | None = None,
    on_failure: Callable[[ProviderError], None] | None = None,
    on_retry: Callable[[ProviderError, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> Attempts:
    """Send with ``policy``'s retries. ``before_attempt`` may raise :class:`NotSent`; ``on_failure``
    sees every classified failure; ``on_retry`` sees each retry with the wait before it."""
    log = Attempts()

    async def attempt_once() -> None:
        if before_attempt is not None:
            before_attempt()
        log.attempts += 1
        t0 = time.monotonic()
        try:
            reply = await send()
        except Exception as exc:  # noqa: BLE001 - every failure is classified
            err = classify(exc)
            if err.status:
                log.statuses.append(err.status)
            if on_failure is not None:
                on_failure(err)
            raise err from None
        log.latency_s = time.monotonic() - t0
        log.statuses.append(reply.status)
        log.reply = reply

    # The fast path: the first attempt runs outside tenacity (most calls succeed at once, and setting up
    # tenacity's loop costs about 20 µs a call). Only a failure that may be retried enters tenacity, which
    # replays it as its own first attempt, with the start time of the real one: the waits, the bounds and the
    # hooks are those of the plain tenacity loop (tests/test_hot_path.py compares the two).
    started = time.monotonic()
    try:
        await attempt_once()
        return log
    except NotSent as stop:
        log.not_sent = str(stop)
        return log
    except ProviderError as err:
        if not should_retry(err):
            log.error = err
            return log
        first: ProviderError | None = err

    def before_sleep(state: RetryCallState) -> None:
        log.waited_s += state.upcoming_sleep
        if on_retry is not None:
            exc = state.outcome.exception() if state.outcome is not None else None
            assert isinstance(exc, ProviderError)
            on_retry(exc, state.upcoming_sleep)

    try:
        async for attempt in policy.retrying(sleep=sleep, before_sleep=before_sleep):
            with attempt:
                if first is not None:   # the fast path's failure, replayed
                    attempt.retry_state.start_time = started
                    replay, first = first, None
                    raise replay
                await attempt_once()
    except ProviderError as err:
        log.error = err
    except NotSent as stop:
        log.not_sent = str(stop)
    return log
