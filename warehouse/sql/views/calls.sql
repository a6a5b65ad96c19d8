-- view: calls
-- The call ledger, one row per call key: its final record if it has one, else its latest attempt.
-- Every number in the warehouse traces back here through call_key.
SELECT key, run_id, purpose AS stage, provider, model, model_id, endpoint, served_model, outcome, final,
       attempts, wait_s, latency_s, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens,
       cost_usd, error, http_statuses, template_hash, sample_index, started_at, finished_at,
       text, parsed_json, request_json, batch_id
FROM {{ledger}}
QUALIFY row_number() OVER (PARTITION BY key ORDER BY final DESC, finished_at DESC) = 1
