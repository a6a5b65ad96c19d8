-- view: runs
-- One row per run (its latest record): status, the artefacts it used, calls sent, cache hits, spend.
SELECT run_id, name, status, started_at, finished_at, calls_sent, cache_hits, spent_usd, artefacts_json,
       report_path, spec_path, spec_hash, message, overrides_json
FROM {{runs}}
QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY seq DESC) = 1
