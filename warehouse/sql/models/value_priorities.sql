-- model: value_priorities
-- How strongly each model favours the values of each level-2 category when they are traded off.
--   score          mean of (position - 3) / 3 over every ok placement on a value of the category, in [-1, 1]
--   win_rate       share of scenarios where the model placed this category's value above the other value
--   distinctiveness  score minus the panel's mean score for the category
--   rank           1 = the category the model favours most (by score, then win_rate)
-- Inputs: classifications, pairs.
--
-- How (for speed; see bench/analytics.py): pairing each placement with the same model's placement
-- of the other value (a self-join on model x scenario, 7M rows at paper scale) is slow. Instead
-- the placements are grouped by scenario only, once, into one BIGINT per value holding 4 bits per
-- model (its position + 1; 0 = no ok placement), 15 models a "lane" (more models means more
-- lanes, i.e. more groups, never wrong results). Each scenario is joined to its pair, the models
-- are unpacked (one row per scenario x model x value, with the position on the other value) and
-- counted per model x category x position x other position; the scores come from those exact
-- counts with one rounding each, so categories whose scores are equal tie exactly (then win_rate
-- and the name decide). Positions are 0..6, value_slot is 1 or 2, and there is one row per
-- scenario x model x value; all three are checked.
WITH models AS (
    SELECT model_id, i, i // 15 AS lane, i % 15 AS j
    FROM (SELECT model_id, (row_number() OVER (ORDER BY model_id) - 1)::INTEGER AS i
          FROM (SELECT DISTINCT model_id FROM classifications WHERE status = 'ok' AND position IS NOT NULL))
),
lanes AS (
    SELECT lane, list({'i': i, 'j': j} ORDER BY i) AS members FROM models GROUP BY lane
),
ok AS NOT MATERIALIZED (    -- inlined into both halves of per_lane
    SELECT c.scenario_id, c.pair_id, m.lane, m.j,
           CASE WHEN c.value_slot IN (1, 2) THEN c.value_slot
                ELSE error('value_priorities: value_slot ' || c.value_slot || ' is not 1 or 2') END AS value_slot,
           CASE WHEN c.position BETWEEN 0 AND 6 THEN c.position
                ELSE error('value_priorities: position ' || c.position || ' is outside 0..6') END AS position
    FROM classifications c JOIN models m USING (model_id)
    WHERE c.status = 'ok' AND c.position IS NOT NULL
),
per_lane AS (   -- one row per scenario and lane
    -- lane 0 (the first 15 models) is grouped by scenario alone: a cheaper key than (scenario, lane)
    SELECT scenario_id, 0 AS lane, any_value(pair_id) AS pair_id,
           coalesce(bit_or((position + 1)::BIGINT << (4 * j)) FILTER (WHERE value_slot = 1), 0) AS packed1,
           coalesce(bit_or((position + 1)::BIGINT << (4 * j)) FILTER (WHERE value_slot = 2), 0) AS packed2,
           count(*) AS placements
    FROM ok WHERE lane = 0
    GROUP BY scenario_id
    UNION ALL
    -- lanes 1, 2, ... exist only with more than 15 models (otherwise this half ends at once)
    SELECT scenario_id, lane, any_value(pair_id) AS pair_id,
           coalesce(bit_or((position + 1)::BIGINT << (4 * j)) FILTER (WHERE value_slot = 1), 0) AS packed1,
           coalesce(bit_or((position + 1)::BIGINT << (4 * j)) FILTER (WHERE value_slot = 2), 0) AS packed2,
           count(*) AS placements
    FROM ok WHERE lane > 0
    GROUP BY scenario_id, lane
),
unpacked AS (   -- one row per scenario x model x value: the model's position on it and on the other value
    SELECT s.i, s.v.category, s.v.top_category,
           ((s.v.packed >> (4 * s.j)) & 15)::INTEGER - 1 AS position,        -- -1: no ok placement
           ((s.v.other >> (4 * s.j)) & 15)::INTEGER - 1 AS other_position
    FROM (SELECT m.i, m.j,
                 unnest([{'category': category1, 'top_category': top_category1, 'packed': packed1, 'other': packed2},
                         {'category': category2, 'top_category': top_category2, 'packed': packed2, 'other': packed1}],
                        max_depth := 1) AS v
          FROM (SELECT p.category1, p.category2, p.top_category1, p.top_category2, l.packed1, l.packed2,
                       unnest(ln.members) AS m
                FROM per_lane l JOIN pairs p USING (pair_id) JOIN lanes ln USING (lane)
                -- a nibble is non-zero for every model with an ok placement; a second row of the same
                -- model and value would be OR-ed into the same nibble, so the counts would differ
                WHERE CASE WHEN l.placements <> bit_count((l.packed1 | (l.packed1 >> 1) | (l.packed1 >> 2)) & 76861433640456465)
                                                 + bit_count((l.packed2 | (l.packed2 >> 1) | (l.packed2 >> 2)) & 76861433640456465)
                           THEN error('value_priorities: classifications must have one row per scenario x model x value_slot')
                           ELSE true END)) s
),
tally AS (      -- how often each model put a category's value at each position, against each other position
    SELECT i, category, any_value(top_category) AS top_category, position, other_position, count(*) AS times
    FROM unpacked
    WHERE position >= 0
    GROUP BY i, category, position, other_position
),
scores AS (
    SELECT i, category, top_category, n,
           total / n AS mean_position,          -- from exact sums: one rounding
           (total - 3 * n) / (3 * n) AS score   -- = the mean of (position - 3) / 3
    FROM (SELECT i, category, any_value(top_category) AS top_category, sum(times)::BIGINT AS n,
                 sum(times * position)::BIGINT AS total
          FROM tally GROUP BY i, category)
),
wins AS (
    SELECT i, category,
           -- wins count 2, draws 1: the mean of 1 / 0.5 / 0 with one rounding
           sum(times * CASE WHEN position > other_position THEN 2 WHEN position < other_position THEN 0 ELSE 1 END)::BIGINT
               / (2 * sum(times)::BIGINT) AS win_rate,
           sum(times)::BIGINT AS duels
    FROM tally WHERE other_position >= 0 GROUP BY i, category
),
named AS (
    SELECT m.model_id, s.category, s.top_category, s.n, s.mean_position, s.score, w.win_rate, w.duels
    FROM scores s JOIN models m USING (i) LEFT JOIN wins w USING (i, category)
),
panel AS (
    SELECT category, avg(score) AS panel_score FROM named GROUP BY category
)
SELECT s.model_id, s.category, s.top_category, s.n, s.mean_position, s.score,
       s.win_rate, coalesce(s.duels, 0) AS duels,
       s.score - p.panel_score AS distinctiveness,
       rank() OVER (PARTITION BY s.model_id ORDER BY s.score DESC, s.win_rate DESC NULLS LAST, s.category) AS rank
FROM named s JOIN panel p USING (category)
ORDER BY s.model_id, rank
