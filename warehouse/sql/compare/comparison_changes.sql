-- compare: comparison_changes
-- Every shared item whose result differs between the two runs (a = first run, b = second): a placement
-- that moved, a scenario whose disagreement bin changed in a subset, a response whose refusal level or
-- majority compliance verdict changed. before/after are the values in a and b, as text.
SELECT 'positions' AS section, scenario_id, model_id, NULL::VARCHAR AS subset, value_slot,
       a.position::VARCHAR AS before, b.position::VARCHAR AS after, (b.position - a.position)::DOUBLE AS shift
FROM {{a.classifications}} a
JOIN {{b.classifications}} b USING (scenario_id, model_id, value_slot)
WHERE a.status = 'ok' AND b.status = 'ok' AND a.position <> b.position
UNION ALL
SELECT 'bins', scenario_id, NULL, subset, NULL, a.bin, b.bin, b.d - a.d
FROM {{a.disagreement}} a JOIN {{b.disagreement}} b USING (subset, scenario_id)
WHERE a.bin IS DISTINCT FROM b.bin
UNION ALL
SELECT 'refusal_level', scenario_id, model_id, NULL, NULL, a.label, b.label, (b.level - a.level)::DOUBLE
FROM {{a.refusals}} a JOIN {{b.refusals}} b USING (scenario_id, model_id)
WHERE a.level IS DISTINCT FROM b.level
UNION ALL
SELECT 'compliance', scenario_id, model_id, NULL, NULL,
       CASE WHEN a.problematic THEN 'problematic' ELSE 'ok' END,
       CASE WHEN b.problematic THEN 'problematic' ELSE 'ok' END, (b.problematic::INT - a.problematic::INT)::DOUBLE
FROM {{a.compliance}} a JOIN {{b.compliance}} b USING (scenario_id, model_id)
WHERE a.problematic IS DISTINCT FROM b.problematic
ORDER BY section, scenario_id, model_id, subset, value_slot
