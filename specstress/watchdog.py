"""A watchdog that leaves no orphans: when ``specstress run`` dies, by any signal including SIGKILL,
the processes it started (Prefect's temporary API server, Dask workers and their nannies) go too.

A process killed with SIGKILL runs no cleanup, and its children are re-parented to init and live on.
So a small forked process watches from outside: while the parent lives it records the parent's
descendants (from ``/proc``, each with its start time so that a recycled pid is never hit); once the
parent is gone it sends SIGTERM to every one of them still alive, waits a little, then SIGKILL. It
never changes the process group or session, so Ctrl-C and the terminal's job control keep working.
Linux only (it reads ``/proc``); elsewhere it does nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

#: how often the descendants are recorded while the parent lives (seconds)
POLL_S = 0.25
#: how long the descendants get between SIGTERM and SIGKILL (seconds)
GRACE_S = 3.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name is in parentheses and may itself hold spaces or ')'
    fields = raw[raw.rindex(b")") + 2:].split()
    if fields[0] == b"Z":   # a zombie: already dead, only waiting to be reaped
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int, exclude: int | None = None) -> dict[int, int]:
    """Every live descendant of ``root``: pid -> start time."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        st = _stat(int(entry.name))
        if st is not None:
            children.setdefault(st[0], []).append(int(entry.name))
            starts[int(entry.name)] = st[1]
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child != exclude and child not in out:
                out[child] = starts[child]
                todo.append(child)
    return out


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] == start


def _reap(known: dict[int, int]) -> None:
    """SIGTERM, a grace period, then SIGKILL for every recorded process that is still the same process,
    and for whatever those processes started meanwhile."""
    for pid in list(known):
        known.update(descendants(pid, exclude=os.getpid()))
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 0.0)):
        for pid, start in list(known.items()):
            if _alive(pid, start):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(p, s) for p, s in known.items()):
            time.sleep(0.05)


def start_watchdog() -> int | None:
    """Fork the watchdog; returns its pid (None where /proc is missing). Call it early, before threads."""
    if not sys.platform.startswith("linux") or not Path("/proc/self/stat").exists():
        return None
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    # the watchdog: no Python-level cleanup, no signal from the terminal's Ctrl-C (the parent handles it)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for fd in (0, 1, 2):
            try:
                os.dup2(os.open(os.devnull, os.O_RDWR), fd)
            except OSError:
                pass
        known: dict[int, int] = {}
        while os.getppid() == parent:
            # forget the ones that ended on their own; record the new ones
            known = {p: s for p, s in known.items() if _alive(p, s)}
            known.update(descendants(parent, exclude=os.getpid()))
            time.sleep(POLL_S)
        _reap(known)
    finally:
        os._exit(0)
