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
-- counts are packed 9 bits each into one BIGINT per value ("ge", digit v - 1 = how many nibbles
-- are >= v), added up over lanes when the panel has more than 15 models. From them, the number of
-- models at least {{min_gap}} away from each position p = 0..6,
--   #(position <= p - gap) + #(position >= p + gap) = n - ge(p - gap + 2) + ge(p + gap + 1),
-- is packed per scenario too (9 bits a position), so each unpacked scenario x model row only
-- shifts it by its own position. At most 511 models may place a scenario's value; it is checked.
-- The output is not sorted (an artefact has no order; the views and queries sort what they show).

-- far_at(ge, p): how many models placed the value at least {{min_gap}} from position p, from the
-- counts ge (digit v - 1 = how many nibbles are >= v): #(position <= p - gap) + #(position >= p + gap)
CREATE OR REPLACE TEMP MACRO far_at(ge, p) AS
    CASE WHEN p >= {{min_gap}} THEN (ge & 511) - ((ge >> (9 * (p - {{min_gap}} + 1))) & 511) ELSE 0 END
    + CASE WHEN p + {{min_gap}} <= 6 THEN (ge >> (9 * (p + {{min_gap}}))) & 511 ELSE 0 END;
-- far_at for p = 0..6, 9 bits each
CREATE OR REPLACE TEMP MACRO far_by_position(ge) AS
    far_at(ge, 0) + (far_at(ge, 1) << 9) + (far_at(ge, 2) << 18) + (far_at(ge, 3) << 27)
    + (far_at(ge, 4) << 36) + (far_at(ge, 5) << 45) + (far_at(ge, 6) << 54);

WITH panel AS (
    SELECT * FROM panel_models('subsets')
),
lanes AS (
    SELECT lane, list({'model_id': model_id, 'i': i, 'j': j} ORDER BY i) AS members FROM panel GROUP BY lane
),
lane_counts AS (    -- per scenario and lane: digit v - 1 (9 bits) = how many nibbles are >= v
    SELECT scenario_id, lane, positions1, positions2,
           at_least(positions1, 1)::BIGINT + (at_least(positions1, 2)::BIGINT << 9)
             + (at_least(positions1, 3)::BIGINT << 18) + (at_least(positions1, 4)::BIGINT << 27)
             + (at_least(positions1, 5)::BIGINT << 36) + (at_least(positions1, 6)::BIGINT << 45)
             + (at_least(positions1, 7)::BIGINT << 54) AS ge1,
           at_least(positions2, 1)::BIGINT + (at_least(positions2, 2)::BIGINT << 9)
             + (at_least(positions2, 3)::BIGINT << 18) + (at_least(positions2, 4)::BIGINT << 27)
             + (at_least(positions2, 5)::BIGINT << 36) + (at_least(positions2, 6)::BIGINT << 45)
             + (at_least(positions2, 7)::BIGINT << 54) AS ge2
    FROM {{ ref('position_grid') }}
),
scenario_counts AS (    -- panels of more than 15 models: the counts of all lanes (otherwise empty)
    SELECT scenario_id,
           CASE WHEN sum(ge1 & 511) > 511 OR sum(ge2 & 511) > 511   -- a digit would carry into the next
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
needs AS (      -- ceil({{min_share}} x (n - 1)) for every possible n, computed once
    SELECT list(ceil({{min_share}} * (n - 1) - 1e-9) ORDER BY n) AS needed FROM range(512) t(n)
),
per_scenario AS (   -- per scenario (and lane): for each position p, how many models are at least
                    -- {{min_gap}} away from it ("far", 9 bits a position), and how many are needed
    SELECT c.scenario_id, c.lane, c.positions1, c.positions2, c.ge1 & 511 AS n1, c.ge2 & 511 AS n2,
           x.needed[(c.ge1 & 511) + 1] AS needed1, x.needed[(c.ge2 & 511) + 1] AS needed2,
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
           (far1 >> (9 * p1)) & 511 AS apart1,     -- NULL when p1 is
           (far2 >> (9 * p2)) & 511 AS apart2
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
