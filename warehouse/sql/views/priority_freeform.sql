-- view: priority_freeform
-- The paper's prioritisation route: the value each response put first, in free form, mapped to the
-- nearest taxonomy value and its level-2 category.
SELECT scenario_id, model_id, expressed, nearest_value, category, similarity, call_key
FROM {{priority_freeform}}
WHERE status = 'ok'
