"""The loopback provider emulator (OpenAI, Anthropic and Gemini wire formats) with fault knobs.

Its configuration (the run spec's ``emulator:`` section) is :mod:`specstress.emulator.config`; its
provider-plugin hooks are :mod:`specstress.emulator.plugin`. The server is imported on first use,
so that loading a run spec (which imports the plugin) does not load the HTTP server or the sim.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EmulatorServer", "free_port"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from specstress.emulator import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
