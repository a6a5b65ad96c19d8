"""Crash points: test hooks that kill this process with SIGKILL at a chosen moment, to prove that a run killed
anywhere resumes to the same result. ``SPECSTRESS_CRASH_AT=NAME:N`` kills the process the N-th time it reaches
crash point NAME (one of :data:`POINTS`). Unset, a crash point costs one dictionary lookup."""

from __future__ import annotations

import os
import signal
import threading

#: where a crash can be planted: a Parquet file written to a warehouse folder but not yet renamed into place
#: (write:ledger, write:artefacts, write:lineage, write:runs), a text file likewise (write_text:reports,
#: write_text:ledger for compaction manifests), and a ledger compaction between its merged part and its manifest
POINTS = ("write:ledger", "write:artefacts", "write:lineage", "write:runs", "write_text:reports",
          "write_text:ledger", "compact")

_LOCK = threading.Lock()
_COUNTS: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    raw = os.environ.get("SPECSTRESS_CRASH_AT")
    if not raw:
        return None
    name, _, n = raw.rpartition(":")
    return (name, int(n)) if name and n.isdigit() else None


_TARGET = _target()


def crashpoint(name: str) -> None:
    """Die here (SIGKILL) if this is the planted crash point and its N-th visit."""
    if _TARGET is None or _TARGET[0] != name:
        return
    with _LOCK:
        _COUNTS[name] = _COUNTS.get(name, 0) + 1
        if _COUNTS[name] == _TARGET[1]:
            os.kill(os.getpid(), signal.SIGKILL)
