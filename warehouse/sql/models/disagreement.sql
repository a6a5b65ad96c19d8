-- model: disagreement
-- D(x, M) = max over the two values of the population standard deviation (ddof = 0) of the
-- positions that the models of subset M took on scenario x. Computed only where at least two
-- models of the subset have an ok placement; n_models says how many did.
-- Inputs: position_grid, subsets(subset, model_id). Parameter: {{high}}.
--
-- How (for speed; see bench/analytics.py): position_grid already holds, per scenario, every
-- panel model's positions packed 4 bits a model. A subset is a mask over those nibbles, so its
-- count of placements, sum of positions and sum of squared positions on a scenario come from a
-- few bit counts on (lane & mask) (the macros in sql/macros.sql), without touching the
-- placements again. The population std is computed from those exact integer sums,
-- sqrt((n*q - s*s) / n^2): D exactly on a bin edge (1, 1.5, 2, 2.5) gets that edge's bin, where
-- a floating-point running std can land just below it. A subset lists each model once (the run
-- spec checks it; a repeat here would count once). Only a subset spread over several lanes
-- (panels of more than 15 models) needs its lanes added up. The output is not sorted (an artefact
-- has no order; the views and queries sort what they show).
-- The reference model, models/reference/disagreement.sql, computes the same rows with a plain
-- group-by over classifications; the tests hold the two equal.
WITH panel AS (     -- the grid's model order: the 'all' subset by name, 15 models a lane
    SELECT * FROM panel_models('subsets')
),
members AS (        -- per subset and lane: 0b1111 in the nibble of every member
    SELECT s.subset, p.lane, sum(15::BIGINT << (4 * p.j))::BIGINT AS mask
    FROM (SELECT DISTINCT subset, model_id FROM subsets) s JOIN panel p USING (model_id)
    GROUP BY s.subset, p.lane
),
sizes AS (
    SELECT subset, count(DISTINCT model_id) AS subset_size FROM subsets GROUP BY subset
),
spread AS (         -- how many lanes each subset spans (1 unless the panel has over 15 models)
    SELECT m.subset, m.lane, m.mask, count(*) OVER (PARTITION BY m.subset) AS lanes FROM members m
),
partial AS NOT MATERIALIZED (   -- per scenario x subset x lane: placements n, sum s and sum of squares q per value
    SELECT m.subset, m.lanes, g.scenario_id, g.pair_id,
           placed(g.positions1 & m.mask)::BIGINT AS n1,
           position_sum(g.positions1 & m.mask)::BIGINT AS s1,
           position_square_sum(g.positions1 & m.mask)::BIGINT AS q1,
           placed(g.positions2 & m.mask)::BIGINT AS n2,
           position_sum(g.positions2 & m.mask)::BIGINT AS s2,
           position_square_sum(g.positions2 & m.mask)::BIGINT AS q2
    FROM {{ ref('position_grid') }} g JOIN spread m USING (lane)
),
sums AS (
    SELECT subset, scenario_id, pair_id, n1, s1, q1, n2, s2, q2 FROM partial WHERE lanes = 1
    UNION ALL
    SELECT subset, scenario_id, any_value(pair_id), sum(n1)::BIGINT, sum(s1)::BIGINT, sum(q1)::BIGINT,
           sum(n2)::BIGINT, sum(s2)::BIGINT, sum(q2)::BIGINT
    FROM partial WHERE lanes > 1
    GROUP BY subset, scenario_id
),
per_subset AS (
    SELECT u.subset, u.scenario_id, u.pair_id, z.subset_size,
           least(nullif(u.n1, 0), nullif(u.n2, 0)) AS n_models,
           CASE WHEN u.n1 > 0 THEN sqrt((u.n1 * u.q1 - u.s1 * u.s1) / (u.n1 * u.n1)::DOUBLE) END AS std_value1,
           CASE WHEN u.n2 > 0 THEN sqrt((u.n2 * u.q2 - u.s2 * u.s2) / (u.n2 * u.n2)::DOUBLE) END AS std_value2
    FROM sums u JOIN sizes z USING (subset)
),
scored AS (
    SELECT *, greatest(coalesce(std_value1, 0), coalesce(std_value2, 0)) AS d
    FROM per_subset
    WHERE n_models >= 2
)
SELECT subset, scenario_id, pair_id, n_models, subset_size, std_value1, std_value2, d,
       CASE
           WHEN d < 1.0 THEN '[0,1)'
           WHEN d < 1.5 THEN '[1,1.5)'
           WHEN d < 2.0 THEN '[1.5,2)'
           WHEN d < 2.5 THEN '[2,2.5)'
           ELSE '[2.5,3]'
       END AS bin,
       d >= {{high}} AS high
FROM scored
