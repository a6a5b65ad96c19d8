"""Provider plugins: hooks that let a provider take part in a run without the engine or the flows
knowing about it.

A plugin is a module with ``NAME`` and any of these functions:

* ``serves(spec, entry) -> bool`` and ``identity(spec, entry) -> str``: the endpoint part of the call
  keys of the models it serves (see :func:`endpoint_identity`);
* ``preflight(spec) -> list[str]``: checks before anything is sent (raise a SpecError, or return
  warnings);
* ``start(spec, running_url, quiet)``: a context manager that serves what the run needs beside it,
  yielding a handle with ``url``, ``stats()`` (or None when nothing was started);
* ``after_stage(handle, stage, table)``: told after every stage, with a loader of its artefact.

The built-in plugin is the loopback emulator behind the simulated panel
(:mod:`specstress.emulator.plugin`); others register under the ``specstress.providers`` entry-point
group.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from specstress.runspec import ModelEntry, RunSpec

BUILTIN_PLUGINS = ("specstress.emulator.plugin",)

BASE_URL_VARIABLES = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "google": "GOOGLE_GEMINI_BASE_URL",
    "xai": "XAI_BASE_URL",
    "openai_compatible": "OPENAI_COMPATIBLE_BASE_URL",
}


@lru_cache(maxsize=1)
def plugins() -> tuple[ModuleType, ...]:
    mods = [importlib.import_module(name) for name in BUILTIN_PLUGINS]
    for ep in entry_points(group="specstress.providers"):
        mod = ep.load()
        if mod not in mods:
            mods.append(mod)
    return tuple(mods)


def public_url(url: str) -> str:
    """A URL without credentials or query string (what may enter keys, ids and lineage)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def endpoint_identity(spec: RunSpec, model_id: str) -> str:
    """The endpoint part of a call key for a model entry: its plugin's identity when a plugin serves
    it, else the public base URL (or ``default``)."""
    entry = spec.model(model_id)
    for p in plugins():
        serves = getattr(p, "serves", None)
        if serves is not None and serves(spec, entry):
            return p.identity(spec, entry)
    url = entry.base_url or os.environ.get(BASE_URL_VARIABLES.get(entry.provider, ""), "")
    return public_url(url) if url else "default"


def model_identity(spec: RunSpec, model_id: str) -> dict[str, Any]:
    """What of a model entry changes its outputs (enters stage configs and so artefact ids)."""
    e: ModelEntry = spec.model(model_id)
    return {
        "id": e.id,
        "provider": e.provider,
        "model": e.model,
        "endpoint": endpoint_identity(spec, model_id),
        "api": e.api,
        "params": e.params.model_dump(mode="json", exclude_none=True),
    }


def preflight(spec: RunSpec) -> list[str]:
    warnings: list[str] = []
    for p in plugins():
        hook = getattr(p, "preflight", None)
        if hook is not None:
            warnings += hook(spec)
    return warnings


@dataclass
class Services:
    """What the plugins started for one run."""

    handles: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str | None:
        """The URL of the started service (the emulator), if any."""
        for h in self.handles.values():
            if h is not None and getattr(h, "url", None):
                return h.url
        return None

    def after_stage(self, stage: str, table: Callable[[], Any]) -> None:
        for p in plugins():
            hook = getattr(p, "after_stage", None)
            if hook is not None:
                hook(self.handles.get(p.NAME), stage, table)

    def stats(self) -> dict[str, Any]:
        out = {}
        for name, h in self.handles.items():
            if h is not None and hasattr(h, "stats"):
                out[name] = h.stats()
        return out


@contextmanager
def run_services(spec: RunSpec, running_url: str | None = None, quiet: bool = False) -> Iterator[Services]:
    """Start, for the length of a run, what its providers need beside it."""
    services = Services()
    with ExitStack() as stack:
        for p in plugins():
            hook = getattr(p, "start", None)
            if hook is not None:
                services.handles[p.NAME] = stack.enter_context(hook(spec, running_url, quiet))
        yield services
