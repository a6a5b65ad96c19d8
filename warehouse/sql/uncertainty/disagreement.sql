-- uncertainty: disagreement
-- Per scenario and subset (k: subsets numbered by name, as subsets.sql lists them): its unit, D, and
-- whether it is high-disagreement.
SELECT uo.u, s.k, d.d, d.high::INTEGER AS high
FROM disagreement d
JOIN unit_of uo USING (scenario_id)
JOIN (SELECT subset, (row_number() OVER (ORDER BY subset) - 1)::INTEGER AS k
      FROM (SELECT DISTINCT subset FROM disagreement)) s USING (subset)
