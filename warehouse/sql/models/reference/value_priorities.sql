-- reference model: value_priorities (the plain version of models/value_priorities.sql; the tests
-- hold the two equal row for row).
--
-- Every ok placement of a panel model on a value of a scenario counts for that value's level-2
-- category (category1 of the scenario's pair for value 1, category2 for value 2).
--   n                how many placements the model made on the category's values
--   mean_position    their mean position (0..6)
--   score            the mean of (position - 3) / 3, in [-1, 1]: above 0 when the model leans
--                    towards the category's values
--   win_rate         over the placements where the model also placed the scenario's other value
--                    (a "duel"), the share it placed this category's value higher (a draw counts 1/2)
--   duels            how many such placements
--   distinctiveness  the model's score minus the mean score of the panel's models on the category
--   rank             1 = the category the model favours most (by score, then win_rate, then name)
-- Means are written as exact integer sums divided once, (sum(position) - 3 n) / (3 n) for the
-- score, so categories whose scores are equal tie exactly and rank as the optimised model does.
-- Inputs: classifications, pairs, subsets (the 'all' subset is the panel).
WITH panel AS (
    SELECT DISTINCT model_id FROM subsets WHERE subset = 'all'
),
categories AS (     -- each level-2 category's level-3 category
    SELECT category, any_value(top_category) AS top_category
    FROM (SELECT category1 AS category, top_category1 AS top_category FROM {{ ref('pairs') }}
          UNION ALL
          SELECT category2, top_category2 FROM {{ ref('pairs') }})
    GROUP BY category
),
placements AS (     -- the panel's ok positions, each with its value's category
    SELECT c.scenario_id, c.model_id, c.value_slot, c.position::BIGINT AS position,
           CASE c.value_slot WHEN 1 THEN p.category1 WHEN 2 THEN p.category2 END AS category
    FROM {{ ref('classifications') }} c
    JOIN panel USING (model_id)
    JOIN {{ ref('pairs') }} p USING (pair_id)
    WHERE c.status = 'ok' AND c.position IS NOT NULL
),
duels AS (          -- a placement against the same model's placement of the other value: 2 win, 1 draw, 0 loss
    SELECT a.model_id, a.category,
           CASE WHEN a.position > b.position THEN 2 WHEN a.position < b.position THEN 0 ELSE 1 END AS points
    FROM placements a
    JOIN placements b
      ON b.scenario_id = a.scenario_id AND b.model_id = a.model_id AND b.value_slot <> a.value_slot
),
scores AS (
    SELECT model_id, category, count(*) AS n,
           sum(position)::BIGINT / count(*) AS mean_position,
           (sum(position)::BIGINT - 3 * count(*)) / (3 * count(*)) AS score
    FROM placements
    GROUP BY model_id, category
),
wins AS (
    SELECT model_id, category, sum(points)::BIGINT / (2 * count(*)) AS win_rate, count(*) AS duels
    FROM duels
    GROUP BY model_id, category
),
scored AS (
    SELECT s.model_id, s.category, k.top_category, s.n, s.mean_position, s.score,
           w.win_rate, coalesce(w.duels, 0) AS duels
    FROM scores s
    JOIN categories k USING (category)
    LEFT JOIN wins w USING (model_id, category)
)
SELECT *,
       score - avg(score) OVER (PARTITION BY category) AS distinctiveness,
       rank() OVER (PARTITION BY model_id ORDER BY score DESC, win_rate DESC NULLS LAST, category) AS rank
FROM scored
