-- model: outliers
-- A response is an outlier on a value when its position differs by at least {{min_gap}} points from
-- at least ceil({{min_share}} x (n - 1)) of the other n - 1 models that placed that scenario
-- (the paper: 4 points from at least 9 of the other 11). One row per scenario x model, with the
-- number of models it stands apart from on each value.
-- Inputs: classifications, subsets (the 'all' subset defines the panel).
WITH ok AS (
    SELECT c.scenario_id, c.model_id, c.value_slot, c.position
    FROM classifications c JOIN subsets s ON s.subset = 'all' AND s.model_id = c.model_id
    WHERE c.status = 'ok' AND c.position IS NOT NULL
),
n_models AS (
    SELECT scenario_id, value_slot, count(*) AS n FROM ok GROUP BY scenario_id, value_slot
),
apart AS (
    SELECT a.scenario_id, a.model_id, a.value_slot, a.position,
           count(*) FILTER (WHERE abs(a.position - b.position) >= {{min_gap}}) AS far
    FROM ok a JOIN ok b ON a.scenario_id = b.scenario_id AND a.value_slot = b.value_slot AND a.model_id <> b.model_id
    GROUP BY a.scenario_id, a.model_id, a.value_slot, a.position
),
flagged AS (
    SELECT a.*, m.n, ceil({{min_share}} * (m.n - 1) - 1e-9) AS needed,
           a.far >= ceil({{min_share}} * (m.n - 1) - 1e-9) AND m.n >= 3 AS outlier
    FROM apart a JOIN n_models m USING (scenario_id, value_slot)
)
SELECT scenario_id, model_id,
       max(n) AS n_models,
       max(CASE WHEN value_slot = 1 THEN position END) AS position_value1,
       max(CASE WHEN value_slot = 2 THEN position END) AS position_value2,
       max(CASE WHEN value_slot = 1 THEN far END) AS apart_value1,
       max(CASE WHEN value_slot = 2 THEN far END) AS apart_value2,
       max(needed) AS needed,
       bool_or(outlier) AS outlier
FROM flagged
GROUP BY scenario_id, model_id
ORDER BY outlier DESC, scenario_id, model_id
