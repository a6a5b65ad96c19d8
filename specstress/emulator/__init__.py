"""The loopback provider emulator (OpenAI, Anthropic and Gemini wire formats) with fault knobs."""

from specstress.emulator.server import EmulatorServer, free_port

__all__ = ["EmulatorServer", "free_port"]
