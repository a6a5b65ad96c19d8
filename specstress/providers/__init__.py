"""Provider adapters (one small module each) behind one async interface, plus the call engine.

``make_adapter`` builds the adapter of a run-spec model entry: it reads the key from the
environment (never from the spec) and the base URL from the spec or the environment.
"""

from __future__ import annotations

import os
from typing import Any

from specstress.errors import MissingKeyError
from specstress.providers.services import BASE_URL_VARIABLES
from specstress.secrets import EMULATOR_KEY, find_key, key_variables


def emulator_base_url(provider: str, emulator_url: str) -> str:
    """Where a provider's SDK should point to reach the loopback emulator."""
    emulator_url = emulator_url.rstrip("/")
    if provider in ("openai", "xai", "openai_compatible", "sim"):
        return emulator_url + "/v1"
    return emulator_url


def adapter_class(provider: str) -> Any:
    if provider == "openai":
        from specstress.providers.openai import OpenAIAdapter as cls
    elif provider == "anthropic":
        from specstress.providers.anthropic import AnthropicAdapter as cls
    elif provider == "google":
        from specstress.providers.google import GoogleAdapter as cls
    elif provider == "xai":
        from specstress.providers.xai import XAIAdapter as cls
    elif provider == "openai_compatible":
        from specstress.providers.openai_compatible import OpenAICompatibleAdapter as cls
    elif provider == "sim":
        from specstress.providers.sim import SimAdapter as cls
    else:
        raise ValueError(f"unknown provider {provider!r}")
    return cls


def resolve_endpoint(entry: Any, emulator_url: str | None) -> tuple[str | None, str]:
    """``(base_url, api_key)`` for a model entry. Raises :class:`MissingKeyError` naming the variable."""
    provider = entry.provider
    if entry.on_emulator:
        if not emulator_url:
            raise MissingKeyError(f"model {entry.id!r} is routed to the emulator but no emulator is running")
        # A real key in the environment is still sent (the emulator discards it), so that the
        # key-hygiene tests exercise the real code path; otherwise a placeholder.
        return emulator_base_url(provider, emulator_url), find_key(provider, entry.key_env) or EMULATOR_KEY
    base_url = entry.base_url or os.environ.get(BASE_URL_VARIABLES.get(provider, ""), None) or None
    if provider == "openai_compatible":
        if not base_url:
            raise MissingKeyError(f"model {entry.id!r} (openai_compatible) needs a base_url in the run spec "
                                  "or OPENAI_COMPATIBLE_BASE_URL")
        return base_url, find_key(provider, entry.key_env) or "not-needed"
    key = find_key(provider, entry.key_env)
    if not key:
        names = " or ".join(key_variables(provider, entry.key_env))
        raise MissingKeyError(f"model {entry.id!r} ({provider}:{entry.model}) needs an API key: set {names}. "
                              "Nothing has been sent.")
    return base_url, key


def make_adapter(entry: Any, emulator_url: str | None, timeout: float, transport: str = "httpx") -> Any:
    base_url, key = resolve_endpoint(entry, emulator_url)
    return adapter_class(entry.provider)(api_key=key, base_url=base_url, timeout=timeout, api=entry.api,
                                         transport=transport)
