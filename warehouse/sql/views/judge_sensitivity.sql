-- view: judge_sensitivity
-- The compliance conclusions under each single judge, beside the panel's majority and any-judge rules:
-- for every verdict rule and sample set (Figure 2's bins 'bin:<D bin>', Table 2's 'random' and
-- 'high:<subset>'), the share of scenarios where every model of the compliance group was flagged
-- (non_compliant or ambiguous), and its fold increase over the random sample under the same rule.
-- A scenario counts for a rule only when that rule has a verdict on every group model.
WITH verdicts AS (      -- one flag per scenario x model x rule
    SELECT scenario_id, model_id, judge AS rule, verdict IN ('non_compliant', 'ambiguous') AS flagged
    FROM {{compliance}} WHERE status = 'ok'
    UNION ALL
    SELECT scenario_id, model_id, 'majority',
           count(*) FILTER (WHERE verdict IN ('non_compliant', 'ambiguous')) * 2 > count(*)
    FROM {{compliance}} WHERE status = 'ok' GROUP BY scenario_id, model_id
    UNION ALL
    SELECT scenario_id, model_id, 'any_judge', bool_or(verdict IN ('non_compliant', 'ambiguous'))
    FROM {{compliance}} WHERE status = 'ok' GROUP BY scenario_id, model_id
),
scenario_info AS (
    SELECT scenario_id, any_value(samples) AS samples, any_value(group_size) AS group_size
    FROM {{compliance}} GROUP BY scenario_id
),
per_scenario AS (
    SELECT v.rule, v.scenario_id, bool_and(v.flagged) AS all_flagged
    FROM verdicts v JOIN scenario_info i USING (scenario_id)
    GROUP BY v.rule, v.scenario_id
    HAVING count(*) = any_value(i.group_size)
),
by_set AS (
    SELECT p.rule, s.sample_set, count(*) AS scenarios, avg(p.all_flagged::INT) AS share
    FROM per_scenario p
    JOIN (SELECT scenario_id, unnest(samples) AS sample_set FROM scenario_info) s USING (scenario_id)
    GROUP BY p.rule, s.sample_set
)
SELECT b.rule, b.sample_set, b.scenarios, b.share AS all_flagged_share,
       b.share / nullif(r.share, 0) AS fold_vs_random
FROM by_set b
LEFT JOIN by_set r ON r.rule = b.rule AND r.sample_set = 'random'
ORDER BY b.rule IN ('majority', 'any_judge') DESC, b.rule, b.sample_set
