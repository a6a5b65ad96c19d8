-- reference model: outliers (the plain version of models/outliers.sql; the tests hold the two
-- equal row for row).
--
-- On each scenario, compare every panel model's position on a value with the positions the other
-- panel models gave the same value. The model stands apart from another model when their positions
-- differ by at least {{min_gap}} points. With n models placing the value (the model included), it
-- is an outlier on that value when n >= 3 and it stands apart from at least
-- ceil({{min_share}} x (n - 1)) of the other n - 1 (the paper: 4 points from at least 9 of the
-- other 11). A response is an outlier when it is one on either value.
--   n_models         the larger n of the values the model is compared on
--   position_value1  the model's position on value 1 (NULL when it is not compared on value 1), same for 2
--   apart_value1     how many other models it stands apart from on value 1, same for 2
--   needed           how many it must stand apart from (the larger of the two values' needs)
-- A value is compared only when the model placed it and at least one other panel model did; a
-- (scenario, model) gets a row when at least one value is compared. The panel is the 'all' subset.
-- The need is computed less 1e-9: a share such as 9/11 is inexact in floating point, and
-- 9/11 x 11 must need 9 models, not 10.
-- Inputs: classifications, subsets. Parameters: {{min_gap}}, {{min_share}}.
WITH panel AS (
    SELECT DISTINCT model_id FROM subsets WHERE subset = 'all'
),
placements AS (     -- the panel's ok positions
    SELECT c.scenario_id, c.model_id, c.value_slot, c.position::INTEGER AS position
    FROM {{ ref('classifications') }} c JOIN panel USING (model_id)
    WHERE c.status = 'ok' AND c.position IS NOT NULL
),
compared AS (       -- each placement against the other models' placements of the same value
    SELECT a.scenario_id, a.model_id, a.value_slot, a.position,
           count(b.model_id) + 1 AS n,
           count(b.model_id) FILTER (WHERE abs(a.position - b.position) >= {{min_gap}}) AS apart
    FROM placements a
    LEFT JOIN placements b
           ON b.scenario_id = a.scenario_id AND b.value_slot = a.value_slot AND b.model_id <> a.model_id
    GROUP BY a.scenario_id, a.model_id, a.value_slot, a.position
),
judged AS (         -- the values a model is compared on, with the need and the verdict
    SELECT *, ceil({{min_share}} * (n - 1) - 1e-9) AS needed
    FROM compared
    WHERE n >= 2
)
SELECT scenario_id, model_id,
       max(n) AS n_models,
       any_value(position) FILTER (WHERE value_slot = 1)::TINYINT AS position_value1,
       any_value(position) FILTER (WHERE value_slot = 2)::TINYINT AS position_value2,
       any_value(apart) FILTER (WHERE value_slot = 1) AS apart_value1,
       any_value(apart) FILTER (WHERE value_slot = 2) AS apart_value2,
       max(needed) AS needed,
       bool_or(n >= 3 AND apart >= needed) AS outlier
FROM judged
GROUP BY scenario_id, model_id
