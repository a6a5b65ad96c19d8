-- query: top_disagreement
-- The 20 scenarios the whole panel disagrees on most, with the two values and the query.
SELECT d.scenario_id, round(d.d, 3) AS d, s.value1, s.value2, s.nudge, s.query
FROM disagreement d JOIN scenarios s USING (scenario_id)
WHERE d.subset = 'all'
ORDER BY d.d DESC, d.scenario_id
LIMIT 20
