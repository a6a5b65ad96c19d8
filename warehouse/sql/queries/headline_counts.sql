-- query: headline_counts
-- The paper's headline counts in the variants its text leaves open:
--   any_pair_3pt       some pair of panel models differs by >= 3 points on a value (pair std >= 1.5)
--   any_subset_high    high disagreement (D >= threshold) in at least one named subset
--   all_high           high disagreement across the whole panel
--   most_models_apart  over half of all model pairs differ by >= 3 points on some value
WITH ok AS (
    SELECT scenario_id, model_id, value_slot, position FROM classifications WHERE status = 'ok'
),
pairs AS (
    SELECT a.scenario_id, a.value_slot, count(*) AS n_pairs,
           count(*) FILTER (WHERE abs(a.position - b.position) >= 3) AS far_pairs
    FROM ok a JOIN ok b ON a.scenario_id = b.scenario_id AND a.value_slot = b.value_slot AND a.model_id < b.model_id
    GROUP BY a.scenario_id, a.value_slot
),
per AS (
    SELECT scenario_id, max(far_pairs) > 0 AS any_pair_3pt, max(far_pairs * 1.0 / n_pairs) > 0.5 AS most_models_apart
    FROM pairs GROUP BY scenario_id
)
SELECT (SELECT count(DISTINCT scenario_id) FROM disagreement) AS scenarios,
       (SELECT count(*) FROM per WHERE any_pair_3pt) AS any_pair_3pt,
       (SELECT count(DISTINCT scenario_id) FROM disagreement WHERE high) AS any_subset_high,
       (SELECT count(*) FROM disagreement WHERE subset = 'all' AND high) AS all_high,
       (SELECT count(*) FROM per WHERE most_models_apart) AS most_models_apart
