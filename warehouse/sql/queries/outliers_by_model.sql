-- query: outliers_by_model
-- Outlier responses per model (the paper's per-model outlier counts).
SELECT model_id, count(*) FILTER (WHERE outlier) AS outliers, count(*) AS scenarios,
       round(100.0 * count(*) FILTER (WHERE outlier) / count(*), 2) AS outlier_pct
FROM outliers
GROUP BY model_id
ORDER BY outliers DESC, model_id
