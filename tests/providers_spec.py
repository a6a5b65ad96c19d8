"""A run spec with one model per adapter path, all served by the emulator (used by the tests)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

MODELS = [
    {"id": "oa-chat", "provider": "openai", "model": "sim-guardian", "base_url": "emulator", "price_as": "gpt-4.1-mini",
     "params": {"temperature": 0.5, "max_tokens": 300}},
    {"id": "oa-resp", "provider": "openai", "model": "sim-scholar", "base_url": "emulator", "api": "responses",
     "price_as": "o3", "params": {"reasoning_effort": "low", "max_tokens": 500}},
    {"id": "an", "provider": "anthropic", "model": "sim-pragmatist", "base_url": "emulator",
     "price_as": "claude-sonnet-4-6", "params": {"max_tokens": 300}},
    {"id": "an-think", "provider": "anthropic", "model": "sim-communitarian", "base_url": "emulator",
     "price_as": "claude-opus-4-8", "params": {"thinking_budget": 1024, "max_tokens": 2048}},
    {"id": "gg", "provider": "google", "model": "sim-individualist", "base_url": "emulator",
     "price_as": "gemini-3.8-flash", "params": {"temperature": 0.3, "max_tokens": 300}},
    {"id": "gg-think", "provider": "google", "model": "sim-bon-vivant", "base_url": "emulator",
     "price_as": "gemini-3.8-flash", "params": {"thinking_budget": 256, "max_tokens": 300}},
    {"id": "xai", "provider": "xai", "model": "sim-guardian", "base_url": "emulator", "price_as": "grok-4.3",
     "params": {"max_tokens": 300}},
    {"id": "compat", "provider": "openai_compatible", "model": "sim-scholar", "base_url": "emulator",
     "price": {"input": 0.2, "output": 0.6}, "params": {"max_tokens": 300}},
    {"id": "sim", "provider": "sim", "model": "sim-judge", "price_as": "gpt-6-luna", "params": {"max_tokens": 3000}},
    {"id": "emb-oa", "provider": "openai", "model": "text-embedding-3-small", "base_url": "emulator",
     "price_as": "text-embedding-3-small"},
    {"id": "emb-gg", "provider": "google", "model": "gemini-embedding-001", "base_url": "emulator",
     "price_as": "gemini-embedding-001"},
]
CHAT_IDS = [m["id"] for m in MODELS if not m["id"].startswith("emb")]


def write_spec(tmp: Path, faults: dict | None = None, retry: dict | None = None, **extra) -> Path:
    demo = yaml.safe_load((ROOT / "specs" / "runs" / "demo.yaml").read_text())
    spec = {
        "name": "providers",
        "seed": 3,
        "warehouse": str(tmp / "wh"),
        "budget_usd": 100,
        "prices": str(ROOT / "specs" / "prices.yaml"),
        "taxonomy": {"source": "file", "path": str(ROOT / "specs" / "taxonomy" / "seed.yaml")},
        "pairs": {"count": 5},
        "models": MODELS,
        "roles": {"generators": [{"model": "sim"}], "panel": ["oa-chat", "an"], "rubric": "sim", "matcher": "sim"},
        "retry": retry or {"max_attempts": 12, "max_call_seconds": 60, "request_timeout_s": 1.5,
                           "backoff_base_s": 0.05, "backoff_max_s": 0.5},
        "emulator": {"enabled": True, "seed": 5, "faults": faults or {}, "sim": demo["emulator"]["sim"],
                     "personas": demo["emulator"]["personas"]},
    }
    spec.update(extra)
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "providers.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
