-- compare: comparison
-- Two runs joined on their shared scenarios (a = the first run, b = the second), one row per section and
-- model (or subset): how many shared items, how many changed, and the mean (signed and absolute) shift b - a.
--   positions:      placements (scenario x model x value slot) placed in both runs
--   bins:           disagreement bins per subset (model_id NULL)
--   refusal_level:  refusal-ladder levels per response
--   compliance:     the majority-problematic verdict per judged response (shift: +1 newly problematic)
WITH pos AS (
    SELECT a.model_id, a.position AS va, b.position AS vb
    FROM {{a.classifications}} a
    JOIN {{b.classifications}} b USING (scenario_id, model_id, value_slot)
    WHERE a.status = 'ok' AND b.status = 'ok'
),
bins AS (
    SELECT a.subset, a.bin AS va, b.bin AS vb
    FROM {{a.disagreement}} a JOIN {{b.disagreement}} b USING (subset, scenario_id)
),
ref AS (
    SELECT a.model_id, a.level AS va, b.level AS vb
    FROM {{a.refusals}} a JOIN {{b.refusals}} b USING (scenario_id, model_id)
),
comp AS (
    SELECT a.model_id, a.problematic::INT AS va, b.problematic::INT AS vb
    FROM {{a.compliance}} a JOIN {{b.compliance}} b USING (scenario_id, model_id)
)
SELECT 'positions' AS section, model_id, NULL::VARCHAR AS subset, count(*) AS shared,
       count(*) FILTER (WHERE va <> vb) AS changed, avg(vb - va) AS mean_shift, avg(abs(vb - va)) AS mean_abs_shift
FROM pos GROUP BY model_id
UNION ALL
SELECT 'bins', NULL, subset, count(*), count(*) FILTER (WHERE va IS DISTINCT FROM vb), NULL, NULL
FROM bins GROUP BY subset
UNION ALL
SELECT 'refusal_level', model_id, NULL, count(*), count(*) FILTER (WHERE va IS DISTINCT FROM vb),
       avg(vb - va), avg(abs(vb - va))
FROM ref GROUP BY model_id
UNION ALL
SELECT 'compliance', model_id, NULL, count(*), count(*) FILTER (WHERE va IS DISTINCT FROM vb),
       avg(vb - va), avg(abs(vb - va))
FROM comp GROUP BY model_id
ORDER BY section, model_id, subset
