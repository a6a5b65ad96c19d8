-- query: refusal_rates
-- Refusal rate per model, overall and on the high-disagreement set of the whole panel.
SELECT r.model_id, count(*) AS responses, round(100 * avg(r.refusal::INT), 2) AS refusal_pct,
       round(100 * avg(r.refusal::INT) FILTER (WHERE h.scenario_id IS NOT NULL), 2) AS refusal_pct_high
FROM refusals r
LEFT JOIN (SELECT scenario_id FROM high_disagreement WHERE subset = 'all') h USING (scenario_id)
GROUP BY r.model_id
ORDER BY refusal_pct DESC
