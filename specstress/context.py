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

from specstress.hashing import canonical_json, content_hash
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

    @classmethod
    def create(cls, spec_path: str | Path, overrides: dict[str, Any] | None = None, run_id: str | None = None,
               emulator_url: str | None = None, quiet: bool = False, resend_errors: bool = False) -> RunContext:
        spec = load_run_spec(spec_path, overrides)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        rid = run_id or f"{spec.name}-{stamp}-{uuid.uuid4().hex[:6]}"
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


def endpoint_identity(spec: RunSpec, model_id: str) -> str:
    """The endpoint part of a call key for a model entry.

    For models served by the emulator it includes a hash of everything that shapes the simulated
    answers (the emulator seed, the sim knobs, this model's persona, the refusal and truncation
    rates), so that changing a persona recomputes its calls. The port never enters it.
    """
    entry = spec.model(model_id)
    if not entry.on_emulator:
        import os

        from specstress.providers import BASE_URL_VARIABLES

        url = entry.base_url or os.environ.get(BASE_URL_VARIABLES.get(entry.provider, ""), "")
        return public_url(url) if url else "default"
    em = spec.emulator
    shaping = {
        "seed": em.seed,
        "sim": em.sim.model_dump(mode="json"),
        "persona": (spec.persona(entry.model).model_dump(mode="json") if spec.persona(entry.model) else None),
        "refusal_rate": em.faults.refusal_rate,
        "truncation_rate": em.faults.truncation_rate,
    }
    return "emulator:" + content_hash(shaping)[:12]


def public_url(url: str) -> str:
    """A URL without credentials or query string (what may enter keys, ids and lineage)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def model_identity(spec: RunSpec, model_id: str) -> dict[str, Any]:
    """What of a model entry changes its outputs (enters stage configs and so artefact ids)."""
    e = spec.model(model_id)
    return {
        "id": e.id,
        "provider": e.provider,
        "model": e.model,
        "endpoint": endpoint_identity(spec, model_id),
        "api": e.api,
        "params": e.params.model_dump(mode="json", exclude_none=True),
    }
