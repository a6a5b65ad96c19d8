-- view: call_log
-- Every row ever appended to the ledger, including attempts that ended without a final outcome. A row
-- read twice (a compaction's merged part and its sources, seen together for a moment) shows once.
SELECT DISTINCT key, run_id, purpose AS stage, provider, model_id, outcome, final, attempts, wait_s, latency_s,
       cost_usd, error, http_statuses, started_at, finished_at
FROM {{ledger}}
