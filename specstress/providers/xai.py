"""xAI (Grok) through its OpenAI-compatible endpoint."""

from __future__ import annotations

from specstress.providers.openai import OpenAIAdapter


class XAIAdapter(OpenAIAdapter):
    provider = "xai"
    default_base_url = "https://api.x.ai/v1"
