"""The runs of a warehouse, one line each, for ``specstress runs``: name, the overrides that made it
differ from its spec file, status, calls, cost and wall time, read from the ``runs`` and ``call_log``
views (the ledger fills in calls and cost for a run that has no closing record yet)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from specstress.warehouse.store import Warehouse

RUNS_SQL = """
WITH log AS (
    SELECT run_id, count(DISTINCT key) FILTER (WHERE final) AS keys, sum(cost_usd) AS usd
    FROM call_log GROUP BY run_id
)
SELECT r.name, r.status, r.overrides_json, coalesce(r.calls_sent, l.keys, 0) AS sent,
       coalesce(r.cache_hits, 0) AS cached, round(coalesce(r.spent_usd, l.usd, 0), 4) AS cost_usd,
       round(date_diff('millisecond', r.started_at, r.finished_at) / 1000.0, 1) AS wall_s,
       strftime(r.started_at, '%Y-%m-%d %H:%M:%S') AS started_utc, r.run_id
FROM runs r LEFT JOIN log l USING (run_id)
ORDER BY r.started_at DESC, r.run_id
"""

COLUMNS = ("name", "status", "overrides", "sent", "cached", "cost_usd", "wall_s", "started_utc", "run_id")


def format_overrides(overrides_json: str | None) -> str:
    """``{"pairs.count": 20}`` -> ``pairs.count=20``; ``(none)`` for a run of the plain spec file, an
    empty string when the run was recorded before overrides were kept."""
    if overrides_json is None:
        return ""
    overrides: dict[str, Any] = json.loads(overrides_json or "{}")
    if not overrides:
        return "(none)"
    return ", ".join(f"{k}={json.dumps(v, separators=(',', ':'), default=str)}" for k, v in overrides.items())


def list_runs(wh: Warehouse | str) -> pa.Table:
    """One row per run of ``wh``, newest first (see :data:`COLUMNS`)."""
    from specstress.warehouse import views

    rows = views.query(wh, RUNS_SQL).to_pylist()
    out = [{**{k: r[k] for k in COLUMNS if k in r}, "overrides": format_overrides(r["overrides_json"])}
           for r in rows]
    schema = pa.schema([("name", pa.string()), ("status", pa.string()), ("overrides", pa.string()),
                        ("sent", pa.int64()), ("cached", pa.int64()), ("cost_usd", pa.float64()),
                        ("wall_s", pa.float64()), ("started_utc", pa.string()), ("run_id", pa.string())])
    return pa.Table.from_pylist([{k: r.get(k) for k in COLUMNS} for r in out], schema=schema)
