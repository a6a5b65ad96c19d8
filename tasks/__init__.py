"""Units of work: one module per stage, each a :class:`tasks.base.Stage` (plan, shard, parse),
plus the Prefect shard task that runs a shard through the call ledger (:mod:`tasks.shard`)."""
