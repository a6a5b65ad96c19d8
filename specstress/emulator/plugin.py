"""The emulator as a provider plugin: what the simulated panel needs from a run, and nothing more.

The production path calls these hooks through :mod:`specstress.providers.services` for every
plugin alike; only the emulator package knows about personas, sim knobs and faults. Their schema
(the run spec's ``emulator:`` section) is :mod:`specstress.emulator.config`, registered with the
spec loader when this module is imported (the ``specstress.providers`` entry point names it):

* :func:`identity` is the endpoint part of a call key for a model the emulator serves: a hash of
  what shapes its answers (seed, sim knobs, that model's persona, refusal and truncation rates),
  so that changing a persona recomputes that persona's calls only. The port never enters it. This
  is the only route by which sim data reaches call keys (through the model identity).
* :func:`preflight` checks the personas against the taxonomy before anything is sent.
* :func:`start` serves the panel in-process on a free loopback port when the spec enables it.
* :func:`after_stage` keeps the simulated models' value index in step with an expanded taxonomy.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from specstress.emulator.config import EmulatorConfig, Faults, emulator_config
from specstress.errors import SpecError
from specstress.hashing import content_hash
from specstress.runspec import ModelEntry, RunSpec

__all__ = ["NAME", "EmulatorConfig", "after_stage", "emulator_config", "identity", "make_server", "preflight",
           "serves", "start"]

NAME = "emulator"


def serves(spec: RunSpec, entry: ModelEntry) -> bool:
    return entry.on_emulator


#: identities made, by (the validated ``emulator:`` section, model name). Every request a stage builds asks for
#: its model's identity (about 8 us of dumping and hashing each time); the section is validated once per spec
#: and not changed after (section_config keeps it while the raw section is the same object).
_IDENTITIES: dict[tuple[int, str], tuple[EmulatorConfig, str]] = {}


def identity(spec: RunSpec, entry: ModelEntry) -> str:
    em = emulator_config(spec)
    known = _IDENTITIES.get((id(em), entry.model))
    if known is not None and known[0] is em:
        return known[1]
    persona = em.persona(entry.model)
    shaping = {
        "seed": em.seed,
        "sim": em.sim.identity(),
        "persona": persona.model_dump(mode="json") if persona else None,
        "refusal_rate": em.faults.refusal_rate,
        "truncation_rate": em.faults.truncation_rate,
    }
    ident = "emulator:" + content_hash(shaping)[:12]
    if len(_IDENTITIES) >= 1024:   # specs come and go in a long test session
        _IDENTITIES.clear()
    _IDENTITIES[(id(em), entry.model)] = (em, ident)
    return ident


def preflight(spec: RunSpec) -> list[str]:
    """Personas must name level-2 categories of the run's taxonomy."""
    em = emulator_config(spec)
    if not (em.enabled or em.url) or spec.taxonomy.source not in ("file", "expand"):
        return []
    from specstress.taxonomy import load_yaml_taxonomy

    cats = set(load_yaml_taxonomy(spec.resolve(spec.taxonomy.path)).column("category").to_pylist())
    for i, p in enumerate(em.personas):
        for cat in list(p.weights) + list(p.priority_order or []):
            if cat not in cats:
                close = difflib.get_close_matches(cat, sorted(cats), n=1)
                raise SpecError(
                    f"{spec.source_path}: field `emulator.personas[{i}].weights`: unknown category {cat!r}. "
                    "Fix: use a level-2 category of the taxonomy"
                    + (f" (did you mean {close[0]!r}?)" if close else "") + ".")
    return []


def _taxonomy(spec: RunSpec) -> Any:
    from specstress.taxonomy import load_values_in_the_wild, load_yaml_taxonomy

    if spec.taxonomy.source == "values_in_the_wild":
        return load_values_in_the_wild(str(spec.resolve(spec.taxonomy.tree_csv or "")))
    return load_yaml_taxonomy(spec.resolve(spec.taxonomy.path))


def make_server(spec: RunSpec, faults: Faults | None = None, port: int | None = None,
                host: str = "127.0.0.1") -> Any:
    """An (unstarted) :class:`~specstress.emulator.server.EmulatorServer` serving ``spec``'s simulated
    panel, with ``faults`` instead of the spec's when given."""
    from specstress.emulator.server import EmulatorServer
    from specstress.taxonomy import ValueIndex

    em = emulator_config(spec)
    return EmulatorServer(ValueIndex.from_table(_taxonomy(spec)), em.personas, em.sim,
                          em.faults if faults is None else faults, seed=em.seed, port=port, host=host)


@contextmanager
def start(spec: RunSpec, running_url: str | None, quiet: bool = False) -> Iterator[Any]:
    """Serve the panel in-process when the spec enables the emulator and none is running already."""
    if not emulator_config(spec).enabled or running_url:
        yield None
        return
    server = make_server(spec).start()
    if not quiet:
        print(f"emulator: serving the simulated panel at {server.url}", file=sys.stderr)
    try:
        yield server
    finally:
        server.stop()


def after_stage(server: Any, stage: str, table: Any) -> None:
    """After a taxonomy is built (or expanded), the simulated models must know its values too."""
    if server is None or stage != "taxonomy":
        return
    from specstress.taxonomy import ValueIndex

    server.state.agent.index = ValueIndex.from_table(table())
