"""API keys: read from the environment at call time, never stored, and scrubbed from any text
that could reach disk (ledger errors, logs, artifacts, reports)."""

from __future__ import annotations

import os
import re

#: The standard variables, per provider, in order of preference.
KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "google": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "xai": ("XAI_API_KEY",),
    "openai_compatible": ("OPENAI_COMPATIBLE_API_KEY",),
    "sim": (),
}

#: Placeholder sent to the loopback emulator when no key is set (it accepts anything).
EMULATOR_KEY = "emulator-placeholder"

_SECRETISH = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|xai-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}"
    r"|(?i:bearer)\s+[A-Za-z0-9_\-\.]{12,})"
)


def key_variables(provider: str, key_env: str | None = None) -> tuple[str, ...]:
    if key_env:
        return (key_env,)
    return KEY_VARIABLES.get(provider, ())


def find_key(provider: str, key_env: str | None = None) -> str | None:
    for var in key_variables(provider, key_env):
        val = os.environ.get(var)
        if val:
            return val
    return None


_EXTRA_VARIABLES: set[str] = set()


def register_key_variables(names: list[str]) -> None:
    """Also scrub the values of these variables (a run spec's custom ``key_env`` names)."""
    _EXTRA_VARIABLES.update(n for n in names if n)


def _known_secrets() -> list[str]:
    vals = []
    for name, val in os.environ.items():
        if val and len(val) >= 8 and (name in _EXTRA_VARIABLES or name.endswith("_API_KEY") or name.endswith("_TOKEN")
                                      or "SECRET" in name or name in (
                "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "XAI_API_KEY")):
            vals.append(val)
    return sorted(set(vals), key=len, reverse=True)


def redact(text: str | None) -> str | None:
    """Remove every API key value present in the environment, and anything shaped like a key."""
    if not text:
        return text
    for secret in _known_secrets():
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    if secret_shaped(text):
        text = _SECRETISH.sub("[REDACTED]", text)
    return text


def secret_shaped(text: str) -> bool:
    return bool(_SECRETISH.search(text))
