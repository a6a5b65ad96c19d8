-- model: disagreement
-- D(x, M) = max over the two values of the population standard deviation (ddof = 0) of the
-- positions that the models of subset M took on scenario x. Computed only where at least two
-- models of the subset have an ok placement; n_models says how many did.
-- Inputs: classifications, subsets(subset, model_id). Parameter: {{high}}.
--
-- How (for speed; see bench/analytics.py): joining the placements to the subsets and grouping by
-- subset x scenario x value builds a hash table with millions of entries (3.6M at paper scale),
-- which dominates the run time. Instead the placements are grouped by scenario only, once: every
-- subset owns a 16-bit digit of three HUGEINT sums per value (placements n, sum of positions s,
-- sum of squared positions q), so one sum carries up to 7 subsets (a "lane"; more subsets means
-- more lanes, i.e. more groups, never wrong results). The per-subset sums are read back with
-- shifts and the population std is computed from exact integer sums, sqrt((n*q - s*s) / n^2):
-- D exactly on a bin edge (1, 1.5, 2, 2.5) gets that edge's bin, where a floating-point running
-- std can land just below it. Positions are 0..6 and a scenario has at most 1,820 placements
-- (so no digit can overflow); both are checked. The output is not sorted (an artefact has no order;
-- the views and queries sort what they show).
WITH numbered AS (   -- subsets in name order: z = 0, 1, ...; lane z // 7, digit z % 7
    SELECT subset, model_id, dense_rank() OVER (ORDER BY subset) - 1 AS z,
           count(*) OVER (PARTITION BY subset) AS subset_size
    FROM subsets
),
members AS (    -- how many times each subset lists each model (normally once)
    SELECT subset, model_id, z, count(*) AS times FROM numbered GROUP BY subset, model_id, z
),
weights AS (    -- per model and lane: its multiplicity in the digit of every subset of the lane
    SELECT model_id, z // 7 AS lane, sum(times::HUGEINT << (16 * (z % 7))) AS w
    FROM members GROUP BY model_id, z // 7
),
ok AS NOT MATERIALIZED (    -- inlined into both halves of per_scenario
    SELECT c.scenario_id, c.pair_id, c.value_slot, w.lane, w.w,
           CASE WHEN c.position BETWEEN 0 AND 6 THEN c.position
                ELSE error('disagreement: position ' || c.position || ' is outside 0..6') END AS position
    FROM classifications c JOIN weights w USING (model_id)
    WHERE c.status = 'ok' AND c.position IS NOT NULL
),
per_scenario AS (
    -- lane 0 (the first 7 subsets) is grouped by scenario alone: a cheaper key than (scenario, lane)
    SELECT scenario_id, 0 AS lane, any_value(pair_id) AS pair_id, count(*) AS placements,
           sum(w) FILTER (WHERE value_slot = 1) AS n1,
           sum(w * position) FILTER (WHERE value_slot = 1) AS s1,
           sum(w * (position * position)) FILTER (WHERE value_slot = 1) AS q1,
           sum(w) FILTER (WHERE value_slot = 2) AS n2,
           sum(w * position) FILTER (WHERE value_slot = 2) AS s2,
           sum(w * (position * position)) FILTER (WHERE value_slot = 2) AS q2
    FROM ok WHERE lane = 0
    GROUP BY scenario_id
    UNION ALL
    -- lanes 1, 2, ... exist only with more than 7 subsets (otherwise this half ends at once)
    SELECT scenario_id, lane, any_value(pair_id) AS pair_id, count(*) AS placements,
           sum(w) FILTER (WHERE value_slot = 1) AS n1,
           sum(w * position) FILTER (WHERE value_slot = 1) AS s1,
           sum(w * (position * position)) FILTER (WHERE value_slot = 1) AS q1,
           sum(w) FILTER (WHERE value_slot = 2) AS n2,
           sum(w * position) FILTER (WHERE value_slot = 2) AS s2,
           sum(w * (position * position)) FILTER (WHERE value_slot = 2) AS q2
    FROM ok WHERE lane > 0
    GROUP BY scenario_id, lane
),
ranked AS (
    SELECT p.*,
           -- a digit holds at most placements x multiplicity; q <= 36 x that must stay below 2^16
           p.placements * (SELECT max(times) FROM members) > 1820 AS too_many
    FROM per_scenario p
),
sizes AS (
    SELECT DISTINCT subset, z, subset_size FROM numbered
),
digits AS (
    SELECT z.subset, z.z, z.subset_size, p.scenario_id, p.pair_id,
           CASE WHEN p.too_many THEN error('disagreement: more than 1820 placements of one scenario')
                ELSE ((coalesce(p.n1, 0) >> (16 * (z.z % 7))) & 65535)::BIGINT END AS n1,
           ((coalesce(p.s1, 0) >> (16 * (z.z % 7))) & 65535)::BIGINT AS s1,
           ((coalesce(p.q1, 0) >> (16 * (z.z % 7))) & 65535)::BIGINT AS q1,
           ((coalesce(p.n2, 0) >> (16 * (z.z % 7))) & 65535)::BIGINT AS n2,
           ((coalesce(p.s2, 0) >> (16 * (z.z % 7))) & 65535)::BIGINT AS s2,
           ((coalesce(p.q2, 0) >> (16 * (z.z % 7))) & 65535)::BIGINT AS q2
    FROM ranked p JOIN sizes z ON z.z // 7 = p.lane
),
per_subset AS (
    SELECT subset, z, scenario_id, pair_id, subset_size,
           least(nullif(n1, 0), nullif(n2, 0)) AS n_models,
           CASE WHEN n1 > 0 THEN sqrt((n1 * q1 - s1 * s1) / (n1 * n1)::DOUBLE) END AS std_value1,
           CASE WHEN n2 > 0 THEN sqrt((n2 * q2 - s2 * s2) / (n2 * n2)::DOUBLE) END AS std_value2
    FROM digits
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
