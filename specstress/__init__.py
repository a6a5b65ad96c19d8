"""specstress: find where a model specification breaks, by making models trade values off.

The package holds the shared domain types (:mod:`specstress.domain`), the run-spec schema
(:mod:`specstress.runspec`), the provider layer, the loopback emulator and the simulated
panel. Stages live in ``flows/``, units of work in ``tasks/``, storage in ``warehouse/``.
"""

__version__ = "0.1.0"
