"""What the benchmarks share: process memory and CPU figures, and a scratch folder."""

from __future__ import annotations

import resource
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak RSS of this process, MB. ``ru_maxrss`` survives fork+exec on Linux (a worker would report
    its parent's size when that is larger), so read the high-water mark of this program's own memory
    (``VmHWM``) where there is one."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    rss = _status_mb("VmRSS")
    return rss if rss is not None else peak_rss_mb()


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@contextmanager
def scratch_dir(name: str, keep: bool = False, parent: str | None = None) -> Iterator[Path]:
    """A fresh temp folder for one benchmark run, removed afterwards unless ``keep`` (then its path is printed)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"specstress-bench-{name}-", dir=parent))
    try:
        yield tmp
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
