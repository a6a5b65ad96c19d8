-- reference model: disagreement (the plain version of models/disagreement.sql; the tests hold the
-- two equal row for row).
--
-- For every model subset and scenario, take the ok positions (0..6) that the subset's models gave
-- each of the scenario's two values. For each value, the spread is the population standard
-- deviation of those positions (divide by n, not n - 1), and the disagreement D is the larger of
-- the two spreads (a value nobody placed counts as 0).
--   n_models     the number of subset models that placed the value placed by fewer of them
--                (a value placed by nobody is left out)
--   subset_size  how many models the subset lists
--   bin          D in [0,1) [1,1.5) [1.5,2) [2,2.5) [2.5,3];  high = D >= {{high}}
-- A (subset, scenario) gets a row only when n_models >= 2. Only the panel's models (the 'all'
-- subset) count, as in the optimised model.
--
-- The standard deviation is stddev_pop(position) written from exact integer sums,
-- sqrt((n * sum(p^2) - sum(p)^2) / n^2): it is rounded once, so a D exactly on a bin edge
-- (1, 1.5, 2, 2.5) falls in the bin that starts there, where stddev_pop's running computation can
-- land a hair below the edge. The optimised model uses the same formula, so the two agree exactly.
-- Inputs: classifications, subsets(subset, model_id). Parameter: {{high}}.
WITH panel AS (             -- the panel: the models of the 'all' subset
    SELECT DISTINCT model_id FROM subsets WHERE subset = 'all'
),
members AS (                -- each subset's models (those on the panel)
    SELECT DISTINCT s.subset, s.model_id FROM subsets s JOIN panel USING (model_id)
),
sizes AS (
    SELECT subset, count(DISTINCT model_id) AS subset_size FROM subsets GROUP BY subset
),
placements AS (             -- every ok position of a subset model, once per subset it belongs to
    SELECT m.subset, c.scenario_id, c.pair_id, c.value_slot, c.position::BIGINT AS p
    FROM {{ ref('classifications') }} c JOIN members m USING (model_id)
    WHERE c.status = 'ok' AND c.position IS NOT NULL
),
sums AS (                   -- per subset and scenario: count n, sum s, sum of squares q per value
    SELECT subset, scenario_id, any_value(pair_id) AS pair_id,
           count(*) FILTER (WHERE value_slot = 1) AS n1,
           (sum(p) FILTER (WHERE value_slot = 1))::BIGINT AS s1,
           (sum(p * p) FILTER (WHERE value_slot = 1))::BIGINT AS q1,
           count(*) FILTER (WHERE value_slot = 2) AS n2,
           (sum(p) FILTER (WHERE value_slot = 2))::BIGINT AS s2,
           (sum(p * p) FILTER (WHERE value_slot = 2))::BIGINT AS q2
    FROM placements
    GROUP BY subset, scenario_id
),
spread AS (
    SELECT subset, scenario_id, pair_id,
           least(nullif(n1, 0), nullif(n2, 0)) AS n_models,
           CASE WHEN n1 > 0 THEN sqrt((n1 * q1 - s1 * s1) / (n1 * n1)::DOUBLE) END AS std_value1,
           CASE WHEN n2 > 0 THEN sqrt((n2 * q2 - s2 * s2) / (n2 * n2)::DOUBLE) END AS std_value2
    FROM sums
),
scored AS (
    SELECT *, greatest(coalesce(std_value1, 0), coalesce(std_value2, 0)) AS d
    FROM spread
    WHERE n_models >= 2
)
SELECT s.subset, s.scenario_id, s.pair_id, s.n_models, z.subset_size, s.std_value1, s.std_value2, s.d,
       CASE
           WHEN s.d < 1.0 THEN '[0,1)'
           WHEN s.d < 1.5 THEN '[1,1.5)'
           WHEN s.d < 2.0 THEN '[1.5,2)'
           WHEN s.d < 2.5 THEN '[2,2.5)'
           ELSE '[2.5,3]'
       END AS bin,
       s.d >= {{high}} AS high
FROM scored s JOIN sizes z USING (subset)
