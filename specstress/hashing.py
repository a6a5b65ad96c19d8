"""Canonical JSON and content hashes: the identity of calls, artefacts and templates."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` deterministically: sorted keys, no whitespace, UTF-8 kept as is."""
    return orjson.dumps(obj, option=_OPTS, default=_default).decode("utf-8")


def canonical_json_bytes(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_OPTS, default=_default)


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not canonically serialisable: {type(obj).__name__}")


def sha256_hex(data: str | bytes) -> str:  # noqa: D401
    """Hex sha256 of a string (UTF-8) or bytes."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def content_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``."""
    return sha256_hex(canonical_json(obj))


def short_id(obj: Any, n: int = 16) -> str:
    """A short stable id (hex prefix of :func:`content_hash`)."""
    return content_hash(obj)[:n]
