"""What the engine tells the world: events, the per-stage counters built from them, and the
progress line on stderr.

The engine emits an :class:`EngineEvent` for every step of a call (calls planned or expected,
cache hits, a call started or ended, a retry, a rate limit, a cost) to its observers. The
counters (``engine.counters``) are one observer; the stderr progress line is another, reading
them. Observers run on the engine's threads and must be quick.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TextIO

EventKind = Literal["expected", "planned", "cache_hit", "call_started", "call_ended", "retry", "rate_limited",
                    "cost"]


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """One step of the engine's work. ``n`` counts calls (planned, expected, cache hits);
    ``delay_s`` is a retry's wait; ``repair`` marks the follow-up call that repairs a parse error."""

    kind: EventKind
    stage: str
    key: str | None = None
    n: int = 1
    delay_s: float = 0.0
    cost_usd: float = 0.0
    outcome: str | None = None
    final: bool = True
    error_kind: str | None = None
    repair: bool = False


class Observer(Protocol):
    def on_event(self, event: EngineEvent) -> None: ...


@dataclass
class StageCounters:
    planned: int = 0
    expected: int = 0
    hits: int = 0
    sent: int = 0
    done: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    failed: int = 0
    cost_usd: float = 0.0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "cache_hits": self.hits, "sent": self.sent, "done": self.done,
                "retries": self.retries, "rate_limited": self.rate_limited, "waited_s": round(self.waited_s, 2),
                "failed": self.failed,
                "cost_usd": round(self.cost_usd, 6), "outcomes": dict(self.outcomes)}


class Counters:
    """Observer: per-stage counters, and the money this engine spent."""

    def __init__(self) -> None:
        self.by_stage: dict[str, StageCounters] = defaultdict(StageCounters)
        self.run_cost = 0.0

    def on_event(self, event: EngineEvent) -> None:
        c = self.by_stage[event.stage]
        kind = event.kind
        if kind == "expected":
            c.expected = max(c.expected, event.n)
        elif kind == "planned":
            c.planned += event.n
        elif kind == "cache_hit":
            c.hits += event.n
        elif kind == "call_started":
            c.sent += 1
        elif kind == "call_ended" and not event.repair:
            c.done += 1
            c.outcomes[str(event.outcome)] += 1
            if not event.final:
                c.failed += 1
        elif kind == "retry":
            c.retries += 1
            c.waited_s += event.delay_s
        elif kind == "rate_limited":
            c.rate_limited += 1
        elif kind == "cost":
            c.cost_usd += event.cost_usd
            self.run_cost += event.cost_usd


class ProgressLine:
    """Observer: a stderr line about the stage last announced or planned, printed (by the engine's
    ticker, or forced at a stage's end) at most every two seconds and only when something moved."""

    def __init__(self, counters: Counters, budget_usd: float, stream: TextIO | None = None,
                 interval_s: float = 2.0) -> None:
        self.counters = counters
        self.budget_usd = budget_usd
        self.stream = stream
        self.interval_s = interval_s
        self._last_print = 0.0
        self._last_signature: tuple[Any, ...] | None = None
        self.stage: str | None = None

    def on_event(self, event: EngineEvent) -> None:
        if event.kind in ("expected", "planned"):
            self.stage = event.stage

    def line(self, stage: str) -> str:
        c = self.counters.by_stage[stage]
        done = c.hits + c.done
        return (f"[{stage}] {done}/{max(c.expected, c.planned, done)} calls · {c.hits} cached · {c.retries} retries"
                f" ({c.waited_s:.1f}s waited) · {c.rate_limited} rate-limited · ${c.cost_usd:.4f} this stage"
                f" · ${self.counters.run_cost:.4f} run / ${self.budget_usd:.2f} budget")

    def print(self, force: bool = False) -> None:
        stage = self.stage
        if stage is None:
            return
        now = time.monotonic()
        if not force and now - self._last_print < self.interval_s:
            return
        c = self.counters.by_stage[stage]
        signature = (stage, c.hits, c.done, c.retries)
        if not force and signature == self._last_signature:
            return
        self._last_signature = signature
        self._last_print = now
        print(self.line(stage), file=self.stream or sys.stderr, flush=True)
