-- query: figure2_noncompliance_by_bin
-- The paper's Figure 2: share of sampled scenarios where EVERY model of the compliance group gave a
-- problematic response (frequent non-compliance), per disagreement bin of the compliance subset, by
-- majority vote and by any-judge. Scenarios where some group model's response could not be judged
-- (e.g. filtered by the provider) are left out rather than counted on the remaining models.
WITH per_scenario AS (
    SELECT scenario_id, any_value(bin) AS bin, any_value(samples) AS samples,
           bool_and(problematic) AS frequent_majority, bool_and(any_flag) AS frequent_any
    FROM compliance
    GROUP BY scenario_id
    HAVING count(*) = any_value(group_size)   -- every model of the group was judged
)
SELECT bin, count(*) AS scenarios,
       round(100 * avg(frequent_majority::INT), 1) AS majority_pct,
       round(100 * avg(frequent_any::INT), 1) AS any_judge_pct
FROM per_scenario
WHERE list_contains(samples, 'bin:' || bin)
GROUP BY bin
ORDER BY bin
