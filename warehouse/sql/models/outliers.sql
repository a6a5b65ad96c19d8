-- model: outliers
-- A response is an outlier on a value when its position differs by at least {{min_gap}} points from
-- at least ceil({{min_share}} x (n - 1)) of the other n - 1 models that placed that scenario
-- (the paper: 4 points from at least 9 of the other 11). One row per scenario x model, with the
-- number of models it stands apart from on each value.
-- Inputs: classifications, subsets (the 'all' subset defines the panel).
--
-- How (for speed; see bench/analytics.py): comparing every placement with every other one of its
-- scenario (a self-join, 11 x 7M rows at paper scale) and grouping by scenario x model is slow.
-- Instead the placements are grouped by scenario only, once, into two BIGINTs per value:
--   packed: 4 bits per panel model (its position + 1; 0 = no ok placement), 15 models a "lane"
--           (more models means more lanes, i.e. more groups, never wrong results);
--   cumulative histogram: 9 bits per position k = 0..6 holding how many models placed at <= k.
-- The models are then unpacked (scenario x model rows) and the number of models at least
-- {{min_gap}} away is read off the histogram: #(<= p - gap) + n - #(<= p + gap - 1). Positions
-- are 0..6, one row per scenario x model x value, and at most 511 models place a scenario's
-- value; all three are checked. The output is not sorted (an artefact has no order; the views and
-- queries sort what they show).
WITH panel AS (
    SELECT model_id::VARCHAR AS model_id, i, i // 15 AS lane, i % 15 AS j
    FROM (SELECT model_id, (row_number() OVER (ORDER BY model_id) - 1)::INTEGER AS i
          FROM (SELECT DISTINCT model_id FROM subsets WHERE subset = 'all'))
),
lanes AS (
    SELECT lane, list({'model_id': model_id, 'i': i, 'j': j} ORDER BY i) AS members FROM panel GROUP BY lane
),
ok AS NOT MATERIALIZED (    -- inlined into both halves of per_lane
    SELECT c.scenario_id, c.value_slot, p.lane AS own_lane, p.j,
           CASE WHEN c.position BETWEEN 0 AND 6 THEN c.position
                ELSE error('outliers: position ' || c.position || ' is outside 0..6') END AS position
    FROM classifications c JOIN panel p USING (model_id)
    WHERE c.status = 'ok' AND c.position IS NOT NULL
),
per_lane AS (   -- one row per scenario and lane
    -- lane 0 (the first 15 panel models) is grouped by scenario alone: a cheaper key than (scenario, lane)
    SELECT scenario_id, 0 AS lane,
           bit_or((position + 1)::BIGINT << (4 * j)) FILTER (WHERE value_slot = 1 AND own_lane = 0) AS packed1,
           bit_or((position + 1)::BIGINT << (4 * j)) FILTER (WHERE value_slot = 2 AND own_lane = 0) AS packed2,
           count(*) FILTER (WHERE own_lane = 0) AS placements,
           -- sum over placements of [1 in every 9-bit digit k >= position]
           sum([18049651735527937, 18049651735527936, 18049651735527424, 18049651735265280,
                18049651601047552, 18049582881570816, 18014398509481984][position + 1])
               FILTER (WHERE value_slot = 1) AS at_most1,
           sum([18049651735527937, 18049651735527936, 18049651735527424, 18049651735265280,
                18049651601047552, 18049582881570816, 18014398509481984][position + 1])
               FILTER (WHERE value_slot = 2) AS at_most2
    FROM ok
    GROUP BY scenario_id
    UNION ALL
    -- lanes 1, 2, ... exist only with more than 15 panel models (otherwise this half ends at once);
    -- every placement counts in the histogram of every lane
    SELECT o.scenario_id, l.lane,
           bit_or((o.position + 1)::BIGINT << (4 * o.j)) FILTER (WHERE o.value_slot = 1 AND o.own_lane = l.lane) AS packed1,
           bit_or((o.position + 1)::BIGINT << (4 * o.j)) FILTER (WHERE o.value_slot = 2 AND o.own_lane = l.lane) AS packed2,
           count(*) FILTER (WHERE o.own_lane = l.lane) AS placements,
           -- sum over placements of [1 in every 9-bit digit k >= position]
           sum([18049651735527937, 18049651735527936, 18049651735527424, 18049651735265280,
                18049651601047552, 18049582881570816, 18014398509481984][o.position + 1])
               FILTER (WHERE o.value_slot = 1) AS at_most1,
           sum([18049651735527937, 18049651735527936, 18049651735527424, 18049651735265280,
                18049651601047552, 18049582881570816, 18014398509481984][o.position + 1])
               FILTER (WHERE o.value_slot = 2) AS at_most2
    FROM ok o CROSS JOIN (SELECT lane FROM lanes WHERE lane > 0) l
    GROUP BY o.scenario_id, l.lane
),
counted AS (
    SELECT scenario_id, lane, coalesce(packed1, 0) AS packed1, coalesce(packed2, 0) AS packed2, placements,
           coalesce(at_most1, 0)::BIGINT AS at_most1, coalesce(at_most2, 0)::BIGINT AS at_most2,
           (coalesce(at_most1, 0)::BIGINT >> 54) AS n1, (coalesce(at_most2, 0)::BIGINT >> 54) AS n2
    FROM per_lane
),
needs AS (      -- ceil({{min_share}} x (n - 1)) for every possible n, computed once
    SELECT list(ceil({{min_share}} * (n - 1) - 1e-9) ORDER BY n) AS needed FROM range(512) t(n)
),
checked AS (
    SELECT *,
           -- a nibble is non-zero for every model with an ok placement; a second row of the same model
           -- and value would be OR-ed into the same nibble, so the counts would differ
           CASE WHEN n1 > 511 OR n2 > 511 THEN error('outliers: more than 511 models placed one scenario')
                WHEN placements <> bit_count((packed1 | (packed1 >> 1) | (packed1 >> 2)) & 76861433640456465)
                                  + bit_count((packed2 | (packed2 >> 1) | (packed2 >> 2)) & 76861433640456465)
                THEN error('outliers: classifications must have one row per scenario x model x value_slot')
                ELSE true END AS valid
    FROM (SELECT c.*, x.needed[c.n1 + 1] AS needed1, x.needed[c.n2 + 1] AS needed2 FROM counted c CROSS JOIN needs x)
),
unpacked AS (   -- one row per scenario and panel model; a value counts when the model placed it and
                -- at least one other model did (p1/p2 NULL otherwise)
    SELECT scenario_id, model_id, i, n1, n2, at_most1, at_most2, needed1, needed2,
           CASE WHEN nibble1 > 0 AND n1 >= 2 THEN nibble1 - 1 END AS p1,
           CASE WHEN nibble2 > 0 AND n2 >= 2 THEN nibble2 - 1 END AS p2
    FROM (SELECT s.*, (s.packed1 >> (4 * s.m.j)) & 15 AS nibble1, (s.packed2 >> (4 * s.m.j)) & 15 AS nibble2,
                 s.m.model_id AS model_id, s.m.i AS i
          FROM (SELECT c.*, unnest(l.members) AS m FROM checked c JOIN lanes l USING (lane) WHERE c.valid) s)
),
flagged AS (    -- far: how many models placed the value at least {{min_gap}} away
    SELECT scenario_id, model_id, i, n1, n2, p1, p2,
           CASE WHEN p1 IS NOT NULL THEN needed1 END AS needed1,
           CASE WHEN p2 IS NOT NULL THEN needed2 END AS needed2,
           CASE WHEN p1 IS NOT NULL THEN
               CASE WHEN p1 >= {{min_gap}} THEN (at_most1 >> (9 * (p1 - {{min_gap}}))) & 511 ELSE 0 END
             + CASE WHEN p1 + {{min_gap}} <= 6 THEN n1 - ((at_most1 >> (9 * (p1 + {{min_gap}} - 1))) & 511) ELSE 0 END
           END AS far1,
           CASE WHEN p2 IS NOT NULL THEN
               CASE WHEN p2 >= {{min_gap}} THEN (at_most2 >> (9 * (p2 - {{min_gap}}))) & 511 ELSE 0 END
             + CASE WHEN p2 + {{min_gap}} <= 6 THEN n2 - ((at_most2 >> (9 * (p2 + {{min_gap}} - 1))) & 511) ELSE 0 END
           END AS far2
    FROM unpacked
    WHERE p1 IS NOT NULL OR p2 IS NOT NULL
),
result AS (
    SELECT scenario_id, model_id, i,
           greatest(CASE WHEN p1 IS NOT NULL THEN n1 END, CASE WHEN p2 IS NOT NULL THEN n2 END) AS n_models,
           p1::TINYINT AS position_value1,
           p2::TINYINT AS position_value2,
           far1 AS apart_value1,
           far2 AS apart_value2,
           greatest(needed1, needed2) AS needed,
           coalesce(far1 >= needed1 AND n1 >= 3, false) OR coalesce(far2 >= needed2 AND n2 >= 3, false) AS outlier
    FROM flagged
)
SELECT scenario_id, model_id, n_models, position_value1, position_value2, apart_value1, apart_value2,
       needed, outlier
FROM result
