"""The simulated model panel: personas with planted weights, generator, rubric writer, judges."""
