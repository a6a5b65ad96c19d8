"""The simulated panel: the emulator's own OpenAI-compatible endpoint, no key needed.

Models of provider ``sim`` are always served by the loopback emulator; the demo panel instead
reaches the same personas through the real openai, anthropic and google-genai clients.
"""

from __future__ import annotations

from specstress.providers.openai import OpenAIAdapter


class SimAdapter(OpenAIAdapter):
    provider = "sim"
