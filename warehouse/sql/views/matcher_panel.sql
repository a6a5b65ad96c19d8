-- view: matcher_panel
-- The placements of the further matchers (roles.matchers besides roles.matcher): one row per matcher x
-- scenario x model x value slot, as in classifications. Empty with one matcher.
SELECT scenario_id, pair_id, model_id, value_slot, value, position, confidence, reasoning, status, judge,
       presented_index, response_label, call_key
FROM {{matcher_panel}}
