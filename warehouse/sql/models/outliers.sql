-- model: outliers
-- A response is an outlier on a value when its position differs by at least {{min_gap}} points from
-- at least ceil({{min_share}} x (n - 1)) of the other n - 1 models that placed that scenario
-- (the paper: 4 points from at least 9 of the other 11). One row per scenario x model, with the
-- number of models it stands apart from on each value.
-- Inputs: position_grid, subsets (the 'all' subset defines the panel and the grid's model order).
--
-- How (for speed; see bench/analytics.py): position_grid holds every panel model's positions on a
-- scenario packed 4 bits a model (nibble = position + 1). How many models placed a value at or
-- above each position is a bit count on the packed lane (at_least in sql/macros.sql); the seven
-- counts are packed into one BIGINT per value as seven 9-bit counters ("ge": counter k = how many
-- models placed the value at position >= k, so counter 0 is n, the number that placed it; see
-- counter_at and as_counter in sql/macros.sql), added up over lanes when the panel has more than
-- 15 models. From them, the number of models at least {{min_gap}} away from each position p = 0..6,
--   #(position <= p - gap) + #(position >= p + gap) = ge[0] - ge[p - gap + 1] + ge[p + gap],
-- is packed per scenario too (counter p = the count for a model at position p), so each unpacked
-- scenario x model row only shifts it by its own position. A 9-bit counter holds at most 511
-- (counter_max()), so at most 511 models may place a scenario's value; it is checked.
-- The reference model, models/reference/outliers.sql, computes the same rows by comparing each
-- placement with the others directly; the tests hold the two equal.
-- The output is not sorted (an artefact has no order; the views and queries sort what they show).

-- counts_at_least(x): the packed counters of lane x, counter k = how many nibbles are >= k + 1
-- (= how many models placed the value at position >= k)
CREATE OR REPLACE TEMP MACRO counts_at_least(x) AS
    as_counter(at_least(x, 1), 0) + as_counter(at_least(x, 2), 1) + as_counter(at_least(x, 3), 2)
    + as_counter(at_least(x, 4), 3) + as_counter(at_least(x, 5), 4) + as_counter(at_least(x, 6), 5)
    + as_counter(at_least(x, 7), 6);
-- far_at(ge, p): how many models placed the value at least {{min_gap}} from position p, from the
-- counters ge: #(position <= p - gap) = n - #(position >= p - gap + 1), plus #(position >= p + gap)
CREATE OR REPLACE TEMP MACRO far_at(ge, p) AS
    CASE WHEN p >= {{min_gap}} THEN counter_at(ge, 0) - counter_at(ge, p - {{min_gap}} + 1) ELSE 0 END
    + CASE WHEN p + {{min_gap}} <= 6 THEN counter_at(ge, p + {{min_gap}}) ELSE 0 END;
-- far_at for p = 0..6, packed: counter p = far_at(ge, p)
CREATE OR REPLACE TEMP MACRO far_by_position(ge) AS
    as_counter(far_at(ge, 0), 0) + as_counter(far_at(ge, 1), 1) + as_counter(far_at(ge, 2), 2)
    + as_counter(far_at(ge, 3), 3) + as_counter(far_at(ge, 4), 4) + as_counter(far_at(ge, 5), 5)
    + as_counter(far_at(ge, 6), 6);

WITH panel AS (
    SELECT * FROM panel_models('subsets')
),
lanes AS (
    SELECT lane, list({'model_id': model_id, 'i': i, 'j': j} ORDER BY i) AS members FROM panel GROUP BY lane
),
lane_counts AS (    -- per scenario and lane: counter k = how many models placed the value at >= k
    SELECT scenario_id, lane, positions1, positions2,
           counts_at_least(positions1) AS ge1, counts_at_least(positions2) AS ge2
    FROM {{ ref('position_grid') }}
),
scenario_counts AS (    -- panels of more than 15 models: the counts of all lanes (otherwise empty)
    SELECT scenario_id,
           CASE WHEN sum(counter_at(ge1, 0)) > counter_max() OR sum(counter_at(ge2, 0)) > counter_max()  -- would carry
                THEN error('outliers: more than 511 models placed one scenario') ELSE sum(ge1)::BIGINT END AS ge1,
           sum(ge2)::BIGINT AS ge2
    FROM lane_counts
    WHERE (SELECT max(lane) FROM panel) > 0
    GROUP BY scenario_id
),
counted AS (
    SELECT l.scenario_id, l.lane, l.positions1, l.positions2,
           coalesce(s.ge1, l.ge1) AS ge1, coalesce(s.ge2, l.ge2) AS ge2
    FROM lane_counts l LEFT JOIN scenario_counts s USING (scenario_id)
),
needs AS (      -- ceil({{min_share}} x (n - 1)) for every possible n, computed once (less 1e-9: a
                -- share such as 9/11 is inexact in floating point, and 9/11 x 11 must need 9, not 10)
    SELECT list(ceil({{min_share}} * (n - 1) - 1e-9) ORDER BY n) AS needed FROM range(counter_max() + 1) t(n)
),
per_scenario AS (   -- per scenario (and lane): for each position p, how many models are at least
                    -- {{min_gap}} away from it ("far", counter p), and how many are needed
    SELECT c.scenario_id, c.lane, c.positions1, c.positions2, counter_at(c.ge1, 0) AS n1, counter_at(c.ge2, 0) AS n2,
           x.needed[counter_at(c.ge1, 0) + 1] AS needed1, x.needed[counter_at(c.ge2, 0) + 1] AS needed2,
           far_by_position(c.ge1) AS far1, far_by_position(c.ge2) AS far2
    FROM counted c CROSS JOIN needs x
),
unpacked AS (   -- one row per scenario and panel model; a value counts when the model placed it and
                -- at least one other model did (p1/p2 NULL otherwise)
    SELECT scenario_id, model_id, n1, n2, needed1, needed2, far1, far2,
           CASE WHEN nibble1 > 0 AND n1 >= 2 THEN nibble1 - 1 END AS p1,
           CASE WHEN nibble2 > 0 AND n2 >= 2 THEN nibble2 - 1 END AS p2
    FROM (SELECT s.scenario_id, s.n1, s.n2, s.needed1, s.needed2, s.far1, s.far2,
                 nibble(s.positions1, s.m.j) AS nibble1, nibble(s.positions2, s.m.j) AS nibble2,
                 s.m.model_id AS model_id
          FROM (SELECT c.*, unnest(l.members) AS m FROM per_scenario c JOIN lanes l USING (lane)) s)
),
flagged AS (
    SELECT scenario_id, model_id, n1, n2, p1, p2,
           CASE WHEN p1 IS NOT NULL THEN needed1 END AS needed1,
           CASE WHEN p2 IS NOT NULL THEN needed2 END AS needed2,
           counter_at(far1, p1) AS apart1,     -- NULL when p1 is
           counter_at(far2, p2) AS apart2
    FROM unpacked
    WHERE p1 IS NOT NULL OR p2 IS NOT NULL
)
SELECT scenario_id, model_id,
       greatest(CASE WHEN p1 IS NOT NULL THEN n1 END, CASE WHEN p2 IS NOT NULL THEN n2 END) AS n_models,
       p1::TINYINT AS position_value1,
       p2::TINYINT AS position_value2,
       apart1 AS apart_value1,
       apart2 AS apart_value2,
       greatest(needed1, needed2) AS needed,
       coalesce(apart1 >= needed1 AND n1 >= 3, false) OR coalesce(apart2 >= needed2 AND n2 >= 3, false) AS outlier
FROM flagged
