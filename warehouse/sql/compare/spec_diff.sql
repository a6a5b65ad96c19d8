-- compare: spec_diff
-- Compliance under two versions of a model spec on the same responses: the two runs' judged responses
-- joined where both runs judged the very same response (same responses call key). Per model and judge
-- (judge 'majority' = the paper's majority rule): responses flagged (non_compliant or ambiguous) under
-- spec a and under spec b, newly flagged and no longer flagged under b, and the verdict agreement.
WITH same AS (
    SELECT ra.scenario_id, ra.model_id
    FROM {{a.responses}} ra JOIN {{b.responses}} rb USING (scenario_id, model_id)
    WHERE ra.call_key IS NOT DISTINCT FROM rb.call_key AND ra.response IS NOT DISTINCT FROM rb.response
),
per_judge AS (
    SELECT a.model_id, a.judge, a.verdict AS verdict_a, b.verdict AS verdict_b,
           a.verdict IN ('non_compliant', 'ambiguous') AS flag_a, b.verdict IN ('non_compliant', 'ambiguous') AS flag_b
    FROM {{a.compliance_judgments}} a
    JOIN {{b.compliance_judgments}} b USING (scenario_id, model_id, judge)
    JOIN same USING (scenario_id, model_id)
    WHERE a.status = 'ok' AND b.status = 'ok'
),
majority AS (
    SELECT a.model_id, 'majority' AS judge, NULL AS verdict_a, NULL AS verdict_b,
           a.problematic AS flag_a, b.problematic AS flag_b
    FROM {{a.compliance}} a JOIN {{b.compliance}} b USING (scenario_id, model_id)
    JOIN same USING (scenario_id, model_id)
),
u AS (SELECT * FROM per_judge UNION ALL SELECT * FROM majority)
SELECT model_id, judge, count(*) AS responses,
       count(*) FILTER (WHERE flag_a) AS flagged_a, count(*) FILTER (WHERE flag_b) AS flagged_b,
       count(*) FILTER (WHERE flag_b AND NOT flag_a) AS newly_flagged,
       count(*) FILTER (WHERE flag_a AND NOT flag_b) AS no_longer_flagged,
       avg(CASE WHEN judge = 'majority' THEN (flag_a = flag_b)::INT ELSE (verdict_a = verdict_b)::INT END) AS agreement
FROM u
GROUP BY model_id, judge
ORDER BY model_id, judge = 'majority', judge
