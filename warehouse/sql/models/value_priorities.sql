-- model: value_priorities
-- How strongly each model favours the values of each level-2 category when they are traded off.
--   score          mean of (position - 3) / 3 over every ok placement on a value of the category, in [-1, 1]
--   win_rate       share of scenarios where the model placed this category's value above the other value
--   distinctiveness  score minus the panel's mean score for the category
--   rank           1 = the category the model favours most (by score, then win_rate)
-- Inputs: position_grid, pairs, subsets (the 'all' subset gives the grid's model order).
--
-- How (for speed; see bench/analytics.py): pairing each placement with the same model's placement
-- of the other value (a self-join on model x scenario, 7M rows at paper scale) is slow. Instead
-- position_grid already holds, per scenario, every panel model's positions packed 4 bits a model
-- (position + 1; 0 = no ok placement). Each scenario is joined to its pair, the models are
-- unpacked (one row per scenario x model) and counted per model x category x position x other
-- position, once for each value's category, on one small integer key (at most 4,096 categories); the scores come from those exact
-- counts with one rounding each, so categories whose scores are equal tie exactly (then win_rate
-- and the name decide).
-- The reference model, models/reference/value_priorities.sql, computes the same rows with a plain
-- self-join and group-by; the tests hold the two equal.

-- A tally key packs (model i, category number c, nibble, other nibble) into one BIGINT, as the
-- digits of a mixed-radix number: nibble and other nibble are 0..7 (3 bits each, 0 = no ok
-- placement), c is 0 .. max_categories() - 1 (12 bits), i takes the bits above.
CREATE OR REPLACE TEMP MACRO max_categories() AS 4096;   -- 0x1000: c takes 12 bits
CREATE OR REPLACE TEMP MACRO tally_key(i, c, nibble, other_nibble) AS
    ((i * max_categories() + c) * 8 + nibble) * 8 + other_nibble;
-- the parts of a tally key; positions are nibbles - 1, so -1 = no ok placement
CREATE OR REPLACE TEMP MACRO key_model(key) AS key // (max_categories() * 64);
CREATE OR REPLACE TEMP MACRO key_category(key) AS ((key // 64) % max_categories())::INTEGER;
CREATE OR REPLACE TEMP MACRO key_position(key) AS ((key // 8) % 8)::INTEGER - 1;
CREATE OR REPLACE TEMP MACRO key_other_position(key) AS (key % 8)::INTEGER - 1;

WITH models AS (
    SELECT * FROM panel_models('subsets')
),
lanes AS (
    SELECT lane, list({'i': i, 'j': j} ORDER BY i) AS members FROM models GROUP BY lane
),
categories AS (   -- the pairs' categories, numbered: an integer key groups much faster than a name
    SELECT category, any_value(top_category) AS top_category,
           (row_number() OVER (ORDER BY category) - 1)::INTEGER AS c
    FROM (SELECT category1 AS category, top_category1 AS top_category FROM {{ ref('pairs') }}
          UNION ALL
          SELECT category2, top_category2 FROM {{ ref('pairs') }})
    GROUP BY category
),
checked_categories AS (   -- a tally key has room for max_categories() categories
    SELECT * FROM categories
    WHERE CASE WHEN c >= max_categories()
               THEN error('value_priorities: more than ' || max_categories() || ' categories') ELSE true END
),
keyed_pairs AS (
    SELECT p.pair_id, c1.c AS c1, c2.c AS c2
    FROM {{ ref('pairs') }} p JOIN checked_categories c1 ON c1.category = p.category1
                             JOIN checked_categories c2 ON c2.category = p.category2
),
unpacked AS NOT MATERIALIZED (   -- one row per scenario x model: its nibbles (position + 1, 0 = none) on both values
    SELECT s.m.i AS i, s.c1, s.c2,
           nibble(s.positions1, s.m.j) AS nibble1, nibble(s.positions2, s.m.j) AS nibble2
    FROM (SELECT k.c1, k.c2, g.positions1, g.positions2, unnest(ln.members) AS m
          FROM {{ ref('position_grid') }} g JOIN keyed_pairs k USING (pair_id) JOIN lanes ln USING (lane)) s
),
counted AS (    -- per value: how often each model put a category's value at each nibble, against each nibble
                -- on the other value, as one small integer key (a much cheaper group than names)
    SELECT tally_key(i, c1, nibble1, nibble2) AS key, count(*) AS times
    FROM unpacked GROUP BY key
    UNION ALL
    SELECT tally_key(i, c2, nibble2, nibble1) AS key, count(*) AS times
    FROM unpacked GROUP BY key
),
tally AS (      -- how often each model put a category's value at each position, against each other position
    SELECT k.i, c.category, c.top_category, k.position, k.other_position, k.times
    FROM (SELECT key_model(key) AS i, key_category(key) AS c,
                 key_position(key) AS position, key_other_position(key) AS other_position,
                 sum(times)::BIGINT AS times
          FROM counted GROUP BY key) k
    JOIN categories c USING (c)
    WHERE k.position >= 0
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
