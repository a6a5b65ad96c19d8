-- uncertainty: refusals
-- Per response of a panel model (i, by name) with a refusal level (the refusals view's rows: status
-- ok): its unit and whether it is a refusal.
SELECT uo.u, m.i, r.refusal::INTEGER AS refusal
FROM refusals r JOIN unit_of uo USING (scenario_id) JOIN models m USING (model_id)
WHERE r.status = 'ok'
