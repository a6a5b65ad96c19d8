-- uncertainty: outliers
-- Per scenario x panel model (i, by name) judged for outliers: its unit and whether it is an outlier.
SELECT uo.u, m.i, o.outlier::INTEGER AS outlier
FROM outliers o JOIN unit_of uo USING (scenario_id) JOIN models m USING (model_id)
