-- view: outliers
-- One row per scenario x model: how many other models it stands >= min_gap apart from, per value.
SELECT scenario_id, model_id, n_models, position_value1, position_value2, apart_value1, apart_value2,
       needed, outlier
FROM {{outliers}}
