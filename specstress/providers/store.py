"""The call store the engine reads and writes: the ledger, behind a small protocol.

:class:`specstress.warehouse.ledger.Ledger` is the store of every run; :class:`MemoryStore` keeps
rows in memory (tests, dry runs) with the same hit rules: a key is a hit once a final row exists.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Protocol

from specstress.domain import CallResult
from specstress.warehouse.ledger import BATCH_SUBMITTED, row_to_result


class CallStore(Protocol):
    def lookup(self, keys: Iterable[str]) -> dict[str, CallResult]:
        """Final results of those keys that have one (hits cost nothing and contact nobody)."""
        ...

    def pending_result(self, key: str) -> CallResult | None:
        """A final result appended since the last lookup (another shard finished the call)."""
        ...

    def append(self, row: dict[str, Any], flush: bool = True) -> None: ...

    def final_keys(self, keys: Iterable[str]) -> set[str]: ...

    def batch_state(self, keys: Iterable[str]) -> dict[str, tuple[str | None, int]]:
        """Keys journalled in provider batches: (the batch a key is pending in or None, batches it was in)."""
        ...

    def batch_rows(self, batch_id: str) -> list[dict[str, Any]]:
        """The journal rows of one provider batch."""
        ...

    def flush(self) -> int: ...

    def flush_due(self) -> bool: ...

    def flush_if_due(self) -> None: ...

    def spent_by_run(self, run_id_prefix: str) -> float: ...


class MemoryStore:
    """A :class:`CallStore` in memory. ``rows`` holds every appended row, in order."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.flushed = 0
        self._final: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def lookup(self, keys: Iterable[str]) -> dict[str, CallResult]:
        with self._lock:
            return {k: row_to_result(self._final[k]) for k in keys if k in self._final}

    def pending_result(self, key: str) -> CallResult | None:
        with self._lock:
            row = self._final.get(key)
        return row_to_result(row) if row is not None else None

    def append(self, row: dict[str, Any], flush: bool = True) -> None:
        with self._lock:
            self.rows.append(row)
            if row["final"]:
                self._final[row["key"]] = row

    def final_keys(self, keys: Iterable[str]) -> set[str]:
        with self._lock:
            return {k for k in keys if k in self._final}

    def batch_state(self, keys: Iterable[str]) -> dict[str, tuple[str | None, int]]:
        wanted = set(keys)
        out: dict[str, tuple[str | None, int]] = {}
        with self._lock:
            for row in self.rows:
                k = row["key"]
                if k not in wanted or k in self._final:
                    continue
                bid, n = out.get(k, (None, 0))
                if row["outcome"] == BATCH_SUBMITTED:
                    out[k] = (row["batch_id"], n + 1)
                elif n:
                    out[k] = (None, n)
        return out

    def batch_rows(self, batch_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.rows if r["outcome"] == BATCH_SUBMITTED and r["batch_id"] == batch_id]

    def flush(self) -> int:
        with self._lock:
            n, self.flushed = len(self.rows) - self.flushed, len(self.rows)
        return n

    def flush_due(self) -> bool:
        return False

    def flush_if_due(self) -> None:
        return None

    def spent_by_run(self, run_id_prefix: str) -> float:
        with self._lock:
            return sum(float(r.get("cost_usd") or 0.0) for r in self.rows
                       if (r.get("run_id") or "").startswith(run_id_prefix))
