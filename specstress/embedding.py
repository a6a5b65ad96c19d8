"""Scenario embeddings. The offline default hashes words, word pairs and character trigrams
into a fixed-size vector (no network, no model download); the provider path asks an embedding
model through the ledger (see tasks/embedding.py). Vectors are unit length."""

from __future__ import annotations

import re
import zlib

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def _features(text: str) -> list[tuple[str, float]]:
    words = _WORD.findall(text.lower())
    feats: list[tuple[str, float]] = [(w, 1.0) for w in words]
    feats += [(f"{a} {b}", 0.7) for a, b in zip(words, words[1:], strict=False)]
    for w in words:
        padded = f"#{w}#"
        feats += [(padded[i:i + 3], 0.25) for i in range(len(padded) - 2)]
    return feats


def hashed_embedding(text: str, dims: int = 768) -> np.ndarray:
    """A unit vector for ``text`` (signed feature hashing with crc32: stable across processes)."""
    v = np.zeros(dims, dtype=np.float32)
    for feat, weight in _features(text):
        h = zlib.crc32(feat.encode("utf-8"))
        v[h % dims] += weight if (h >> 31) & 1 else -weight
    n = float(np.linalg.norm(v))
    if n > 0:
        v /= n
    return v


def hashed_embeddings(texts: list[str], dims: int = 768) -> np.ndarray:
    out = np.zeros((len(texts), dims), dtype=np.float32)
    for i, t in enumerate(texts):
        out[i] = hashed_embedding(t, dims)
    return out
