-- view: disagreement
-- One row per scenario x model subset: D = max over the two values of the population std of positions.
SELECT subset, scenario_id, pair_id, n_models, subset_size, std_value1, std_value2, d, bin, high
FROM {{disagreement}}
