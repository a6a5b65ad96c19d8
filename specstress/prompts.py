"""Prompt templates: files in ``specs/prompts/``, versioned by the sha256 of their content.

A template file has a YAML front matter (``name``, ``output``: the structured-output schema
name, or ``text``) and two sections introduced by ``=== system ===`` and ``=== user ===``.
Placeholders are ``{{name}}``; a missing variable is an error, never an empty string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from specstress.hashing import sha256_hex
from specstress.runspec import PROJECT_ROOT

PROMPTS_DIR = PROJECT_ROOT / "specs" / "prompts"
_VAR = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Template:
    name: str
    output: str
    system: str
    user: str
    hash: str
    path: Path

    def render(self, **values: Any) -> tuple[str, str]:
        """Return ``(system, user)`` with every placeholder filled."""
        return self._fill(self.system, values), self._fill(self.user, values)

    def _fill(self, text: str, values: dict[str, Any]) -> str:
        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            if key not in values:
                raise KeyError(f"template {self.name} ({self.path}) needs {{{{{key}}}}}")
            return str(values[key])

        return _VAR.sub(sub, text)

    def variables(self) -> set[str]:
        return set(_VAR.findall(self.system)) | set(_VAR.findall(self.user))


def parse_template(text: str, path: Path) -> Template:
    m = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    if not m:
        raise ValueError(f"{path}: a template starts with YAML front matter between '---' lines")
    meta = yaml.safe_load(m.group(1)) or {}
    body = m.group(2)
    parts = re.split(r"^=== (system|user) ===\s*$", body, flags=re.M)
    sections: dict[str, str] = {}
    for i in range(1, len(parts) - 1, 2):
        sections[parts[i]] = parts[i + 1].strip("\n")
    if "user" not in sections:
        raise ValueError(f"{path}: a template needs a '=== user ===' section")
    return Template(
        name=str(meta.get("name") or path.stem),
        output=str(meta.get("output") or "text"),
        system=sections.get("system", "").strip(),
        user=sections["user"].strip(),
        hash=sha256_hex(text),
        path=path,
    )


def load_template(name: str, prompts_dir: str | None = None) -> Template:
    """The template ``name`` (re-read when its file changes, so long-lived workers never use a stale one)."""
    folder = Path(prompts_dir) if prompts_dir else PROMPTS_DIR
    path = folder / f"{name}.md"
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise FileNotFoundError(f"prompt template {name!r} not found at {path}") from None
    return _load(str(path), stamp)


@lru_cache(maxsize=128)
def _load(path: str, stamp: int) -> Template:
    p = Path(path)
    return parse_template(p.read_text(encoding="utf-8"), p)

