-- view: matcher_agreement
-- How far the matchers agree on the placements they both made (roles.matcher and roles.matchers), per
-- pair of matchers, per panel model and over all models ('(all)').
--   exact: share of the same position; within_1: share at most one position apart
--   weighted_kappa: Cohen's kappa with quadratic weights (an ordinal agreement coefficient):
--     1 - mean((a - b)^2) / (var(a) + var(b) + (mean(a) - mean(b))^2), the expected disagreement of two
--     independent raters with these marginals in the denominator; 1 = perfect, 0 = chance, < 0 = worse
WITH placed AS (
    SELECT scenario_id, model_id, value_slot, judge, position FROM {{classifications}}
    WHERE status = 'ok' AND position IS NOT NULL
    UNION ALL
    SELECT scenario_id, model_id, value_slot, judge, position FROM {{matcher_panel}}
    WHERE status = 'ok' AND position IS NOT NULL
),
both_placed AS (
    SELECT a.judge AS matcher_a, b.judge AS matcher_b, a.model_id, a.position::DOUBLE AS pa, b.position::DOUBLE AS pb
    FROM placed a JOIN placed b ON a.scenario_id = b.scenario_id AND a.model_id = b.model_id
                               AND a.value_slot = b.value_slot AND a.judge < b.judge
)
SELECT matcher_a, matcher_b, coalesce(model_id, '(all)') AS model_id, count(*) AS placements,
       avg((pa = pb)::INT) AS exact, avg((abs(pa - pb) <= 1)::INT) AS within_1,
       CASE WHEN var_pop(pa) + var_pop(pb) + (avg(pa) - avg(pb)) ^ 2 > 0
            THEN 1 - avg((pa - pb) ^ 2) / (var_pop(pa) + var_pop(pb) + (avg(pa) - avg(pb)) ^ 2) END AS weighted_kappa
FROM both_placed
GROUP BY GROUPING SETS ((matcher_a, matcher_b, model_id), (matcher_a, matcher_b))
