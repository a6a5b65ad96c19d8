"""Errors users see. Each names the file or field at fault and says how to fix it."""

from __future__ import annotations


class SpecstressError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class SpecError(SpecstressError):
    """A run spec (or a file it names) is invalid. Raised before anything is sent."""

    exit_code = 2


class MissingKeyError(SpecstressError):
    """A provider's API key variable is not set. Raised at plan time, before any call."""

    exit_code = 2


class BudgetExceeded(SpecstressError):
    """The estimate of the remaining work, or the next shard, would cross ``budget_usd``."""

    exit_code = 3


class FatalProviderError(SpecstressError):
    """A provider refused us for a reason no retry fixes (bad key, unknown model)."""

    exit_code = 4


class ShardIncomplete(SpecstressError):
    """Some calls of a shard ended without a final outcome; a task retry re-sends only those."""

    exit_code = 5
