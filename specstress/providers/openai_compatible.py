"""Any OpenAI-compatible server (vLLM, Ollama, OpenRouter, LiteLLM, ...) at a given base_url."""

from __future__ import annotations

from specstress.providers.openai import OpenAIAdapter


class OpenAICompatibleAdapter(OpenAIAdapter):
    provider = "openai_compatible"
