-- query: table2_fold_increase
-- The paper's Table 2: for each sample set (random, high:all, high:<subset>), the share of scenarios
-- where all group models are problematic, its fold increase over the random sample, and the share
-- where all pass.
WITH per_scenario AS (
    SELECT scenario_id, any_value(samples) AS samples, bool_and(problematic) AS all_problematic,
           bool_and(NOT problematic) AS all_pass
    FROM compliance
    GROUP BY scenario_id
    HAVING count(*) = any_value(group_size)   -- every model of the group was judged
),
by_set AS (
    SELECT s.sample_set, count(*) AS scenarios, avg(all_problematic::INT) AS problematic_share,
           avg(all_pass::INT) AS pass_share
    FROM (SELECT *, unnest(samples) AS sample_set FROM per_scenario) s
    WHERE s.sample_set = 'random' OR s.sample_set LIKE 'high:%'
    GROUP BY s.sample_set
)
SELECT sample_set, scenarios, round(100 * problematic_share, 1) AS all_problematic_pct,
       round(problematic_share / nullif((SELECT problematic_share FROM by_set WHERE sample_set = 'random'), 0), 2)
           AS fold_vs_random,
       round(100 * pass_share, 1) AS all_pass_pct
FROM by_set
ORDER BY sample_set = 'random' DESC, sample_set
