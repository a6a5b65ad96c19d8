"""The stage registry and the DAG it implies.

A stage registers itself with :func:`register_stage`, in its own module under ``tasks/``; every
module of this package is imported on first use, so adding a stage means adding its module (and,
for a SQL stage, its model file) and nothing else. The DAG order is derived from the inputs the
stages declare (a SQL stage's inputs are its model's ``ref()``s), with a cycle check.

An artefact's id hashes the stage name and version, the part of the run spec the stage reads,
its prompt templates' hashes and its input artefacts' ids. Ids are known before anything runs,
so a rerun finds finished stages by id, and changing only the judge recomputes classification and
what follows, and nothing before it.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from typing import Any, TypeVar

import pyarrow as pa

from specstress.errors import SpecError
from specstress.hashing import content_hash
from specstress.prompts import load_template
from specstress.runspec import RunSpec
from specstress.tasks.base import Stage
from specstress.warehouse.views import register_artefact_schema

#: Modules of this package that hold no stage.
_INFRASTRUCTURE = {"base", "registry", "shard", "scope"}

_REGISTRY: dict[str, Stage] = {}
_ORDER: tuple[Stage, ...] | None = None
_LOCK = threading.RLock()
_DISCOVERED = False

S = TypeVar("S", bound=type[Stage])


class StageGraphError(SpecError):
    """The declared stages do not form a DAG (a cycle, or an input no stage makes)."""


def register_stage(cls: S) -> S:
    """Class decorator: make ``cls`` (a :class:`Stage` subclass) part of the pipeline."""
    global _ORDER
    inst = cls()
    if not inst.name:
        raise StageGraphError(f"{cls.__module__}.{cls.__name__}: a registered stage needs a `name`.")
    with _LOCK:
        old = _REGISTRY.get(inst.name)
        if old is not None and type(old).__qualname__ != cls.__qualname__:
            raise StageGraphError(f"stage name {inst.name!r} is registered twice ({type(old).__module__}."
                                  f"{type(old).__name__} and {cls.__module__}.{cls.__name__}). Fix: rename one.")
        _REGISTRY[inst.name] = inst
        _ORDER = None
    if inst.schema is not None:
        register_artefact_schema(inst.name, inst.schema)
    return cls


def unregister_stage(name: str) -> None:
    """Remove a stage (for tests that register a toy stage)."""
    global _ORDER
    with _LOCK:
        _REGISTRY.pop(name, None)
        _ORDER = None


def discover() -> None:
    """Import every module of ``specstress.tasks`` once, so that their stages register."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    with _LOCK:
        if _DISCOVERED:
            return
        pkg = importlib.import_module("specstress.tasks")
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if info.name not in _INFRASTRUCTURE and not info.name.startswith("_"):
                importlib.import_module(f"specstress.tasks.{info.name}")
        _DISCOVERED = True


def dag_order(stages: dict[str, Stage]) -> tuple[Stage, ...]:
    """The stages in an order where every stage comes after all its possible inputs (ties by name).

    Raises :class:`StageGraphError` naming the cycle, or the input no stage makes.
    """
    deps: dict[str, set[str]] = {}
    for name, st in stages.items():
        wanted = set(st.inputs) | set(st.optional_inputs)
        unknown = sorted(wanted - set(stages))
        if unknown:
            raise StageGraphError(f"stage {name!r} ({type(st).__module__}) reads {', '.join(map(repr, unknown))}, "
                                  "which no registered stage makes. Fix its `inputs` (or its model's ref()s).")
        deps[name] = wanted
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(deps):
        ready = sorted(n for n in deps if n not in done and deps[n] <= done)
        if not ready:
            raise StageGraphError("the stages' inputs form a cycle: " + _cycle(deps, done)
                                  + ". Fix: a stage may only read stages that do not read it.")
        for n in ready[:1]:  # one at a time, so a stage runs as early as its inputs allow
            order.append(n)
            done.add(n)
    return tuple(stages[n] for n in order)


def _cycle(deps: dict[str, set[str]], done: set[str]) -> str:
    left = {n: {d for d in ds if d not in done} for n, ds in deps.items() if n not in done}
    node = min(left)
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = min(left[node])
    return " -> ".join(path[path.index(node):] + [node])


def all_stages() -> tuple[Stage, ...]:
    """Every registered stage, in DAG order."""
    global _ORDER
    discover()
    with _LOCK:
        if _ORDER is None:
            _ORDER = dag_order(dict(_REGISTRY))
        return _ORDER


def stage_by_name(name: str) -> Stage:
    for s in all_stages():
        if s.name == name:
            return s
    raise KeyError(f"unknown stage {name!r}; stages: {', '.join(s.name for s in all_stages())}")


def stage_schemas() -> dict[str, pa.Schema]:
    """Stage name -> the schema of its artefact (for empty views of stages a run did not build)."""
    return {s.name: s.schema for s in all_stages() if s.schema is not None}


def active_stages(spec: RunSpec) -> list[Stage]:
    return [s for s in all_stages() if s.enabled(spec)]


def template_hashes_for(stage: Stage, spec: RunSpec) -> dict[str, str]:
    return {n: load_template(n).hash for n in stage.templates_for(spec)}


def artefact_ids(spec: RunSpec) -> dict[str, str]:
    """stage name -> artefact id, for every active stage, in DAG order."""
    ids: dict[str, str] = {}
    for st in active_stages(spec):
        ids[st.name] = artefact_id(st, spec, ids)
    return ids


def input_ids(stage: Stage, ids: dict[str, str], spec: RunSpec) -> dict[str, str]:
    return {name: ids[name] for name in stage.inputs_for(spec) if name in ids}


def artefact_id(stage: Stage, spec: RunSpec, ids: dict[str, str]) -> str:
    missing = [n for n in stage.inputs_for(spec) if n not in ids]
    if missing:
        raise SpecError(f"stage {stage.name} needs {missing}, which are not active in this run spec. Fix: enable "
                        f"them, or disable {stage.name}.")
    ident: dict[str, Any] = {
        "stage": stage.name,
        "version": stage.version,
        "config": stage.config(spec),
        "templates": template_hashes_for(stage, spec),
        "inputs": input_ids(stage, ids, spec),
    }
    code = stage.code_hash()
    if code is not None:
        ident["code"] = code
    return stage.name[:4] + "-" + content_hash(ident)[:24]
