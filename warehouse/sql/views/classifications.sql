-- view: classifications
-- One row per scenario x model x value slot: the judge's placement (0-6) with confidence.
-- status: ok | missing | no_response | no_spectrum | judge_failed | judge_<outcome>; position is NULL unless ok.
SELECT scenario_id, pair_id, model_id, value_slot, value, position, confidence, reasoning, status, judge,
       presented_index, response_label, call_key
FROM {{classifications}}
