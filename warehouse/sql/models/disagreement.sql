-- model: disagreement
-- D(x, M) = max over the two values of the population standard deviation (ddof = 0) of the
-- positions that the models of subset M took on scenario x. Computed only where at least two
-- models of the subset have an ok placement; n_models says how many did.
-- Inputs: classifications, subsets(subset, model_id). Parameter: {{high}}.
WITH ok AS (
    SELECT scenario_id, pair_id, model_id, value_slot, position
    FROM classifications
    WHERE status = 'ok' AND position IS NOT NULL
),
sizes AS (
    SELECT subset, count(*) AS subset_size FROM subsets GROUP BY subset
),
per_value AS (
    SELECT s.subset, o.scenario_id, any_value(o.pair_id) AS pair_id, o.value_slot,
           count(*) AS n, stddev_pop(o.position) AS sd
    FROM ok o JOIN subsets s USING (model_id)
    GROUP BY s.subset, o.scenario_id, o.value_slot
),
per_scenario AS (
    SELECT subset, scenario_id, any_value(pair_id) AS pair_id,
           min(n) AS n_models,
           max(CASE WHEN value_slot = 1 THEN sd END) AS std_value1,
           max(CASE WHEN value_slot = 2 THEN sd END) AS std_value2
    FROM per_value
    GROUP BY subset, scenario_id
)
SELECT p.subset, p.scenario_id, p.pair_id, p.n_models, z.subset_size,
       p.std_value1, p.std_value2,
       greatest(coalesce(p.std_value1, 0), coalesce(p.std_value2, 0)) AS d,
       CASE
           WHEN greatest(coalesce(p.std_value1, 0), coalesce(p.std_value2, 0)) < 1.0 THEN '[0,1)'
           WHEN greatest(coalesce(p.std_value1, 0), coalesce(p.std_value2, 0)) < 1.5 THEN '[1,1.5)'
           WHEN greatest(coalesce(p.std_value1, 0), coalesce(p.std_value2, 0)) < 2.0 THEN '[1.5,2)'
           WHEN greatest(coalesce(p.std_value1, 0), coalesce(p.std_value2, 0)) < 2.5 THEN '[2,2.5)'
           ELSE '[2.5,3]'
       END AS bin,
       greatest(coalesce(p.std_value1, 0), coalesce(p.std_value2, 0)) >= {{high}} AS high
FROM per_scenario p JOIN sizes z USING (subset)
WHERE p.n_models >= 2
ORDER BY p.subset, d DESC, p.scenario_id
