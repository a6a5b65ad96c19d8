-- uncertainty: compliance
-- Per unit and sample (a 'bin:<D bin>' of Figure 2 drawn in its own bin, or a Table 2 sample set:
-- 'random', 'high:<subset>'): judged scenarios, those where every group model was problematic by
-- majority and by any judge, and those where every group model passed. The rules are the compliance
-- view's (a scenario counts when every model of the group was judged), as in
-- queries/figure2_noncompliance_by_bin.sql and queries/table2_fold_increase.sql.
WITH per_scenario AS (
    SELECT scenario_id, any_value(bin) AS bin, any_value(samples) AS samples,
           bool_and(problematic) AS frequent_majority, bool_and(any_flag) AS frequent_any,
           bool_and(NOT problematic) AS all_pass
    FROM compliance
    GROUP BY scenario_id
    HAVING count(*) = any_value(group_size)
),
drawn AS (
    SELECT p.*, unnest(p.samples) AS sample FROM per_scenario p
)
SELECT uo.u, d.sample, count(*)::DOUBLE AS scenarios,
       count(*) FILTER (WHERE d.frequent_majority)::DOUBLE AS majority,
       count(*) FILTER (WHERE d.frequent_any)::DOUBLE AS any_judge,
       count(*) FILTER (WHERE d.all_pass)::DOUBLE AS all_pass
FROM drawn d JOIN unit_of uo USING (scenario_id)
WHERE d.sample = 'bin:' || d.bin OR d.sample = 'random' OR d.sample LIKE 'high:%'
GROUP BY uo.u, d.sample
