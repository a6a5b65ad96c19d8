-- view: scenarios
-- Usable scenarios (generator output that parsed): one neutral and two value-biased per pair.
-- kept: survived the diversity filter (greedy k-center); only kept scenarios are answered.
SELECT s.scenario_id, s.pair_id, s.nudge, s.value1, s.value2, s.query, s.generator,
       coalesce(d.kept, true) AS kept, d.center_id, d.distance AS distance_to_center, s.call_key
FROM {{scenarios}} s
LEFT JOIN {{diversity}} d USING (scenario_id)
WHERE s.status = 'ok'
