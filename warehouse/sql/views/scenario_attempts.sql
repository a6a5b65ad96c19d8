-- view: scenario_attempts
-- Every generation attempt, including refusals, truncations and unparseable outputs (status).
SELECT scenario_id, pair_id, nudge, value1, value2, query, generator, status, error, call_key
FROM {{scenarios}}
