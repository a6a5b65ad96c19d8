"""The run context: what every flow, task and worker process needs to find the run.

It is small and JSON-serialisable (it travels as a Prefect parameter, to threads, to Dask
workers and to deployment runs) and it never holds an API key: keys are read from each
process's environment at call time.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from specstress.hashing import canonical_json
from specstress.runspec import RunSpec, load_run_spec

_SPECS: dict[str, RunSpec] = {}
_LOCK = threading.Lock()


@dataclass
class RunContext:
    spec_path: str
    run_id: str
    warehouse_root: str
    overrides: dict[str, Any] = field(default_factory=dict)
    emulator_url: str | None = None
    quiet: bool = False
    spent_before: float = 0.0  # dollars earlier invocations of this run name already spent
    dask_address: str | None = None  # the run's Dask cluster, when task_runner.kind is dask
    resend_errors: bool = False  # treat cached permanent_error/parse_error calls as unfinished (re-send them)
    spec_hash: str | None = None  # the spec as the run started: a worker that reads another one refuses
    # processes that share each model's limits (under Dask, the worker count): each process's engine keeps
    # 1/limit_share of the model's rpm, tpm and max_in_flight, so the run as a whole holds the limits
    limit_share: int = 1

    @classmethod
    def create(cls, spec_path: str | Path, overrides: dict[str, Any] | None = None, run_id: str | None = None,
               emulator_url: str | None = None, quiet: bool = False, resend_errors: bool = False,
               overrides_from: str = "--set") -> RunContext:
        """``overrides_from`` says where ``overrides`` came from, for the error that names a bad one."""
        spec = load_run_spec(spec_path, overrides, overrides_from)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        rid = run_id or f"{spec.run_name}-{stamp}-{uuid.uuid4().hex[:6]}"
        ctx = cls(spec_path=str(Path(spec_path).resolve()), run_id=rid, warehouse_root=spec.warehouse_root(),
                  overrides=dict(overrides or {}), emulator_url=emulator_url or spec.emulator.url, quiet=quiet,
                  resend_errors=resend_errors, spec_hash=spec.spec_hash())
        _SPECS[ctx._spec_key()] = spec
        return ctx

    def _spec_key(self) -> str:
        return self.spec_path + "|" + canonical_json(self.overrides) + "|" + (self.spec_hash or "")

    @property
    def spec(self) -> RunSpec:
        key = self._spec_key()
        with _LOCK:
            s = _SPECS.get(key)
            if s is None:
                s = load_run_spec(self.spec_path, self.overrides)
                if self.spec_hash and s.spec_hash() != self.spec_hash:
                    from specstress.errors import SpecError

                    raise SpecError(f"{self.spec_path} changed since run {self.run_id} started; a worker would "
                                    "build calls from a different spec. Fix: run again (finished work is kept).")
                _SPECS[key] = s
            return s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunContext:
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
