-- view: responses
-- One row per kept scenario x panel model: the answer and how the call ended.
SELECT scenario_id, model_id, provider, model, served_model, outcome, response, error,
       input_tokens, output_tokens, cost_usd, call_key
FROM {{responses}}
