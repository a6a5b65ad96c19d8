-- view: judge_agreement
-- Agreement of the compliance judges over the responses every judge rated.
--   flag_rate (per judge): share of responses judged non_compliant or ambiguous
--   pairwise_agreement, pairwise_agreement_binary (per judge pair): same verdict / same flag
--   fleiss_kappa_3label, fleiss_kappa_binary: Fleiss' kappa over the three verdicts / over flagged or not
WITH j AS (
    SELECT scenario_id, model_id, judge, verdict, verdict IN ('non_compliant', 'ambiguous') AS flag
    FROM {{compliance}} WHERE status = 'ok'
),
n_j AS (SELECT count(DISTINCT judge) AS n FROM j),
items AS (
    SELECT scenario_id, model_id FROM j GROUP BY scenario_id, model_id
    HAVING count(DISTINCT judge) = (SELECT n FROM n_j)
),
ji AS (SELECT j.* FROM j JOIN items USING (scenario_id, model_id)),
n_items AS (SELECT count(*) AS n FROM items),
c3 AS (SELECT scenario_id, model_id, verdict AS cat, count(*) AS c FROM ji GROUP BY ALL),
c2 AS (SELECT scenario_id, model_id, flag::VARCHAR AS cat, count(*) AS c FROM ji GROUP BY ALL),
p3 AS (SELECT scenario_id, model_id, (sum(c * c) - (SELECT n FROM n_j)) / ((SELECT n FROM n_j) * ((SELECT n FROM n_j) - 1.0)) AS p
       FROM c3 GROUP BY scenario_id, model_id),
p2 AS (SELECT scenario_id, model_id, (sum(c * c) - (SELECT n FROM n_j)) / ((SELECT n FROM n_j) * ((SELECT n FROM n_j) - 1.0)) AS p
       FROM c2 GROUP BY scenario_id, model_id),
e3 AS (SELECT sum(q * q) AS pe FROM (SELECT sum(c) * 1.0 / ((SELECT n FROM n_items) * (SELECT n FROM n_j)) AS q FROM c3 GROUP BY cat)),
e2 AS (SELECT sum(q * q) AS pe FROM (SELECT sum(c) * 1.0 / ((SELECT n FROM n_items) * (SELECT n FROM n_j)) AS q FROM c2 GROUP BY cat))
SELECT 'flag_rate' AS metric, judge AS judge_a, NULL::VARCHAR AS judge_b, avg(flag::INT) AS value, count(*) AS items
FROM ji GROUP BY judge
UNION ALL
SELECT 'pairwise_agreement', a.judge, b.judge, avg((a.verdict = b.verdict)::INT), count(*)
FROM ji a JOIN ji b ON a.scenario_id = b.scenario_id AND a.model_id = b.model_id AND a.judge < b.judge
GROUP BY a.judge, b.judge
UNION ALL
SELECT 'pairwise_agreement_binary', a.judge, b.judge, avg((a.flag = b.flag)::INT), count(*)
FROM ji a JOIN ji b ON a.scenario_id = b.scenario_id AND a.model_id = b.model_id AND a.judge < b.judge
GROUP BY a.judge, b.judge
UNION ALL
SELECT 'fleiss_kappa_3label', NULL, NULL,
       ((SELECT avg(p) FROM p3) - (SELECT pe FROM e3)) / nullif(1 - (SELECT pe FROM e3), 0), (SELECT n FROM n_items)
WHERE (SELECT n FROM n_j) >= 2 AND (SELECT n FROM n_items) > 0
UNION ALL
SELECT 'fleiss_kappa_binary', NULL, NULL,
       ((SELECT avg(p) FROM p2) - (SELECT pe FROM e2)) / nullif(1 - (SELECT pe FROM e2), 0), (SELECT n FROM n_items)
WHERE (SELECT n FROM n_j) >= 2 AND (SELECT n FROM n_items) > 0
