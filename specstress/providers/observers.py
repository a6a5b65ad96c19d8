"""What the engine tells the world: events, the per-stage counters built from them, and the
progress on stderr: rich bars per stage on a terminal, plain lines otherwise.

The engine emits an :class:`EngineEvent` for every step of a call (calls planned or expected,
cache hits, a call started or ended, a retry, a rate limit, a cost) to its observers. The
counters (``engine.counters``) are one observer; the progress (:func:`make_progress`: a
:class:`RichProgress` on a terminal, else a :class:`ProgressLine`) is another, reading them. Observers run on the engine's threads and must be quick.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TextIO

EventKind = Literal["expected", "planned", "cache_hit", "call_started", "call_ended", "retry", "rate_limited",
                    "cost", "batch_submitted", "batch_waiting", "batch_ended"]


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
    batched: int = 0          # keys submitted in provider batches
    batches_waiting: int = 0  # batches this engine is waiting for
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "cache_hits": self.hits, "sent": self.sent, "done": self.done,
                "retries": self.retries, "rate_limited": self.rate_limited, "waited_s": round(self.waited_s, 2),
                "failed": self.failed, "batched": self.batched,
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
        elif kind == "batch_submitted":
            c.batched += event.n
        elif kind == "batch_waiting":
            c.batches_waiting += 1
        elif kind == "batch_ended":
            c.batches_waiting = max(0, c.batches_waiting - 1)


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
        batches = f" · {c.batched} in batches ({c.batches_waiting} pending)" if c.batched or c.batches_waiting else ""
        return (f"[{stage}] {done}/{max(c.expected, c.planned, done)} calls{batches} · {c.hits} cached · {c.retries} retries"
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


class RichProgress:
    """Observer: on a terminal, one ``rich`` progress bar per stage: calls done of planned, ledger
    hits, retries, 429s (rate limits), dollars so far and an ETA. The engine's ticker refreshes it
    (:meth:`print`, as :class:`ProgressLine`); :meth:`close` leaves the finished bars on screen."""

    def __init__(self, counters: Counters, budget_usd: float, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
        from rich.table import Column

        self.counters = counters
        self.budget_usd = budget_usd
        self.console = console if console is not None else Console(stderr=True)
        def fixed(width: int) -> Column:
            return Column(no_wrap=True, min_width=width)

        # A narrow terminal cuts the detail from its end (the dollars come first), never the bar or counts.
        self.bars = Progress(TextColumn("[bold]{task.description}", table_column=fixed(17)),
                             BarColumn(bar_width=16, table_column=fixed(16)),
                             MofNCompleteColumn(table_column=fixed(9)),
                             TextColumn("{task.fields[eta]}", table_column=fixed(9)),
                             TextColumn("{task.fields[detail]}",
                                        table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
                             console=self.console, auto_refresh=False, transient=False)
        self.tasks: dict[str, Any] = {}
        self._started = False
        self._closed = False

    def on_event(self, event: EngineEvent) -> None:
        if event.kind in ("expected", "planned") and event.stage not in self.tasks and not self._closed:
            self.tasks[event.stage] = self.bars.add_task(event.stage, total=None, detail="", eta="ETA -:--")
            if not self._started:
                self._started = True
                self.bars.start()

    def detail(self, stage: str) -> str:
        c = self.counters.by_stage[stage]
        return (f"${c.cost_usd:.4f} · {c.hits} cached · {c.retries} retries · {c.rate_limited} 429s"
                f" · run ${self.counters.run_cost:.4f} of ${self.budget_usd:.2f}")

    def print(self, force: bool = False) -> None:
        if not self._started or self._closed:
            return
        for stage, task in list(self.tasks.items()):
            c = self.counters.by_stage[stage]
            done = c.hits + c.done
            total = max(c.expected, c.planned, done) or None
            self.bars.update(task, completed=done, total=total, detail=self.detail(stage))
            self.bars.update(task, eta=_eta(self.bars.tasks[task_index(self.bars, task)], done, total))
        self.bars.refresh()

    def close(self) -> None:
        if self._started and not self._closed:
            self.print(force=True)
            self.bars.stop()
        self._closed = True


def task_index(bars: Any, task_id: Any) -> int:
    return next(i for i, t in enumerate(bars.tasks) if t.id == task_id)


def _eta(task: Any, done: int, total: int | None) -> str:
    """``ETA m:ss`` from rich's speed estimate; ``done`` once every planned call is."""
    if total is not None and done >= total:
        return "done"
    left = task.time_remaining
    if left is None:
        return "ETA -:--"
    m, s = divmod(int(left + 0.5), 60)
    return f"ETA {m}:{s:02d}" if m < 60 else f"ETA {m // 60}h{m % 60:02d}"


def make_progress(counters: Counters, budget_usd: float, quiet: bool,
                  stream: TextIO | None = None) -> ProgressLine | RichProgress | None:
    """The progress observer for this process: none with ``quiet``; rich bars when stderr is a
    terminal (and ``rich`` imports); otherwise today's plain lines, for CI and logs."""
    if quiet:
        return None
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty() and os.environ.get("TERM") != "dumb":
        try:
            from rich.console import Console

            return RichProgress(counters, budget_usd, Console(file=stream))
        except ImportError:
            pass
    return ProgressLine(counters, budget_usd, stream=None if stream is sys.stderr else stream)
